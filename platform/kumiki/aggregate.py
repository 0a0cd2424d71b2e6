"""Aggregations for graphs and survey results: one GROUP BY statement over any query, with the
viewer's permissions (issue 4 item 8).

    aggregate(svc, app_id, query='区分 in ("母子保健")',
              group_by=[{"field": "受付日", "period": "month"}, {"field": "区分"}],
              measures=[{"op": "count"}, {"op": "sum", "field": "金額"}])

It goes through RecordService's read checks exactly as ``RecordService.list`` does: the app view
right, the query (hidden fields refused), the record rules (ANDed in as SQL), hidden fields refused
for grouping and measuring, and the read is audited ("record.aggregate").

Semantics:
- at most two ``group_by``; each {"field": code, "period": ...}. ``period`` (day, week, month, year,
  fiscal_year) is for date fields only (DATE, DATETIME, CREATED_TIME, UPDATED_TIME, CALC with a
  date format) and defaults to "day". Date-times are bucketed in the service's time zone (Asia/Tokyo:
  the stored UTC value + 9 hours, computed in SQL; a fixed offset, Japan has no summer time).
  Weeks start on Monday (the key is the Monday, "2025-03-31"); months are "2025-04", days
  "2025-04-01", years "2025"; the fiscal year (年度) starts on 1 April and is the integer of the year
  it starts in (2025-03-31 → 2024, i.e. 2024年度).
- multi-valued fields (check boxes, multi-selects, user/organization/group selects) give one group
  per element: a record counts once in each of its values (so group counts may add up to more
  than the total). An empty value of any field forms its own group with the key null.
- fields inside a subtable cannot be grouped or measured.
- measures: {"op": "count"} (records; with a "field", the records where it is not empty) or
  {"op": "sum"|"avg"|"min"|"max", "field": a NUMBER or numeric CALC field}; default [count].
  Numbers come back as decimal strings (like NUMBER values), counts as integers.
- groups are sorted by their keys ascending, empty (null) keys last. ``totals`` are the measures
  over all matching records (without the per-element expansion of multi-valued groupings).
"""
from __future__ import annotations

from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation, localcontext
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import Integer, Interval, cast, func, literal_column, select, true, type_coerce
from sqlalchemy.dialects.postgresql import JSONB

from kumiki import i18n
from kumiki.errors import Detail, ValidationError
from kumiki.fields import _number

if TYPE_CHECKING:
    from kumiki.records import RecordService
    from kumiki.storage.schema import FieldDef

MAX_GROUP_BY = 2
MAX_MEASURES = 10
MAX_GROUPS = 10000
PERIODS = ("day", "week", "month", "year", "fiscal_year")
OPS = ("count", "sum", "avg", "min", "max")

SCALAR_TYPES = frozenset({"SINGLE_LINE_TEXT", "NUMBER", "DROP_DOWN", "RADIO_BUTTON", "CREATOR", "MODIFIER",
                          "STATUS", "RECORD_NUMBER"})
MULTI_TYPES = frozenset({"USER_SELECT", "CHECK_BOX", "MULTI_SELECT", "ORGANIZATION_SELECT", "GROUP_SELECT"})
DATE_TYPES = frozenset({"DATE"})
DATETIME_TYPES = frozenset({"DATETIME", "CREATED_TIME", "UPDATED_TIME"})

