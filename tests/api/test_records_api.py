"""Records over the REST API, on SQLite and (in CI) PostgreSQL."""
from __future__ import annotations

import pytest

from tests.conftest import ApiClient, make_user

CASE_APP = {
    "name": "相談記録",
    "code": "soudan",
    "fields": [
        {"code": "氏名", "type": "SINGLE_LINE_TEXT", "label": "氏名", "required": True, "maxLength": 50},
        {"code": "受付番号", "type": "SINGLE_LINE_TEXT", "label": "受付番号", "unique": True},
        {"code": "年齢", "type": "NUMBER", "label": "年齢", "minValue": "0", "maxValue": "150"},
        {"code": "区分", "type": "DROP_DOWN", "label": "区分", "options": ["母子保健", "児童福祉", "その他"]},
        {"code": "相談日", "type": "DATE", "label": "相談日"},
        {"code": "対応項目", "type": "CHECK_BOX", "label": "対応項目", "options": ["訪問", "電話", "来所"]},
        {"code": "担当者", "type": "USER_SELECT", "label": "担当者"},
        {"code": "備考", "type": "MULTI_LINE_TEXT", "label": "備考"},
        {"code": "支援内容", "type": "SUBTABLE", "label": "支援内容", "fields": [
            {"code": "支援日", "type": "DATE", "label": "支援日"},
            {"code": "内容", "type": "SINGLE_LINE_TEXT", "label": "内容"},
        ]},
    ],
}


@pytest.fixture
def case_app(any_admin_api):
    resp = any_admin_api.post("/api/v1/apps?deploy=true", json=CASE_APP)
    assert resp.status_code == 201, resp.json
    return any_admin_api, resp.json["id"]


def test_create_get_update_delete_round_trip(case_app):
    api, app_id = case_app
    resp = api.post(f"/api/v1/apps/{app_id}/records", json={"record": {
        "氏名": "山田 花子", "受付番号": "R7-001", "年齢": "34", "区分": "母子保健", "相談日": "令和7年4月1日",
        "対応項目": ["訪問", "電話"], "担当者": ["admin"],
        "支援内容": [{"value": {"支援日": "2025-04-02", "内容": "家庭訪問"}}]}})
    assert resp.status_code == 201, resp.json
    rid = resp.json["id"]
    assert resp.json["revision"] == 1

    rec = api.get(f"/api/v1/apps/{app_id}/records/{rid}").json
    assert rec["$id"] == rid and rec["$revision"] == 1
    assert rec["氏名"] == "山田 花子"
    assert rec["相談日"] == "2025-04-01"          # era date normalised to ISO
    assert rec["年齢"] == "34"
    assert rec["対応項目"] == ["訪問", "電話"]
    assert rec["担当者"] == [{"code": "admin", "name": "Admin"}]
    assert rec["作成者"]["code"] == "admin"
    assert rec["支援内容"][0]["value"] == {"支援日": "2025-04-02", "内容": "家庭訪問"}
    row_id = rec["支援内容"][0]["id"]

    resp = api.put(f"/api/v1/apps/{app_id}/records/{rid}", json={"revision": 1, "record": {
        "年齢": 35, "支援内容": [{"id": row_id, "value": {"内容": "家庭訪問（再）"}},
                               {"value": {"支援日": "2025-05-01", "内容": "電話"}}]}})
    assert resp.status_code == 200, resp.json
    assert resp.json["revision"] == 2
    rec = api.get(f"/api/v1/apps/{app_id}/records/{rid}").json
    assert rec["年齢"] == "35" and rec["氏名"] == "山田 花子"
    assert [r["value"]["内容"] for r in rec["支援内容"]] == ["家庭訪問（再）", "電話"]
    assert rec["支援内容"][0]["id"] == row_id and rec["支援内容"][0]["value"]["支援日"] == "2025-04-02"

    # a stale revision is refused with 409, nothing changes
    resp = api.put(f"/api/v1/apps/{app_id}/records/{rid}", json={"revision": 1, "record": {"年齢": 99}})
    assert resp.status_code == 409 and resp.json["code"] == "CONFLICT"
    assert "ほかのユーザー" in resp.json["message"]
    assert api.get(f"/api/v1/apps/{app_id}/records/{rid}").json["年齢"] == "35"

    hist = api.get(f"/api/v1/apps/{app_id}/records/{rid}/history").json
    assert [h["revision"] for h in hist] == [1, 2]
    assert hist[1]["diff"]["年齢"] == {"old": "34", "new": "35"}
    assert hist[1]["snapshot"]["氏名"] == "山田 花子"

    assert api.delete(f"/api/v1/apps/{app_id}/records/{rid}?revision=2").status_code == 200
    assert api.get(f"/api/v1/apps/{app_id}/records/{rid}").status_code == 404
    hist = api.get(f"/api/v1/apps/{app_id}/records/{rid}/history").json
    assert hist[-1]["action"] == "delete" and hist[-1]["snapshot"]["氏名"] == "山田 花子"


