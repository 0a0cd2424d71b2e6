"""Aggregations for graphs (GET/POST /api/v1/apps/<id>/aggregate), on SQLite and PostgreSQL."""
from __future__ import annotations

import pytest

from tests.conftest import ApiClient, make_user

APP = {
    "name": "相談受付",
    "fields": [
        {"code": "氏名", "type": "SINGLE_LINE_TEXT", "label": "氏名"},
        {"code": "区分", "type": "DROP_DOWN", "label": "区分", "options": ["A", "B"]},
        {"code": "受付日", "type": "DATE", "label": "受付日"},
        {"code": "受付日時", "type": "DATETIME", "label": "受付日時"},
        {"code": "金額", "type": "NUMBER", "label": "金額"},
        {"code": "支援種別", "type": "CHECK_BOX", "label": "支援種別", "options": ["x", "y"]},
        {"code": "メモ", "type": "MULTI_LINE_TEXT", "label": "メモ"},
        {"code": "明細", "type": "SUBTABLE", "label": "明細", "fields": [
            {"code": "明細金額", "type": "NUMBER", "label": "明細金額"}]},
    ],
}

RECORDS = [
    {"氏名": "r1", "区分": "A", "受付日": "2025-03-31", "受付日時": "2025-03-31T15:30:00Z", "金額": "100",
     "支援種別": ["x", "y"]},
    {"氏名": "r2", "区分": "A", "受付日": "2025-04-01", "受付日時": "2025-03-31T14:59:00Z", "金額": "250.5",
     "支援種別": ["x"]},
    {"氏名": "r3", "区分": "B", "受付日": "2025-04-15", "受付日時": "2025-04-15T00:00:00Z", "支援種別": []},
    {"氏名": "r4", "金額": "-50"},
]


@pytest.fixture
def setup(any_app):
    admin_user, admin_token = make_user(any_app, "admin")
    admin = ApiClient(any_app, admin_token)
    resp = admin.post("/api/v1/apps?deploy=true", json=APP)
    assert resp.status_code == 201, resp.json
    app_id = resp.json["id"]
    resp = admin.post(f"/api/v1/apps/{app_id}/records", json={"records": RECORDS})
    assert resp.status_code == 201, resp.json
    return admin, app_id


def _agg(api, app_id, **params):
    resp = api.get(f"/api/v1/apps/{app_id}/aggregate", query_string=params)
    assert resp.status_code == 200, resp.json
    return resp.json


def _table(result):
    return [(g["keys"], g["values"]) for g in result["groups"]]


def test_count_by_drop_down_nulls_last(setup):
    admin, app_id = setup
    out = _agg(admin, app_id, group_by="区分")
    assert _table(out) == [(["A"], [2]), (["B"], [1]), ([None], [1])]
    assert out["totals"] == [4]
    assert out["group_by"] == [{"field": "区分"}] and out["measures"] == [{"op": "count"}]


def test_no_group_by_gives_totals_only(setup):
    admin, app_id = setup
    out = _agg(admin, app_id, measure=["count", "sum:金額"])
    assert out["groups"] == [] and out["totals"] == [4, "300.5"]


def test_date_periods(setup):
    admin, app_id = setup
    assert _table(_agg(admin, app_id, group_by="受付日:month")) == [
        (["2025-03"], [1]), (["2025-04"], [2]), ([None], [1])]
    assert _table(_agg(admin, app_id, group_by="受付日:day")) == [
        (["2025-03-31"], [1]), (["2025-04-01"], [1]), (["2025-04-15"], [1]), ([None], [1])]
    assert _table(_agg(admin, app_id, group_by="受付日")) == _table(_agg(admin, app_id, group_by="受付日:day"))
    # weeks start on Monday: 2025-03-31 is a Monday, 2025-04-15 a Tuesday
    assert _table(_agg(admin, app_id, group_by="受付日:week")) == [
        (["2025-03-31"], [2]), (["2025-04-14"], [1]), ([None], [1])]
    assert _table(_agg(admin, app_id, group_by="受付日:year")) == [(["2025"], [3]), ([None], [1])]
    # 年度 starts on 1 April: 2025-03-31 belongs to 2024年度
    assert _table(_agg(admin, app_id, group_by="受付日:fiscal_year")) == [
        ([2024], [1]), ([2025], [2]), ([None], [1])]


