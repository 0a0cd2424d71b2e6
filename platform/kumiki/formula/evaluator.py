"""Compiled formulas and their evaluation against one record."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal, DivisionByZero, InvalidOperation, Overflow
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kumiki import i18n
from kumiki.errors import Detail, ValidationError
from kumiki.formula.functions import FUNCTIONS
from kumiki.formula.parser import Bin, Call, Num, Ref, Str, Unary, parse
from kumiki.formula.values import (
    CTX, DAY, TEMPORAL, Blank, Column, FormulaError, Moment, check, date_seconds, finish_number, seconds_to_utc,
    to_number, to_text, type_name, utc_seconds,
)

NUMBER_FORMATS = ("NUMBER", "NUMBER_DIGIT", "HOUR_MINUTE", "DAY_HOUR_MINUTE")
_NUMBER_TYPES = {"NUMBER", "RECORD_NUMBER"}
_LIST_TYPES = {"CHECK_BOX", "MULTI_SELECT"}
_ENTITY_LIST_TYPES = {"USER_SELECT", "ORGANIZATION_SELECT", "GROUP_SELECT", "STATUS_ASSIGNEE"}
_DATETIME_TYPES = {"DATETIME", "CREATED_TIME", "UPDATED_TIME"}


def _walk(node):
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        if isinstance(n, Call):
            stack.extend(n.args)
        elif isinstance(n, Unary):
            stack.append(n.operand)
        elif isinstance(n, Bin):
            stack.extend((n.left, n.right))


def subtable_columns(fields: dict[str, dict]) -> dict[str, tuple[str, dict]]:
    """column code -> (subtable code, column definition) for every subtable in ``fields``."""
    out = {}
    for code, fdef in fields.items():
        if isinstance(fdef, dict) and fdef.get("type") == "SUBTABLE":
            inner = fdef.get("fields") or []
            items = inner.items() if isinstance(inner, dict) else ((f.get("code"), f) for f in inner if isinstance(f, dict))
            for ccode, cdef in items:
                if ccode:
                    out[ccode] = (code, cdef)
    return out


@dataclass(frozen=True)
class Formula:
    """A parsed formula. Build with :func:`compile_formula`; evaluate as often as needed."""

    text: str
    tree: object = field(repr=False)
    references: frozenset = frozenset()

    def unknown_references(self, known_fields: dict[str, dict]) -> list[Detail]:
        """Details (path "formula") for field codes that are neither fields nor subtable columns."""
        columns = subtable_columns(known_fields)
        seen, out = set(), []
        for n in _walk(self.tree):
            if isinstance(n, Ref) and n.code not in known_fields and n.code not in columns and n.code not in seen:
                seen.add(n.code)
                out.append(Detail("formula", "formula.unknown_field", {"code": n.code, "column": n.column}))
        return sorted(out, key=lambda d: d.params["column"])

    def evaluate(self, values: dict, fields: dict[str, dict], *, tz="Asia/Tokyo", now=None, format=None):
        """Evaluate against a record's canonical API values.

        ``format`` chooses the result type: None → natural (Decimal, str, date for a DATE value,
        naive-UTC datetime for a DATETIME value, "HH:MM" for a TIME value); a CALC format
        ("NUMBER", "DATE", "DATETIME", "TIME", …) → that type; "TEXT" → str (auto-calculated text).
        Numbers keep their full value rounded to 10 fraction digits (displayScale is for display only).
        An empty result (a blank date input…) is None ("" for TEXT). Raises FormulaError.
        """
        ev = _Evaluator(values or {}, fields or {}, _tz(tz), now)
        try:
            result = ev.eval(self.tree)
        except (DivisionByZero,):
            raise FormulaError("formula.division_by_zero") from None
        except (InvalidOperation, Overflow):
            raise FormulaError("formula.overflow", digits=30) from None
        except RecursionError:
            raise FormulaError("formula.too_complex") from None
        return _result(result, format, ev.tz)


def _tz(tz):
    if isinstance(tz, str):
        if tz in ("UTC", "Etc/UTC", "Etc/GMT"):
            return timezone.utc
        try:
            return ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise FormulaError("formula.bad_timezone", tz=tz) from None
    return tz or timezone.utc


def _result(v, fmt, tz):
    if isinstance(v, Column):
        raise FormulaError("formula.column_result", code=v.code)
    if fmt == "TEXT":
        return to_text(v, tz)
    if isinstance(v, Blank):
        return None
    if fmt in NUMBER_FORMATS:
        if isinstance(v, (str, bool, tuple)):
            raise FormulaError("formula.result_not_number", got=type_name(v))
        return finish_number(to_number(v))
    if fmt in TEMPORAL:
        if isinstance(v, (str, bool, tuple)):
            raise FormulaError("formula.result_not_date", got=type_name(v))
        sec = v.seconds if isinstance(v, Moment) else to_number(v)
        if fmt == "TIME":
            s = int(sec.to_integral_value(rounding="ROUND_FLOOR")) % DAY
            return f"{s // 3600:02d}:{s % 3600 // 60:02d}"
        dt = seconds_to_utc(sec)
        return dt.date() if fmt == "DATE" else dt
    # natural
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, Decimal):
        return finish_number(v)
    if isinstance(v, Moment):
        return _result(v, v.kind, tz)
    if isinstance(v, tuple):
        return to_text(v, tz)
    return v


@lru_cache(maxsize=2048)
def compile_formula(text: str) -> Formula:
    """Parse and check a formula (functions and their argument counts).

    Raises ValidationError([Detail("formula", key, {"column": …})]) with a Japanese-first message.
    Field codes are checked against an app's fields by :func:`dependency_order`.
    """
    tree = parse(text)
    details = []
    for n in _walk(tree):
        if isinstance(n, Call):
            fn = FUNCTIONS.get(n.name)
            if fn is None:
                details.append(Detail("formula", "formula.unknown_function", {"name": n.name, "column": n.column}))
            elif len(n.args) < fn.min_args or (fn.max_args is not None and len(n.args) > fn.max_args):
                details.append(Detail("formula", "formula.arity", {
                    "name": n.name, "column": n.column, "expected": fn.arity_text(), "got": len(n.args)}))
    if details:
        raise ValidationError(sorted(details, key=lambda d: d.params["column"]))
    refs = frozenset(n.code for n in _walk(tree) if isinstance(n, Ref))
    return Formula(text, tree, refs)


def _iso_seconds(text: str) -> Decimal:
    dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return utc_seconds(dt)


def _convert(raw, fdef: dict, code: str):
    """A canonical API value as a formula value, by the field's type."""
    ftype = fdef.get("type") if isinstance(fdef, dict) else None
    if isinstance(raw, dict) and "value" in raw and ftype not in ("CREATOR", "MODIFIER"):
        raw = raw["value"]
    kind = ftype
    if ftype == "CALC":
        fmt = fdef.get("format") or "NUMBER"
        kind = fmt if fmt in TEMPORAL else "NUMBER"
    try:
        if kind in _NUMBER_TYPES:
            if raw is None or raw == "":
                return Blank("NUMBER")
            if isinstance(raw, Decimal):
                return raw
            return to_number(str(raw))
        if kind in TEMPORAL or kind in _DATETIME_TYPES:
            k = "DATETIME" if kind in _DATETIME_TYPES else kind
            if raw is None or raw == "":
                return Blank(k)
            if isinstance(raw, datetime):
                return Moment(utc_seconds(raw), "DATETIME" if k == "DATETIME" else k)
            if isinstance(raw, date):
                return Moment(date_seconds(raw), "DATE")
            text = str(raw).strip()
            if k == "DATE":
                return Moment(date_seconds(date.fromisoformat(text[:10])), "DATE")
            if k == "TIME":
                h, m = text.split(":")[:2]
                return Moment(Decimal(int(h) * 3600 + int(m) * 60), "TIME")
            return Moment(_iso_seconds(text), "DATETIME")
    except (ValueError, TypeError, FormulaError):
        raise FormulaError("formula.bad_input", code=code) from None
    if ftype in _LIST_TYPES:
        return tuple(str(x) for x in raw) if isinstance(raw, list) else ()
    if ftype in _ENTITY_LIST_TYPES:
        return tuple(str(x.get("code", "")) if isinstance(x, dict) else str(x) for x in raw) if isinstance(raw, list) else ()
    if ftype in ("CREATOR", "MODIFIER"):
        if isinstance(raw, dict):
            raw = raw.get("code", raw.get("value"))
            if isinstance(raw, dict):
                raw = raw.get("code")
        return Blank("TEXT") if not raw else str(raw)
    if ftype == "SUBTABLE":
        raise FormulaError("formula.subtable_reference", code=code)
    if raw is None or raw == "":
        return Blank("TEXT")
    if isinstance(raw, (list, dict)):
        raise FormulaError("formula.bad_input", code=code)
    return str(raw)


