"""System fields: values every record has in fixed columns (see kumiki.storage.schema.system_columns).

Clients never write them (read_only); storage fills the columns. ``column_type`` is None because the
storage adds the system columns itself, but ``from_db`` converts a raw column value to the API value.
"""
from __future__ import annotations

from typing import Any

from kumiki.errors import FieldValueError
from kumiki.fields import _temporal
from kumiki.fields._common import SELECT_OPS, mismatch, to_text
from kumiki.fields._entities import code_of, codes_of, stored_codes, user_ref
from kumiki.fields.base import ORDERED_OPS, SYSTEM, Context, FieldType


class SystemField(FieldType):
    kind = SYSTEM
    read_only = True
    can_be_required = False

    def default(self, fdef, ctx):
        return self.empty_value()


class RecordNumberField(SystemField):
    operators = ORDERED_OPS

    def normalise(self, fdef, value, ctx: Context):
        n = _record_id(value)
        return "" if n is None else str(n)

    def to_db(self, fdef, value):
        return _record_id(value)

    def from_db(self, fdef, raw, ctx):
        return "" if raw is None else str(int(raw))

    def query_value(self, fdef, literal, ctx):
        return _record_id(literal)


def _record_id(value: Any) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = value.strip() if isinstance(value, str) else ""
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise mismatch("レコード番号", "a record number")
    return int(text)


class UserRefField(SystemField):
    """CREATOR / MODIFIER: the column holds a user code; the API value is {"code", "name"}."""

    operators = SELECT_OPS

    def empty_value(self):
        return {"code": "", "name": ""}

    def is_empty(self, value):
        return super().is_empty(value) or (isinstance(value, dict) and not value.get("code"))

    def normalise(self, fdef, value, ctx: Context):
        if self.is_empty(value):
            return self.empty_value()
        code = code_of(value)
        if not ctx.user_exists(code):
            raise FieldValueError("field.unknown_user", code=code)
        return user_ref(code, ctx)

    def to_db(self, fdef, value):
        return None if self.is_empty(value) else code_of(value)

    def from_db(self, fdef, raw, ctx):
        return user_ref(raw if isinstance(raw, str) else None, ctx)

    def query_value(self, fdef, literal, ctx):
        return literal or None

    def to_csv(self, fdef, value):
        return value.get("code", "") if isinstance(value, dict) else ""


class TimestampField(SystemField):
    """CREATED_TIME / UPDATED_TIME: naive UTC in the column, "YYYY-MM-DDTHH:MM:00Z" in the API."""

    operators = ORDERED_OPS

    def normalise(self, fdef, value, ctx: Context):
        dt = _temporal.parse_datetime_value(value, ctx)
        return "" if dt is None else _temporal.format_datetime(dt)

    def to_db(self, fdef, value):
        return _temporal.parse_datetime_value(value, Context(timezone="UTC"))

    def from_db(self, fdef, raw, ctx):
        return _temporal.datetime_from_db(raw)

    def query_value(self, fdef, literal, ctx):
        return _temporal.parse_datetime_value(literal, ctx)


class StatusField(SystemField):
    operators = SELECT_OPS

    def normalise(self, fdef, value, ctx: Context):
        return "" if value is None else to_text(value)

    def query_value(self, fdef, literal, ctx):
        return literal or None


class AssigneesField(SystemField):
    """STATUS_ASSIGNEE: a JSON list of user codes; the API value is [{"code", "name"}]."""

    operators = SELECT_OPS
    stores_list = True

    def empty_value(self):
        return []

    def normalise(self, fdef, value, ctx: Context):
        return [user_ref(c, ctx) for c in codes_of(value)]

    def to_db(self, fdef, value):
        return codes_of(value) or None

    def from_db(self, fdef, raw, ctx):
        return [user_ref(c, ctx) for c in stored_codes(raw)]

    def query_value(self, fdef, literal, ctx):
        return literal or None
