#!/usr/bin/env python
"""Workflow benchmark (issue 4) — so far its aggregation figure: a chart grouped by month over the
1,000,000-record app of the core benchmark, through RecordService with the viewer's permissions.

    .venv/bin/python bench/workflow.py --instance /tmp/kb      # populate once (bench/records.py's app), reuse
    .venv/bin/python bench/workflow.py --backend postgres --records 200000

Target (issue 4): an aggregation grouped by month over 1,000,000 records ≤ 500 ms on SQLite.
Also reported: the same by 年度 × 区分 (two levels) and a filtered count by month. The bulk status
action and the formula recompute job are measured here once those features exist.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (Figure, fmt_ms, machine_info, print_header, render_table, save_json,  # noqa: E402
                     summarise_ms, time_calls)
from records import Bench, benchmark_args, check_benchmark_args, log  # noqa: E402

TARGET_MONTH_MS = 500.0

CASES = {
    "count by month of 日付": dict(group_by=[{"field": "日付", "period": "month"}]),
    "sum of 数値2 by 年度 × 区分": dict(group_by=[{"field": "日付", "period": "fiscal_year"}, {"field": "区分"}],
                                 measures=[{"op": "count"}, {"op": "sum", "field": "数値2"}]),
    "count by month, 区分 in (\"B\",\"C\")": dict(query='区分 in ("B","C")',
                                                   group_by=[{"field": "日付", "period": "month"}]),
}


def run_backend(backend: str, args) -> dict:
    from kumiki.aggregate import aggregate

    b = Bench(backend, args)
    out: dict = {"backend": backend, "cases": {}}
    try:
        b.open()
        b.load_or_populate()
        if backend == "postgres":
            b.analyze()
        app_id = b.meta["app_id"]
        out["records"] = b.id_range()[2]
        for name, spec in CASES.items():
            log(f"{backend}: {name} x{args.requests}")

            def call(_i, spec=spec):
                with b.ext.Session() as s:
                    result = aggregate(b.service(s), app_id, **spec)
                    assert result["groups"], "an aggregation over the benchmark app found nothing"

            out["cases"][name] = summarise_ms(time_calls(call, args.requests, warmup=2))
    finally:
        b.close()
    return out


def main(argv=None) -> int:
    ap = benchmark_args(__doc__, count_requests=1)
    ap.set_defaults(requests=20)
    args = ap.parse_args(argv)
    check_benchmark_args(ap, args)
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    load_start = os.getloadavg()[0]
    results = [run_backend(be, args) for be in backends]
    info = machine_info(records=f"{args.records:,}", load_avg_1min=f"{load_start:.2f} at start, "
                                                                      f"{os.getloadavg()[0]:.2f} at end")
    print_header("kumiki workflow benchmark (bench/workflow.py)", info)
    rows = []
    for res in results:
        figs = []
        for name, stats in res["cases"].items():
            checked = name.startswith("count by month of") and res["backend"] == "sqlite"
            figs.append(Figure(f"aggregate: {name}", fmt_ms(stats["p50"]), fmt_ms(stats["p95"]),
                               target=f"≤ {TARGET_MONTH_MS:.0f} ms" if checked else "",
                               checks=[("p50", stats["p50"], "<=", TARGET_MONTH_MS)] if checked else []))
        rows.append((f"{res['backend']}: {res['records']:,} records, {args.requests} runs each", figs))
    print(render_table(rows))
    if args.json:
        save_json(args.json, {"machine": info, "results": results})
    return 1 if any(f.result.startswith("MISS") for _t, figs in rows for f in figs) else 0


if __name__ == "__main__":
    sys.exit(main())