class _Evaluator:
    def __init__(self, values, fields, tz, now):
        self.values, self.fields, self.tz, self._now = values, fields, tz, now
        self._columns = None

    # time
    def now_utc(self) -> datetime:
        n = self._now or datetime.now(timezone.utc)
        if n.tzinfo is not None:
            n = n.astimezone(timezone.utc).replace(tzinfo=None)
        return n

    def today(self) -> date:
        return self.now_utc().replace(tzinfo=timezone.utc).astimezone(self.tz).date()

    def ref(self, code: str):
        fdef = self.fields.get(code)
        if fdef is not None:
            return _convert(self.values.get(code), fdef, code)
        if self._columns is None:
            self._columns = subtable_columns(self.fields)
        col = self._columns.get(code)
        if col is None:
            raise FormulaError("formula.unknown_field", code=code)
        table, cdef = col
        if code in self.values:          # a calculation inside a row: the row's own value
            return _convert(self.values.get(code), cdef, code)
        rows = self.values.get(table) or []
        if isinstance(rows, dict) and "value" in rows:
            rows = rows["value"] or []
        items = []
        for row in rows if isinstance(rows, list) else ():
            cells = row.get("value", row) if isinstance(row, dict) else {}
            items.append(_convert(cells.get(code) if isinstance(cells, dict) else None, cdef, code))
        return Column(code, tuple(items))

    def eval(self, n):
        if isinstance(n, Num):
            return n.value
        if isinstance(n, Str):
            return n.value
        if isinstance(n, Ref):
            return self.ref(n.code)
        if isinstance(n, Unary):
            v = self.eval(n.operand)
            if isinstance(v, Blank) and v.kind in TEMPORAL:
                return v
            d = to_number(v, "「-」" if n.op == "-" else "「+」")
            return CTX.minus(d) if n.op == "-" else d
        if isinstance(n, Call):
            fn = FUNCTIONS[n.name]
            if fn.lazy:
                return fn.impl(self, n.args)
            return fn.impl(self, *[self.eval(a) for a in n.args])
        if isinstance(n, Bin):
            return self.binary(n.op, self.eval(n.left), self.eval(n.right))
        raise FormulaError("formula.too_complex")

    def binary(self, op, a, b):
        if op == "&":
            return to_text(a, self.tz) + to_text(b, self.tz)
        if op in ("=", "!=", "<", ">", "<=", ">="):
            return _compare(op, a, b)
        what = f"「{op}」"
        for v in (a, b):
            if isinstance(v, Blank) and v.kind in TEMPORAL:
                return v       # an empty date stays empty through arithmetic
        x, y = to_number(a, what), to_number(b, what)
        if op in ("+", "-"):
            r = check(CTX.add(x, y) if op == "+" else CTX.subtract(x, y))
            ma, mb = isinstance(a, Moment), isinstance(b, Moment)
            if ma and not mb:
                return Moment(r, a.kind)
            if mb and not ma and op == "+":
                return Moment(r, b.kind)
            return r
        if op == "*":
            return check(CTX.multiply(x, y))
        if op == "/":
            if y.is_zero():
                raise FormulaError("formula.division_by_zero")
            return check(CTX.divide(x, y))
        if op == "^":
            if y != y.to_integral_value() or abs(y) > 100:
                raise FormulaError("formula.bad_power")
            if x.is_zero() and y < 0:
                raise FormulaError("formula.division_by_zero")
            return check(CTX.power(x, int(y)))
        raise FormulaError("formula.too_complex")


