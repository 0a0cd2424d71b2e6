from __future__ import annotations

from sqlalchemy import Time

from kumiki.fields import _temporal
from kumiki.fields._common import ORDERED_EMPTY_OPS, check_bool_props, check_default
from kumiki.fields.base import Context, FieldType


class TimeField(FieldType):
    type_name = "TIME"
    label = ("時刻", "Time")
    operators = ORDERED_EMPTY_OPS
    properties = frozenset({"defaultValue", "defaultNowValue"})

    def column_type(self, fdef):
        return Time()

    def normalise(self, fdef, value, ctx: Context):
        t = _temporal.parse_time_value(value)
        return "" if t is None else _temporal.format_time(t)

    def to_db(self, fdef, value):
        return _temporal.parse_time_value(value)

    def from_db(self, fdef, raw, ctx):
        return _temporal.time_from_db(raw)

    def default(self, fdef, ctx):
        if fdef.get("defaultNowValue") is True:
            return _temporal.format_time(_temporal.local_now(ctx).time())
        return super().default(fdef, ctx)

    def query_value(self, fdef, literal, ctx):
        return _temporal.parse_time_value(literal)

    def check_definition(self, fdef, path):
        return check_bool_props(fdef, path, ("defaultNowValue",)) or check_default(self, fdef, path)
