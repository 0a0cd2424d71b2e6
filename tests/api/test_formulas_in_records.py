"""CALC fields are evaluated on every write; a failing formula never blocks the write."""
from __future__ import annotations

APP = {"name": "見積", "fields": [
    {"code": "単価", "type": "NUMBER", "label": "単価"},
    {"code": "数量", "type": "NUMBER", "label": "数量"},
    {"code": "小計", "type": "CALC", "label": "小計", "formula": "単価 * 数量"},
    {"code": "税込", "type": "CALC", "label": "税込", "formula": "ROUNDDOWN(小計 * 1.1, 0)"},
    {"code": "一人当たり", "type": "CALC", "label": "一人当たり", "formula": "小計 / 人数"},
    {"code": "人数", "type": "NUMBER", "label": "人数"},
    {"code": "生年月日", "type": "DATE", "label": "生年月日"},
    {"code": "年度初めの年齢", "type": "CALC", "label": "4月1日時点の年齢", "format": "NUMBER",
     "formula": "AGE(生年月日, DATE(2025, 4, 1))"},
]}


def test_calc_fields_follow_their_inputs(any_admin_api):
    api = any_admin_api
    resp = api.post("/api/v1/apps?deploy=true", json=APP)
    assert resp.status_code == 201, resp.json
    url = f"/api/v1/apps/{resp.json['id']}/records"
    created = api.post(url, json={"record": {"単価": "1200", "数量": "3", "人数": "0", "生年月日": "2019-04-02"}})
    assert created.status_code == 201
    assert set(created.json["formulaErrors"]) == {"一人当たり"}          # only the failing field
    assert "0" in created.json["formulaErrors"]["一人当たり"]              # 「0で割ることはできません」
    rec = api.get(f"{url}/{created.json['id']}").json
    assert rec["小計"] == "3600" and rec["税込"] == "3960" and rec["一人当たり"] == ""
    assert rec["年度初めの年齢"] == "5"
    upd = api.put(f"{url}/{rec['$id']}", json={"record": {"数量": "5", "人数": "2"}})
    assert upd.status_code == 200 and "formulaErrors" not in upd.json
    rec = api.get(f"{url}/{rec['$id']}").json
    assert (rec["小計"], rec["税込"], rec["一人当たり"]) == ("6000", "6600", "3000")
    # clients cannot write a calculated value
    api.put(f"{url}/{rec['$id']}", json={"record": {"小計": "1"}})
    assert api.get(f"{url}/{rec['$id']}").json["小計"] == "6000"


def test_bad_formulas_are_refused_at_deploy(admin_api):
    bad = {"name": "x", "fields": [
        {"code": "a", "type": "CALC", "label": "a", "formula": "b + 1"},
        {"code": "b", "type": "CALC", "label": "b", "formula": "a + 1"},
        {"code": "c", "type": "CALC", "label": "c", "formula": "存在しない * 2"},
        {"code": "d", "type": "CALC", "label": "d", "formula": "1 +"}]}
    resp = admin_api.post("/api/v1/apps", json=bad)
    assert resp.status_code == 400
    errors = resp.json["errors"]
    assert {"fields[0].formula", "fields[1].formula", "fields[2].formula", "fields[3].formula"} <= set(errors)
    assert any("→" in m for m in errors["fields[0].formula"])