def _is_blank(v) -> bool:
    return isinstance(v, Blank) or v == "" or v == ()


def _compare(op, a, b) -> bool:
    if isinstance(a, Column) or isinstance(b, Column):
        raise FormulaError("formula.not_a_number", what=f"「{op}」", got="テーブルの列")
    if isinstance(a, bool) or isinstance(b, bool):
        if op not in ("=", "!="):
            raise FormulaError("formula.not_comparable", op=op, left=type_name(a), right=type_name(b))
        return (a == b) == (op == "=")
    # blank = "" : kintone's idiom for "is empty"
    if (isinstance(a, str) and a == "") or (isinstance(b, str) and b == "") or \
            (isinstance(a, Blank) and isinstance(b, (Blank, str, tuple))) or \
            (isinstance(b, Blank) and isinstance(a, (str, tuple))):
        if op in ("=", "!="):
            return (_is_blank(a) and _is_blank(b)) == (op == "=")
    if isinstance(a, str) and isinstance(b, str):
        x, y = a, b
    elif isinstance(a, tuple) or isinstance(b, tuple):
        if op not in ("=", "!="):
            raise FormulaError("formula.not_comparable", op=op, left=type_name(a), right=type_name(b))
        return (a == b) == (op == "=")
    else:
        try:
            x, y = to_number(a), to_number(b)
        except FormulaError:
            if op in ("=", "!="):
                return (to_text(a, timezone.utc) == to_text(b, timezone.utc)) == (op == "=")
            raise FormulaError("formula.not_comparable", op=op, left=type_name(a), right=type_name(b)) from None
    return {"=": x == y, "!=": x != y, "<": x < y, ">": x > y, "<=": x <= y, ">=": x >= y}[op]


