"""History you can use: diff any two revisions, restore an old one, and the trash."""
from __future__ import annotations

from tests.conftest import ApiClient, make_user

APP = {"name": "支援計画", "fields": [
    {"code": "氏名", "type": "SINGLE_LINE_TEXT", "label": "氏名", "unique": True},
    {"code": "目標", "type": "MULTI_LINE_TEXT", "label": "目標"},
    {"code": "支援", "type": "SUBTABLE", "label": "支援", "fields": [
        {"code": "内容", "type": "SINGLE_LINE_TEXT", "label": "内容"}]}]}


def test_diff_restore_and_trash(any_admin_api):
    api = any_admin_api
    app_id = api.post("/api/v1/apps?deploy=true", json=APP).json["id"]
    url = f"/api/v1/apps/{app_id}/records"
    rid = api.post(url, json={"record": {"氏名": "山田", "目標": "通院", "支援": [{"value": {"内容": "訪問"}}]}}).json["id"]
    api.put(f"{url}/{rid}", json={"record": {"目標": "就労", "支援": []}})
    diff = api.get(f"{url}/{rid}/diff", query_string={"from": 1, "to": 2}).json
    assert diff["diff"]["目標"] == {"old": "通院", "new": "就労"} and "氏名" not in diff["diff"]
    assert api.get(f"{url}/{rid}/diff", query_string={"from": 1, "to": 9}).status_code == 404

    resp = api.post(f"{url}/{rid}/restore", json={"revision": 1})
    assert resp.status_code == 200 and resp.json["revision"] == 3
    rec = api.get(f"{url}/{rid}").json
    assert rec["目標"] == "通院" and [r["value"]["内容"] for r in rec["支援"]] == ["訪問"]
    assert [h["revision"] for h in api.get(f"{url}/{rid}/history").json] == [1, 2, 3]

    assert api.delete(f"{url}/{rid}").status_code == 200
    trash = api.get(f"/api/v1/apps/{app_id}/trash").json
    assert trash["totalCount"] == 1 and trash["records"][0]["$id"] == rid
    assert trash["records"][0]["record"]["目標"] == "通院"
    back = api.post(f"/api/v1/apps/{app_id}/trash/{rid}/restore")
    assert back.status_code == 200 and back.json == {"id": rid, "revision": 5}
    rec = api.get(f"{url}/{rid}").json
    assert rec["氏名"] == "山田" and rec["$revision"] == 5 and rec["支援"][0]["value"]["内容"] == "訪問"
    assert rec["作成者"]["code"] == "admin"
    assert api.get(f"/api/v1/apps/{app_id}/trash").json["totalCount"] == 0
    assert api.post(f"/api/v1/apps/{app_id}/trash/{rid}/restore").status_code == 404


def test_restoring_a_deleted_record_keeps_uniqueness(admin_api):
    api = admin_api
    app_id = api.post("/api/v1/apps?deploy=true", json=APP).json["id"]
    url = f"/api/v1/apps/{app_id}/records"
    rid = api.post(url, json={"record": {"氏名": "山田"}}).json["id"]
    api.delete(f"{url}/{rid}")
    api.post(url, json={"record": {"氏名": "山田"}})           # the name is taken again meanwhile
    resp = api.post(f"/api/v1/apps/{app_id}/trash/{rid}/restore")
    assert resp.status_code == 400 and "record.氏名" in resp.json["errors"]


def test_trash_is_for_app_managers(app):
    _a, admin_token = make_user(app, "admin")
    _c, clerk_token = make_user(app, "clerk", is_admin=False)
    admin, clerk = ApiClient(app, admin_token), ApiClient(app, clerk_token)
    app_id = admin.post("/api/v1/apps?deploy=true", json=APP).json["id"]
    rid = admin.post(f"/api/v1/apps/{app_id}/records", json={"record": {"氏名": "x"}}).json["id"]
    admin.delete(f"/api/v1/apps/{app_id}/records/{rid}")
    assert clerk.get(f"/api/v1/apps/{app_id}/trash").status_code == 403
    assert clerk.post(f"/api/v1/apps/{app_id}/trash/{rid}/restore").status_code == 403