def test_bad_values_are_located_and_japanese(case_app):
    api, app_id = case_app
    resp = api.post(f"/api/v1/apps/{app_id}/records", json={"record": {
        "年齢": "abc", "区分": "不明", "相談日": "2025-02-30", "謎": 1}})
    assert resp.status_code == 400
    body = resp.json
    assert body["code"] == "VALIDATION_ERROR"
    errors = body["errors"]
    assert set(errors) >= {"record.氏名", "record.年齢", "record.区分", "record.相談日", "record.謎"}
    assert errors["record.氏名"] == ["必須です。"]
    en = ApiClient(api.app, api.token, lang="en").post(
        f"/api/v1/apps/{app_id}/records", json={"record": {"年齢": "1"}}).json
    assert en["errors"]["record.氏名"] == ["Required."]


def test_bulk_create_is_all_or_nothing(case_app):
    api, app_id = case_app
    good = [{"氏名": f"利用者{i}", "受付番号": f"N-{i}"} for i in range(10)]
    bad = good + [{"氏名": ""}]
    resp = api.post(f"/api/v1/apps/{app_id}/records", json={"records": bad})
    assert resp.status_code == 400
    assert list(resp.json["errors"]) == ["records[10].氏名"]
    assert api.get(f"/api/v1/apps/{app_id}/records?totalCount=true").json["totalCount"] == 0
    resp = api.post(f"/api/v1/apps/{app_id}/records", json={"records": good})
    assert resp.status_code == 201 and len(resp.json["ids"]) == 10
    too_many = [{"氏名": "x"}] * 1001
    resp = api.post(f"/api/v1/apps/{app_id}/records", json={"records": too_many})
    assert resp.status_code == 400 and "1000" in resp.json["errors"]["records"][0]


def test_unique_semantics(case_app):
    api, app_id = case_app
    url = f"/api/v1/apps/{app_id}/records"
    assert api.post(url, json={"record": {"氏名": "a", "受付番号": "K-1"}}).status_code == 201
    resp = api.post(url, json={"record": {"氏名": "b", "受付番号": "K-1"}})
    assert resp.status_code == 400 and "record.受付番号" in resp.json["errors"]
    # "" is never a unique duplicate
    assert api.post(url, json={"record": {"氏名": "c", "受付番号": ""}}).status_code == 201
    assert api.post(url, json={"record": {"氏名": "d"}}).status_code == 201
    # duplicates inside one bulk request are caught too
    resp = api.post(url, json={"records": [{"氏名": "e", "受付番号": "K-2"}, {"氏名": "f", "受付番号": "K-2"}]})
    assert resp.status_code == 400 and "records[1].受付番号" in resp.json["errors"]


def test_update_by_key_upsert_and_bulk_update(case_app):
    api, app_id = case_app
    url = f"/api/v1/apps/{app_id}/records"
    api.post(url, json={"records": [{"氏名": "a", "受付番号": "K-1"}, {"氏名": "b", "受付番号": "K-2"}]})
    resp = api.put(url, json={"updateKey": {"field": "受付番号", "value": "K-1"}, "record": {"年齢": 20}})
    assert resp.status_code == 200 and resp.json["revision"] == 2
    resp = api.put(url, json={"updateKey": {"field": "氏名", "value": "a"}, "record": {"年齢": 20}})
    assert resp.status_code == 400  # not a unique field
    resp = api.put(url, json={"updateKey": {"field": "受付番号", "value": "K-9"}, "record": {"年齢": 20}})
    assert resp.status_code == 404
    resp = api.put(url, json={"upsert": True, "updateKey": {"field": "受付番号", "value": "K-9"},
                              "record": {"氏名": "新規"}})
    assert resp.status_code == 200 and resp.json["created"] is True
    recs = api.get(url + '?query=受付番号 = "K-9"').json["records"]
    assert [r["氏名"] for r in recs] == ["新規"]
    # bulk update: one bad item -> nothing written
    ids = [r["$id"] for r in api.get(url + "?query=order by $id asc").json["records"]]
    resp = api.put(url, json={"records": [{"id": ids[0], "record": {"年齢": 1}},
                                          {"id": ids[1], "record": {"年齢": "x"}}]})
    assert resp.status_code == 400 and "records[1].record.年齢" in resp.json["errors"]
    assert api.get(f"{url}/{ids[0]}").json["年齢"] == "20"
    resp = api.put(url, json={"records": [{"id": ids[0], "record": {"年齢": 1}},
                                          {"id": ids[1], "record": {"年齢": 2}}]})
    assert resp.status_code == 200, resp.json


