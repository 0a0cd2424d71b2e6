"""Japanese era dates: parse "令和7年4月1日", "R7.4.1", "平成31年4月30日", "2026/4/1"; format a date as an era.

The era table is small and tested. Meiji is taken to start on 1868-01-01 because the era was applied
to the whole of its first year (慶応4年); Japan used the lunisolar calendar until 1872, so dates before
1873 are Gregorian approximations, which is all a municipal system needs.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from kumiki import i18n
from kumiki.errors import FieldValueError
from kumiki.fields._common import nfkc


@dataclass(frozen=True)
class Era:
    name: str      # 令和
    letter: str    # R
    romaji: str    # Reiwa
    start: date    # first day of the era


ERAS: tuple[Era, ...] = (
    Era("明治", "M", "Meiji", date(1868, 1, 1)),
    Era("大正", "T", "Taisho", date(1912, 7, 30)),
    Era("昭和", "S", "Showa", date(1926, 12, 25)),
    Era("平成", "H", "Heisei", date(1989, 1, 8)),
    Era("令和", "R", "Reiwa", date(2019, 5, 1)),
)
_BY_MARK = {e.name: e for e in ERAS} | {e.letter: e for e in ERAS}

_ERA_DATE = re.compile(
    r"(?P<era>明治|大正|昭和|平成|令和|[MTSHRmtshr])\s*(?P<y>元|[0-9]{1,3})\s*(?:[./-]|年)\s*"
    r"(?P<m>[0-9]{1,2})\s*(?:[./-]|月)\s*(?P<d>[0-9]{1,2})\s*日?", re.ASCII)
_GREGORIAN = re.compile(
    r"(?P<y>[0-9]{4})\s*(?:[./-]|年)\s*(?P<m>[0-9]{1,2})\s*(?:[./-]|月)\s*(?P<d>[0-9]{1,2})\s*日?", re.ASCII)
_COMPACT = re.compile(r"(?P<y>[0-9]{4})(?P<m>[0-9]{2})(?P<d>[0-9]{2})", re.ASCII)


def era_of(d: date) -> Era:
    """The era a date falls in (ValueError before Meiji)."""
    for era in reversed(ERAS):
        if d >= era.start:
            return era
    raise ValueError(f"{d} is before the Meiji era")


def era_end(era: Era) -> date | None:
    """The first day after the era, or None for the current era."""
    i = ERAS.index(era)
    return ERAS[i + 1].start if i + 1 < len(ERAS) else None


def parse_date(text: str) -> date | None:
    """Parse a Gregorian or era date; None when the text is not a date at all.

    Raises FieldValueError for a date that has the right shape but does not exist
    (2026-02-30, 平成31年5月1日).
    """
    s = nfkc(text).strip()
    m = _GREGORIAN.fullmatch(s) or _COMPACT.fullmatch(s)
    if m:
        return _make(int(m["y"]), int(m["m"]), int(m["d"]), text)
    m = _ERA_DATE.fullmatch(s)
    if not m:
        return None
    era = _BY_MARK[m["era"].upper() if len(m["era"]) == 1 else m["era"]]
    era_year = 1 if m["y"] == "元" else int(m["y"])
    if era_year < 1:
        raise FieldValueError("field.date_nonexistent", value=text)
    d = _make(era.start.year + era_year - 1, int(m["m"]), int(m["d"]), text)
    end = era_end(era)
    if d < era.start or (end is not None and d >= end):
        raise FieldValueError("field.date_outside_era", value=text, era=era.name)
    return d


def _make(y: int, m: int, d: int, text: str) -> date:
    try:
        return date(y, m, d)
    except ValueError:
        raise FieldValueError("field.date_nonexistent", value=text) from None


def format_era(d: date, short: bool = False) -> str:
    """"令和7年4月1日" (first year as 元年), or with short=True "R7.4.1"."""
    era = era_of(d)
    year = d.year - era.start.year + 1
    if short:
        return f"{era.letter}{year}.{d.month}.{d.day}"
    return f"{era.name}{'元' if year == 1 else year}年{d.month}月{d.day}日"


i18n.register({
    "field.date_nonexistent": ("「{value}」は存在しない日付です。", "\"{value}\" is not a real date."),
    "field.date_outside_era": ("「{value}」は{era}の期間外の日付です。", "\"{value}\" is outside the {era} era."),
})
