"""Decimal parsing and canonical formatting shared by NUMBER, CALC and RECORD_NUMBER."""
from __future__ import annotations

import math
import re
from decimal import Context, Decimal, InvalidOperation
from typing import Any

from kumiki import i18n
from kumiki.errors import FieldValueError
from kumiki.fields._common import mismatch, nfkc

# Digits a number may have (kintone: 30 in the integer part, 10 in the fraction).
MAX_INT_DIGITS = 30
MAX_FRAC_DIGITS = 10

_NUMBER = re.compile(
    r"[+-]?(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)?(?:\.[0-9]*)?(?:[eE][+-]?[0-9]{1,4})?", re.ASCII)


def _not_a_number() -> FieldValueError:
    return mismatch("数値", "a number")


def parse_decimal(value: Any) -> Decimal | None:
    """Parse a client value into a Decimal within the digit limits; None when empty."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise _not_a_number()
    if isinstance(value, Decimal):
        d = value
    elif isinstance(value, int):
        d = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise _not_a_number()
        d = Decimal(repr(value))
    elif isinstance(value, str):
        text = nfkc(value).strip().replace("−", "-")
        if not text:
            return None
        if not _NUMBER.fullmatch(text) or not any(c.isdigit() for c in text.split("e")[0].split("E")[0]):
            raise _not_a_number()
        try:
            d = Decimal(text.replace(",", ""))
        except InvalidOperation:
            raise _not_a_number() from None
    else:
        raise _not_a_number()
    if not d.is_finite():
        raise _not_a_number()
    return _within_limits(d)


# Enough precision for every allowed digit; passed explicitly (a localcontext() per value costs
# more than the arithmetic on bulk writes).
_CONTEXT = Context(prec=MAX_INT_DIGITS + MAX_FRAC_DIGITS + 10)


def _within_limits(d: Decimal) -> Decimal:
    if d.is_zero():
        return Decimal(0)
    if d.adjusted() >= MAX_INT_DIGITS:
        raise FieldValueError("field.number_too_many_digits", int_digits=MAX_INT_DIGITS, frac_digits=MAX_FRAC_DIGITS)
    d = d.normalize(_CONTEXT)
    if -d.as_tuple().exponent > MAX_FRAC_DIGITS:
        raise FieldValueError("field.number_too_many_digits", int_digits=MAX_INT_DIGITS, frac_digits=MAX_FRAC_DIGITS)
    return d


def canonical(d: Decimal) -> str:
    """A decimal string without exponent or trailing zeros: "1234.5", "-3", "0"."""
    if d.is_zero():
        return "0"
    return format(d.normalize(_CONTEXT), "f")


def from_db(raw: Any) -> str:
    """A column value (Decimal, float from SQLite, int) as the canonical string."""
    if raw is None:
        return ""
    if isinstance(raw, float):
        raw = Decimal(repr(raw))
    return canonical(Decimal(raw))


def check_range(fdef: dict, d: Decimal) -> None:
    lo, hi = fdef.get("minValue"), fdef.get("maxValue")
    if lo in (None, "") and hi in (None, ""):
        return
    lo, hi = _prop_decimal(lo), _prop_decimal(hi)
    if lo is not None and d < lo:
        raise FieldValueError("field.too_small", min=canonical(lo))
    if hi is not None and d > hi:
        raise FieldValueError("field.too_large", max=canonical(hi))


def _prop_decimal(value: Any) -> Decimal | None:
    try:
        return parse_decimal(value)
    except FieldValueError:
        return None


i18n.register({
    "field.number_too_many_digits": ("数値は整数部{int_digits}桁、小数部{frac_digits}桁までで入力してください。",
                                     "Numbers may have at most {int_digits} digits before and "
                                     "{frac_digits} after the decimal point."),
})


def canonical_to_decimal(value: Any) -> Decimal | None:
    """to_db of a canonical value: a plain decimal string needs no re-validation (bulk writes)."""
    if value == "" or value is None:
        return None
    if type(value) is str:
        try:
            return Decimal(value)
        except InvalidOperation:
            pass
    return parse_decimal(value)