def test_datetime_buckets_in_tokyo_time(setup):
    admin, app_id = setup
    # 2025-03-31T15:30Z is 2025-04-01 00:30 in Tokyo; 14:59Z is still 2025-03-31 23:59 there
    assert _table(_agg(admin, app_id, group_by="受付日時:day")) == [
        (["2025-03-31"], [1]), (["2025-04-01"], [1]), (["2025-04-15"], [1]), ([None], [1])]
    assert _table(_agg(admin, app_id, group_by="受付日時:fiscal_year")) == [
        ([2024], [1]), ([2025], [2]), ([None], [1])]
    assert _table(_agg(admin, app_id, group_by="受付日時:month")) == [
        (["2025-03"], [1]), (["2025-04"], [2]), ([None], [1])]
    # system times group too (every record was created today)
    out = _agg(admin, app_id, group_by="作成日時:year")
    assert len(out["groups"]) == 1 and out["groups"][0]["values"] == [4]


def test_two_level_grouping(setup):
    admin, app_id = setup
    out = _agg(admin, app_id, group_by=["区分", "受付日:fiscal_year"])
    assert _table(out) == [(["A", 2024], [1]), (["A", 2025], [1]), (["B", 2025], [1]), ([None, None], [1])]
    post = admin.post(f"/api/v1/apps/{app_id}/aggregate", json={
        "group_by": [{"field": "区分"}, {"field": "受付日", "period": "fiscal_year"}], "measures": [{"op": "count"}]})
    assert post.status_code == 200, post.json
    assert post.json == out


def test_sum_avg_min_max(setup):
    admin, app_id = setup
    out = _agg(admin, app_id, group_by="区分", measure=["count", "sum:金額", "avg:金額", "min:金額", "max:金額"])
    assert _table(out) == [
        (["A"], [2, "350.5", "175.25", "100", "250.5"]),
        (["B"], [1, None, None, None, None]),
        ([None], [1, "-50", "-50", "-50", "-50"]),
    ]
    assert out["totals"] == [4, "300.5", "100.1666666667", "-50", "250.5"]
    # count of a field counts the records where it is not empty
    assert _agg(admin, app_id, measure="count:金額")["totals"] == [3]


def test_group_by_number_sorts_numerically(setup):
    admin, app_id = setup
    assert _table(_agg(admin, app_id, group_by="金額")) == [
        (["-50"], [1]), (["100"], [1]), (["250.5"], [1]), ([None], [1])]


def test_multi_valued_fields_give_one_group_per_value(setup):
    admin, app_id = setup
    out = _agg(admin, app_id, group_by="支援種別", measure=["count", "sum:金額"])
    # r1 counts under x and y; r3 (empty list) and r4 (no value) are the empty group
    assert _table(out) == [(["x"], [2, "350.5"]), (["y"], [1, "100"]), ([None], [2, "-50"])]
    assert out["totals"] == [4, "300.5"]
    out = _agg(admin, app_id, group_by=["区分", "支援種別"])
    assert _table(out) == [(["A", "x"], [2]), (["A", "y"], [1]), (["B", None], [1]), ([None, None], [1])]
    assert _table(_agg(admin, app_id, group_by="作成者")) == [(["admin"], [4])]


def test_query_filter_applies(setup):
    admin, app_id = setup
    out = _agg(admin, app_id, query='区分 in ("A") order by 氏名 desc limit 1', group_by="受付日:month")
    assert _table(out) == [(["2025-03"], [1]), (["2025-04"], [1])]
    assert out["totals"] == [2]


def test_the_read_is_audited(setup):
    from kumiki import audit

    admin, app_id = setup
    _agg(admin, app_id, group_by="区分")
    with admin.app.extensions["kumiki"].Session() as s:
        entries = audit.query(s, action="record.aggregate", app_id=app_id)[0]
    assert len(entries) == 1 and entries[0].detail["group_by"] == [{"field": "区分"}]


