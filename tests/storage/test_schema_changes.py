"""Schema changes on deploy are non-destructive: add, rename, retire, retype with a report."""
from __future__ import annotations

from sqlalchemy import inspect, text

BASE = {
    "name": "申請管理",
    "fields": [
        {"code": "氏名", "type": "SINGLE_LINE_TEXT", "label": "氏名"},
        {"code": "金額", "type": "SINGLE_LINE_TEXT", "label": "金額"},
        {"code": "メモ", "type": "MULTI_LINE_TEXT", "label": "メモ"},
    ],
}


def _deploy(api, app_id, definition):
    definition.pop("layout", None)   # regenerated from the fields
    resp = api.put(f"/api/v1/apps/{app_id}/draft", json={"definition": definition})
    assert resp.status_code == 200, resp.json
    resp = api.post(f"/api/v1/apps/{app_id}/deploy")
    return resp


def _setup(api):
    app_id = api.post("/api/v1/apps?deploy=true", json=BASE).json["id"]
    url = f"/api/v1/apps/{app_id}/records"
    api.post(url, json={"records": [{"氏名": "甲", "金額": "1,200", "メモ": "a"},
                                    {"氏名": "乙", "金額": "不明", "メモ": "b"},
                                    {"氏名": "丙", "金額": "", "メモ": "c"}]})
    return app_id, url


def test_add_rename_retire_keep_data(any_admin_api):
    api = any_admin_api
    app_id, url = _setup(api)
    definition = api.get(f"/api/v1/apps/{app_id}").json["definition"]
    ids = {f["code"]: f["id"] for f in definition["fields"]}
    # rename 氏名 -> 申請者 (same id), delete メモ, add 受付日
    definition["fields"] = [
        {**definition["fields"][0], "code": "申請者", "label": "申請者"},
        definition["fields"][1],
        {"code": "受付日", "type": "DATE", "label": "受付日"},
    ]
    resp = _deploy(api, app_id, definition)
    assert resp.status_code == 200, resp.json
    report = resp.json["report"]
    assert report["renamed"] == [{"from": "氏名", "to": "申請者"}]
    assert report["retired"] == ["メモ"] and report["added"] == ["受付日"]
    recs = api.get(url + "?query=order by $id asc").json["records"]
    assert [r["申請者"] for r in recs] == ["甲", "乙", "丙"]
    assert "メモ" not in recs[0] and recs[0]["受付日"] == ""
    # the retired column keeps its data until an explicit purge
    engine = api.app.extensions["kumiki"].engine
    with engine.connect() as conn:
        cols = {c["name"] for c in inspect(conn).get_columns(f"app_{app_id}")}
        assert f"f_{ids['メモ']}" in cols
        kept = conn.execute(text(f"SELECT f_{ids['メモ']} FROM app_{app_id} ORDER BY id")).scalars().all()
    assert kept == ["a", "b", "c"]
    # bringing the field back by its id restores its data
    definition = api.get(f"/api/v1/apps/{app_id}").json["definition"]
    definition["fields"].append({"code": "メモ", "type": "MULTI_LINE_TEXT", "label": "メモ", "id": ids["メモ"]})
    assert _deploy(api, app_id, definition).status_code == 200
    assert api.get(url + "?query=order by $id asc").json["records"][0]["メモ"] == "a"
    versions = api.get(f"/api/v1/apps/{app_id}/versions").json
    assert [v["version"] for v in versions] == [3, 2, 1]