i18n.register({
    "formula.unknown_function": ("計算式の{column}文字目: 関数「{name}」はありません。",
                                 "Character {column} of the formula: there is no function \"{name}\"."),
    "formula.arity": ("計算式の{column}文字目: 関数「{name}」の引数は{expected}です（{got}個指定されています）。",
                      "Character {column} of the formula: {name} takes {expected} argument(s), not {got}."),
    "formula.unknown_field": ("計算式のフィールドコード「{code}」は存在しません。",
                              "The formula refers to \"{code}\", which is not a field code in this app."),
    "formula.division_by_zero": ("0で割ることはできません。", "Division by zero."),
    "formula.bad_power": ("べき乗（^）の指数には-100〜100の整数を指定してください。",
                          "The exponent of ^ must be a whole number from -100 to 100."),
    "formula.not_comparable": ("{left}と{right}は「{op}」で比較できません。", "{left} and {right} cannot be compared with {op}."),
    "formula.too_complex": ("計算式が複雑すぎます。", "The formula is too complex."),
    "formula.column_result": ("テーブルの列「{code}」はSUMなどの関数の中で使ってください。",
                              "Use the table column \"{code}\" inside a function such as SUM."),
    "formula.result_not_number": ("計算結果が数値になりません（{got}）。文字列(1行)の自動計算を使ってください。",
                                  "The result is not a number ({got}); use an auto-calculated text field."),
    "formula.result_not_date": ("計算結果が日付になりません（{got}）。", "The result is not a date ({got})."),
    "formula.bad_input": ("フィールド「{code}」の値を計算に使えません。", "The value of \"{code}\" cannot be used in a calculation."),
    "formula.subtable_reference": ("テーブル「{code}」そのものは計算に使えません。列のフィールドコードを指定してください。",
                                   "A table (\"{code}\") cannot be used directly; refer to one of its columns."),
})
