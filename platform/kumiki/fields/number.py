from __future__ import annotations

from sqlalchemy import Numeric

from kumiki.errors import Detail, FieldValueError
from kumiki.fields import _number
from kumiki.fields._common import (ORDERED_EMPTY_OPS, check_bool_props, check_default, check_display_props,
                                   convert_single)
from kumiki.fields.base import Context, FieldType


class Number(FieldType):
    type_name = "NUMBER"
    label = ("数値", "Number")
    operators = ORDERED_EMPTY_OPS
    can_be_unique = True
    properties = frozenset({"defaultValue", "minValue", "maxValue", "displayScale", "unit", "unitPosition",
                            "digit", "unique"})

    def column_type(self, fdef):
        return Numeric(asdecimal=True)

    def normalise(self, fdef, value, ctx: Context):
        d = _number.parse_decimal(value)
        if d is None:
            return ""
        _number.check_range(fdef, d)
        return _number.canonical(d)

    def to_db(self, fdef, value):
        return _number.canonical_to_decimal(value)

    def from_db(self, fdef, raw, ctx):
        return _number.from_db(raw)

    def query_value(self, fdef, literal, ctx):
        return _number.parse_decimal(literal)

    def convert_from(self, fdef, old_type, old_value, ctx):
        return convert_single(self, fdef, old_type, old_value, ctx)

    def check_definition(self, fdef, path):
        out = check_display_props(fdef, path) + check_bool_props(fdef, path, ("digit", "unique"))
        bounds = {}
        for name in ("minValue", "maxValue"):
            try:
                bounds[name] = _number.parse_decimal(fdef.get(name))
            except FieldValueError:
                out.append(Detail(f"{path}.{name}", "fielddef.not_number"))
        lo, hi = bounds.get("minValue"), bounds.get("maxValue")
        if lo is not None and hi is not None and lo > hi:
            out.append(Detail(f"{path}.minValue", "definition.min_gt_max"))
        if not out:
            out += check_default(self, fdef, path)
        return out
