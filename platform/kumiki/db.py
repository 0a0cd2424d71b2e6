"""Engine creation and the platform's declarative base."""
from __future__ import annotations

import contextvars
import json
from contextlib import contextmanager

from sqlalchemy import JSON, MetaData, create_engine, event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, sessionmaker

# JSON stored as JSONB on PostgreSQL so that containment queries can use indexes. Python None is
# SQL NULL (not the JSON text 'null'), so "is empty" is a plain IS NULL.
JSONType = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


def _json_dumps(value) -> str:
    # Japanese stays readable (and a third smaller) in JSON columns.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def make_engine(url: str) -> Engine:
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    kwargs: dict = {"future": True, "json_serializer": _json_dumps}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    else:
        kwargs["pool_pre_ping"] = True
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine)
    return engine


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # pragma: no cover - trivial
        # Let SQLAlchemy manage transactions; pysqlite's own BEGIN handling defers DDL badly.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        # Checkpoint the WAL every ~40 MB instead of every 4 MB: bulk writes dirty pages of every
        # index, and each checkpoint rewrites them into the database file.
        cur.execute("PRAGMA wal_autocheckpoint=10000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):  # pragma: no cover - trivial
        conn.exec_driver_sql("BEGIN IMMEDIATE" if _WRITE_INTENT.get() else "BEGIN")


# SQLite cannot upgrade a read transaction to a write once another connection has committed in
# between ("database is locked" at once, whatever the busy timeout). Work that will write declares
# it up front so its transaction starts with BEGIN IMMEDIATE and waits for the lock instead.
_WRITE_INTENT: contextvars.ContextVar[bool] = contextvars.ContextVar("kumiki_write_intent", default=False)


def set_write_intent(value: bool = True) -> contextvars.Token:
    return _WRITE_INTENT.set(value)


@contextmanager
def write_intent():
    token = _WRITE_INTENT.set(True)
    try:
        yield
    finally:
        _WRITE_INTENT.reset(token)


def make_sessionmaker(engine: Engine) -> sessionmaker:
    return sessionmaker(bind=engine, expire_on_commit=False, future=True)
