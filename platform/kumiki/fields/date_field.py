from __future__ import annotations

from datetime import date

from sqlalchemy import Date

from kumiki.errors import FieldValueError
from kumiki.fields import _temporal
from kumiki.fields._common import ORDERED_EMPTY_OPS, check_bool_props, check_default, single_element
from kumiki.fields.base import Context, FieldType


class DateField(FieldType):
    type_name = "DATE"
    label = ("日付", "Date")
    operators = ORDERED_EMPTY_OPS
    can_be_unique = True
    properties = frozenset({"defaultValue", "defaultNowValue", "unique"})

    def column_type(self, fdef):
        return Date()

    def normalise(self, fdef, value, ctx: Context):
        d = _temporal.parse_date_value(value)
        return "" if d is None else d.isoformat()

    def to_db(self, fdef, value):
        if type(value) is str and len(value) == 10:
            try:
                return date.fromisoformat(value)  # canonical YYYY-MM-DD: the fast path of bulk writes
            except ValueError:
                pass
        return _temporal.parse_date_value(value)

    def from_db(self, fdef, raw, ctx):
        return _temporal.date_from_db(raw)

    def default(self, fdef, ctx):
        if fdef.get("defaultNowValue") is True:
            return _temporal.local_now(ctx).date().isoformat()
        return super().default(fdef, ctx)

    def query_value(self, fdef, literal, ctx):
        return _temporal.parse_date_value(literal)

    def convert_from(self, fdef, old_type, old_value, ctx):
        if old_type.is_empty(old_value):
            return ""
        value = single_element(old_value)
        try:
            return self.normalise(fdef, value, ctx)
        except FieldValueError:
            pass
        try:  # a date-time becomes the local calendar date
            dt = _temporal.parse_datetime_value(value, ctx)
        except FieldValueError:
            dt = None
        if dt is None:
            raise FieldValueError("field.cannot_convert", value=str(value))
        return _temporal.utc_to_local(dt, ctx).date().isoformat()

    def check_definition(self, fdef, path):
        return check_bool_props(fdef, path, ("defaultNowValue", "unique")) or check_default(self, fdef, path)
