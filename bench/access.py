#!/usr/bin/env python
"""Permissions benchmark (issue 3): what record rules and a hidden field cost a page-of-100 query.

    .venv/bin/python bench/access.py                         # 1,000,000 records on SQLite
    .venv/bin/python bench/access.py --records 20000         # quick
    .venv/bin/python bench/access.py --backend postgres --records 200000
    .venv/bin/python bench/access.py --instance /tmp/ka      # populate once, reuse afterwards
    .venv/bin/python bench/access.py --json out.json         # also save the figures

The app, its records and the page query are those of the core benchmark (bench/records.py: its
``Bench`` populates or reuses the instance, ``page_query`` gives the query). This benchmark then
deploys a definition change that adds permissions (nothing else changes, so no index or column
moves), creates a manager, and takes ``u0001`` — one of the 300 users the 担当者 field names, in
about 0.4 % of the records — as the restricted, non-administrator user:

    record rule 1  区分 in ("D","E")  1. FIELD_ENTITY 担当者   view, edit
                                      2. USER bench_manager  view, edit
                                      3. EVERYONE            nothing
    record rule 2  状態 in ("完了")    1. USER bench_manager  view, edit
                                      2. FIELD_ENTITY 担当者   view
                                      3. EVERYONE            nothing
    (records matching neither condition are open to everyone)
    field rule     備考               1. USER bench_manager  edit
                                      2. EVERYONE            none (hidden)

So u0001 sees a record when they are its 担当者, or when it is in 区分 A–C and not 完了 — about
40 % of the records (the run counts it) — and never sees 備考. Both rules are compiled into the
SQL of every read (kumiki.access.record_filter); rule 1 and rule 2 each contain a FIELD_ENTITY,
i.e. a "担当者 contains u0001" test (json_each on SQLite, JSONB ?| on PostgreSQL). The
administrator is unrestricted (no filter, every field).

What is measured (one run, the administrator's and the restricted user's requests alternating,
each pair with the same freshly drawn query and alternating which of the two goes first, so drift
and cache warming affect both alike):

- *page of 100*: ``区分 in ("x","y") and 数値1 >= N order by 日付 desc limit 100`` (the core
  benchmark's page query), in-process through ``RecordService`` (a session and service per
  request, as a web request has) and over HTTP (gunicorn, one API token per user). Target: the
  restricted user's p50 is at most 1.5× the administrator's (both in-process and over HTTP).
- *page of 100 + totalCount*: the same with the count (info).
- *admin, same visibility written as a query* (in-process, info): the administrator's query with
  the restricted user's visibility spelled out in the query language and 備考 left out of the
  fields. It returns what the restricted user sees; the restricted figure minus this one is the
  cost of the permission machinery itself, this one minus the admin's is the cost of the query
  simply selecting fewer rows.
- *audit write per request*: the median of ``kumiki.audit.log(engine, "record.list", user=…,
  app_id=…, detail={"query": …})`` — an append to the hash-chained audit log in its own
  transaction, what a read request costs when it is audited — over ``--audit-calls`` calls on the
  benchmark's database. Whether ``RecordService.list`` and the HTTP list endpoint themselves audit
  is detected (audit_log rows before/after each phase) and printed: when they do, every page
  figure above already includes one audit write, for both users. If ``kumiki.audit`` is missing,
  "audit: not available".

Every restricted response is checked: no 備考, and only records the rules allow.
The exit status is 1 when a target is missed.
"""
from __future__ import annotations

import copy
import os
import random
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (Figure, Server, fmt_ms, machine_info, print_header,  # noqa: E402
                     render_table, save_json, summarise_ms, wait_http, wsgi_target)
from records import APP, TIMEOUT, Bench, benchmark_args, check_benchmark_args, log, page_query  # noqa: E402

TARGET_RATIO = 1.5            # restricted p50 / administrator p50, page of 100

RESTRICTED = "u0001"          # one of the users the 担当者 field names (created by Bench)
MANAGER = "bench_manager"
HIDDEN_FIELD = "備考"
CLOSED_CATEGORIES = ("D", "E")
CLOSED_STATE = "完了"

