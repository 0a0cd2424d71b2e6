"""Run-time DDL for record tables through alembic's Operations (non-destructive only).

Adding a field adds a column, deleting one retires it (the column stays), retyping adds a new
column and keeps the old one as a backup. Nothing here ever drops a column or a table.
"""
from __future__ import annotations

from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import Column, MetaData, Table, func, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.types import TypeEngine

from kumiki.storage.schema import subtable_system_columns, system_columns


def operations(conn: Connection) -> Operations:
    return Operations(MigrationContext.configure(conn))


def index_name(table: str, column: str, unique: bool = False) -> str:
    return f"{'ux' if unique else 'ix'}_{table}_{column}"


def create_record_table(conn: Connection, table: str, columns: list[tuple[str, TypeEngine]]) -> None:
    """Create the record table with system columns plus (name, type) data columns."""
    md = MetaData()
    # AUTOINCREMENT: record numbers are never reused after a delete (history keeps the old ones).
    t = Table(table, md, *system_columns(), *(Column(n, ty) for n, ty in columns), sqlite_autoincrement=True)
    t.create(conn)


def create_child_table(conn: Connection, table: str, parent: str, columns: list[tuple[str, TypeEngine]]) -> None:
    md = MetaData()
    Table(parent, md, Column("id", _int()))  # FK target placeholder for metadata resolution
    t = Table(table, md, *subtable_system_columns(parent), *(Column(n, ty) for n, ty in columns),
              sqlite_autoincrement=True)
    t.create(conn)


def create_index(conn: Connection, table: str, column: str) -> str:
    name = index_name(table, column)
    operations(conn).create_index(name, table, [_sortable(conn, column)])
    return name


def _sortable(conn: Connection, column: str):
    """Index expression whose order matches the query compiler's (empty = smallest value)."""
    if conn.dialect.name == "postgresql":
        return text(f'"{column}" NULLS FIRST')
    return column


def add_column(conn: Connection, table: str, name: str, type_: TypeEngine) -> None:
    operations(conn).add_column(table, Column(name, type_, nullable=True))


def duplicate_values(conn: Connection, table: str, column: str, limit: int = 10) -> list:
    t = Table(table, MetaData(), Column(column))
    c = t.c[column]
    stmt = (select(c).where(c.is_not(None)).group_by(c).having(func.count() > 1).limit(limit))
    return [r[0] for r in conn.execute(stmt)]


def create_unique_index(conn: Connection, table: str, column: str) -> str:
    name = index_name(table, column, unique=True)
    operations(conn).create_index(name, table, [column], unique=True)
    return name


def drop_index(conn: Connection, table: str, name: str) -> None:
    operations(conn).drop_index(name, table_name=table)


def _int():
    from sqlalchemy import Integer
    return Integer()