def test_retype_converts_with_backup_and_report(any_admin_api):
    api = any_admin_api
    app_id, url = _setup(api)
    definition = api.get(f"/api/v1/apps/{app_id}").json["definition"]
    old_id = definition["fields"][1]["id"]
    definition["fields"][1] = {**definition["fields"][1], "type": "NUMBER"}
    resp = _deploy(api, app_id, definition)
    assert resp.status_code == 200, resp.json
    report = resp.json["report"]
    assert report["retyped"][0]["converted"] == 1
    assert report["unconverted"] == [{"field": "金額", "id": 2, "value": "不明"}]
    recs = api.get(url + "?query=order by $id asc").json["records"]
    assert [r["金額"] for r in recs] == ["1200", "", ""]
    assert api.get(url, query_string={"query": "金額 > 1000"}).json["records"][0]["氏名"] == "甲"
    engine = api.app.extensions["kumiki"].engine
    with engine.connect() as conn:
        backup = conn.execute(text(f"SELECT f_{old_id} FROM app_{app_id} ORDER BY id")).scalars().all()
    assert backup == ["1,200", "不明", None]


def test_unique_on_existing_duplicates_is_refused(any_admin_api):
    api = any_admin_api
    app_id, url = _setup(api)
    api.post(url, json={"record": {"氏名": "甲"}})
    definition = api.get(f"/api/v1/apps/{app_id}").json["definition"]
    definition["fields"][0]["unique"] = True
    resp = _deploy(api, app_id, definition)
    assert resp.status_code == 400
    assert "重複" in resp.json["errors"]["fields[0].unique"][0]
    assert api.get(f"/api/v1/apps/{app_id}").json["version"] == 1   # nothing deployed
    # after fixing the data, the same change deploys and the database enforces it
    dup = api.get(url, query_string={"query": '氏名 = "甲" order by $id desc limit 1'}).json["records"][0]
    api.put(f"{url}/{dup['$id']}", json={"record": {"氏名": "甲2"}})
    assert _deploy(api, app_id, definition).status_code == 200
    assert api.post(url, json={"record": {"氏名": "乙"}}).status_code == 400


def test_invalid_definition_is_located(admin_api):
    resp = admin_api.post("/api/v1/apps", json={"name": "x", "fields": [
        {"code": "a", "type": "DROP_DOWN", "label": "A"},
        {"code": "a", "type": "SINGLE_LINE_TEXT", "label": "B"}]})
    assert resp.status_code == 400
    errors = resp.json["errors"]
    assert any(p.startswith("fields[0]") for p in errors) and any(p.startswith("fields[1]") for p in errors)


def test_draft_is_versioned_and_stale_draft_conflicts(admin_api):
    app = admin_api.post("/api/v1/apps", json=BASE).json
    assert app["version"] == 0
    draft = admin_api.get(f"/api/v1/apps/{app['id']}/draft").json
    resp = admin_api.put(f"/api/v1/apps/{app['id']}/draft",
                         json={"definition": draft["definition"], "revision": draft["revision"]})
    assert resp.status_code == 200
    resp = admin_api.put(f"/api/v1/apps/{app['id']}/draft",
                         json={"definition": draft["definition"], "revision": draft["revision"]})
    assert resp.status_code == 409
    # records are refused until the app is deployed
    resp = admin_api.post(f"/api/v1/apps/{app['id']}/records", json={"record": {"氏名": "x"}})
    assert resp.status_code == 404 and "公開" in resp.json["message"]


def test_empty_lists_are_sql_null_and_japanese_json_is_unescaped(admin_api):
    api = admin_api
    app_id = api.post("/api/v1/apps?deploy=true", json={"name": "x", "fields": [
        {"code": "対応", "type": "CHECK_BOX", "label": "対応", "options": ["訪問", "電話"]}]}).json["id"]
    url = f"/api/v1/apps/{app_id}/records"
    api.post(url, json={"records": [{"対応": []}, {"対応": ["訪問"]}]})
    engine = api.app.extensions["kumiki"].engine
    col = api.get(f"/api/v1/apps/{app_id}").json["definition"]["fields"][0]["id"]
    with engine.connect() as conn:
        raw = conn.execute(text(f"SELECT f_{col} FROM app_{app_id} ORDER BY id")).scalars().all()
    assert raw == [None, '["訪問"]']
    assert len(api.get(url, query_string={"query": "対応 in (\"\")"}).json["records"]) == 1