PERMISSIONS = {
    "record": [
        {"condition": '区分 in ("D","E")', "entities": [
            {"entity": {"type": "FIELD_ENTITY", "code": "担当者"}, "view": True, "edit": True, "delete": False},
            {"entity": {"type": "USER", "code": MANAGER}, "view": True, "edit": True, "delete": False},
            {"entity": {"type": "EVERYONE"}, "view": False, "edit": False, "delete": False},
        ]},
        {"condition": '状態 in ("完了")', "entities": [
            {"entity": {"type": "USER", "code": MANAGER}, "view": True, "edit": True, "delete": False},
            {"entity": {"type": "FIELD_ENTITY", "code": "担当者"}, "view": True, "edit": False, "delete": False},
            {"entity": {"type": "EVERYONE"}, "view": False, "edit": False, "delete": False},
        ]},
    ],
    "field": [
        {"code": HIDDEN_FIELD, "entities": [
            {"entity": {"type": "USER", "code": MANAGER}, "access": "edit"},
            {"entity": {"type": "EVERYONE"}, "access": "none"},
        ]},
    ],
}

# What RESTRICTED may see, written in the query language (for the decomposition figure).
EQUIVALENT_FILTER = f'(担当者 in ("{RESTRICTED}") or (区分 not in ("D","E") and 状態 not in ("{CLOSED_STATE}")))'

RULES_TEXT = [
    f'record rule 1: 区分 in ("D","E")  -> FIELD_ENTITY 担当者 view+edit; USER {MANAGER} view+edit; EVERYONE nothing',
    f'record rule 2: 状態 in ("完了")   -> USER {MANAGER} view+edit; FIELD_ENTITY 担当者 view; EVERYONE nothing',
    "                (records matching neither condition are open)",
    f"field rule:    {HIDDEN_FIELD}  -> USER {MANAGER} edit; EVERYONE none",
    f"restricted user {RESTRICTED} (not an administrator; one of the 担当者 users) sees a record when it is "
    "its 担当者 or the record is in 区分 A-C and not 完了; never 備考",
]


def with_filter(q: str, extra: str) -> str:
    """``extra`` and-ed to the condition part of a page query (before ``order by``)."""
    cond, sep, rest = q.partition(" order by ")
    return f"({cond}) and {extra}{sep}{rest}"


# ------------------------------------------------------------------------------------------ setup
def _codes(value) -> list[str]:
    out = []
    for v in value or []:
        out.append(v.get("code") if isinstance(v, dict) else v)
    return out


def _plain(value):
    return value.get("value") if isinstance(value, dict) and "value" in value else value


def check_restricted(records: list[dict]) -> None:
    """Raise when the restricted user got a hidden field or a record the rules do not allow."""
    for rec in records:
        if HIDDEN_FIELD in rec:
            raise RuntimeError(f"the restricted user got the hidden field {HIDDEN_FIELD}: {rec.get('$id')}")
        mine = RESTRICTED in _codes(_plain(rec.get("担当者")))
        open_ = _plain(rec.get("区分")) not in CLOSED_CATEGORIES and _plain(rec.get("状態")) != CLOSED_STATE
        if not (mine or open_):
            raise RuntimeError(f"the restricted user got record {rec.get('$id')} the rules hide: {rec}")


def check_admin(records: list[dict]) -> None:
    if records and HIDDEN_FIELD not in records[0]:
        raise RuntimeError(f"the administrator did not get {HIDDEN_FIELD}")


