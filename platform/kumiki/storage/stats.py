"""Keep SQLite's planner statistics fresh as record tables grow.

Without statistics SQLite takes any indexed ``in (...)`` condition for a selective one: on a
million records a page "区分 in (…) and … order by 日付 desc" then sorted 400,000 rows (2 s)
instead of walking the 日付 index (1 ms). ``ANALYZE`` of one table takes about 0.5 s at a million
rows, so it runs again only when the table has grown by half since it last ran (a handful of
times over a bulk load). PostgreSQL's autovacuum keeps its own statistics.
"""
from __future__ import annotations

import threading

from sqlalchemy import text
from sqlalchemy.engine import Engine

GROWTH = 0.5          # re-analyze when writes since the last ANALYZE exceed half the rows then
MIN_ROWS = 1000       # below this, a full scan is cheap and statistics do not matter

_lock = threading.Lock()
_pending: dict[tuple[str, str], int] = {}     # (database url, table) -> rows written since ANALYZE
_rows_at_analyze: dict[tuple[str, str], int] = {}


def note_writes(engine: Engine, tables: list[str], count: int) -> None:
    """Record ``count`` inserted or deleted rows; analyze the tables when they have grown enough."""
    if engine.dialect.name != "sqlite" or count <= 0:
        return
    due = []
    with _lock:
        for table in tables:
            key = (str(engine.url), table)
            _pending[key] = _pending.get(key, 0) + count
            base = _rows_at_analyze.get(key)
            if base is None:
                base = _rows_at_analyze[key] = _rows_from_stats(engine, table)
            if _pending[key] >= max(MIN_ROWS, int(base * GROWTH)):
                due.append(key)
                _pending[key] = 0
    for key in due:
        analyze(engine, key[1])


def analyze(engine: Engine, table: str) -> None:
    from kumiki.db import write_intent

    with write_intent(), engine.connect() as conn:
        with conn.begin():
            conn.exec_driver_sql(f'ANALYZE "{table}"')
    rows = _rows_from_stats(engine, table)
    with _lock:
        _rows_at_analyze[(str(engine.url), table)] = rows


def _rows_from_stats(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        exists = conn.execute(text("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'")).first()
        if not exists:
            return 0
        stat = conn.execute(text("SELECT stat FROM sqlite_stat1 WHERE tbl = :t LIMIT 1"), {"t": table}).scalar()
    try:
        return int(str(stat).split()[0]) if stat else 0
    except ValueError:
        return 0
