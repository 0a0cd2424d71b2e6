"""Date, time and date-time parsing and formatting shared by DATE, TIME, DATETIME, CALC and system times.

Canonical forms: DATE "YYYY-MM-DD", TIME "HH:MM", DATETIME "YYYY-MM-DDTHH:MM:00Z" (UTC, truncated to the
minute as kintone does). The database holds date, time and naive UTC datetime objects.
"""
from __future__ import annotations

import re
from datetime import date, datetime, time, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kumiki import i18n
from kumiki.errors import FieldValueError
from kumiki.fields._common import nfkc
from kumiki.fields._era import parse_date
from kumiki.fields.base import Context

_CLOCK = re.compile(r"(?P<h>[0-9]{1,2}):(?P<m>[0-9]{1,2})(?::(?P<s>[0-9]{1,2})(?:\.[0-9]{1,6})?)?", re.ASCII)
_KANJI_CLOCK = re.compile(r"(?P<h>[0-9]{1,2})時(?:(?P<m>[0-9]{1,2})分(?:(?P<s>[0-9]{1,2})秒)?)?", re.ASCII)
_DATE_AND_TIME = re.compile(r"(?P<d>.+?)(?:\s+|T(?=[0-9])|(?<=日))(?P<t>[0-9]{1,2}(?::|時).*)")


# ----- clock -----
def zone(ctx: Context) -> tzinfo:
    try:
        return ZoneInfo(ctx.timezone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        return timezone.utc


def utc_now(ctx: Context) -> datetime:
    """Now as a naive UTC datetime (ctx.now when the caller fixed it)."""
    return ctx.now if ctx.now is not None else datetime.now(timezone.utc).replace(tzinfo=None)


def utc_to_local(dt: datetime, ctx: Context) -> datetime:
    """A naive UTC datetime as an aware datetime in ctx.timezone."""
    try:
        return dt.replace(tzinfo=timezone.utc).astimezone(zone(ctx))
    except (OverflowError, ValueError):
        raise FieldValueError("field.datetime_invalid") from None


def local_now(ctx: Context) -> datetime:
    return utc_to_local(utc_now(ctx), ctx)


# ----- DATE -----
def parse_date_value(value: Any) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        raise _date_error()
    if isinstance(value, date):
        return value
    if not isinstance(value, str):
        raise _date_error()
    if not value.strip():
        return None
    d = parse_date(value)
    if d is None:
        raise _date_error()
    return d


def _date_error() -> FieldValueError:
    return FieldValueError("field.date_invalid")


def date_from_db(raw: Any) -> str:
    if raw is None:
        return ""
    if isinstance(raw, datetime):
        raw = raw.date()
    return raw.isoformat() if isinstance(raw, date) else str(raw)[:10]


# ----- TIME -----
def parse_time_value(value: Any) -> time | None:
    if value is None:
        return None
    if isinstance(value, time):
        return value.replace(second=0, microsecond=0, tzinfo=None)
    if not isinstance(value, str):
        raise FieldValueError("field.time_invalid")
    text = nfkc(value).strip()
    if not text:
        return None
    t = _parse_clock(text)
    if t is None:
        raise FieldValueError("field.time_invalid")
    return t


def _parse_clock(text: str) -> time | None:
    m = _CLOCK.fullmatch(text) or _KANJI_CLOCK.fullmatch(text)
    if not m:
        return None
    h, mi, s = int(m["h"]), int(m["m"] or 0), int(m["s"] or 0)
    if h > 23 or mi > 59 or s > 59:
        return None
    return time(h, mi)


def format_time(t: time) -> str:
    return f"{t.hour:02d}:{t.minute:02d}"


def time_from_db(raw: Any) -> str:
    if raw is None:
        return ""
    if isinstance(raw, str):
        raw = _parse_clock(raw) or raw
    return format_time(raw) if isinstance(raw, time) else str(raw)


# ----- DATETIME -----
def parse_datetime_value(value: Any, ctx: Context) -> datetime | None:
    """Parse into a naive UTC datetime truncated to the minute.

    Strings with ``Z`` or an offset are exact; strings without one are wall-clock time in
    ``ctx.timezone``. Python datetime objects follow the engine's convention: naive means UTC.
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        dt = value if value.tzinfo is None else _to_utc(value)
        return _truncate(dt)
    if isinstance(value, date):
        return _truncate(_to_utc(datetime.combine(value, time()).replace(tzinfo=zone(ctx))))
    if not isinstance(value, str):
        raise FieldValueError("field.datetime_invalid")
    text = nfkc(value).strip()
    if not text:
        return None
    dt = _parse_datetime_text(text)
    if dt is None:
        raise FieldValueError("field.datetime_invalid")
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=zone(ctx))
    return _truncate(_to_utc(dt))


def _parse_datetime_text(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        pass
    m = _DATE_AND_TIME.fullmatch(text)
    date_text, time_text = (m["d"], m["t"]) if m else (text, None)
    d = parse_date(date_text)
    t = _parse_clock(time_text.strip()) if time_text is not None else time()
    if d is None or t is None:
        return None
    return datetime.combine(d, t)


def _to_utc(dt: datetime) -> datetime:
    try:
        return dt.astimezone(timezone.utc).replace(tzinfo=None)
    except (OverflowError, ValueError):
        raise FieldValueError("field.datetime_invalid") from None


def _truncate(dt: datetime) -> datetime:
    return dt.replace(second=0, microsecond=0)


def format_datetime(dt: datetime) -> str:
    """A naive UTC datetime as "YYYY-MM-DDTHH:MM:00Z"."""
    return f"{dt.date().isoformat()}T{dt.hour:02d}:{dt.minute:02d}:00Z"


def datetime_from_db(raw: Any) -> str:
    if raw is None:
        return ""
    if isinstance(raw, str):
        raw = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        if raw.tzinfo is not None:
            raw = raw.astimezone(timezone.utc).replace(tzinfo=None)
    return format_datetime(raw)


i18n.register({
    "field.date_invalid": ("日付を「2026-04-01」や「令和8年4月1日」の形で入力してください。",
                           "Enter a date such as 2026-04-01."),
    "field.time_invalid": ("時刻を「09:30」の形で入力してください。", "Enter a time such as 09:30."),
    "field.datetime_invalid": ("日時を「2026-04-01 09:30」の形で入力してください。",
                               "Enter a date and time such as 2026-04-01 09:30."),
})
