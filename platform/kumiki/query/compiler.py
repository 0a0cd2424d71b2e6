"""Query AST -> SQLAlchemy expressions over an app's record table.

The result is plain SQLAlchemy (one statement; subtables and JSON lists become correlated
EXISTS subqueries), so RecordService can add permission filters, count, page and sort in SQL.

kintone semantics kept here:
- empty values are stored as NULL: ``= ""`` / ``in ("")`` mean *is empty*, ``!= ""`` *is not empty*;
- ``!=``, ``not in`` and ``not like`` also return records whose value is empty;
- ``like`` is a case-insensitive substring match (``%`` and ``_`` in the literal are literal);
- date functions denote ranges: on date-time fields ``= TODAY()`` is "within today in the
  user's time zone", ``> TODAY()`` "after today", ``< TODAY()`` "before today"; date-time
  literals denote their minute (kintone keeps minutes), and a date literal on a date-time field
  denotes that whole day;
- fields inside a subtable match when *some* row matches (``in``, ``like``, ...); the negative
  operators (``not in``, ``not like``) match when *no* row does;
- multi-valued fields (check boxes, multi-selects, user/org/group selects, files): ``in``
  means "contains any of", ``not in`` "contains none of".
"""
from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field as dc_field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Iterable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.relativedelta import relativedelta
from sqlalchemy import (BigInteger, Boolean, Date, DateTime, String, Text, and_, case, cast, false, func, literal,
                        literal_column, not_, or_, select, true, type_coerce)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.sql.elements import ColumnElement

from kumiki import i18n
from kumiki.errors import FieldValueError
from kumiki.fields import FieldType
from kumiki.fields import get as get_field_type
from kumiki.fields.base import (EQ, GE, GT, IN, IS_EMPTY, IS_NOT_EMPTY, LE, LIKE, LT, MULTI, NE, NOT_IN,
                                NOT_LIKE, ORDERED_OPS, Context)
from kumiki.query.parser import (And, Condition, Function, Literal, Or, OrderItem, Query, Value, parse_query,
                                 query_error)
from kumiki.storage.schema import ID_PSEUDO_FIELD, SYSTEM_FIELDS, AppSchema, FieldDef

USER_TYPES = frozenset({"CREATOR", "MODIFIER", "USER_SELECT", "STATUS_ASSIGNEE"})
ORGANIZATION_TYPES = frozenset({"ORGANIZATION_SELECT"})
ID_TYPES = frozenset({"RECORD_NUMBER"})
ID_OPS = ORDERED_OPS

WEEKDAYS = {"MONDAY": 0, "TUESDAY": 1, "WEDNESDAY": 2, "THURSDAY": 3, "FRIDAY": 4, "SATURDAY": 5, "SUNDAY": 6}
DATE_FUNCTIONS = frozenset({"TODAY", "YESTERDAY", "TOMORROW", "NOW", "FROM_TODAY", "THIS_WEEK", "LAST_WEEK",
                            "NEXT_WEEK", "THIS_MONTH", "LAST_MONTH", "NEXT_MONTH", "THIS_YEAR", "LAST_YEAR",
                            "NEXT_YEAR"})
USER_FUNCTIONS = frozenset({"LOGINUSER"})
ORGANIZATION_FUNCTIONS = frozenset({"PRIMARY_ORGANIZATION"})
ALL_FUNCTIONS = DATE_FUNCTIONS | USER_FUNCTIONS | ORGANIZATION_FUNCTIONS
BLANKS = " \t\r\n\u3000"   # what "empty" text may still contain (full-width space included)
MAX_CONDITIONS = 2000     # conditions in one query
MAX_VALUES = 10000        # values in all the in (...) lists of one query (bound parameters)

