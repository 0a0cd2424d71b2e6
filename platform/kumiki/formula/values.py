"""Runtime values of the formula language and the coercions between them.

A value is one of:
  Decimal           a number (kintone: every number is a decimal)
  str               text
  bool              the result of a comparison / AND / OR / NOT
  Moment            a date, date-time or time as kintone seconds, remembering which it is
                    (DATE: UNIX time of its midnight UTC; DATETIME: UNIX time; TIME: seconds since 00:00)
  Blank             an empty field value, remembering the field's kind
  tuple             the options of a check box / multi-select (for CONTAINS)
  Column            a subtable column: one value per row (for SUM and CONTAINS)
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Context, Decimal, DivisionByZero, InvalidOperation, Overflow

from kumiki import i18n

# Working precision: kintone allows 30 integer + 10 fraction digits; keep 10 more as guard digits.
CTX = Context(prec=50, rounding=ROUND_HALF_UP, Emax=999, Emin=-999,
              traps=[DivisionByZero, InvalidOperation, Overflow])
MAX_INT_DIGITS = 30
MAX_FRAC_DIGITS = 10
EPOCH = datetime(1970, 1, 1)
DAY = 86400


class FormulaError(Exception):
    """A formula could not be evaluated for this record (division by zero, wrong types…).

    ``key`` is an i18n message key and ``params`` its parameters; never escapes evaluate_all.
    """

    def __init__(self, key: str, **params):
        super().__init__(key)
        self.key = key
        self.params = params

    def message(self, locale: str = "ja") -> str:
        return i18n.translate(self.key, locale, **self.params)


@dataclass(frozen=True)
class Moment:
    seconds: Decimal
    kind: str   # "DATE" | "DATETIME" | "TIME"


@dataclass(frozen=True)
class Blank:
    kind: str   # "NUMBER" | "TEXT" | "DATE" | "DATETIME" | "TIME" | "LIST"


@dataclass(frozen=True)
class Column:
    code: str
    items: tuple


TEMPORAL = ("DATE", "DATETIME", "TIME")


def type_name(v) -> str:
    if isinstance(v, bool):
        return "真偽値"
    if isinstance(v, Decimal):
        return "数値"
    if isinstance(v, str):
        return "文字列"
    if isinstance(v, Moment):
        return {"DATE": "日付", "DATETIME": "日時", "TIME": "時刻"}[v.kind]
    if isinstance(v, Column):
        return "テーブルの列"
    if isinstance(v, tuple):
        return "複数選択の値"
    if isinstance(v, Blank):
        return "空欄"
    return "値"


def check(d: Decimal) -> Decimal:
    """Reject results beyond the digit limit (kintone: 30 integer digits)."""
    if d.is_finite() and not d.is_zero() and d.adjusted() >= MAX_INT_DIGITS:
        raise FormulaError("formula.overflow", digits=MAX_INT_DIGITS)
    return d


def to_number(v, what: str = "計算") -> Decimal:
    """A value as a number: empty numbers are 0 (as in kintone); text must look like a number."""
    if isinstance(v, bool):
        return Decimal(1 if v else 0)
    if isinstance(v, Decimal):
        return v
    if isinstance(v, Moment):
        return v.seconds
    if isinstance(v, Blank):
        return Decimal(0)
    if isinstance(v, str):
        s = v.strip().replace(",", "")
        if s == "":
            return Decimal(0)
        try:
            d = Decimal(s)
        except InvalidOperation:
            d = None
        if d is not None and d.is_finite():
            return d
    raise FormulaError("formula.not_a_number", what=what, got=type_name(v))


def finish_number(d: Decimal) -> Decimal:
    """Round a final result to the fraction digits a number column keeps; drop trailing zeros."""
    check(d)
    q = d.quantize(Decimal(1).scaleb(-MAX_FRAC_DIGITS), rounding=ROUND_HALF_UP, context=CTX)
    if q.is_zero():
        return Decimal(0)
    return q.normalize(CTX)


def seconds_to_utc(sec: Decimal) -> datetime:
    try:
        whole = int(sec.to_integral_value(rounding=ROUND_FLOOR))
        return EPOCH + timedelta(seconds=whole)
    except (OverflowError, ValueError, InvalidOperation):
        raise FormulaError("formula.date_out_of_range") from None


def utc_seconds(dt: datetime) -> Decimal:
    if dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc).replace(tzinfo=None)
    delta = dt - EPOCH
    return Decimal(delta.days * DAY + delta.seconds)


def date_seconds(d: date) -> Decimal:
    return Decimal((d - EPOCH.date()).days * DAY)


def to_date(v, tz, what: str) -> date | None:
    """The calendar date a value stands for; None for a blank. DATETIME uses the time zone."""
    if isinstance(v, Blank) or (isinstance(v, str) and v.strip() == ""):
        return None
    if isinstance(v, Moment):
        if v.kind == "TIME":
            raise FormulaError("formula.not_a_date", what=what, got=type_name(v))
        dt = seconds_to_utc(v.seconds)
        if v.kind == "DATETIME":
            try:
                return dt.replace(tzinfo=timezone.utc).astimezone(tz).date()
            except (OverflowError, ValueError):
                raise FormulaError("formula.date_out_of_range") from None
        return dt.date()
    if isinstance(v, str):
        from kumiki.fields._era import parse_date
        try:
            d = parse_date(v)
        except Exception:
            d = None
        if d is None:
            raise FormulaError("formula.not_a_date", what=what, got=type_name(v))
        return d
    if isinstance(v, Decimal) and not isinstance(v, bool):
        return seconds_to_utc(v).date()
    raise FormulaError("formula.not_a_date", what=what, got=type_name(v))


def to_text(v, tz) -> str:
    """A value joined with & : numbers in canonical form, dates ISO, date-times local "YYYY-MM-DD HH:MM"."""
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, str):
        return v
    if isinstance(v, Decimal):
        d = finish_number(v)
        return "0" if d.is_zero() else format(d, "f")
    if isinstance(v, Blank):
        return ""
    if isinstance(v, Moment):
        dt = seconds_to_utc(v.seconds)
        if v.kind == "DATE":
            return dt.date().isoformat()
        if v.kind == "TIME":
            s = int(v.seconds) % DAY
            return f"{s // 3600:02d}:{s % 3600 // 60:02d}"
        try:
            local = dt.replace(tzinfo=timezone.utc).astimezone(tz)
        except (OverflowError, ValueError):
            raise FormulaError("formula.date_out_of_range") from None
        return f"{local.date().isoformat()} {local.hour:02d}:{local.minute:02d}"
    if isinstance(v, tuple):
        return ", ".join(v)
    raise FormulaError("formula.not_text", got=type_name(v))


def truth(v, what: str) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, Decimal):
        return not v.is_zero()
    if isinstance(v, Blank):
        return False
    raise FormulaError("formula.not_a_condition", what=what, got=type_name(v))


i18n.register({
    "formula.overflow": ("計算結果の桁数が多すぎます（整数部{digits}桁まで）。",
                         "The result has too many digits (at most {digits} before the decimal point)."),
    "formula.not_a_number": ("{what}には数値が必要ですが、{got}が指定されています。",
                             "{what} needs a number, but got {got}."),
    "formula.not_a_date": ("{what}には日付が必要ですが、{got}が指定されています。",
                           "{what} needs a date, but got {got}."),
    "formula.not_text": ("{got}は文字列にできません。", "{got} cannot be turned into text."),
    "formula.not_a_condition": ("{what}には条件（比較やAND・OR）が必要ですが、{got}が指定されています。",
                                "{what} needs a condition (a comparison, AND, OR), but got {got}."),
    "formula.date_out_of_range": ("日付が扱える範囲を超えています。", "The date is out of range."),
})