class AccessBench:
    """The core benchmark's Bench plus the permissions, the restricted user and their token."""

    def __init__(self, b: Bench):
        self.b = b

    def setup(self) -> dict:
        from sqlalchemy import select

        from kumiki.auth import create_user, issue_token
        from kumiki.definitions.deploy import deploy, get_app, save_draft
        from kumiki.model import User

        b = self.b
        app_id = b.meta["app_id"]
        with b.ext.Session() as s:
            restricted = s.scalar(select(User).where(User.code == RESTRICTED))
            if restricted is None:
                raise SystemExit(f"user {RESTRICTED} is missing from the benchmark instance")
            if restricted.is_admin:
                raise SystemExit(f"user {RESTRICTED} is an administrator")
            if s.scalar(select(User.id).where(User.code == MANAGER)) is None:
                create_user(s, MANAGER, "ベンチ 課長")
            _tok, secret = issue_token(s, restricted, "bench-access")
            admin = s.get(User, b.meta["admin_id"])
            app = get_app(s, app_id)
            deployed = False
            if (app.draft or {}).get("permissions") != PERMISSIONS:
                definition = copy.deepcopy(app.draft)
                definition["permissions"] = copy.deepcopy(PERMISSIONS)
                t0 = time.perf_counter()
                save_draft(s, app, definition)
                version = deploy(s, app, admin)
                deployed = time.perf_counter() - t0
                log(f"deployed version {version.version} with the permissions ({deployed * 1000:.0f} ms)")
            s.commit()
            self.restricted = restricted
            self.restricted_token = secret
            self.version = app.deployed_version
        return {"deploy_ms": round(deployed * 1000, 1) if deployed else None, "version": self.version}

    def service(self, session, user):
        from kumiki.records import RecordService
        b = self.b
        return RecordService(session, user, timezone=b.config.timezone, locale="ja",
                             schema_cache=b.ext.schema_cache, secret_key=b.config.secret_key,
                             bulk_limit=b.config.bulk_limit)

    def visible_share(self) -> tuple[int, int]:
        app_id = self.b.meta["app_id"]
        with self.b.ext.Session() as s:
            total = self.service(s, self.b.admin).count(app_id)
        with self.b.ext.Session() as s:
            seen = self.service(s, self.restricted).count(app_id)
        return seen, total


# ------------------------------------------------------------------------------------------ measuring
def paired(n: int, warmup: int, rng: random.Random, calls: dict, make_query) -> dict:
    """Run the named calls on the same query per round, in rotating order; durations per name.

    calls: name -> fn(query) returning its own duration (s) or None (then the whole call is timed)."""
    names = list(calls)
    out: dict[str, list[float]] = {k: [] for k in names}
    out["_queries"] = []
    for i in range(-warmup, n):
        q = make_query(rng)
        k = i % len(names)
        for name in names[k:] + names[:k]:
            t0 = time.perf_counter()
            own = calls[name](q)
            dt = own if isinstance(own, float) else time.perf_counter() - t0
            if i >= 0:
                out[name].append(dt)
        if i >= 0:
            out["_queries"].append(q)
    return out


QUERY_CLASSES = ("A-C only", "one of D/E", "D and E")


def query_class(q: str) -> str:
    """Which categories a page query asks for: how much of it the restricted user may see."""
    cats = set(q.split(" and ")[0].split('"')[1::2])
    closed = len(cats & set(CLOSED_CATEGORIES))
    return QUERY_CLASSES[closed]


def ratios(samples: dict[str, list[float]]) -> dict:
    queries = samples.pop("_queries")
    res = {k: summarise_ms(v) for k, v in samples.items()}
    adm, rst = res["admin"]["p50"], res["restricted"]["p50"]
    res["ratio_p50"] = round(rst / adm, 3) if adm else None
    # The per-pair ratio's median: less sensitive to which requests fall on either side of a p50.
    pairs = [r / a for a, r in zip(samples["admin"], samples["restricted"]) if a > 0]
    res["ratio_median_of_pairs"] = round(statistics.median(pairs), 3) if pairs else None
    # By the categories asked for (the restricted user sees ~2/3 of A-C, ~0.4 % of D/E).
    by: dict = {}
    for cls in QUERY_CLASSES:
        idx = [i for i, q in enumerate(queries) if query_class(q) == cls]
        if idx:
            by[cls] = {"n": len(idx), **{name: round(statistics.median(samples[name][i] for i in idx) * 1000, 3)
                                         for name in samples}}
    res["by_class_p50_ms"] = by
    return res


