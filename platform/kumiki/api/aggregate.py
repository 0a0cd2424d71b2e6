"""Aggregations for graphs and survey results: GET (simple string forms) or POST (JSON).

    GET  /api/v1/apps/<id>/aggregate?query=…&group_by=区分&group_by=受付日:month&measure=count&measure=sum:金額
    POST /api/v1/apps/<id>/aggregate  {"query": …, "group_by": [{"field": "受付日", "period": "month"}],
                                       "measures": [{"op": "count"}, {"op": "sum", "field": "金額"}]}

Both answer {"groups": [{"keys": [...], "values": [...]}], "totals": [...], "group_by": [...],
"measures": [...]}; see kumiki.aggregate for the semantics (periods, multi-valued fields, nulls).
"""
from __future__ import annotations

from flask import request
from flask_smorest import Blueprint
from marshmallow import Schema
from marshmallow import fields as ma

from kumiki.aggregate import PERIODS, aggregate
from kumiki.api.common import record_service

PREFIX = "/apps"
blp = Blueprint("aggregate", __name__, description="集計 / aggregations for graphs")

OUT_DOC = ("groups: one per distinct key combination, sorted by keys ascending, empty (null) keys last; "
           "keys: the group's key per group_by (dates: \"2025-04-01\" day, \"2025-03-31\" week = its Monday, "
           "\"2025-04\" month, \"2025\" year, 2024 fiscal year = 2024年度 starting 1 April; date-times in "
           "Asia/Tokyo local time; multi-valued fields give one group per value); values: one per measure "
           "(count an integer, sum/avg/min/max decimal strings or null). totals: the measures over all "
           "matching records.")


class AggregateArgs(Schema):
    query = ma.String(metadata={"description": "kintone query language (order by / limit are ignored)"})
    group_by = ma.List(ma.String(), metadata={
        "description": "repeatable, at most 2: a field code, or code:period with period one of "
                       + ", ".join(PERIODS) + " (date fields only; default day)"})
    measure = ma.List(ma.String(), metadata={
        "description": "repeatable: count, count:code (non-empty values), sum:code, avg:code, min:code, "
                       "max:code (numeric fields); default count"})


class AggregateGroupBy(Schema):
    field = ma.String(required=True, metadata={"description": "field code"})
    period = ma.String(metadata={"description": "date fields: " + ", ".join(PERIODS) + " (default day)"})


class AggregateMeasure(Schema):
    op = ma.String(required=True, metadata={"description": "count, sum, avg, min or max"})
    field = ma.String(metadata={"description": "numeric field for sum/avg/min/max; optional for count"})


class AggregateIn(Schema):
    query = ma.String(allow_none=True)
    group_by = ma.List(ma.Raw(metadata={"description": "AggregateGroupBy or a field code"}), load_default=list,
                       metadata={"description": "at most 2 of {field, period}"})
    measures = ma.List(ma.Raw(metadata={"description": "AggregateMeasure"}), load_default=list)


class AggregateGroupOut(Schema):
    keys = ma.List(ma.Raw(allow_none=True))
    values = ma.List(ma.Raw(allow_none=True))


class AggregateOut(Schema):
    groups = ma.List(ma.Nested(AggregateGroupOut), metadata={"description": OUT_DOC})
    totals = ma.List(ma.Raw(allow_none=True))
    group_by = ma.List(ma.Nested(AggregateGroupBy))
    measures = ma.List(ma.Nested(AggregateMeasure))


def _group_by_from_args(values: list[str]) -> list[dict]:
    out = []
    for v in values:
        code, sep, period = v.rpartition(":")
        out.append({"field": code, "period": period} if sep and period in PERIODS else {"field": v})
    return out


def _measures_from_args(values: list[str]) -> list[dict]:
    out = []
    for v in values:
        op, sep, code = v.partition(":")
        out.append({"op": op, "field": code} if sep else {"op": op})
    return out


@blp.route("/<int:app_id>/aggregate")
@blp.arguments(AggregateArgs, location="query")
@blp.response(200, AggregateOut)
def aggregate_get(args, app_id):
    """Aggregate the records the user may see (simple string forms)."""
    group_by = _group_by_from_args(request.args.getlist("group_by"))
    measures = _measures_from_args(request.args.getlist("measure"))
    return aggregate(record_service(), app_id, query=args.get("query"), group_by=group_by, measures=measures)


@blp.route("/<int:app_id>/aggregate", methods=["POST"])
@blp.arguments(AggregateIn)
@blp.response(200, AggregateOut)
def aggregate_post(body, app_id):
    """Aggregate the records the user may see (JSON; nothing is written but the audit entry)."""
    return aggregate(record_service(), app_id, query=body.get("query"), group_by=body["group_by"],
                     measures=body["measures"])