i18n.register({
    "aggregate.too_many_group_by": ("グループ化できるフィールドは{max}つまでです。",
                                    "At most {max} group-by fields."),
    "aggregate.too_many_measures": ("集計値は{max}個までです。", "At most {max} measures."),
    "aggregate.bad_item": ("形式が正しくありません。{expected}の形で指定してください。",
                           "Malformed; expected {expected_en}."),
    "aggregate.not_groupable": ("「{code}」（{type}）フィールドではグループ化できません。",
                                "The field \"{code}\" ({type}) cannot be grouped by."),
    "aggregate.in_subtable": ("「{code}」はテーブル内のフィールドのため、集計に使えません。",
                              "\"{code}\" is inside a table and cannot be aggregated."),
    "aggregate.bad_period": ("期間「{period}」は使えません。day（日）、week（週）、month（月）、year（年）、"
                             "fiscal_year（年度）のいずれかを指定してください。",
                             "Unknown period \"{period}\"; use day, week, month, year or fiscal_year."),
    "aggregate.period_not_date": ("期間（{period}）は日付・日時のフィールドにだけ指定できます（「{code}」は{type}です）。",
                                  "A period ({period}) applies to date and date-time fields only "
                                  "(\"{code}\" is {type})."),
    "aggregate.bad_op": ("集計方法「{op}」は使えません。count（件数）、sum（合計）、avg（平均）、min（最小）、"
                         "max（最大）のいずれかを指定してください。",
                         "Unknown operation \"{op}\"; use count, sum, avg, min or max."),
    "aggregate.field_required": ("集計方法「{op}」には数値フィールドを指定してください。",
                                 "The operation \"{op}\" needs a numeric field."),
    "aggregate.not_numeric": ("「{code}」（{type}）は数値のフィールドではないため、{op}を計算できません。",
                              "\"{code}\" ({type}) is not numeric; cannot compute {op}."),
    "aggregate.too_many_groups": ("グループが多すぎます（{max}件を超えました）。条件を絞り込んでください。",
                                  "Too many groups (more than {max}); narrow the query."),
})


def _is_date(f: "FieldDef") -> bool:
    return f.type in DATE_TYPES or (f.type == "CALC" and f.props.get("format") == "DATE")


def _is_datetime(f: "FieldDef") -> bool:
    return f.type in DATETIME_TYPES or (f.type == "CALC" and f.props.get("format") == "DATETIME")


def _is_numeric(f: "FieldDef") -> bool:
    return f.type == "NUMBER" or (f.type == "CALC" and (f.props.get("format") or "NUMBER") in
                                  ("NUMBER", "NUMBER_DIGIT", "HOUR_MINUTE", "DAY_HOUR_MINUTE"))


def _field(svc: "RecordService", schema, code: Any, path: str) -> "FieldDef":
    """A top-level field the user may see (hidden fields are refused before anything else)."""
    if not isinstance(code, str) or code not in schema.fields or code.startswith("$"):
        raise ValidationError([Detail(path, "field.unknown", {"code": code})])
    if not svc.access(schema.app_id).visible(code):
        raise ValidationError([Detail(path, "access.field_hidden", {"code": code})])
    f = schema.fields[code]
    if f.in_subtable:
        raise ValidationError([Detail(path, "aggregate.in_subtable", {"code": code})])
    return f


def _parse_group_by(svc, schema, group_by) -> list[dict]:
    if group_by is None:
        return []
    if not isinstance(group_by, list):
        raise ValidationError([Detail("group_by", "aggregate.bad_item",
                                      {"expected": "[{\"field\": …}]", "expected_en": "a list"})])
    if len(group_by) > MAX_GROUP_BY:
        raise ValidationError([Detail("group_by", "aggregate.too_many_group_by", {"max": MAX_GROUP_BY})])
    out = []
    for i, item in enumerate(group_by):
        path = f"group_by[{i}]"
        if isinstance(item, str):
            item = {"field": item}
        if not isinstance(item, dict):
            raise ValidationError([Detail(path, "aggregate.bad_item", {"expected": "{\"field\": …, \"period\": …}",
                                                                       "expected_en": "{field, period}"})])
        f = _field(svc, schema, item.get("field"), f"{path}.field")
        period = item.get("period")
        if period is not None and period not in PERIODS:
            raise ValidationError([Detail(f"{path}.period", "aggregate.bad_period", {"period": period})])
        if _is_date(f) or _is_datetime(f):
            period = period or "day"
        elif period is not None:
            raise ValidationError([Detail(f"{path}.period", "aggregate.period_not_date",
                                          {"period": period, "code": f.code, "type": f.type})])
        elif not (f.type in SCALAR_TYPES or f.type in MULTI_TYPES
                  or (f.type == "CALC" and _is_numeric(f))):
            raise ValidationError([Detail(f"{path}.field", "aggregate.not_groupable",
                                          {"code": f.code, "type": f.type})])
        out.append({"field": f.code, **({"period": period} if period else {})})
    return out


