"""SQLite: writers start as writers, and bookkeeping never stalls or fails a read."""
from __future__ import annotations

import time

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from kumiki.db import make_engine, write_intent
from tests.conftest import ApiClient, make_user


def test_read_then_write_fails_without_intent_and_works_with_it(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.begin() as c:
        c.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    # Without intent: a read transaction cannot become a write after someone else committed.
    with engine.connect() as a, engine.connect() as b:
        a.execute(text("SELECT count(*) FROM t")).scalar()
        with b.begin():
            b.execute(text("INSERT INTO t (v) VALUES ('b')"))
        with pytest.raises(OperationalError):
            a.execute(text("INSERT INTO t (v) VALUES ('a')"))
        a.rollback()
    # With intent the transaction starts as the writer; the other writer waits for it instead.
    with engine.connect() as a, engine.connect() as b:
        with write_intent():
            a.execute(text("SELECT count(*) FROM t")).scalar()
        b.connection.dbapi_connection.execute("PRAGMA busy_timeout=100")
        with pytest.raises(OperationalError):
            with b.begin():
                b.execute(text("INSERT INTO t (v) VALUES ('b2')"))
        a.execute(text("INSERT INTO t (v) VALUES ('a')"))
        a.commit()
    with engine.connect() as c:
        assert c.execute(text("SELECT v FROM t ORDER BY id")).scalars().all() == ["b", "a"]


def test_token_bookkeeping_never_blocks_a_read(app):
    _u, token = make_user(app, "admin")
    api = ApiClient(app, token)
    engine = app.extensions["kumiki"].engine
    with engine.connect() as other:
        with write_intent():
            other.execute(text("SELECT 1 FROM users")).all()   # another process holds the write lock
        started = time.perf_counter()
        resp = api.get("/api/v1/me")
        elapsed = time.perf_counter() - started
        other.rollback()
    assert resp.status_code == 200
    assert elapsed < 2.0