i18n.register({
    "query.unknown_field": (
        "{position}文字目: フィールドコード「{code}」は存在しません。",
        "At character {position}: there is no field with code \"{code}\".",
    ),
    "query.operator_not_allowed": (
        "{position}文字目: 「{code}」（{type}）フィールドでは演算子「{op}」は使えません。",
        "At character {position}: the operator \"{op}\" cannot be used with the field \"{code}\" ({type_en}).",
    ),
    "query.invalid_value": (
        "{position}文字目: 「{code}」の値「{value}」が正しくありません。{reason}",
        "At character {position}: \"{value}\" is not a valid value for \"{code}\". {reason_en}",
    ),
    "query.empty_not_comparable": (
        "{position}文字目: 「{code}」は空の値と大小比較できません。",
        "At character {position}: \"{code}\" cannot be compared with an empty value.",
    ),
    "query.out_of_range": (
        "{position}文字目: 「{code}」（{type}）の値が扱える範囲を超えています。",
        "At character {position}: the value for \"{code}\" ({type_en}) is out of range.",
    ),
    "query.unknown_function": (
        "{position}文字目: 関数「{function}」はありません。",
        "At character {position}: there is no function \"{function}\".",
    ),
    "query.function_not_allowed": (
        "{position}文字目: 関数「{function}」は「{code}」（{type}）フィールドでは使えません。",
        "At character {position}: the function \"{function}\" cannot be used with the field \"{code}\" ({type_en}).",
    ),
    "query.function_arguments": (
        "{position}文字目: 関数「{function}」の引数が正しくありません。{usage}",
        "At character {position}: the arguments of \"{function}\" are not valid. {usage_en}",
    ),
    "query.like_needs_text": (
        "{position}文字目: 「{op}」には文字列を指定してください。",
        "At character {position}: \"{op}\" needs a string.",
    ),
    "query.too_many_conditions": (
        "{position}文字目: クエリの条件が多すぎます（{max}個まで）。",
        "At character {position}: the query has too many conditions (at most {max}).",
    ),
    "query.too_many_values": (
        "{position}文字目: クエリの値が多すぎます（{max}個まで）。",
        "At character {position}: the query has too many values (at most {max}).",
    ),
    "query.not_sortable": (
        "{position}文字目: 「{code}」（{type}）フィールドでは並べ替えできません。",
        "At character {position}: records cannot be sorted by the field \"{code}\" ({type_en}).",
    ),
})

_USAGE = {
    "FROM_TODAY": ("FROM_TODAY(-7, DAYS) のように数と単位（DAYS, WEEKS, MONTHS, YEARS）を指定します。",
                   "Give a number and a unit (DAYS, WEEKS, MONTHS, YEARS), as in FROM_TODAY(-7, DAYS)."),
    "THIS_WEEK": ("引数なし、または曜日（SUNDAY〜SATURDAY）を1つ指定します。",
                  "Give no argument or one day of the week (SUNDAY to SATURDAY)."),
    "THIS_MONTH": ("引数なし、または日（1〜31）か LAST を1つ指定します。",
                   "Give no argument, or one day of the month (1 to 31) or LAST."),
}
for _n in ("LAST_WEEK", "NEXT_WEEK"):
    _USAGE[_n] = _USAGE["THIS_WEEK"]
for _n in ("LAST_MONTH", "NEXT_MONTH"):
    _USAGE[_n] = _USAGE["THIS_MONTH"]


@dataclass
class CompiledQuery:
    """What RecordService needs to run a query (all SQLAlchemy, no per-row Python)."""

    where: ColumnElement | None
    order_by: list = dc_field(default_factory=list)
    limit: int | None = None
    offset: int | None = None
    query: Query | None = None      # the parsed AST


def compile_query(text: str | None, schema: AppSchema, ctx: Context | None, dialect_name: str) -> CompiledQuery:
    """Parse and compile ``text`` for ``schema``. Raises ValidationError (path "query") on any problem."""
    q = parse_query(text)
    c = _Compiler(schema, ctx or Context(), dialect_name)
    where = c.expr(q.where) if q.where is not None else None
    return CompiledQuery(where=where, order_by=c.order_by(q.order_by), limit=q.limit, offset=q.offset, query=q)


# ----------------------------------------------------------------------------------------------
# Operands: what a query value means for a given field.


@dataclass(frozen=True)
class _Point:
    value: Any


@dataclass(frozen=True)
class _Range:
    """Half-open [lo, hi) in the column's domain (date or naive UTC datetime)."""

    lo: Any
    hi: Any


class _Empty:
    pass


class _Nothing:
    """A value that matches no record (e.g. LOGINUSER() without a logged-in user)."""


EMPTY, NOTHING = _Empty(), _Nothing()
_NEGATIVE = {NE: EQ, NOT_IN: IN, NOT_LIKE: LIKE}