def test_permissions_apply(any_app):
    _u, admin_token = make_user(any_app, "admin")
    _s, staff_token = make_user(any_app, "staff", is_admin=False)
    admin, staff = ApiClient(any_app, admin_token), ApiClient(any_app, staff_token)
    app = {**APP, "permissions": {
        "record": [{"condition": '区分 in ("A")', "entities": [{"entity": {"type": "USER", "code": "staff"},
                                                                "view": True}]},
                   {"condition": "", "entities": []}],
        "field": [{"code": "メモ", "entities": [{"entity": {"type": "EVERYONE"}, "access": "none"}]},
                  {"code": "金額", "entities": [{"entity": {"type": "USER", "code": "staff"}, "access": "none"},
                                                 {"entity": {"type": "EVERYONE"}, "access": "view"}]}]}}
    app_id = admin.post("/api/v1/apps?deploy=true", json=app).json["id"]
    assert admin.post(f"/api/v1/apps/{app_id}/records", json={"records": RECORDS}).status_code == 201
    out = _agg(staff, app_id, group_by=["区分", "受付日:month"])
    assert _table(out) == [(["A", "2025-03"], [1]), (["A", "2025-04"], [1])] and out["totals"] == [2]
    assert _agg(admin, app_id, group_by="区分")["totals"] == [4]
    for params, path in (({"group_by": "金額"}, "group_by[0].field"),
                         ({"measure": "sum:金額"}, "measures[0].field"),
                         ({"query": "金額 > 0"}, "query")):
        resp = staff.get(f"/api/v1/apps/{app_id}/aggregate", query_string=params)
        assert resp.status_code == 400 and "権限" in resp.json["errors"][path][0], resp.json
        assert "250.5" not in resp.get_data(as_text=True)


@pytest.mark.parametrize("body, path, words", [
    ({"group_by": [{"field": "存在しない"}]}, "group_by[0].field", "存在しません"),
    ({"group_by": [{"field": "区分", "period": "month"}]}, "group_by[0].period", "日付"),
    ({"group_by": [{"field": "受付日", "period": "quarter"}]}, "group_by[0].period", "quarter"),
    ({"group_by": [{"field": "明細金額"}]}, "group_by[0].field", "テーブル"),
    ({"group_by": [{"field": "メモ"}]}, "group_by[0].field", "グループ化"),
    ({"group_by": ["区分", "受付日", "金額"]}, "group_by", "2つまで"),
    ({"group_by": [42]}, "group_by[0]", "形式"),
    ({"measures": [{"op": "sum", "field": "氏名"}]}, "measures[0].field", "数値"),
    ({"measures": [{"op": "sum"}]}, "measures[0].field", "数値フィールド"),
    ({"measures": [{"op": "median", "field": "金額"}]}, "measures[0].op", "median"),
    ({"measures": [{"op": "sum", "field": "明細金額"}]}, "measures[0].field", "テーブル"),
    ({"query": "区分 = "}, "query", ""),
])
def test_bad_input_is_located_in_japanese(setup, body, path, words):
    admin, app_id = setup
    resp = admin.post(f"/api/v1/apps/{app_id}/aggregate", json=body)
    assert resp.status_code == 400, resp.json
    assert path in resp.json["errors"], resp.json
    assert words in resp.json["errors"][path][0]


def test_bad_get_forms_are_located(setup):
    admin, app_id = setup
    resp = admin.get(f"/api/v1/apps/{app_id}/aggregate", query_string={"group_by": "氏名:month"})
    # "month" is a period, so this is 氏名 by month: refused, not a field called "氏名:month"
    assert resp.status_code == 400 and "group_by[0].period" in resp.json["errors"]
    resp = admin.get(f"/api/v1/apps/{app_id}/aggregate", query_string={"measure": "avg"})
    assert resp.status_code == 400 and "measures[0].field" in resp.json["errors"]
    assert admin.get("/api/v1/apps/99999/aggregate").status_code == 404


def test_openapi_documents_the_endpoint(setup):
    admin, _app_id = setup
    spec = admin.get("/api/openapi.json").json
    path = spec["paths"]["/api/v1/apps/{app_id}/aggregate"]
    assert "get" in path and "post" in path
