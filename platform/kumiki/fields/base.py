"""The FieldType contract. Every field type is one module in this package with one subclass.

A field type owns everything about its values:
- ``normalise``: turn what a client sent (JSON, CSV text, a kintone value) into the canonical API
  value, or raise :class:`~kumiki.errors.FieldValueError` with a message key;
- ``to_db`` / ``from_db``: canonical value <-> what its column holds;
- ``column_type``: the SQLAlchemy type of its column (``None`` = no column);
- ``operators`` and ``query_value``: which query operators it supports and how a query literal
  becomes a comparable database value;
- ``default``: the value on create when the client sent none;
- ``check_definition``: type-specific checks of its properties in an app definition;
- ``to_csv`` / ``from_csv``: CSV codecs.

Canonical (API) values are JSON-friendly: text is ``str`` ("" when empty), NUMBER/CALC are decimal
strings (as in kintone, so no precision is lost), DATE ``YYYY-MM-DD``, TIME ``HH:MM``, DATETIME
``YYYY-MM-DDTHH:MM:SSZ`` (UTC), multi-valued fields lists, entity selects ``[{"code", "name"}]``,
FILE ``[{"fileKey", "name", "contentType", "size"}]``, SUBTABLE ``[{"id", "value": {code: value}}]``.
Empty scalar values are stored as NULL so that "" is never a unique duplicate.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, ClassVar

from sqlalchemy.types import TypeEngine

from kumiki.errors import Detail, FieldValueError
from kumiki import i18n

# Query operators of the kintone query language.
EQ, NE, GT, LT, GE, LE = "=", "!=", ">", "<", ">=", "<="
IN, NOT_IN, LIKE, NOT_LIKE, IS_EMPTY, IS_NOT_EMPTY = "in", "not in", "like", "not like", "is empty", "is not empty"
ORDERED_OPS = frozenset({EQ, NE, GT, LT, GE, LE, IN, NOT_IN})
TEXT_OPS = frozenset({EQ, NE, IN, NOT_IN, LIKE, NOT_LIKE, IS_EMPTY, IS_NOT_EMPTY})
CHOICE_OPS = frozenset({IN, NOT_IN})
MULTI_OPS = frozenset({IN, NOT_IN})

# Kinds of storage.
SCALAR = "scalar"      # one typed column
MULTI = "multi"        # one JSON column holding a list
SUBTABLE = "subtable"  # a child table
SYSTEM = "system"      # a fixed column of every record table
LAYOUT = "layout"      # no value at all (LABEL, SPACER, HR, GROUP)


@dataclass
class Context:
    """What a field type may need to know about the write or read in progress."""

    user_code: str | None = None
    now: datetime | None = None            # naive UTC
    timezone: str = "Asia/Tokyo"
    is_create: bool = True
    locale: str = "ja"
    # Lookups into the directory and file store; RecordService supplies real ones.
    user_name: Callable[[str], str | None] = lambda code: None
    user_exists: Callable[[str], bool] = lambda code: True
    org_exists: Callable[[str], bool] = lambda code: True
    group_exists: Callable[[str], bool] = lambda code: True
    file_info: Callable[[str], dict | None] = lambda key: None
    extra: dict = field(default_factory=dict)


class FieldType:
    type_name: ClassVar[str] = ""
    label: ClassVar[tuple[str, str]] = ("", "")   # (ja, en) palette labels, see GLOSSARY.md
    kind: ClassVar[str] = SCALAR
    operators: ClassVar[frozenset[str]] = frozenset()
    sortable: ClassVar[bool] = True
    indexed: ClassVar[bool] = True        # scalar columns views filter/sort on get an index
    can_be_unique: ClassVar[bool] = False
    can_be_required: ClassVar[bool] = True
    read_only: ClassVar[bool] = False     # clients never write it (system fields, CALC)
    stores_list: ClassVar[bool] = False   # its column is a JSON list (query uses containment)
    # Definition properties this type accepts beyond the common ones (code, type, label, ...).
    properties: ClassVar[frozenset[str]] = frozenset()

    # ----- definition -----
    def check_definition(self, fdef: dict, path: str) -> list[Detail]:
        """Type-specific semantic checks of a field definition (shape is checked by JSON Schema)."""
        return []

    # ----- storage -----
    def column_type(self, fdef: dict) -> TypeEngine | None:
        return None

    def to_db(self, fdef: dict, value: Any) -> Any:
        return None if self.is_empty(value) else value

    def from_db(self, fdef: dict, raw: Any, ctx: Context) -> Any:
        return "" if raw is None else raw

    # ----- values -----
    def empty_value(self) -> Any:
        return ""

    def is_empty(self, value: Any) -> bool:
        return value is None or value == "" or value == []

    def normalise(self, fdef: dict, value: Any, ctx: Context) -> Any:
        """Validate ``value`` and return its canonical form. Raise FieldValueError if invalid."""
        raise NotImplementedError

    def default(self, fdef: dict, ctx: Context) -> Any:
        dv = fdef.get("defaultValue")
        if dv is None or dv == "" or dv == []:
            return self.empty_value()
        return self.normalise(fdef, dv, ctx)

    def convert_from(self, fdef: dict, old_type: "FieldType", old_value: Any, ctx: Context) -> Any:
        """Convert a value of another type (retype). Raise FieldValueError when it cannot."""
        if old_type.is_empty(old_value):
            return self.empty_value()
        if isinstance(old_value, list):
            old_value = ",".join(str(v.get("code", v)) if isinstance(v, dict) else str(v) for v in old_value)
        return self.normalise(fdef, str(old_value), ctx)

    # ----- query -----
    def query_value(self, fdef: dict, literal: str, ctx: Context) -> Any:
        """Turn a query literal (always a string in the query language) into a DB-comparable value."""
        return self.to_db(fdef, self.normalise(fdef, literal, ctx))

    # ----- CSV -----
    def to_csv(self, fdef: dict, value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, list):
            return "\n".join(str(v.get("code", v)) if isinstance(v, dict) else str(v) for v in value)
        return str(value)

    def from_csv(self, fdef: dict, text: str, ctx: Context) -> Any:
        return self.normalise(fdef, text, ctx)


i18n.register({
    "field.required": ("必須です。", "Required."),
    "field.unique": ("値がほかのレコードと重複しています。", "This value is already used by another record."),
    "field.type_mismatch": ("{expected}を入力してください。", "Enter {expected_en}."),
    "field.read_only": ("このフィールドは変更できません。", "This field cannot be changed."),
    "field.unknown": ("フィールドコード「{code}」は存在しません。", "There is no field with code \"{code}\"."),
    "field.too_short": ("{min}文字以上で入力してください。", "Enter at least {min} characters."),
    "field.too_long": ("{max}文字以内で入力してください。", "Enter at most {max} characters."),
    "field.too_small": ("{min}以上の値を入力してください。", "Enter a value of at least {min}."),
    "field.too_large": ("{max}以下の値を入力してください。", "Enter a value of at most {max}."),
    "field.not_an_option": ("「{value}」は選択肢にありません。", "\"{value}\" is not one of the options."),
    "definition.min_gt_max": ("最小値が最大値より大きくなっています。", "The minimum is greater than the maximum."),
})