def _parse_measures(svc, schema, measures) -> list[dict]:
    if measures is None or measures == []:
        return [{"op": "count"}]
    if not isinstance(measures, list):
        raise ValidationError([Detail("measures", "aggregate.bad_item",
                                      {"expected": "[{\"op\": …}]", "expected_en": "a list"})])
    if len(measures) > MAX_MEASURES:
        raise ValidationError([Detail("measures", "aggregate.too_many_measures", {"max": MAX_MEASURES})])
    out = []
    for i, item in enumerate(measures):
        path = f"measures[{i}]"
        if not isinstance(item, dict):
            raise ValidationError([Detail(path, "aggregate.bad_item", {"expected": "{\"op\": …, \"field\": …}",
                                                                       "expected_en": "{op, field}"})])
        op = item.get("op")
        if op not in OPS:
            raise ValidationError([Detail(f"{path}.op", "aggregate.bad_op", {"op": op})])
        code = item.get("field")
        if code in (None, ""):
            if op != "count":
                raise ValidationError([Detail(f"{path}.field", "aggregate.field_required", {"op": op})])
            out.append({"op": "count"})
            continue
        f = _field(svc, schema, code, f"{path}.field")
        if op != "count" and not _is_numeric(f):
            raise ValidationError([Detail(f"{path}.field", "aggregate.not_numeric",
                                          {"code": f.code, "type": f.type, "op": op})])
        if op == "count" and not f.column:
            raise ValidationError([Detail(f"{path}.field", "aggregate.not_groupable",
                                          {"code": f.code, "type": f.type})])
        out.append({"op": op, "field": f.code})
    return out


class _Sql:
    """The per-dialect SQL for keys and measures (SQLite and PostgreSQL)."""

    def __init__(self, dialect: str, offset_hours: float):
        self.pg = dialect == "postgresql"
        self.offset = offset_hours

    def local(self, col):
        """A stored UTC date-time as local wall-clock time."""
        if self.pg:
            return col + literal_column(f"interval '{self.offset:g} hours'", Interval)
        return func.datetime(col, f"{self.offset:+g} hours")

    def period(self, col, period: str, is_datetime: bool):
        base = self.local(col) if is_datetime else col
        if self.pg:
            if period == "day":
                return func.to_char(base, "YYYY-MM-DD")
            if period == "week":
                return func.to_char(func.date_trunc("week", base), "YYYY-MM-DD")
            if period == "month":
                return func.to_char(base, "YYYY-MM")
            if period == "year":
                return func.to_char(base, "YYYY")
            return cast(func.extract("year", base - literal_column("interval '3 months'", Interval)), Integer)
        if period == "day":
            return func.date(base)
        if period == "week":   # the next Sunday (or today), minus six days: the Monday
            return func.date(base, "weekday 0", "-6 days")
        if period == "month":
            return func.strftime("%Y-%m", base)
        if period == "year":
            return func.strftime("%Y", base)
        return cast(func.strftime("%Y", base, "-3 months"), Integer)

    def elements(self, col, name: str):
        """A table of a JSON list column's elements (text, column ``value``), to LEFT JOIN."""
        if self.pg:
            from kumiki.query.compiler import _pg_array_or_empty
            jcol = type_coerce(col, JSONB)
            return func.jsonb_array_elements_text(_pg_array_or_empty(jcol)).table_valued("value").lateral(name)
        return func.json_each(col).table_valued("value").alias(name)


def _offset_hours(tz: str) -> float:
    try:
        off = datetime.now(ZoneInfo(tz)).utcoffset() or timedelta(0)
    except Exception:  # noqa: BLE001 - an unknown zone falls back to Japan
        return 9.0
    return off.total_seconds() / 3600