def test_query_filter_sort_page_and_total(case_app):
    api, app_id = case_app
    url = f"/api/v1/apps/{app_id}/records"
    recs = [{"氏名": f"東京都板橋区の利用者{i}", "年齢": i, "区分": ["母子保健", "児童福祉"][i % 2],
             "対応項目": [["訪問"], ["電話"], ["訪問", "来所"]][i % 3]} for i in range(30)]
    assert api.post(url, json={"records": recs}).status_code == 201
    q = '区分 in ("母子保健") and 年齢 >= 10 order by 年齢 desc limit 5 offset 2'
    body = api.get(url, query_string={"query": q, "totalCount": "true"}).json
    assert [r["年齢"] for r in body["records"]] == ["24", "22", "20", "18", "16"]
    assert body["totalCount"] == 10
    body = api.get(url, query_string={"query": '氏名 like "板橋"', "fields": "氏名,年齢"}).json
    assert len(body["records"]) == 30 and set(body["records"][0]) == {"$id", "$revision", "氏名", "年齢"}
    body = api.get(url, query_string={"query": '対応項目 in ("来所")', "totalCount": "true"}).json
    assert body["totalCount"] == 10
    resp = api.get(url, query_string={"query": '年齢 like "1"'})
    assert resp.status_code == 400 and resp.json["errors"]["query"]
    resp = api.get(url, query_string={"query": '年齢 = '})
    assert resp.status_code == 400


def test_cursor_reads_everything_once(case_app):
    api, app_id = case_app
    url = f"/api/v1/apps/{app_id}/records"
    api.post(url, json={"records": [{"氏名": f"n{i}", "年齢": i} for i in range(25)]})
    cur = api.post(f"/api/v1/apps/{app_id}/cursors", json={"query": "年齢 >= 5", "size": 7}).json
    assert cur["totalCount"] == 20
    seen, cid = [], cur["id"]
    while True:
        page = api.get(f"/api/v1/apps/{app_id}/cursors/next", query_string={"id": cid}).json
        seen += [r["年齢"] for r in page["records"]]
        if not page["next"]:
            break
        cid = page["cursor"]
    assert seen == [str(i) for i in range(5, 25)]
    bad = api.get(f"/api/v1/apps/{app_id}/cursors/next", query_string={"id": cid[:-3] + "xyz"})
    assert bad.status_code == 400


def test_files_upload_attach_download(case_app, tmp_path):
    api, app_id = case_app
    definition = api.get(f"/api/v1/apps/{app_id}").json["definition"]
    definition["fields"].append({"code": "添付", "type": "FILE", "label": "添付"})
    assert api.put(f"/api/v1/apps/{app_id}/draft", json={"definition": definition}).status_code == 200
    assert api.post(f"/api/v1/apps/{app_id}/deploy").status_code == 200
    import io
    resp = api.client.post("/api/v1/files", data={"file": (io.BytesIO("申請書".encode()), "申請書.txt")},
                           headers=api._headers(), content_type="multipart/form-data")
    assert resp.status_code == 201, resp.json
    key = resp.json["fileKey"]
    rid = api.post(f"/api/v1/apps/{app_id}/records", json={"record": {"氏名": "x", "添付": [{"fileKey": key}]}}).json["id"]
    rec = api.get(f"/api/v1/apps/{app_id}/records/{rid}").json
    assert rec["添付"][0]["name"] == "申請書.txt"
    dl = api.get(f"/api/v1/files/{key}")
    assert dl.status_code == 200 and dl.data == "申請書".encode()
    assert dl.headers["Content-Disposition"].startswith("attachment")
    resp = api.post(f"/api/v1/apps/{app_id}/records", json={"record": {"氏名": "y", "添付": [{"fileKey": "nope"}]}})
    assert resp.status_code == 400 and "record.添付" in resp.json["errors"]


def test_nothing_is_anonymous(app):
    client = app.test_client()
    assert client.get("/api/v1/apps").status_code == 401
    assert client.get("/api/v1/apps", headers={"Authorization": "Bearer kmk_wrong"}).status_code == 401
    assert client.get("/api/openapi.json").status_code == 200