def measure_inprocess(ab: AccessBench) -> dict:
    b, args = ab.b, ab.b.args
    app_id = b.meta["app_id"]
    all_but_hidden = [f["code"] for f in APP["fields"] if f["code"] != HIDDEN_FIELD]
    rng = random.Random(args.seed + 11)

    calls = [0]

    def lister(user, checker, total_count=False, extra=None, fields=None):
        def call(q):
            if extra:
                q = with_filter(q, extra)
            calls[0] += 1
            t0 = time.perf_counter()
            with b.ext.Session() as s:      # a session and a service per request, as the web app has
                out = ab.service(s, user).list(app_id, q, fields, total_count=total_count)
            dt = time.perf_counter() - t0
            checker(out["records"])         # untimed
            return dt
        return call

    n, w = args.requests, args.warmup
    rows_before = audit_rows(b)
    log(f"in-process: page x{n} (admin / restricted / admin + equivalent filter)")
    samples = paired(n, w, rng, {
        "admin": lister(b.admin, check_admin),
        "restricted": lister(ab.restricted, check_restricted),
        "admin_equivalent": lister(b.admin, check_restricted, extra=EQUIVALENT_FILTER, fields=all_but_hidden),
    }, page_query)
    res = {"page": ratios(samples)}
    res["page"]["equivalent_ratio_p50"] = round(res["page"]["admin_equivalent"]["p50"] / res["page"]["admin"]["p50"], 3)
    log(f"in-process: page+totalCount x{args.count_requests} (admin / restricted)")
    samples = paired(args.count_requests, min(w, 3), rng, {
        "admin": lister(b.admin, check_admin, total_count=True),
        "restricted": lister(ab.restricted, check_restricted, total_count=True),
    }, page_query)
    res["page_count"] = ratios(samples)
    rows_after = audit_rows(b)
    res["list_calls"] = calls[0]
    res["audit_rows_written"] = (rows_after - rows_before) if None not in (rows_before, rows_after) else None
    return res


def audit_available() -> tuple[bool, str]:
    try:
        from kumiki import audit
    except ImportError as exc:
        return False, f"kumiki.audit cannot be imported ({exc})"
    if not callable(getattr(audit, "log", None)):
        return False, "kumiki.audit has no log()"
    return True, ""


def audit_rows(b: Bench) -> int | None:
    from sqlalchemy import func, select
    try:
        from kumiki import audit
        with b.ext.Session() as s:
            return s.scalar(select(func.count()).select_from(audit.LOG))
    except Exception:  # noqa: BLE001 - no audit table (yet)
        return None


def measure_audit(ab: AccessBench) -> dict:
    ok, why = audit_available()
    if not ok:
        return {"available": False, "reason": why}
    from kumiki import audit
    b, args = ab.b, ab.b.args
    app_id = b.meta["app_id"]
    rng = random.Random(args.seed + 13)
    users = [SimpleNamespace(id=b.admin.id, code=b.admin.code),
             SimpleNamespace(id=ab.restricted.id, code=ab.restricted.code)]
    before = audit_rows(b)

    def call(i):
        audit.log(b.ext.engine, "record.list", user=users[i % 2], app_id=app_id,
                  detail={"query": page_query(rng), "totalCount": False},
                  ip="127.0.0.1", user_agent="python-requests/bench")

    log(f"audit: audit.log x{args.audit_calls}")
    try:
        for i in range(min(args.warmup, 20)):
            call(i)
        secs = []
        for i in range(args.audit_calls):
            t0 = time.perf_counter()
            call(i)
            secs.append(time.perf_counter() - t0)
    except Exception as exc:  # noqa: BLE001 - e.g. the audit tables are not migrated yet
        return {"available": False, "reason": f"audit.log failed: {exc!r}"[:300]}
    after = audit_rows(b)
    return {"available": True, "log": summarise_ms(secs), "rows_before": before, "rows_after": after}


