#!/usr/bin/env python
"""Core engine benchmark: bulk insert through RecordService, then list / get / update latency over
HTTP (gunicorn) and in-process, on an app with 12 typical fields and N records.

    .venv/bin/python bench/records.py                        # 1,000,000 records on SQLite
    .venv/bin/python bench/records.py --records 20000        # quick
    .venv/bin/python bench/records.py --backend postgres --records 200000
    .venv/bin/python bench/records.py --instance /tmp/kb     # populate once, reuse afterwards
    .venv/bin/python bench/records.py --json out.json        # also save the figures

See bench/README.md for what each figure means and the targets.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (DEFAULT_PG_URL, Figure, PgSchema, Server, fmt_ms, fmt_rate, machine_info,  # noqa: E402
                     print_header, render_table, save_json, summarise_ms, time_calls, wait_http, wsgi_target)

# ------------------------------------------------------------------------------------------ targets
TARGET_INSERT = 20_000        # records/s through RecordService, SQLite
TARGET_PAGE_P50 = 30.0        # ms, page of 100 with 2-condition filter and sort, over HTTP
TARGET_PAGE_P95 = 60.0
TARGET_ONE_P50 = 5.0          # ms, get one / update one, over HTTP
TIMEOUT = 120                 # s, per HTTP request (a stuck server fails the run instead of hanging it)

# ------------------------------------------------------------------------------------------ the app
CATEGORIES = ["A", "B", "C", "D", "E"]
STATES = ["未着手", "対応中", "完了"]
CHANNELS = ["訪問", "電話", "来所", "メール"]

APP = {
    "name": "ベンチマーク（案件管理）",
    "code": "bench_records",
    "description": "bench/records.py が作るアプリ",
    "fields": [
        {"code": "氏名", "type": "SINGLE_LINE_TEXT", "label": "氏名", "required": True, "maxLength": 64},
        {"code": "管理番号", "type": "SINGLE_LINE_TEXT", "label": "管理番号", "unique": True},
        {"code": "数値1", "type": "NUMBER", "label": "数値1"},
        {"code": "数値2", "type": "NUMBER", "label": "金額", "unit": "円"},
        {"code": "日付", "type": "DATE", "label": "受付日"},
        {"code": "日時", "type": "DATETIME", "label": "最終連絡日時"},
        {"code": "区分", "type": "DROP_DOWN", "label": "区分", "options": CATEGORIES},
        {"code": "状態", "type": "RADIO_BUTTON", "label": "状態", "options": STATES},
        {"code": "対応", "type": "CHECK_BOX", "label": "対応方法", "options": CHANNELS},
        {"code": "担当者", "type": "USER_SELECT", "label": "担当者"},
        {"code": "備考", "type": "MULTI_LINE_TEXT", "label": "備考"},
        {"code": "URL", "type": "LINK", "label": "関連URL", "protocol": "WEB"},
    ],
    # Views decide which columns are indexed (docs/decisions/0007): 区分, 数値1 and 日付 here,
    # plus the unique 管理番号 — the page query below filters and sorts on indexed fields.
    "views": [
        {"name": "すべて", "type": "LIST", "fields": ["氏名", "管理番号", "日付", "区分", "状態", "担当者"],
         "sort": "日付 desc"},
        {"name": "重点案件", "type": "LIST", "fields": ["氏名", "管理番号", "数値1", "日付", "区分", "担当者"],
         "filterCond": '区分 in ("B","C") and 数値1 >= 500000', "sort": "日付 desc"},
    ],
}

SURNAMES = ("佐藤 鈴木 高橋 田中 伊藤 渡辺 山本 中村 小林 加藤 吉田 山田 佐々木 山口 松本 井上 木村 林 斎藤 清水 "
            "山崎 森 池田 橋本 阿部 石川 山下 中島 石井 小川 前田 岡田 長谷川 藤田 後藤 近藤 村上 遠藤 青木 坂本 "
            "斉藤 福田 太田 西村 藤井 金子 岡本 藤原 中野 三浦 原田 中川 松田 竹内 小野 田村 中山 和田 石田 森田").split()
GIVEN = ("翔太 蓮 大翔 悠真 陽翔 湊 樹 大和 悠斗 陸 花子 陽菜 結衣 美咲 さくら 葵 凛 結菜 芽依 莉子 "
         "一郎 健太 直樹 裕子 恵子 和子 洋子 誠 修 茂 明美 由美子 真由美 智子 隆 浩 聡 拓也 美穂 彩").split()
SENTENCES = (
    "初回の相談を受け付けました。", "電話で状況を確認しました。", "来週、自宅を訪問する予定です。",
    "書類の不足があるため再提出を依頼しました。", "関係機関と情報を共有しました。", "本人から折り返しの連絡がありました。",
    "支払い方法について説明しました。", "担当者を変更しました。", "見積書を送付済みです。", "次回の面談日を調整中です。",
    "申請内容に誤りがあったため修正しました。", "家族からの問い合わせに対応しました。", "現地調査の結果、追加工事が必要です。",
    "システムへの登録が完了しました。", "契約更新の意向を確認しました。", "至急対応が必要です。",
    "納品日は月末の予定です。", "先方の担当部署は総務課です。", "進捗は順調です。", "特記事項なし。",
)
DOMAINS = ("www.example.jp", "city.example.lg.jp", "shop.example.co.jp", "docs.example.com")
DAY0 = date(2015, 4, 1)
DAYS = (date(2025, 3, 31) - DAY0).days
MINUTE0 = datetime(2015, 4, 1)
MINUTES = DAYS * 24 * 60


class DataGen:
    """Varied, realistic Japanese values (deterministic for a seed)."""

    def __init__(self, seed: int, user_codes: list[str]):
        self.rng = random.Random(seed)
        self.users = user_codes

    def record(self, n: int) -> dict:
        r = self.rng
        rnd = r.random()
        notes = "" if rnd < 0.25 else "\n".join(r.choices(SENTENCES, k=1 + int(rnd * 4)))
        assignees = [r.choice(self.users)] if rnd < 0.85 else r.sample(self.users, 2)
        return {
            "氏名": f"{r.choice(SURNAMES)} {r.choice(GIVEN)}",
            "管理番号": f"KM-{2015 + n % 10}-{n:08d}",
            "数値1": str(r.randrange(1_000_000)),
            "数値2": f"{r.randrange(100, 5_000_000)}.{r.randrange(100):02d}" if rnd < 0.5 else str(r.randrange(100, 500_000)),
            "日付": (DAY0 + timedelta(days=r.randrange(DAYS))).isoformat(),
            "日時": (MINUTE0 + timedelta(minutes=r.randrange(MINUTES))).strftime("%Y-%m-%dT%H:%M:00Z"),
            "区分": r.choice(CATEGORIES),
            "状態": r.choice(STATES),
            "対応": r.sample(CHANNELS, r.randrange(4)),
            "担当者": assignees,
            "備考": notes,
            "URL": "" if rnd > 0.7 else f"https://{r.choice(DOMAINS)}/cases/{n}?ref=bench",
        }

    def batch(self, start: int, size: int) -> list[dict]:
        return [self.record(n) for n in range(start, start + size)]


def page_query(rng: random.Random, limit: int = 100) -> str:
    a, b = sorted(rng.sample(CATEGORIES, 2))
    return f'区分 in ("{a}","{b}") and 数値1 >= {rng.randrange(0, 900_000)} order by 日付 desc limit {limit}'


def log(msg: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------ setup
class Bench:
    """One backend: its database, the in-process Flask app and the benchmark's app/user/token."""

    META = "bench_meta.json"

    def __init__(self, backend: str, args):
        self.backend = backend
        self.args = args
        self.pg: PgSchema | None = None
        self.tmp: Path | None = None
        self.extra_info: dict = {}

    def open(self) -> None:
        from kumiki.app import create_app
        from kumiki.config import Config

        args = self.args
        if self.backend == "sqlite" and args.instance:
            self.instance = Path(args.instance).resolve()
            self.instance.mkdir(parents=True, exist_ok=True)
        else:
            self.tmp = Path(tempfile.mkdtemp(prefix=f"kumiki-bench-{self.backend}-"))
            self.instance = self.tmp
        if self.backend == "postgres":
            self.pg = PgSchema(args.postgres_url, keep=args.keep).__enter__()
            self.database_url = self.pg.schema_url
            self.extra_info["postgresql"] = self.pg.server_version
            self.extra_info["pg_schema"] = self.pg.name
        else:
            self.database_url = f"sqlite:///{self.instance / 'kumiki.db'}"
        self.secret_key = "bench-secret-key-not-for-production"
        self.config = Config.from_env(instance_dir=self.instance, database_url=self.database_url,
                                      secret_key=self.secret_key)
        self.flask = create_app(self.config)
        self.ext = self.flask.extensions["kumiki"]
        # As a long-running server process does (kumiki serve, kumiki.wsgi, kumiki worker).
        from kumiki.app import freeze_startup_objects
        freeze_startup_objects()

    def close(self) -> None:
        try:
            self.ext.engine.dispose()
        except Exception:  # noqa: BLE001
            pass
        if self.pg is not None:
            self.pg.__exit__(None, None, None)
        if self.tmp is not None and not self.args.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def service(self, session):
        from kumiki.records import RecordService
        return RecordService(session, self.admin, timezone=self.config.timezone, locale="ja",
                             schema_cache=self.ext.schema_cache, secret_key=self.config.secret_key,
                             bulk_limit=self.config.bulk_limit)

    # -------------------------------------------------------------------------------- populate
    def load_or_create_meta(self) -> bool:
        """True when the instance already holds a populated benchmark app (insert is skipped)."""
        import json

        from kumiki.auth import create_user, issue_token
        from kumiki.definitions.deploy import create_app as create_kumiki_app, deploy
        from kumiki.model import User

        meta_path = self.instance / self.META
        if self.backend == "sqlite" and meta_path.exists():
            self.meta = json.loads(meta_path.read_text())
            with self.ext.Session() as s:
                self.admin = s.get(User, self.meta["admin_id"])
            if self.admin is not None and self.meta.get("populated"):
                return True
            raise SystemExit(f"{self.instance} holds a partly populated benchmark (an interrupted run?); "
                             "delete the directory and run again")
        with self.ext.Session() as s:
            log(f"creating {self.args.users} users, the admin and the app")
            users = []
            for i in range(1, self.args.users + 1):
                code = f"u{i:04d}"
                name = f"{SURNAMES[i % len(SURNAMES)]} {GIVEN[(i * 7) % len(GIVEN)]}"
                users.append(create_user(s, code, name, email=f"{code}@example.jp").code)
            admin = create_user(s, "bench_admin", "ベンチ 管理者", is_admin=True)
            _tok, secret = issue_token(s, admin, "bench")
            app = create_kumiki_app(s, APP, admin)
            deploy(s, app, admin)
            s.commit()
            self.admin = admin
            self.meta = {"app_id": app.id, "admin_id": admin.id, "token": secret, "users": users,
                         "populated": False, "records": 0}
        meta_path.write_text(json.dumps(self.meta, ensure_ascii=False))
        return False

    def load_or_populate(self) -> dict | None:
        """Reuse a populated instance (None) or insert the records (the insert figures)."""
        if self.load_or_create_meta():
            log(f"{self.backend}: reusing {self.instance} ({self.meta['records']:,} records); insert skipped")
            return None
        log(f"{self.backend}: inserting {self.args.records:,} records in batches of {self.args.batch:,}")
        return self.populate()

    def populate(self) -> dict:
        import json

        n, size = self.args.records, self.args.batch
        gen = DataGen(self.args.seed, self.meta["users"])
        app_id = self.meta["app_id"]
        batch_secs: list[float] = []
        gen_secs = 0.0
        t_start = time.perf_counter()
        done = 0
        report_every = max(1, (n // size) // 10)
        while done < n:
            k = min(size, n - done)
            t0 = time.perf_counter()
            recs = gen.batch(done, k)
            t1 = time.perf_counter()
            with self.ext.Session() as s:      # one session and service per batch, like one request
                self.service(s).create_many(app_id, recs, enforce_limit=False)
            t2 = time.perf_counter()
            gen_secs += t1 - t0
            batch_secs.append(t2 - t1)
            done += k
            if len(batch_secs) % report_every == 0 or done == n:
                log(f"inserted {done:,}/{n:,}  last batch {k / (t2 - t1):,.0f} rec/s  "
                    f"overall {done / sum(batch_secs):,.0f} rec/s")
        wall = time.perf_counter() - t_start
        self.meta.update(populated=True, records=n)
        (self.instance / self.META).write_text(json.dumps(self.meta, ensure_ascii=False))
        sizes = [min(size, n - i * size) for i in range(len(batch_secs))]
        tenth = max(1, len(batch_secs) // 10)
        return {
            "records": n, "batch_size": size, "batches": len(batch_secs),
            "median_batch_rate": statistics.median(k / t for k, t in zip(sizes, batch_secs)),
            "overall_rate": n / sum(batch_secs),
            "wall_rate_incl_generation": n / wall,
            "first_10pct_rate": sum(sizes[:tenth]) / sum(batch_secs[:tenth]),
            "last_10pct_rate": sum(sizes[-tenth:]) / sum(batch_secs[-tenth:]),
            "batch_ms": summarise_ms(batch_secs),
            "generation_s": round(gen_secs, 2), "insert_s": round(sum(batch_secs), 2), "wall_s": round(wall, 2),
        }

    def id_range(self) -> tuple[int, int, int]:
        from sqlalchemy import func, select
        with self.ext.Session() as s:
            schema = self.service(s).schema(self.meta["app_id"])
            t = schema.table
            lo, hi, cnt = s.execute(select(func.min(t.c.id), func.max(t.c.id), func.count())).one()
        return lo, hi, cnt

    def analyze(self) -> None:
        """PostgreSQL only: what autovacuum does within a minute of a bulk load, done now."""
        with self.ext.Session() as s:
            table = self.service(s).schema(self.meta["app_id"]).table.name
        with self.ext.engine.begin() as conn:      # this schema's tables only (search_path)
            for t in (table, "record_history", "users", "api_tokens", "apps"):
                conn.exec_driver_sql(f'ANALYZE "{t}"')

    def db_size(self) -> str | None:
        if self.backend == "sqlite":
            total = sum(p.stat().st_size for p in self.instance.glob("kumiki.db*"))
            return f"{total / 1024 / 1024:,.0f} MiB (kumiki.db + wal)"
        from sqlalchemy import text
        with self.ext.engine.connect() as conn:
            size = conn.execute(text(
                "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = current_schema() AND c.relkind = 'r'")).scalar()
        return f"{(size or 0) / 1024 / 1024:,.0f} MiB (schema {self.pg.name})"


# ------------------------------------------------------------------------------------------ measuring
def measure_inprocess(b: Bench, lo: int, hi: int) -> dict:
    """The same operations straight through RecordService: one session + service per operation."""
    args, app_id = b.args, b.meta["app_id"]
    rng = random.Random(args.seed + 1)

    def call(fn):
        with b.ext.Session() as s:
            return fn(b.service(s))

    def page(_i):
        q = page_query(rng)
        call(lambda svc: svc.list(app_id, q))

    def page_count(_i):
        q = page_query(rng)
        call(lambda svc: svc.list(app_id, q, total_count=True))

    def get(_i):
        call(lambda svc: svc.get(app_id, rng.randint(lo, hi)))

    def update(i):
        rid = rng.randint(lo, hi)
        rev = call(lambda svc: svc.get(app_id, rid))["$revision"]
        values = {"数値2": str(rng.randrange(100, 500_000)), "氏名": f"{rng.choice(SURNAMES)} {rng.choice(GIVEN)}（更新{i}）"}
        t0 = time.perf_counter()
        call(lambda svc: svc.update(app_id, values, record_id=rid, revision=rev))
        return time.perf_counter() - t0

    n, w = args.requests, args.warmup
    log(f"in-process: page x{n}")
    res = {"page": summarise_ms(time_calls(page, n, w))}
    log(f"in-process: page+totalCount x{args.count_requests}")
    res["page_count"] = summarise_ms(time_calls(page_count, args.count_requests, min(w, 5)))
    log(f"in-process: get x{n}")
    res["get"] = summarise_ms(time_calls(get, n, w))
    log(f"in-process: update x{n}")
    res["update"] = summarise_ms(time_calls(update, n, w))
    return res


def measure_http(b: Bench, lo: int, hi: int) -> dict:
    import requests

    args, app_id = b.args, b.meta["app_id"]
    env = {"KUMIKI_INSTANCE_DIR": str(b.instance), "KUMIKI_DATABASE_URL": b.database_url,
           "KUMIKI_SECRET_KEY": b.secret_key}
    rng = random.Random(args.seed + 2)
    log_path = b.instance / "gunicorn-bench.log"
    with Server(env, workers=args.workers, log_path=log_path) as server, requests.Session() as http:
        http.headers["Authorization"] = f"Bearer {b.meta['token']}"
        http.headers["Accept-Language"] = "ja"
        base = f"{server.base_url}/api/v1/apps/{app_id}/records"
        log(f"gunicorn -w {args.workers} on {server.base_url} (pid {server.proc.pid})")
        wait_http(http, f"{base}/{lo}")

        def ok(r, what):
            if r.status_code != 200:
                raise RuntimeError(f"{what}: HTTP {r.status_code} {r.text[:500]}\n{server.log_tail()}")
            return r

        def page(_i):
            q = page_query(rng)
            t0 = time.perf_counter()
            r = http.get(base, params={"query": q}, timeout=TIMEOUT)
            dt = time.perf_counter() - t0
            ok(r, q).json()["records"]
            return dt

        def page_count(_i):
            q = page_query(rng)
            t0 = time.perf_counter()
            r = http.get(base, params={"query": q, "totalCount": "true"}, timeout=TIMEOUT)
            dt = time.perf_counter() - t0
            if ok(r, q).json()["totalCount"] is None:
                raise RuntimeError("no totalCount")
            return dt

        def get(_i):
            rid = rng.randint(lo, hi)
            t0 = time.perf_counter()
            r = http.get(f"{base}/{rid}", timeout=TIMEOUT)
            dt = time.perf_counter() - t0
            ok(r, f"get {rid}")
            return dt

        def update(i):
            rid = rng.randint(lo, hi)
            rev = ok(http.get(f"{base}/{rid}", timeout=TIMEOUT), f"get {rid}").json()["$revision"]   # untimed
            body = {"record": {"数値2": str(rng.randrange(100, 500_000)),
                               "氏名": f"{rng.choice(SURNAMES)} {rng.choice(GIVEN)}（HTTP更新{i}）"},
                    "revision": rev}
            t0 = time.perf_counter()
            r = http.put(f"{base}/{rid}", json=body, timeout=TIMEOUT)
            dt = time.perf_counter() - t0
            if ok(r, f"put {rid}").json()["revision"] != rev + 1:
                raise RuntimeError(f"unexpected revision after update: {r.text}")
            return dt

        n, w = args.requests, args.warmup
        log(f"HTTP: page x{n}")
        res = {"page": summarise_ms(time_calls(page, n, w))}
        log(f"HTTP: page+totalCount x{args.count_requests}")
        res["page_count"] = summarise_ms(time_calls(page_count, args.count_requests, min(w, 5)))
        log(f"HTTP: get x{n}")
        res["get"] = summarise_ms(time_calls(get, n, w))
        log(f"HTTP: update x{n}")
        res["update"] = summarise_ms(time_calls(update, n, w))
    res["server"] = {"workers": args.workers, "app": wsgi_target()}
    return res


def run_backend(backend: str, args) -> dict:
    b = Bench(backend, args)
    out: dict = {"backend": backend}
    try:
        b.open()
        out["instance"] = str(b.instance)
        out["insert"] = b.load_or_populate()
        if backend == "postgres":
            log("ANALYZE")
            b.analyze()
        lo, hi, cnt = b.id_range()
        out["records_in_table"] = cnt
        out["db_size"] = b.db_size()
        out["inprocess"] = measure_inprocess(b, lo, hi)
        b.ext.engine.dispose()           # the server gets the database to itself
        if not args.no_http:
            out["http"] = measure_http(b, lo, hi)
        out["info"] = b.extra_info
        if args.keep or args.instance:
            out["kept"] = str(b.instance) + (f" (postgres schema {b.pg.name})" if b.pg else "")
    finally:
        b.close()
    return out


# ------------------------------------------------------------------------------------------ report
def figures(res: dict) -> list[Figure]:
    figs: list[Figure] = []
    sqlite = res["backend"] == "sqlite"
    ins = res.get("insert")
    if ins:
        tgt = f"≥ {TARGET_INSERT:,} rec/s" if sqlite else "(SQLite target)"
        checks = lambda v: [("rate", v, ">=", TARGET_INSERT)] if sqlite else []  # noqa: E731
        figs.append(Figure(f"bulk insert, median of {ins['batches']:,} batches of {ins['batch_size']:,}",
                           fmt_rate(ins["median_batch_rate"]), target=tgt, checks=checks(ins["median_batch_rate"])))
        figs.append(Figure(f"bulk insert, overall ({ins['records']:,} in {ins['insert_s']:,.1f} s)",
                           fmt_rate(ins["overall_rate"]), target=tgt, checks=checks(ins["overall_rate"])))
        figs.append(Figure("  first 10% of batches / last 10%",
                           f"{ins['first_10pct_rate']:,.0f} / {ins['last_10pct_rate']:,.0f}"))
        figs.append(Figure("  incl. generating the values (wall)", fmt_rate(ins["wall_rate_incl_generation"])))
    http = res.get("http")
    if http:
        p = http["page"]
        figs.append(Figure("HTTP page of 100: 2 conditions + sort", fmt_ms(p["p50"]), fmt_ms(p["p95"]),
                           f"p50 ≤ {TARGET_PAGE_P50:.0f}, p95 ≤ {TARGET_PAGE_P95:.0f} ms",
                           [("p50", p["p50"], "<=", TARGET_PAGE_P50), ("p95", p["p95"], "<=", TARGET_PAGE_P95)]))
        p = http["page_count"]
        figs.append(Figure("HTTP page of 100 + totalCount", fmt_ms(p["p50"]), fmt_ms(p["p95"])))
        for key, label in (("get", "HTTP get one record"), ("update", "HTTP update one record (NUMBER+TEXT)")):
            p = http[key]
            figs.append(Figure(label, fmt_ms(p["p50"]), fmt_ms(p["p95"]), f"p50 ≤ {TARGET_ONE_P50:.0f} ms",
                               [("p50", p["p50"], "<=", TARGET_ONE_P50)]))
    inp = res.get("inprocess")
    if inp:
        for key, label in (("page", "in-process page of 100"), ("page_count", "in-process page + totalCount"),
                           ("get", "in-process get one"), ("update", "in-process update one")):
            p = inp[key]
            figs.append(Figure(label, fmt_ms(p["p50"]), fmt_ms(p["p95"])))
    return figs


def benchmark_args(doc: str, *, count_requests: int, instance_note: str = "", per: str = "operation"
                   ) -> argparse.ArgumentParser:
    """The options every benchmark on the core app shares (bench/access.py adds its own)."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000, help="records to insert (default 1,000,000)")
    ap.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="sqlite")
    ap.add_argument("--postgres-url", default=os.environ.get("KUMIKI_TEST_POSTGRES_URL") or DEFAULT_PG_URL,
                    help="server URL; a fresh schema is created in it per run (default $KUMIKI_TEST_POSTGRES_URL "
                         f"or {DEFAULT_PG_URL})")
    ap.add_argument("--instance", help="SQLite: instance dir to populate once and reuse (insert skipped when "
                                       "populated)" + instance_note)
    ap.add_argument("--keep", action="store_true", help="keep the temp instance dir / PostgreSQL schema")
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--requests", type=int, default=200, help=f"timed requests per {per} (default 200)")
    ap.add_argument("--count-requests", type=int, default=count_requests,
                    help=f"timed page+totalCount requests per {per} (default {count_requests})")
    ap.add_argument("--warmup", type=int, default=20, help=f"untimed requests per {per} first (default 20)")
    ap.add_argument("--batch", type=int, default=1000, help="records per create_many call (default 1000)")
    ap.add_argument("--users", type=int, default=300, help="users created for USER_SELECT (default 300)")
    ap.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    ap.add_argument("--seed", type=int, default=20250401)
    ap.add_argument("--no-http", action="store_true", help="skip the HTTP part (in-process figures only)")
    return ap


def check_benchmark_args(ap: argparse.ArgumentParser, args) -> None:
    if args.records < 1 or args.batch < 1 or args.requests < 1 or args.count_requests < 1 or args.users < 2:
        ap.error("--records, --batch, --requests, --count-requests must be positive and --users at least 2")
    if args.instance and args.backend != "sqlite":
        ap.error("--instance is for the SQLite backend")


def main(argv=None) -> int:
    ap = benchmark_args(__doc__, count_requests=100)
    args = ap.parse_args(argv)
    check_benchmark_args(ap, args)

    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    load_start = os.getloadavg()[0]
    results = []
    for be in backends:
        results.append(run_backend(be, args))

    extra = {"records": f"{args.records:,}", "load_avg_1min": f"{load_start:.2f} at start, {os.getloadavg()[0]:.2f} at end"}
    for r in results:
        extra.update(r.get("info") or {})
    info = machine_info(**extra)
    print_header("kumiki core engine benchmark (bench/records.py)", info)
    sections = []
    for r in results:
        title = f"{r['backend']}: {r['records_in_table']:,} records, {r['db_size']}"
        sections.append((title, figures(r)))
    print(render_table(sections))
    print()
    print(f"HTTP: gunicorn -w {args.workers}, one client thread with keep-alive, {args.warmup} warm-up then "
          f"{args.requests} timed requests per operation ({args.count_requests} for totalCount).")
    if max(load_start, os.getloadavg()[0]) > 0.75 * (os.cpu_count() or 1):
        print("NOTE: the machine was busy with other processes (load average above); latencies and rates "
              "are pessimistic.")
    for r in results:
        if r.get("kept"):
            print(f"kept: {r['kept']}")
    misses = [f.name for _t, figs in sections for f in figs if f.result.startswith("MISS")]
    if args.json:
        save_json(args.json, {"machine": info, "args": vars(args), "results": results,
                              "table": [{"section": t, "figure": f.name, "value": f.value, "p95": f.p95,
                                         "target": f.target, "result": f.result} for t, figs in sections for f in figs]})
        print(f"figures saved to {args.json}")
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())