def test_session_login(app):
    make_user(app, "clerk", is_admin=False, password="password-1234")
    client = app.test_client()
    assert client.post("/api/v1/auth/login", json={"login": "clerk", "password": "nope"}).status_code == 401
    assert client.post("/api/v1/auth/login", json={"login": "clerk", "password": "password-1234"}).status_code == 200
    assert client.get("/api/v1/me").json["code"] == "clerk"


def test_non_admin_cannot_define_apps(app):
    _u, token = make_user(app, "clerk", is_admin=False)
    api = ApiClient(app, token)
    assert api.post("/api/v1/apps", json=CASE_APP).status_code == 403


def test_root_page_and_unknown_api_path(app):
    client = app.test_client()
    page = client.get("/")
    assert page.status_code == 200 and "kumiki" in page.get_data(as_text=True)
    resp = client.get("/api/v1/nope", headers={"Accept-Language": "ja"})
    assert resp.status_code in (401, 404) and resp.json["code"] in ("UNAUTHORIZED", "NOT_FOUND")


def test_cursor_refuses_order_by_and_other_apps(case_app):
    api, app_id = case_app
    resp = api.post(f"/api/v1/apps/{app_id}/cursors", json={"query": "order by 年齢 asc"})
    assert resp.status_code == 400
    cid = api.post(f"/api/v1/apps/{app_id}/cursors", json={}).json["id"]
    other = api.post("/api/v1/apps?deploy=true", json={**CASE_APP, "code": "other"}).json["id"]
    assert api.get(f"/api/v1/apps/{other}/cursors/next", query_string={"id": cid}).status_code == 400


def test_change_one_time_password(app):
    make_user(app, "clerk", is_admin=False, password="password-1234")
    client = app.test_client()
    csrf = {"X-CSRF-Token": client.post("/api/v1/auth/login", json={"login": "clerk", "password": "password-1234"}).json["csrf_token"]}
    resp = client.post("/api/v1/me/password", json={"current": "wrong", "new": "another-password-1"}, headers=csrf)
    assert resp.status_code == 400
    resp = client.post("/api/v1/me/password", json={"current": "password-1234", "new": "short"}, headers=csrf)
    assert resp.status_code == 400 and "10文字以上" in resp.json["errors"]["new"][0]
    resp = client.post("/api/v1/me/password", json={"current": "password-1234", "new": "another-password-1"}, headers=csrf)
    assert resp.status_code == 204
    client.post("/api/v1/auth/logout", headers=csrf)
    assert client.post("/api/v1/auth/login", json={"login": "clerk", "password": "password-1234"}).status_code == 401
    ok = client.post("/api/v1/auth/login", json={"login": "clerk", "password": "another-password-1"})
    assert ok.status_code == 200 and ok.json["must_change_password"] is False


def test_organization_and_group_selections_must_exist(admin_api):
    from kumiki import directory

    with admin_api.app.extensions["kumiki"].Session() as s:
        directory.create_organization(s, "kenko", "健康推進課")
        directory.create_group(s, "hokenshi", "保健師")
        s.commit()
    app_id = admin_api.post("/api/v1/apps?deploy=true", json={"name": "x", "fields": [
        {"code": "組織", "type": "ORGANIZATION_SELECT", "label": "組織"},
        {"code": "グループ", "type": "GROUP_SELECT", "label": "グループ"}]}).json["id"]
    url = f"/api/v1/apps/{app_id}/records"
    ok = admin_api.post(url, json={"record": {"組織": ["kenko"], "グループ": ["hokenshi"]}})
    assert ok.status_code == 201
    bad = admin_api.post(url, json={"record": {"組織": ["nope"], "グループ": ["nope"]}})
    assert bad.status_code == 400
    assert "組織「nope」は存在しません。" in bad.json["errors"]["record.組織"]
    assert "record.グループ" in bad.json["errors"]


def test_personal_tokens_over_the_api(admin_api):
    resp = admin_api.post("/api/v1/me/tokens", json={"name": "スクリプト"})
    assert resp.status_code == 201, resp.json
    secret = resp.json["token"]
    assert secret.startswith("kmk_") and resp.json["created_at"]
    assert ApiClient(admin_api.app, secret).get("/api/v1/me").json["code"] == "admin"
    assert admin_api.delete(f"/api/v1/me/tokens/{resp.json['id']}").status_code == 204
    assert ApiClient(admin_api.app, secret).get("/api/v1/me").status_code == 401
