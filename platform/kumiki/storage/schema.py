"""The resolved, physical view of a deployed app: fields, their columns and the SQLAlchemy tables.

An :class:`AppSchema` is what the query compiler, storage and RecordService work from. It is built
from the deployed definition plus the ``app_fields`` registry, and cached per (app, version).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from sqlalchemy import Column, DateTime, ForeignKey, Integer, MetaData, String, Table

from kumiki.db import JSONType
from kumiki.fields import FieldType, get as get_field_type

# System fields: type -> (default code, column of every record table).
SYSTEM_FIELDS: dict[str, tuple[str, str]] = {
    "RECORD_NUMBER": ("レコード番号", "id"),
    "CREATOR": ("作成者", "created_by"),
    "CREATED_TIME": ("作成日時", "created_at"),
    "MODIFIER": ("更新者", "updated_by"),
    "UPDATED_TIME": ("更新日時", "updated_at"),
    "STATUS": ("ステータス", "status"),
    "STATUS_ASSIGNEE": ("作業者", "assignees"),
}
ID_PSEUDO_FIELD = "$id"


def record_table_name(app_id: int) -> str:
    return f"app_{app_id}"


def subtable_table_name(app_id: int, field_id: int) -> str:
    return f"app_{app_id}_t_{field_id}"


def system_columns() -> list[Column]:
    """The fixed columns of every record table."""
    return [
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("revision", Integer, nullable=False, default=1),
        Column("created_by", String(128), nullable=True, index=True),
        Column("created_at", DateTime, nullable=False, index=True),
        Column("updated_by", String(128), nullable=True),
        Column("updated_at", DateTime, nullable=False, index=True),
        Column("status", String(128), nullable=True, index=True),
        Column("assignees", JSONType, nullable=True),
    ]


def subtable_system_columns(parent_table: str) -> list[Column]:
    return [
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("record_id", Integer, ForeignKey(f"{parent_table}.id", ondelete="CASCADE"), nullable=False, index=True),
        Column("position", Integer, nullable=False, default=0),
    ]


@dataclass(frozen=True)
class FieldDef:
    """A field of a deployed app with its physical location."""

    id: int
    code: str
    type: str
    props: dict                 # the field's definition, as in the app JSON
    column: str | None          # column name in ``table`` (None for layout/subtable fields)
    table: str                  # record table or subtable's child table
    parent_code: str | None = None  # set for fields inside a subtable

    @cached_property
    def ftype(self) -> FieldType:
        return get_field_type(self.type)

    @property
    def in_subtable(self) -> bool:
        return self.parent_code is not None

    @property
    def is_system(self) -> bool:
        return self.type in SYSTEM_FIELDS


@dataclass
class AppSchema:
    app_id: int
    version: int
    definition: dict
    fields: dict[str, FieldDef]                 # every field by code, incl. system and subtable inner
    metadata: MetaData = field(default_factory=MetaData)

    def field(self, code: str) -> FieldDef:
        return self.fields[code]

    @property
    def table_name(self) -> str:
        return record_table_name(self.app_id)

    @cached_property
    def table(self) -> Table:
        return self._build_tables()[0]

    @cached_property
    def child_tables(self) -> dict[str, Table]:
        """Subtable code -> its child table."""
        return self._build_tables()[1]

    def top_level_fields(self) -> list[FieldDef]:
        """Fields stored on the record table or as a subtable, in definition order (no layout)."""
        return self._top_level

    def data_fields(self) -> list[FieldDef]:
        """Top-level fields a client can write (not system, not layout)."""
        return self._data

    def subtable_fields(self, subtable_code: str) -> list[FieldDef]:
        return self._by_subtable.get(subtable_code, [])

    @cached_property
    def writable(self) -> dict[str, FieldDef]:
        """Top-level fields a client may write, by code (not system, CALC or layout)."""
        return {f.code: f for f in self._data if not f.ftype.read_only}

    @cached_property
    def calc_fields(self) -> dict[str, dict]:
        """Top-level CALC fields with a formula, by code (evaluated on every write)."""
        return {f.code: f.props for f in self._top_level if f.type == "CALC" and (f.props.get("formula") or "").strip()}

    @cached_property
    def definition_fields(self) -> dict[str, dict]:
        """Every field's definition by code (what formulas need to know about the fields they read)."""
        return {f.code: f.props for f in self.fields.values()}

    @cached_property
    def required(self) -> list[FieldDef]:
        return [f for f in self.writable.values() if f.props.get("required")]

    # The lists are asked for on every record of a bulk write: compute them once per schema.
    @cached_property
    def _top_level(self) -> list[FieldDef]:
        return [f for f in self.fields.values() if f.parent_code is None and f.code != ID_PSEUDO_FIELD
                and f.ftype.kind != "layout"]

    @cached_property
    def _data(self) -> list[FieldDef]:
        return [f for f in self._top_level if not f.is_system]

    @cached_property
    def _by_subtable(self) -> dict[str, list[FieldDef]]:
        out: dict[str, list[FieldDef]] = {}
        for f in self.fields.values():
            if f.parent_code is not None:
                out.setdefault(f.parent_code, []).append(f)
        return out

    def _build_tables(self) -> tuple[Table, dict[str, Table]]:
        if getattr(self, "_tables", None) is None:
            md = self.metadata
            cols = system_columns()
            for f in self.fields.values():
                if f.parent_code is None and f.column and not f.is_system and f.code != ID_PSEUDO_FIELD:
                    cols.append(Column(f.column, f.ftype.column_type(f.props)))
            table = Table(self.table_name, md, *cols)
            children: dict[str, Table] = {}
            for f in self.fields.values():
                if f.type == "SUBTABLE":
                    ccols = subtable_system_columns(self.table_name)
                    for inner in self.subtable_fields(f.code):
                        if inner.column:
                            ccols.append(Column(inner.column, inner.ftype.column_type(inner.props)))
                    children[f.code] = Table(f.table, md, *ccols)
            self._tables = (table, children)
        return self._tables