def measure_http(ab: AccessBench) -> dict:
    import requests

    b, args = ab.b, ab.b.args
    app_id = b.meta["app_id"]
    env = {"KUMIKI_INSTANCE_DIR": str(b.instance), "KUMIKI_DATABASE_URL": b.database_url,
           "KUMIKI_SECRET_KEY": b.secret_key}
    rng = random.Random(args.seed + 12)
    log_path = b.instance / "gunicorn-bench-access.log"
    rows_before = audit_rows(b)
    b.ext.engine.dispose()      # the server gets the database to itself
    with Server(env, workers=args.workers, log_path=log_path) as server, \
            requests.Session() as admin, requests.Session() as restricted:
        admin.headers["Authorization"] = f"Bearer {b.meta['token']}"
        restricted.headers["Authorization"] = f"Bearer {ab.restricted_token}"
        for h in (admin, restricted):
            h.headers["Accept-Language"] = "ja"
        base = f"{server.base_url}/api/v1/apps/{app_id}/records"
        log(f"gunicorn -w {args.workers} on {server.base_url} (pid {server.proc.pid})")
        wait_http(admin, f"{base}?query=limit 1")
        wait_http(restricted, f"{base}?query=limit 1")

        def getter(http, checker, total_count=False):
            def call(q):
                params = {"query": q}
                if total_count:
                    params["totalCount"] = "true"
                t0 = time.perf_counter()
                r = http.get(base, params=params, timeout=TIMEOUT)
                dt = time.perf_counter() - t0
                if r.status_code != 200:
                    raise RuntimeError(f"{q}: HTTP {r.status_code} {r.text[:500]}\n{server.log_tail()}")
                body = r.json()
                checker(body["records"])
                if total_count and body.get("totalCount") is None:
                    raise RuntimeError("no totalCount")
                return dt
            return call

        n, w = args.requests, args.warmup
        log(f"HTTP: page x{n} (admin / restricted)")
        samples = paired(n, w, rng, {"admin": getter(admin, check_admin),
                                     "restricted": getter(restricted, check_restricted)}, page_query)
        res = {"page": ratios(samples)}
        log(f"HTTP: page+totalCount x{args.count_requests} (admin / restricted)")
        samples = paired(args.count_requests, min(w, 3), rng,
                         {"admin": getter(admin, check_admin, True),
                          "restricted": getter(restricted, check_restricted, True)}, page_query)
        res["page_count"] = ratios(samples)
        list_requests = 2 * (n + w) + 2 * (args.count_requests + min(w, 3)) + 2
    rows_after = audit_rows(b)
    res["server"] = {"workers": args.workers, "app": wsgi_target()}
    res["list_requests"] = list_requests
    res["audit_rows_written"] = (rows_after - rows_before) if None not in (rows_before, rows_after) else None
    return res


def run_backend(backend: str, args) -> dict:
    b = Bench(backend, args)
    out: dict = {"backend": backend}
    try:
        b.open()
        out["instance"] = str(b.instance)
        ins = b.load_or_populate()
        out["insert"] = ins and {k: ins[k] for k in ("records", "overall_rate", "insert_s", "wall_s")}
        ab = AccessBench(b)
        out["setup"] = ab.setup()
        if backend == "postgres":
            log("ANALYZE")
            b.analyze()
        lo, hi, cnt = b.id_range()
        out["records_in_table"] = cnt
        out["db_size"] = b.db_size()
        log("counting what the restricted user sees")
        seen, total = ab.visible_share()
        out["visible"] = {"restricted": seen, "total": total}
        out["inprocess"] = measure_inprocess(ab)
        out["audit"] = measure_audit(ab)
        if not args.no_http:
            out["http"] = measure_http(ab)
        out["info"] = b.extra_info
        if args.keep or args.instance:
            out["kept"] = str(b.instance) + (f" (postgres schema {b.pg.name})" if b.pg else "")
    finally:
        b.close()
    return out


# ------------------------------------------------------------------------------------------ report
def _x(v) -> str:
    return "—" if v is None else f"{v:.2f}×"


def pair_figures(prefix: str, res: dict, target: bool, by_class: bool = False) -> list[Figure]:
    a, r = res["admin"], res["restricted"]
    ratio = res["ratio_p50"]
    figs = [Figure(f"{prefix} — administrator", fmt_ms(a["p50"]), fmt_ms(a["p95"])),
            Figure(f"{prefix} — restricted user", fmt_ms(r["p50"]), fmt_ms(r["p95"]))]
    if target:
        figs.append(Figure("  restricted / administrator (p50)", _x(ratio), target=f"≤ {TARGET_RATIO}×",
                           checks=[("ratio", ratio, "<=", TARGET_RATIO)]))
    else:
        figs.append(Figure("  restricted / administrator (p50)", _x(ratio)))
    figs.append(Figure("  median of per-pair ratios", _x(res["ratio_median_of_pairs"])))
    if by_class:
        for cls, v in res["by_class_p50_ms"].items():
            figs.append(Figure(f"  asking for {cls} ({v['n']}): p50 admin / restricted",
                               f"{v['admin']:,.1f} / {v['restricted']:,.1f} ms"))
    return figs


