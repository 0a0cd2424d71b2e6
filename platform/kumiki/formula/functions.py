"""The functions a formula may call: kintone's set plus a few municipal ones.

kintone: SUM, IF, AND, OR, NOT, ROUND, ROUNDUP, ROUNDDOWN, DATE_FORMAT, CONTAINS, YEN.
kumiki:  DATE(y, m, d)            the date as kintone seconds (a DATE value)
         AGE(birth, on)           whole years of age on a date (満年齢; a 2/29 birthday is reached on 3/1
                                  in common years, as under 年齢計算ニ関スル法律 the day before counts —
                                  see the note in _age)
         FISCAL_YEAR(date)        年度 (April start): 2026-03-31 → 2025
         ERA(date[, "long"|"short"])   令和7年4月1日 / R7.4.1   (ERA_FORMAT is the same function)
         YEAR(d), MONTH(d), DAY(d)
         TODAY(), NOW()           the evaluation time (written when the record is saved; not live)
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import ROUND_DOWN, ROUND_HALF_UP, ROUND_UP, Decimal, InvalidOperation
from typing import Callable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kumiki import i18n
from kumiki.fields._era import format_era
from kumiki.formula.values import (
    CTX, Blank, Column, FormulaError, Moment, check, date_seconds, seconds_to_utc, to_date, to_number, to_text,
    truth, utc_seconds,
)


@dataclass(frozen=True)
class Function:
    name: str
    min_args: int
    max_args: int | None
    impl: Callable
    lazy: bool = False       # impl(ev, arg_nodes) instead of impl(ev, *values)

    def arity_text(self) -> str:
        if self.max_args == self.min_args:
            return f"{self.min_args}個"
        if self.max_args is None:
            return f"{self.min_args}個以上"
        return f"{self.min_args}〜{self.max_args}個"


FUNCTIONS: dict[str, Function] = {}


def _fn(name, min_args, max_args=..., lazy=False):
    def deco(impl):
        FUNCTIONS[name] = Function(name, min_args, min_args if max_args is ... else max_args, impl, lazy)
        return impl
    return deco


# ----- numbers -----
def _numbers(args, what):
    for a in args:
        if isinstance(a, Column):
            for item in a.items:
                yield to_number(item, what)
        else:
            yield to_number(a, what)


@_fn("SUM", 1, None)
def _sum(ev, *args):
    total = Decimal(0)
    for n in _numbers(args, "SUM"):
        total = check(CTX.add(total, n))
    return total


def _digits(ev, args, name) -> int:
    if len(args) < 2:
        return 0
    n = to_number(args[1], name)
    if n != n.to_integral_value() or abs(n) > 30:
        raise FormulaError("formula.bad_digits", function=name)
    return int(n)


def _round(x: Decimal, digits: int, mode) -> Decimal:
    try:
        return x.quantize(Decimal(1).scaleb(-digits), rounding=mode, context=CTX) if digits >= 0 else \
            x.scaleb(digits, CTX).quantize(Decimal(1), rounding=mode, context=CTX).scaleb(-digits, CTX)
    except InvalidOperation:
        raise FormulaError("formula.overflow", digits=30) from None


def _rounder(name, mode):
    def impl(ev, *args):
        return _round(to_number(args[0], name), _digits(ev, args, name), mode)
    _fn(name, 1, 2)(impl)


# kintone rounds half away from zero; ROUNDUP is away from zero and ROUNDDOWN toward zero.
_rounder("ROUND", ROUND_HALF_UP)
_rounder("ROUNDUP", ROUND_UP)
_rounder("ROUNDDOWN", ROUND_DOWN)


@_fn("YEN", 2)
def _yen(ev, x, digits):
    n = _digits(ev, (x, digits), "YEN")
    v = _round(to_number(x, "YEN"), n, ROUND_HALF_UP)
    places = max(n, 0)
    text = f"{abs(v):,.{places}f}"
    return ("-¥" if v < 0 else "¥") + text


# ----- logic -----
@_fn("IF", 3, lazy=True)
def _if(ev, nodes):
    return ev.eval(nodes[1]) if truth(ev.eval(nodes[0]), "IF") else ev.eval(nodes[2])


@_fn("AND", 1, 32)
def _and(ev, *args):
    return all([truth(a, "AND") for a in args])


@_fn("OR", 1, 32)
def _or(ev, *args):
    return any([truth(a, "OR") for a in args])


@_fn("NOT", 1)
def _not(ev, a):
    return not truth(a, "NOT")


@_fn("CONTAINS", 2)
def _contains(ev, field, option):
    want = to_text(option, ev.tz)

    def has(v):
        if isinstance(v, tuple):
            return want in v
        if isinstance(v, Blank):
            return False
        if isinstance(v, str):
            return v == want
        raise FormulaError("formula.contains_type", got=_type(v))

    if isinstance(field, Column):
        return any(has(v) for v in field.items)
    return has(field)


def _type(v):
    from kumiki.formula.values import type_name
    return type_name(v)


# ----- dates -----
def _zone(name: str):
    if name in ("UTC", "Etc/GMT", "GMT", "Etc/UTC"):
        return timezone.utc
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise FormulaError("formula.bad_timezone", tz=name) from None


_WEEKDAYS = "月火水木金土日"


def _format_date(dt: datetime, pattern: str) -> str:
    """Java SimpleDateFormat letters, as kintone: yyyy/YYYY yy MM M dd d HH H hh h mm m ss s a E; '…' literal."""
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "'":
            j = pattern.find("'", i + 1)
            j = len(pattern) if j < 0 else j
            out.append(pattern[i + 1:j] or "'")
            i = j + 1
            continue
        j = i
        while j < len(pattern) and pattern[j] == ch:
            j += 1
        n = j - i
        if ch in "yY":
            out.append(f"{dt.year % 100:02d}" if n == 2 else f"{dt.year:0{max(n, 1)}d}")
        elif ch == "M":
            out.append(f"{dt.month:0{n}d}" if n <= 2 else f"{dt.month}月")
        elif ch == "d":
            out.append(f"{dt.day:0{n}d}")
        elif ch == "H":
            out.append(f"{dt.hour:0{n}d}")
        elif ch == "h":
            out.append(f"{(dt.hour % 12) or 12:0{n}d}")
        elif ch == "m":
            out.append(f"{dt.minute:0{n}d}")
        elif ch == "s":
            out.append(f"{dt.second:0{n}d}")
        elif ch == "a":
            out.append("AM" if dt.hour < 12 else "PM")
        elif ch == "E":
            out.append(_WEEKDAYS[dt.weekday()])
        else:
            out.append(pattern[i:j])
        i = j
    return "".join(out)


@_fn("DATE_FORMAT", 2, 3)
def _date_format(ev, value, pattern, tz=None):
    if isinstance(value, Blank) or value == "":
        return ""
    zone = _zone(to_text(tz, ev.tz)) if tz is not None else ev.tz
    if isinstance(value, Moment):
        sec = value.seconds
    else:
        sec = to_number(value, "DATE_FORMAT")
    if not (Decimal(-30610224000) <= sec <= Decimal(253402300799)):
        raise FormulaError("formula.date_out_of_range")
    dt = seconds_to_utc(sec).replace(tzinfo=timezone.utc)
    try:
        local = dt.astimezone(zone)
    except (OverflowError, ValueError):
        raise FormulaError("formula.date_out_of_range") from None
    return _format_date(local, to_text(pattern, ev.tz))


def _int_arg(v, name) -> int:
    n = to_number(v, name)
    if n != n.to_integral_value():
        raise FormulaError("formula.not_an_integer", function=name)
    return int(n)


@_fn("DATE", 3)
def _date(ev, y, m, d):
    try:
        return Moment(date_seconds(date(_int_arg(y, "DATE"), _int_arg(m, "DATE"), _int_arg(d, "DATE"))), "DATE")
    except (ValueError, OverflowError):
        raise FormulaError("formula.bad_date", value=f"{to_text(y, ev.tz)}-{to_text(m, ev.tz)}-{to_text(d, ev.tz)}") from None


def _age(birth: date, on: date) -> int:
    """Whole years completed on ``on``. A 2/29 birthday counts as reached on 3/1 in a common year
    (the civil-law rule — a year completes at the end of the day before the anniversary — differs
    only for school-year cut-offs, which use FISCAL_YEAR and a 4/1 date)."""
    years = on.year - birth.year
    if (on.month, on.day) < (birth.month, birth.day):
        years -= 1
    return years


@_fn("AGE", 1, 2)
def _age_fn(ev, birth, on=None):
    b = to_date(birth, ev.tz, "AGE")
    o = ev.today() if on is None else to_date(on, ev.tz, "AGE")
    if b is None or o is None:
        return Blank("NUMBER")
    return Decimal(_age(b, o))


@_fn("FISCAL_YEAR", 1)
def _fiscal_year(ev, d):
    x = to_date(d, ev.tz, "FISCAL_YEAR")
    if x is None:
        return Blank("NUMBER")
    return Decimal(x.year if x.month >= 4 else x.year - 1)


def _era(ev, d, style=None):
    x = to_date(d, ev.tz, "ERA")
    if x is None:
        return ""
    s = "long" if style is None else to_text(style, ev.tz).lower()
    if s not in ("long", "short"):
        raise FormulaError("formula.bad_era_style", value=s)
    try:
        return format_era(x, short=(s == "short"))
    except ValueError:
        raise FormulaError("formula.before_meiji") from None


_fn("ERA", 1, 2)(_era)
_fn("ERA_FORMAT", 1, 2)(_era)


def _part(name, attr):
    def impl(ev, d):
        x = to_date(d, ev.tz, name)
        return Blank("NUMBER") if x is None else Decimal(getattr(x, attr))
    _fn(name, 1)(impl)


_part("YEAR", "year")
_part("MONTH", "month")
_part("DAY", "day")


@_fn("TODAY", 0)
def _today(ev):
    return Moment(date_seconds(ev.today()), "DATE")


@_fn("NOW", 0)
def _now(ev):
    return Moment(utc_seconds(ev.now_utc()), "DATETIME")


i18n.register({
    "formula.bad_digits": ("{function}の桁数には-30〜30の整数を指定してください。",
                           "The digits argument of {function} must be an integer from -30 to 30."),
    "formula.not_an_integer": ("{function}には整数を指定してください。", "{function} needs whole numbers."),
    "formula.contains_type": ("CONTAINSにはチェックボックスか複数選択のフィールドを指定してください（{got}が指定されています）。",
                              "CONTAINS needs a check box or multi-select field (got {got})."),
    "formula.bad_timezone": ("タイムゾーン「{tz}」はありません。", "Unknown time zone \"{tz}\"."),
    "formula.bad_date": ("「{value}」は存在しない日付です。", "\"{value}\" is not a real date."),
    "formula.bad_era_style": ("ERAの形式は \"long\" か \"short\" を指定してください（「{value}」が指定されています）。",
                              "The ERA style must be \"long\" or \"short\" (got \"{value}\")."),
    "formula.before_meiji": ("明治より前の日付は和暦にできません。", "Dates before the Meiji era have no Japanese era."),
})