@dataclass
class _Target:
    code: str
    fdef: FieldDef | None
    ftype: FieldType | None
    type_name: str
    column: Any
    child: Any = None          # child table for subtable fields
    is_id: bool = False

    @property
    def props(self) -> dict:
        return self.fdef.props if self.fdef is not None else {}

    @property
    def is_list(self) -> bool:
        return bool(self.ftype is not None and (self.ftype.stores_list or self.ftype.kind == MULTI))

    @property
    def temporal(self) -> str | None:
        """"date" / "datetime" when the column holds dates / naive UTC date-times (date functions apply)."""
        if self.column is None or self.is_id:
            return None
        if isinstance(self.column.type, DateTime):
            return "datetime"
        if isinstance(self.column.type, Date):
            return "date"
        return None

    @property
    def operators(self) -> frozenset:
        if self.is_id:
            return ID_OPS
        return self.ftype.operators if self.ftype is not None else frozenset()


def _type_label(type_name: str) -> tuple[str, str]:
    if type_name == ID_PSEUDO_FIELD:
        return "レコードID", "record ID"
    try:
        ja, en = get_field_type(type_name).label
    except KeyError:
        return type_name, type_name
    return ja or type_name, en or type_name


class _Compiler:
    def __init__(self, schema: AppSchema, ctx: Context, dialect_name: str):
        self.schema = schema
        self.ctx = ctx
        self.pg = dialect_name.startswith("postgres")
        self.table = schema.table
        self.conditions = 0
        self.values = 0

    # ----- errors -----
    def _pos(self, pos: int | None) -> int:
        return (pos or 0) + 1

    def err(self, key: str, pos: int | None, **params):
        return query_error(key, position=self._pos(pos), **params)

    def err_field(self, key: str, t: _Target, pos: int | None, **params):
        ja, en = _type_label(t.type_name)
        return self.err(key, pos, code=t.code, type=ja, type_en=en, **params)

    # ----- fields -----
    def target(self, code: str, pos: int | None) -> _Target:
        fdef = self.schema.fields.get(code)
        if code == ID_PSEUDO_FIELD:
            return _Target(code, fdef, None, ID_PSEUDO_FIELD, self.table.c.id, is_id=True)
        if fdef is None:
            raise self.err("query.unknown_field", pos, code=code)
        try:
            ftype = fdef.ftype
        except KeyError:
            raise self.err("query.unknown_field", pos, code=code) from None
        column = child = None
        if fdef.parent_code is not None:
            child = self.schema.child_tables.get(fdef.parent_code)
            if child is not None and fdef.column and fdef.column in child.c:
                column = child.c[fdef.column]
        else:
            name = fdef.column or SYSTEM_FIELDS.get(fdef.type, (None, None))[1]
            if name and name in self.table.c:
                column = self.table.c[name]
        return _Target(code, fdef, ftype, fdef.type, column, child,
                       is_id=fdef.type in ID_TYPES and column is not None and column.name == "id"
                       and fdef.parent_code is None)

    # ----- expressions -----
    def expr(self, e) -> ColumnElement:
        # Flatten explicitly so that long and/or chains do not nest deeply.
        if isinstance(e, And):
            return _balanced(and_, [self.expr(i) for i in e.items])
        if isinstance(e, Or):
            return _balanced(or_, [self.expr(i) for i in e.items])
        self.conditions += 1
        if self.conditions > MAX_CONDITIONS:
            raise self.err("query.too_many_conditions", e.pos, max=MAX_CONDITIONS)
        return self.condition(e)

    def condition(self, c: Condition) -> ColumnElement:
        t = self.target(c.field, c.pos)
        try:
            return self._condition(t, c)
        except (OverflowError, ValueError, ArithmeticError):
            # e.g. the day after 9999-12-31, or year 1 moved to UTC
            raise self.err_field("query.out_of_range", t, c.pos) from None

    def _condition(self, t: _Target, c: Condition) -> ColumnElement:
        op = c.op
        if op not in t.operators or t.column is None:
            raise self.err_field("query.operator_not_allowed", t, c.pos, op=op)
        if op in (IS_EMPTY, IS_NOT_EMPTY):
            operands: list = []
        elif op in (LIKE, NOT_LIKE):
            if not isinstance(c.value, Literal):
                raise self.err("query.like_needs_text", c.value.pos if c.value is not None else c.pos, op=op)
            operands = [c.value.text]
        else:
            values = c.value if isinstance(c.value, tuple) else (c.value,)
            self.values += len(values)
            if self.values > MAX_VALUES:
                raise self.err("query.too_many_values", c.pos, max=MAX_VALUES)
            operands = [o for v in values for o in self.operands(t, v)]
            if not operands:     # only conditions that are to be ignored (PRIMARY_ORGANIZATION unset)
                return true()
            if op not in (EQ, NE, IN, NOT_IN) and any(o is EMPTY for o in operands):
                raise self.err_field("query.empty_not_comparable", t, c.pos)
        if t.child is not None:
            return self.subtable_condition(t, op, operands)
        if t.is_list:
            return self.list_condition(t, t.column, op, operands)
        return self.scalar_condition(t, t.column, op, operands)

    # ----- values -----
    def operands(self, t: _Target, v: Value) -> list:
        if isinstance(v, Function):
            return self.function_operands(t, v)
        text = v.text
        if text == "":
            return [EMPTY]
        if t.is_id:
            if not re.fullmatch(r"[0-9]{1,18}", text.strip()):
                raise self.err("query.invalid_value", v.pos, code=t.code, value=text,
                               reason="レコードIDは整数で指定してください。",
                               reason_en="Record IDs are whole numbers.")
            # Bound as BIGINT: PostgreSQL would refuse a large number cast to the INTEGER column's type.
            return [_Point(literal(int(text.strip()), BigInteger))]
        if t.temporal == "datetime":
            day = self._date_only(text)
            if day is not None:
                return [self._local_days(day, day)]
        try:
            value = t.ftype.query_value(t.props, text, self.ctx)
        except FieldValueError as e:
            raise self.err("query.invalid_value", v.pos, code=t.code, value=text,
                           reason=i18n.translate(e.key, "ja", **e.params),
                           reason_en=i18n.translate(e.key, "en", **e.params)) from None
        if isinstance(value, list):
            if not value:
                return [EMPTY]
            return [_Point(x) for x in value]
        if value is None or value == "":
            return [EMPTY]
        if t.temporal == "datetime" and isinstance(value, datetime):
            start = value.replace(second=0, microsecond=0)
            return [_Range(start, start + timedelta(minutes=1))]
        return [_Point(value)]

    def _date_only(self, text: str) -> date | None:
        """A literal that is a date without a time, parsed as DATE would parse it."""
        if re.search(r"[0-9]\s*(:|時)", text):
            return None
        try:
            d = get_field_type("DATE").query_value({}, text, self.ctx)
        except (FieldValueError, KeyError, TypeError, ValueError):
            return None
        return d if isinstance(d, date) and not isinstance(d, datetime) else None

    def function_operands(self, t: _Target, f: Function) -> list:
        name = f.name
        if name not in ALL_FUNCTIONS:
            raise self.err("query.unknown_function", f.pos, function=name)
        if name in USER_FUNCTIONS:
            if t.type_name not in USER_TYPES:
                raise self.err_field("query.function_not_allowed", t, f.pos, function=name)
            self._no_args(f)
            return [_Point(self.ctx.user_code)] if self.ctx.user_code else [NOTHING]
        if name in ORGANIZATION_FUNCTIONS:
            if t.type_name not in ORGANIZATION_TYPES:
                raise self.err_field("query.function_not_allowed", t, f.pos, function=name)
            self._no_args(f)
            org = (self.ctx.extra or {}).get("primary_organization")
            return [_Point(org)] if org else []   # kintone ignores the condition when unset
        if t.temporal is None:
            raise self.err_field("query.function_not_allowed", t, f.pos, function=name)
        now_utc = self.ctx.now if self.ctx.now is not None else datetime.now(timezone.utc).replace(tzinfo=None)
        if now_utc.tzinfo is not None:
            now_utc = now_utc.astimezone(timezone.utc).replace(tzinfo=None)
        local_now = now_utc.replace(tzinfo=timezone.utc).astimezone(self._zone())
        today = local_now.date()
        if name == "NOW":
            self._no_args(f)
            if t.temporal == "datetime":
                start = now_utc.replace(second=0, microsecond=0)
                return [_Range(start, start + timedelta(minutes=1))]
            return [self._local_days(today, today)]
        first, last = self._date_function_days(f, today)
        return [self._local_days(first, last)]

    def _no_args(self, f: Function) -> None:
        if f.args:
            raise self.err("query.function_arguments", f.pos, function=f.name,
                           usage=f"{f.name}() は引数をとりません。", usage_en=f"{f.name}() takes no arguments.")

    def _bad_args(self, f: Function):
        ja, en = _USAGE.get(f.name, ("", ""))
        return self.err("query.function_arguments", f.pos, function=f.name, usage=ja, usage_en=en)

    def _date_function_days(self, f: Function, today: date) -> tuple[date, date]:
        name, args = f.name, f.args
        try:
            if name in ("TODAY", "YESTERDAY", "TOMORROW"):
                self._no_args(f)
                d = today + timedelta(days={"TODAY": 0, "YESTERDAY": -1, "TOMORROW": 1}[name])
                return d, d
            if name == "FROM_TODAY":
                if len(args) != 2 or not re.fullmatch(r"-?[0-9]{1,6}", args[0]):
                    raise self._bad_args(f)
                n, unit = int(args[0]), args[1]
                delta = {"DAYS": relativedelta(days=n), "WEEKS": relativedelta(weeks=n),
                         "MONTHS": relativedelta(months=n), "YEARS": relativedelta(years=n)}.get(unit)
                if delta is None:
                    raise self._bad_args(f)
                d = today + delta
                return d, d
            if name in ("THIS_WEEK", "LAST_WEEK", "NEXT_WEEK"):
                # kintone weeks run Sunday to Saturday.
                sunday = today - timedelta(days=(today.weekday() + 1) % 7)
                sunday += timedelta(days={"THIS_WEEK": 0, "LAST_WEEK": -7, "NEXT_WEEK": 7}[name])
                if not args:
                    return sunday, sunday + timedelta(days=6)
                if len(args) != 1 or args[0] not in WEEKDAYS:
                    raise self._bad_args(f)
                d = sunday + timedelta(days=(WEEKDAYS[args[0]] + 1) % 7)
                return d, d
            if name in ("THIS_MONTH", "LAST_MONTH", "NEXT_MONTH"):
                first = today.replace(day=1) + relativedelta(months={"THIS_MONTH": 0, "LAST_MONTH": -1,
                                                                     "NEXT_MONTH": 1}[name])
                ndays = calendar.monthrange(first.year, first.month)[1]
                if not args:
                    return first, first.replace(day=ndays)
                if len(args) != 1:
                    raise self._bad_args(f)
                if args[0] == "LAST":
                    d = first.replace(day=ndays)
                    return d, d
                if not re.fullmatch(r"[0-9]{1,2}", args[0]) or not 1 <= int(args[0]) <= 31:
                    raise self._bad_args(f)
                d = first.replace(day=min(int(args[0]), ndays))
                return d, d
            # THIS_YEAR, LAST_YEAR, NEXT_YEAR
            self._no_args(f)
            year = today.year + {"THIS_YEAR": 0, "LAST_YEAR": -1, "NEXT_YEAR": 1}[name]
            return date(year, 1, 1), date(year, 12, 31)
        except (OverflowError, ValueError):
            raise self._bad_args(f) from None

    def _zone(self):
        try:
            return ZoneInfo(self.ctx.timezone or "UTC")
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            return timezone.utc

    def _local_days(self, first: date, last: date) -> "_LocalDays":
        """Local calendar days [first, last] as a half-open range in the current field's domain."""
        return _LocalDays(first, last)

    # ----- scalar columns -----
    def _is_text(self, col) -> bool:
        return isinstance(col.type, String)

    def _resolve(self, t: _Target, o):
        """Turn local-day operands into the column's domain."""
        if isinstance(o, _LocalDays):
            end = o.last + timedelta(days=1)
            if t.temporal == "datetime":
                return _Range(self._local_midnight_utc(o.first), self._local_midnight_utc(end))
            return _Range(o.first, end)
        return o

    def _local_midnight_utc(self, d: date) -> datetime:
        """The start of local day ``d`` as a naive UTC datetime (how date-times are stored)."""
        local = datetime.combine(d, time(), tzinfo=self._zone())
        return local.astimezone(timezone.utc).replace(tzinfo=None)

    def _blank(self, col) -> ColumnElement:
        """Text that is only spaces, tabs and line breaks (kintone counts it as empty)."""
        trim = func.btrim if self.pg else func.trim
        return trim(col, BLANKS) == ""

    def is_empty(self, col) -> ColumnElement:
        if self._is_text(col):
            return or_(col.is_(None), self._blank(col))
        return col.is_(None)

    def is_not_empty(self, col) -> ColumnElement:
        if self._is_text(col):
            return and_(col.is_not(None), not_(self._blank(col)))
        return col.is_not(None)

    def _positive(self, t: _Target, col, op: str, operands: list) -> ColumnElement:
        """A condition that is never NULL-dependent for a non-null column (so NOT works)."""
        if op == LIKE:
            return self.like(col, operands[0])
        if op in (EQ, IN):
            parts, points = [], []
            for o in operands:
                o = self._resolve(t, o)
                if o is EMPTY:
                    parts.append(self.is_empty(col))
                elif o is NOTHING:
                    continue
                elif isinstance(o, _Range):
                    parts.append(and_(col >= o.lo, col < o.hi))
                else:
                    points.append(o.value)
            if points:
                parts.append(col == points[0] if len(points) == 1 else col.in_(points))
            return _balanced(or_, parts) if parts else false()
        o = self._resolve(t, operands[0])
        if o is NOTHING:
            return false()
        if isinstance(o, _Range):
            return {GT: lambda: col >= o.hi, GE: lambda: col >= o.lo,
                    LT: lambda: col < o.lo, LE: lambda: col < o.hi}[op]()
        return {GT: lambda: col > o.value, GE: lambda: col >= o.value,
                LT: lambda: col < o.value, LE: lambda: col <= o.value}[op]()

    def scalar_condition(self, t: _Target, col, op: str, operands: list) -> ColumnElement:
        if op == IS_EMPTY:
            return self.is_empty(col)
        if op == IS_NOT_EMPTY:
            return self.is_not_empty(col)
        if op in (LIKE, NOT_LIKE) and operands[0] == "":
            return true() if op == LIKE else false()
        if op in _NEGATIVE:
            positive = self._positive(t, col, _NEGATIVE[op], operands)
            if any(o is EMPTY for o in operands):
                return and_(self.is_not_empty(col), not_(positive))
            return or_(col.is_(None), not_(positive))
        return self._positive(t, col, op, operands)

    def like(self, col, text: str) -> ColumnElement:
        pattern = "%" + _escape_like(text) + "%"
        if not isinstance(col.type, (String,)):
            col = cast(col, Text)
        return col.ilike(pattern, escape="\\")

    # ----- subtables -----
    def subtable_condition(self, t: _Target, op: str, operands: list) -> ColumnElement:
        child, col = t.child, t.column

        def exists(cond) -> ColumnElement:
            return (select(literal(1)).select_from(child)
                    .where(child.c.record_id == self.table.c.id, cond)
                    .correlate(self.table).exists())

        inner = self.list_condition if t.is_list else self.scalar_condition
        if op == IS_EMPTY:
            return not_(exists(inner(t, col, IS_NOT_EMPTY, [])))
        if op == IS_NOT_EMPTY:
            return exists(inner(t, col, IS_NOT_EMPTY, []))
        if op in _NEGATIVE:
            return not_(exists(inner(t, col, _NEGATIVE[op], operands)))
        return exists(inner(t, col, op, operands))

    # ----- JSON list columns -----
    def list_empty(self, col) -> ColumnElement:
        if self.pg:
            jcol = type_coerce(col, JSONB)
            return or_(col.is_(None), func.jsonb_typeof(jcol) != "array",
                       func.jsonb_array_length(_pg_array_or_empty(jcol)) == 0)
        return or_(col.is_(None), func.json_array_length(col) == 0)

    def _elements(self, col):
        """A correlated table of the list's elements with a ``value`` column of text."""
        if self.pg:
            jcol = type_coerce(col, JSONB)
            return func.jsonb_array_elements(_pg_array_or_empty(jcol)).table_valued("value")
        return func.json_each(col).table_valued("value", "type")

    def _element_text(self, elements, key: str | None):
        if self.pg:
            if key is None:
                return elements.c.value.op("#>>")(literal_column("'{}'"))
            return elements.c.value.op("->>")(literal(key))
        if key is None:
            return elements.c.value
        return func.json_extract(elements.c.value, f"$.{key}")

    def _element_key(self, t: _Target) -> str | None:
        """Where an element's comparable text lives: None = the element itself; else its object key."""
        key = getattr(t.ftype, "query_element_key", None)
        if key is not None:
            return key or None
        if t.type_name == "FILE":
            return "name"
        return None

    def list_condition(self, t: _Target, col, op: str, operands: list) -> ColumnElement:
        if op == IS_EMPTY:
            return self.list_empty(col)
        if op == IS_NOT_EMPTY:
            return not_(self.list_empty(col))
        if op in _NEGATIVE:
            positive = self._list_positive(t, col, _NEGATIVE[op], operands)
            return not_(positive)
        return self._list_positive(t, col, op, operands)

    def _list_positive(self, t: _Target, col, op: str, operands: list) -> ColumnElement:
        key = self._element_key(t)
        parts: list = []
        if op == LIKE:
            if operands[0] == "":
                return true()
            el = self._elements(col)
            text = self._element_text(el, key)
            cond = self.like_text(text, operands[0])
            return select(literal(1)).select_from(el).where(cond).exists()
        if any(o is EMPTY for o in operands):
            parts.append(self.list_empty(col))
        values = [str(o.value) if not isinstance(o.value, str) else o.value
                  for o in operands if isinstance(o, _Point)]
        if values:
            if self.pg and key is None:
                # ?| is index-assisted with a GIN index; coalesce keeps NOT well-defined on NULL.
                has = type_coerce(col, JSONB).bool_op("?|")(literal(values, ARRAY(Text)))
                parts.append(func.coalesce(has, false()))
            else:
                el = self._elements(col)
                text = self._element_text(el, key)
                parts.append(select(literal(1)).select_from(el).where(text.in_(values)).exists())
        if not parts:
            return false()
        return or_(*parts) if len(parts) > 1 else parts[0]

    def like_text(self, expr, text: str) -> ColumnElement:
        return cast(expr, Text).ilike("%" + _escape_like(text) + "%", escape="\\")

    # ----- order by -----
    def order_by(self, items: Iterable[OrderItem]) -> list:
        items = list(items)
        out = []
        has_id = False
        for item in items:
            t = self.target(item.field, item.pos)
            sortable = t.is_id or (
                t.ftype is not None and t.ftype.sortable and t.child is None and not t.is_list
                and t.column is not None and t.ftype.kind in ("scalar", "system"))
            if not sortable:
                raise self.err_field("query.not_sortable", t, item.pos)
            col = t.column
            has_id = has_id or col is self.table.c.id
            # Empty is the smallest value on both databases (SQLite's own rule; PostgreSQL's indexes
            # are built NULLS FIRST to match), so one index scan serves either direction.
            out.append(col.desc().nulls_last() if item.desc else col.asc().nulls_first())
        if not has_id:
            # Tie-break in the direction of the last key: an index on (col) ends with the row id,
            # so the whole ORDER BY comes from one index scan.
            last_desc = items[-1].desc if items else True
            out.append(self.table.c.id.desc() if last_desc else self.table.c.id.asc())
        return out


@dataclass(frozen=True)
class _LocalDays:
    """Whole local calendar days [first, last] (from a date function or date literal)."""

    first: date
    last: date


def _balanced(combine, items: list):
    """and_/or_ over many items as a shallow tree of parenthesised groups.

    SQLAlchemy flattens nested and_/or_ (even inside Grouping), and SQLite refuses expressions nested more than 1000
    deep (a flat chain of 1000 ORs is that deep), so long chains are grouped explicitly.
    """
    while len(items) > _GROUP:
        items = [type_coerce(combine(*items[i:i + _GROUP]), Boolean).self_group()
                 for i in range(0, len(items), _GROUP)]
    return combine(*items) if len(items) > 1 else items[0]


_GROUP = 32


def _pg_array_or_empty(jcol):
    return case((func.jsonb_typeof(jcol) == "array", jcol), else_=literal_column("'[]'::jsonb"))


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