def figures(res: dict) -> list[Figure]:
    figs: list[Figure] = []
    inp, http, aud = res.get("inprocess"), res.get("http"), res.get("audit") or {}
    if http:
        figs += pair_figures("HTTP page of 100", http["page"], True, by_class=True)
        figs += pair_figures("HTTP page of 100 + totalCount", http["page_count"], False)
    if inp:
        p = inp["page"]
        figs += pair_figures("in-process page of 100", p, True, by_class=True)
        e = p["admin_equivalent"]
        figs.append(Figure("  admin, restricted visibility as query", fmt_ms(e["p50"]), fmt_ms(e["p95"])))
        figs.append(Figure("    / administrator (p50)", _x(p["equivalent_ratio_p50"])))
        figs += pair_figures("in-process page of 100 + totalCount", inp["page_count"], False)
    if aud.get("available"):
        lg = aud["log"]
        figs.append(Figure("audit write per request (audit.log)", fmt_ms(lg["p50"]), fmt_ms(lg["p95"])))
        if http:
            pa = http["page"]["admin"]["p50"]
            figs.append(Figure("  relative to the admin's HTTP page p50", f"+{100 * lg['p50'] / pa:.0f} %"))
        for label, part, key in (("RecordService.list", inp, "list_calls"), ("HTTP list endpoint", http, "list_requests")):
            if part and part.get("audit_rows_written") is not None:
                w, n = part["audit_rows_written"], part[key]
                wired = "yes" if w >= n else ("partly" if w else "no")
                figs.append(Figure(f"  {label} audits: {wired} ({w:,} rows / {n:,} calls)", ""))
    else:
        figs.append(Figure("audit: not available", ""))
    return figs


def main(argv=None) -> int:
    ap = benchmark_args(__doc__, count_requests=50, per="user",
                        instance_note="; the permissions are deployed to its app")
    ap.add_argument("--audit-calls", type=int, default=300, help="timed audit.log calls (default 300)")
    args = ap.parse_args(argv)
    check_benchmark_args(ap, args)

    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    load_start = os.getloadavg()[0]
    results = [run_backend(be, args) for be in backends]

    extra = {"records": f"{args.records:,}",
             "load_avg_1min": f"{load_start:.2f} at start, {os.getloadavg()[0]:.2f} at end"}
    for r in results:
        extra.update(r.get("info") or {})
    info = machine_info(**extra)
    print_header("kumiki permissions benchmark (bench/access.py)", info)
    for line in RULES_TEXT:
        print("  " + line)
    print()
    sections = []
    for r in results:
        v = r["visible"]
        title = (f"{r['backend']}: {r['records_in_table']:,} records, {r['db_size']}; "
                 f"{RESTRICTED} sees {v['restricted']:,} ({100 * v['restricted'] / max(1, v['total']):.1f} %)")
        sections.append((title, figures(r)))
    print(render_table(sections))
    print()
    print(f"Same query for both users per pair, order alternating; {args.warmup} warm-up pairs, then "
          f"{args.requests} timed pairs per operation ({args.count_requests} for totalCount).")
    if not args.no_http:
        print(f"HTTP: gunicorn -w {args.workers}, one keep-alive client session per user, one client thread.")
    for r in results:
        aud = r.get("audit") or {}
        if not aud.get("available"):
            print(f"audit ({r['backend']}): not available — {aud.get('reason', '')}")
    if max(load_start, os.getloadavg()[0]) > 0.75 * (os.cpu_count() or 1):
        print("NOTE: the machine was busy with other processes (load average above); latencies are pessimistic.")
    for r in results:
        if r.get("kept"):
            print(f"kept: {r['kept']}")
    misses = [f.name for _t, figs in sections for f in figs if f.result.startswith("MISS")]
    if args.json:
        save_json(args.json, {"machine": info, "args": vars(args), "permissions": PERMISSIONS,
                              "restricted_user": RESTRICTED, "equivalent_filter": EQUIVALENT_FILTER,
                              "results": results,
                              "table": [{"section": t, "figure": f.name, "value": f.value, "p95": f.p95,
                                         "target": f.target, "result": f.result} for t, figs in sections for f in figs]})
        print(f"figures saved to {args.json}")
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())