def _number_out(raw: Any) -> str | None:
    if raw is None:
        return None
    try:
        with localcontext() as ctx:   # 30 integer + 10 fraction digits (NUMBER's limits), and sums of them
            ctx.prec = 60
            d = Decimal(repr(raw)) if isinstance(raw, float) else Decimal(raw)
            d = d.quantize(Decimal(1).scaleb(-_number.MAX_FRAC_DIGITS), rounding=ROUND_HALF_UP)
    except (InvalidOperation, ValueError, TypeError):
        return str(raw)
    return _number.canonical(d)


def aggregate(svc: "RecordService", app_id: int, *, query: str | None = None, group_by: list | None = None,
              measures: list | None = None) -> dict:
    """Group the records the user may see (and the query selects) and compute the measures, in SQL."""
    schema = svc.schema(app_id)
    svc._require(app_id, "view")
    cq = svc._visible_query(schema, query)
    groups_spec = _parse_group_by(svc, schema, group_by)
    measure_spec = _parse_measures(svc, schema, measures)
    where = svc._and(cq.where, svc._record_filter(schema, "view"))
    t = schema.table
    sql = _Sql(svc._conn.dialect.name, _offset_hours(svc.timezone))

    def measure_cols():
        cols = []
        for i, m in enumerate(measure_spec):
            if m["op"] == "count":
                expr = func.count() if "field" not in m else func.count(t.c[schema.fields[m["field"]].column])
            else:
                col = t.c[schema.fields[m["field"]].column]
                expr = {"sum": func.sum, "avg": func.avg, "min": func.min, "max": func.max}[m["op"]](col)
            cols.append(expr.label(f"m{i}"))
        return cols

    source = t
    keys = []
    for i, g in enumerate(groups_spec):
        f = schema.fields[g["field"]]
        col = t.c[f.column]
        if f.type in MULTI_TYPES:
            elems = sql.elements(col, f"g{i}")
            source = source.outerjoin(elems, true())
            key = elems.c.value
        elif "period" in g:
            key = sql.period(col, g["period"], _is_datetime(f))
        else:
            key = col
        keys.append(key.label(f"k{i}"))

    stmt = select(*keys, *measure_cols()).select_from(source)
    if where is not None:
        stmt = stmt.where(where)
    if keys:
        stmt = stmt.group_by(*[literal_column(f"k{i}") for i in range(len(keys))])
        stmt = stmt.order_by(*[literal_column(f"k{i}").asc().nulls_last() for i in range(len(keys))])
        stmt = stmt.limit(MAX_GROUPS + 1)
    rows = svc.session.execute(stmt).all() if keys else []
    if len(rows) > MAX_GROUPS:
        raise ValidationError([Detail("group_by", "aggregate.too_many_groups", {"max": MAX_GROUPS})])

    total_stmt = select(*measure_cols()).select_from(t)
    if where is not None:
        total_stmt = total_stmt.where(where)
    total_row = svc.session.execute(total_stmt).one()

    def values(row, start: int) -> list:
        out = []
        for i, m in enumerate(measure_spec):
            v = row[start + i]
            out.append(int(v or 0) if m["op"] == "count" else _number_out(v))
        return out

    key_fields = [schema.fields[g["field"]] for g in groups_spec]

    def key_out(f, g, v):
        if v is None or v == "":
            return None
        period = g.get("period")
        if period == "fiscal_year":
            return int(v)
        if period is not None:
            return str(v)
        if _is_numeric(f):
            return _number_out(v)
        if f.type == "RECORD_NUMBER":
            return int(v)
        return str(v)

    groups = [{"keys": [key_out(f, g, row[i]) for i, (f, g) in enumerate(zip(key_fields, groups_spec))],
               "values": values(row, len(keys))} for row in rows]
    svc._audit_read("record.aggregate", app_id, detail={"query": query or "", "group_by": groups_spec,
                                                        "measures": measure_spec, "groups": len(groups)})
    return {"groups": groups, "totals": values(total_row, 0), "group_by": groups_spec, "measures": measure_spec}
