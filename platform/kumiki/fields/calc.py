from __future__ import annotations

from sqlalchemy import Date, DateTime, Numeric, Time

from kumiki import i18n
from kumiki.errors import Detail
from kumiki.fields import _number, _temporal
from kumiki.fields._common import check_bool_props, check_display_props
from kumiki.fields.base import ORDERED_OPS, Context, FieldType

# Display formats; HOUR_MINUTE and DAY_HOUR_MINUTE show a number of seconds as a duration.
NUMBER_FORMATS = ("NUMBER", "NUMBER_DIGIT", "HOUR_MINUTE", "DAY_HOUR_MINUTE")
FORMATS = NUMBER_FORMATS + ("DATETIME", "DATE", "TIME")


def _format(fdef: dict) -> str:
    fmt = fdef.get("format") or "NUMBER"
    return fmt if fmt in FORMATS else "NUMBER"


class Calc(FieldType):
    """Stored result of a formula. The formula engine writes it through ``normalise``."""

    type_name = "CALC"
    label = ("計算", "Calculated")
    operators = ORDERED_OPS
    read_only = True
    can_be_required = False
    properties = frozenset({"formula", "format", "displayScale", "unit", "unitPosition", "hideExpression"})

    def column_type(self, fdef):
        return {"DATETIME": DateTime(), "DATE": Date(), "TIME": Time()}.get(_format(fdef), Numeric(asdecimal=True))

    def normalise(self, fdef, value, ctx: Context):
        db = self._parse(fdef, value, ctx)
        return self._canonical(fdef, db)

    def to_db(self, fdef, value):
        return self._parse(fdef, value, Context(timezone="UTC"))

    def from_db(self, fdef, raw, ctx):
        fmt = _format(fdef)
        if fmt == "DATETIME":
            return _temporal.datetime_from_db(raw)
        if fmt == "DATE":
            return _temporal.date_from_db(raw)
        if fmt == "TIME":
            return _temporal.time_from_db(raw)
        return _number.from_db(raw)

    def query_value(self, fdef, literal, ctx):
        return self._parse(fdef, literal, ctx)

    def _parse(self, fdef, value, ctx):
        fmt = _format(fdef)
        if fmt == "DATETIME":
            return _temporal.parse_datetime_value(value, ctx)
        if fmt == "DATE":
            return _temporal.parse_date_value(value)
        if fmt == "TIME":
            return _temporal.parse_time_value(value)
        return _number.parse_decimal(value)

    def _canonical(self, fdef, db):
        if db is None:
            return ""
        fmt = _format(fdef)
        if fmt == "DATETIME":
            return _temporal.format_datetime(db)
        if fmt == "DATE":
            return db.isoformat()
        if fmt == "TIME":
            return _temporal.format_time(db)
        return _number.canonical(db)

    def check_definition(self, fdef, path):
        out = check_display_props(fdef, path) + check_bool_props(fdef, path, ("hideExpression",))
        formula = fdef.get("formula")
        if not isinstance(formula, str) or not formula.strip():
            out.append(Detail(f"{path}.formula", "fielddef.formula_required"))
        if fdef.get("format") not in (None, "") + FORMATS:
            out.append(Detail(f"{path}.format", "fielddef.calc_format", {"value": str(fdef.get("format"))}))
        return out


i18n.register({
    "fielddef.formula_required": ("計算式を入力してください。", "Enter a formula."),
    "fielddef.calc_format": ("表示形式「{value}」は使えません。", "The format \"{value}\" is not available."),
})
