from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime

from kumiki.fields import _temporal
from kumiki.fields._common import ORDERED_EMPTY_OPS, check_bool_props, check_default
from kumiki.fields.base import Context, FieldType


class DateTimeField(FieldType):
    type_name = "DATETIME"
    label = ("日時", "Date and time")
    operators = ORDERED_EMPTY_OPS
    can_be_unique = True
    properties = frozenset({"defaultValue", "defaultNowValue", "unique"})

    def column_type(self, fdef):
        return DateTime()

    def normalise(self, fdef, value, ctx: Context):
        dt = _temporal.parse_datetime_value(value, ctx)
        return "" if dt is None else _temporal.format_datetime(dt)

    def to_db(self, fdef, value):
        if type(value) is str and len(value) == 20 and value.endswith(":00Z"):
            try:
                return datetime.fromisoformat(value[:-1])  # canonical, already UTC and truncated
            except ValueError:
                pass
        # Canonical values carry "Z", so the context's time zone is never consulted here.
        return _temporal.parse_datetime_value(value, Context(timezone="UTC"))

    def from_db(self, fdef, raw, ctx):
        return _temporal.datetime_from_db(raw)

    def default(self, fdef, ctx):
        if fdef.get("defaultNowValue") is True:
            return _temporal.format_datetime(_temporal.utc_now(ctx).replace(second=0, microsecond=0))
        return super().default(fdef, ctx)

    def query_value(self, fdef, literal, ctx):
        return _temporal.parse_datetime_value(literal, ctx)

    def check_definition(self, fdef, path):
        return check_bool_props(fdef, path, ("defaultNowValue", "unique")) or check_default(self, fdef, path)
