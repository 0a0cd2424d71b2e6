"""The permission matrix: users × rules × every read path. Nothing leaks.

Every GET route that can return record data must be exercised here: `test_every_read_path_is_covered`
fails when a new one appears without being added to READ_PATHS (and checked below).
"""
from __future__ import annotations

import io
import json

import pytest

from tests.conftest import ApiClient, make_user

SECRET = "秘密"          # appears only in the hidden field 相談内容

CASE_APP = {
    "name": "ケース記録",
    "fields": [
        {"code": "氏名", "type": "SINGLE_LINE_TEXT", "label": "氏名"},
        {"code": "センター", "type": "DROP_DOWN", "label": "センター", "options": ["板橋", "上板橋"]},
        {"code": "担当者", "type": "USER_SELECT", "label": "担当者"},
        {"code": "相談内容", "type": "MULTI_LINE_TEXT", "label": "相談内容"},
        {"code": "添付", "type": "FILE", "label": "添付"},
        {"code": "支援", "type": "SUBTABLE", "label": "支援", "fields": [
            {"code": "支援メモ", "type": "SINGLE_LINE_TEXT", "label": "支援メモ"}]},
    ],
    "permissions": {
        "app": [
            {"entity": {"type": "USER", "code": "outsider"}, "view": False},
            {"entity": {"type": "EVERYONE"}, "view": True, "add": True, "edit": True, "delete": True},
        ],
        "record": [
            {"condition": 'センター in ("板橋")', "entities": [
                {"entity": {"type": "USER", "code": "itabashi"}, "view": True, "edit": True, "delete": True},
                {"entity": {"type": "FIELD_ENTITY", "code": "担当者"}, "view": True, "edit": False},
            ]},
            {"condition": "", "entities": [
                {"entity": {"type": "USER", "code": "kami"}, "view": True, "edit": True, "delete": False},
                {"entity": {"type": "CREATOR"}, "view": True},
            ]},
        ],
        "field": [
            {"code": "相談内容", "entities": [
                {"entity": {"type": "USER", "code": "itabashi"}, "access": "edit"},
                {"entity": {"type": "USER", "code": "kami"}, "access": "view"},
                {"entity": {"type": "EVERYONE"}, "access": "none"},
            ]},
            {"code": "支援メモ", "entities": [
                {"entity": {"type": "USER", "code": "itabashi"}, "access": "edit"},
                {"entity": {"type": "EVERYONE"}, "access": "none"},
            ]},
        ],
    },
}

# user -> records (by name) they may see, and whether they see 相談内容 / 支援メモ
EXPECTED = {
    "itabashi": ({"R1", "R3"}, True, True),
    "kami": ({"R2", "R4"}, True, False),
    "tanaka": ({"R1", "R4"}, False, False),   # R1 by 担当者; R4 they created
    "outsider": (set(), False, False),         # no app view right at all
}

READ_PATHS = {
    "GET /api/v1/apps",
    "GET /api/v1/apps/<int:app_id>",
    "GET /api/v1/apps/<int:app_id>/records",
    "GET /api/v1/apps/<int:app_id>/records/<int:record_id>",
    "GET /api/v1/apps/<int:app_id>/records/<int:record_id>/history",
    "GET /api/v1/apps/<int:app_id>/cursors/next",
    "POST /api/v1/apps/<int:app_id>/cursors",
    "GET /api/v1/files/<string:file_key>",
    "GET /api/v1/apps/<int:app_id>/draft",
    "GET /api/v1/apps/<int:app_id>/versions",
    "GET /api/v1/apps/<int:app_id>/versions/<int:version>",
    "GET /api/v1/apps/<int:app_id>/tokens",
    "GET /api/v1/apps/<int:app_id>/aggregate",
    "POST /api/v1/apps/<int:app_id>/aggregate",
    "GET /api/v1/apps/<int:app_id>/records/<int:record_id>/diff",
    "GET /api/v1/apps/<int:app_id>/trash",
    "GET /api/v1/apps/<int:app_id>/records/<int:record_id>/comments",
}
# GET routes that never return record data, with the reason.
NOT_RECORD_DATA = {
    "GET /api/v1/apps/<int:app_id>/plugins": "plugin switches and settings of the app, no records",
    "GET /api/v1/apps/<int:app_id>/plugins/<name>": "one plugin's settings, no records",
}


@pytest.fixture
def world(any_app):
    app = any_app
    _a, admin_token = make_user(app, "admin")
    tokens = {"admin": admin_token}
    for code in ("itabashi", "kami", "tanaka", "outsider"):
        tokens[code] = make_user(app, code, is_admin=False)[1]
    apis = {code: ApiClient(app, tok) for code, tok in tokens.items()}
    admin = apis["admin"]
    resp = admin.post("/api/v1/apps?deploy=true", json=CASE_APP)
    assert resp.status_code == 201, resp.json
    app_id = resp.json["id"]
    upload = admin.client.post("/api/v1/files", data={"file": (io.BytesIO(b"scan"), "scan.pdf")},
                               headers=admin._headers(), content_type="multipart/form-data")
    file_key = upload.json["fileKey"]
    url = f"/api/v1/apps/{app_id}/records"
    records = {
        "R1": {"氏名": "R1", "センター": "板橋", "担当者": ["tanaka"], "相談内容": f"{SECRET}A",
               "支援": [{"value": {"支援メモ": f"{SECRET}M"}}]},
        "R2": {"氏名": "R2", "センター": "上板橋", "相談内容": f"{SECRET}B", "添付": [{"fileKey": file_key}]},
        "R3": {"氏名": "R3", "センター": "板橋", "相談内容": f"{SECRET}C"},
    }
    ids = {}
    for name, values in records.items():
        r = admin.post(url, json={"record": values})
        assert r.status_code == 201, r.json
        ids[name] = r.json["id"]
    # tanaka creates R4 (上板橋): visible to kami (rule 2) and to tanaka as its creator
    r = apis["tanaka"].post(url, json={"record": {"氏名": "R4", "センター": "上板橋"}})
    assert r.status_code == 201, r.json
    ids["R4"] = r.json["id"]
    admin.put(f"{url}/{ids['R1']}", json={"record": {"氏名": "R1"}})   # a second revision for history
    return {"apis": apis, "app_id": app_id, "ids": ids, "url": url, "file_key": file_key}


def _names(records):
    return {r["氏名"] for r in records}


@pytest.mark.parametrize("user", sorted(EXPECTED))
def test_every_read_path_respects_the_rules(world, user):
    api, app_id, ids, url = world["apis"][user], world["app_id"], world["ids"], world["url"]
    visible, sees_secret, sees_memo = EXPECTED[user]
    bodies = []

    def get(path, **kw):
        resp = api.get(path, **kw)
        bodies.append(resp.get_data(as_text=True))
        return resp

    apps = get("/api/v1/apps").json
    assert (app_id in [a["id"] for a in apps]) == bool(visible or user != "outsider")
    detail = get(f"/api/v1/apps/{app_id}")
    if user == "outsider":
        assert detail.status_code == 403
    else:
        assert detail.status_code == 200 and "permissions" not in detail.json["definition"]
    for path in (f"/api/v1/apps/{app_id}/draft", f"/api/v1/apps/{app_id}/versions",
                 f"/api/v1/apps/{app_id}/versions/1", f"/api/v1/apps/{app_id}/tokens",
                 f"/api/v1/apps/{app_id}/trash"):
        assert get(path).status_code == 403

    listing = get(url, query_string={"totalCount": "true"})
    if user == "outsider":
        assert listing.status_code == 403
    else:
        assert _names(listing.json["records"]) == visible
        assert listing.json["totalCount"] == len(visible)
        for rec in listing.json["records"]:
            assert ("相談内容" in rec) == sees_secret
            for row in rec["支援"]:
                assert ("支援メモ" in row["value"]) == sees_memo

    for name, rid in ids.items():
        one = get(f"{url}/{rid}")
        hist = get(f"{url}/{rid}/history")
        comments = get(f"{url}/{rid}/comments")
        assert comments.status_code == (200 if name in visible else 403 if user == "outsider" else 404)
        diff = get(f"{url}/{rid}/diff", query_string={"from": 1, "to": 2 if name == "R1" else 1})
        assert diff.status_code == (200 if name in visible else 403 if user == "outsider" else 404)
        if name in visible:
            assert one.status_code == 200 and ("相談内容" in one.json) == sees_secret
            assert hist.status_code == 200
            for h in hist.json:
                assert ("相談内容" in (h["snapshot"] or {})) == (sees_secret and "相談内容" in h["snapshot"])
        else:
            assert one.status_code in (403, 404) and hist.status_code in (403, 404)

    cursor = api.post(f"/api/v1/apps/{app_id}/cursors", json={"size": 2})
    bodies.append(cursor.get_data(as_text=True))
    if user == "outsider":
        assert cursor.status_code == 403
    else:
        assert cursor.json["totalCount"] == len(visible)
        seen, cid = set(), cursor.json["id"]
        while cid:
            page = get(f"/api/v1/apps/{app_id}/cursors/next", query_string={"id": cid}).json
            seen |= _names(page["records"])
            cid = page["cursor"]
        assert seen == visible

    dl = get(f"/api/v1/files/{world['file_key']}")
    assert (dl.status_code == 200) == ("R2" in visible)

    # filtering or sorting on a hidden field would reveal its values: refused
    probe = get(url, query_string={"query": f'相談内容 like "{SECRET}A"'})
    if user == "outsider":
        assert probe.status_code == 403
    elif sees_secret:
        assert probe.status_code == 200
    else:
        assert probe.status_code == 400 and "権限" in probe.json["errors"]["query"][0]

    # aggregations count only the records the user may see; hidden fields cannot be grouped or measured
    agg = get(f"/api/v1/apps/{app_id}/aggregate", query_string={"group_by": "センター"})
    agg_post = api.post(f"/api/v1/apps/{app_id}/aggregate", json={"group_by": [{"field": "センター"}]})
    bodies.append(agg_post.get_data(as_text=True))
    if user == "outsider":
        assert agg.status_code == 403 and agg_post.status_code == 403
    else:
        centres = {}
        for name in visible:
            centre = {"R1": "板橋", "R2": "上板橋", "R3": "板橋", "R4": "上板橋"}[name]
            centres[centre] = centres.get(centre, 0) + 1
        for resp in (agg, agg_post):
            assert resp.status_code == 200, resp.json
            assert {g["keys"][0]: g["values"][0] for g in resp.json["groups"]} == centres
            assert resp.json["totals"] == [len(visible)]
        hidden_group = get(f"/api/v1/apps/{app_id}/aggregate", query_string={"group_by": "相談内容"})
        hidden_measure = get(f"/api/v1/apps/{app_id}/aggregate", query_string={"measure": "count:相談内容"})
        hidden_query = get(f"/api/v1/apps/{app_id}/aggregate",
                           query_string={"query": f'相談内容 like "{SECRET}A"', "group_by": "センター"})
        if sees_secret:
            assert hidden_measure.status_code == 200 and hidden_query.status_code == 200
        else:
            assert hidden_group.status_code == 400 and "権限" in hidden_group.json["errors"]["group_by[0].field"][0]
            assert hidden_measure.status_code == 400 and "権限" in hidden_measure.json["errors"]["measures[0].field"][0]
            assert hidden_query.status_code == 400 and "権限" in hidden_query.json["errors"]["query"][0]

    if not sees_secret:
        assert not any(SECRET in b for b in bodies), "a hidden value leaked"


def test_writes_respect_the_rules(world):
    apis, url, ids = world["apis"], world["url"], world["ids"]
    # tanaka may see R1 (担当者) but not edit it
    resp = apis["tanaka"].put(f"{url}/{ids['R1']}", json={"record": {"氏名": "x"}})
    assert resp.status_code == 403
    # kami may edit R2 but not the view-only field, and may not delete it
    assert apis["kami"].put(f"{url}/{ids['R2']}", json={"record": {"氏名": "R2"}}).status_code == 200
    resp = apis["kami"].put(f"{url}/{ids['R2']}", json={"record": {"相談内容": "上書き"}})
    assert resp.status_code == 400 and "record.相談内容" in resp.json["errors"]
    assert apis["kami"].delete(f"{url}/{ids['R2']}").status_code == 403
    # records one cannot see are "not found", for edits and deletes alike
    assert apis["kami"].put(f"{url}/{ids['R1']}", json={"record": {"氏名": "x"}}).status_code == 404
    assert apis["kami"].delete(f"{url}/{ids['R3']}").status_code == 404
    # the outsider has no app rights
    assert apis["outsider"].post(url, json={"record": {"氏名": "x"}}).status_code == 403
    # itabashi may do everything on 板橋 records; the history keeps every field for the admin
    assert apis["itabashi"].put(f"{url}/{ids['R3']}", json={"record": {"相談内容": "更新"}}).status_code == 200
    assert apis["itabashi"].delete(f"{url}/{ids['R3']}").status_code == 200
    hist = apis["admin"].get(f"{url}/{ids['R3']}/history").json
    assert hist[-1]["action"] == "delete" and hist[-1]["snapshot"]["相談内容"] == "更新"
    # a deleted record's history is for those who manage the app
    assert apis["itabashi"].get(f"{url}/{ids['R3']}/history").status_code == 404


def test_bad_permission_rules_are_refused_with_located_errors(admin_api):
    bad = json.loads(json.dumps(CASE_APP))
    bad["permissions"]["record"][0]["condition"] = '存在しない = "1"'
    bad["permissions"]["record"][0]["entities"][1]["entity"]["code"] = "氏名"
    bad["permissions"]["field"][0]["entities"][0]["access"] = "write"
    resp = admin_api.post("/api/v1/apps", json=bad)
    assert resp.status_code == 400
    errors = resp.json["errors"]
    assert "permissions.record[0].condition" in errors
    assert "permissions.record[0].entities[1].entity.code" in errors
    assert "permissions.field[0].entities[0].access" in errors


def test_every_read_path_is_covered(app):
    routes = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/apps") and not rule.rule.startswith("/api/v1/files"):
            continue
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            if method == "GET" or rule.rule.endswith("/cursors"):
                routes.add(f"{method} {rule.rule}")
    unknown = routes - READ_PATHS - set(NOT_RECORD_DATA)
    assert not unknown, f"new read paths need a permission check and a case in this test: {unknown}"


CENTRE_APP = {
    "name": "こども家庭センター相談",
    "fields": [
        {"code": "氏名", "type": "SINGLE_LINE_TEXT", "label": "氏名"},
        {"code": "担当組織", "type": "ORGANIZATION_SELECT", "label": "担当組織"},
        {"code": "所見", "type": "MULTI_LINE_TEXT", "label": "所見"},
    ],
    "permissions": {
        "app": [{"entity": {"type": "ORGANIZATION", "code": "健康生きがい部", "includeSubs": True},
                 "view": True, "add": True, "edit": True, "delete": False}],
        "record": [{"condition": "", "entities": [
            {"entity": {"type": "GROUP", "code": "統括"}, "view": True, "edit": True},
            {"entity": {"type": "FIELD_ENTITY", "code": "担当組織"}, "view": True, "edit": True}]}],
        "field": [{"code": "所見", "entities": [
            {"entity": {"type": "ORGANIZATION", "code": "健康推進課", "includeSubs": True}, "access": "view"},
            {"entity": {"type": "EVERYONE"}, "access": "none"}]}],
    },
}


def test_organizations_groups_and_sub_organizations(any_app):
    from kumiki import directory

    app = any_app
    _a, admin_token = make_user(app, "admin")
    tokens = {c: make_user(app, c, is_admin=False)[1] for c in ("center_a", "center_b", "chief", "other_dept")}
    ext = app.extensions["kumiki"]
    with ext.Session() as s:
        directory.create_organization(s, "板橋区", "板橋区")
        directory.create_organization(s, "健康生きがい部", "健康生きがい部", parent="板橋区")
        directory.create_organization(s, "健康推進課", "健康推進課", parent="健康生きがい部")
        directory.create_organization(s, "板橋健康福祉センター", "板橋健康福祉センター", parent="健康推進課")
        directory.create_organization(s, "上板橋健康福祉センター", "上板橋健康福祉センター", parent="健康推進課")
        directory.create_organization(s, "区民文化部", "区民文化部", parent="板橋区")
        directory.create_group(s, "統括", "統括保健師")
        directory.add_organization_member(s, "板橋健康福祉センター", "center_a", primary=True)
        directory.add_organization_member(s, "上板橋健康福祉センター", "center_b", primary=True)
        directory.add_organization_member(s, "健康生きがい部", "chief", primary=True)
        directory.add_group_members(s, "統括", ["chief"])
        directory.add_organization_member(s, "区民文化部", "other_dept", primary=True)
        s.commit()
    admin = ApiClient(app, admin_token)
    app_id = admin.post("/api/v1/apps?deploy=true", json=CENTRE_APP).json["id"]
    url = f"/api/v1/apps/{app_id}/records"
    admin.post(url, json={"records": [
        {"氏名": "A", "担当組織": ["板橋健康福祉センター"], "所見": "所見A"},
        {"氏名": "B", "担当組織": ["上板橋健康福祉センター"], "所見": "所見B"}]})

    def names(code):
        resp = ApiClient(app, tokens[code]).get(url)
        return resp.status_code, sorted(r["氏名"] for r in resp.json.get("records", [])), resp.get_data(as_text=True)

    status, seen, body = names("center_a")
    assert status == 200 and seen == ["A"] and "所見A" in body            # own centre, sub-org of 健康推進課
    status, seen, body = names("center_b")
    assert status == 200 and seen == ["B"] and "所見A" not in body
    status, seen, body = names("chief")
    assert status == 200 and seen == ["A", "B"] and "所見" not in body    # 統括 sees all, not the 所見 field
    status, _seen, _body = names("other_dept")
    assert status == 403                                                   # outside 健康生きがい部


def test_app_tokens_have_their_scopes_on_their_app_only(world):
    admin, app_id, url, ids = world["apis"]["admin"], world["app_id"], world["url"], world["ids"]
    resp = admin.post(f"/api/v1/apps/{app_id}/tokens", json={"name": "連携", "scopes": ["view", "add"]})
    assert resp.status_code == 201, resp.json
    secret, token_id = resp.json["token"], resp.json["id"]
    assert secret.startswith("kma_") and "token" not in admin.get(f"/api/v1/apps/{app_id}/tokens").json[0]
    client = admin.app.test_client()
    h = {"X-Kumiki-App-Token": secret}
    listing = client.get(url, headers=h)
    # record rules apply as to "everyone": only records no rule's condition holds back... none here
    # (rule 2 has no condition and names no one the token is), so the token sees nothing, and no 秘密
    assert listing.status_code == 200 and SECRET not in listing.get_data(as_text=True)
    created = client.post(url, json={"record": {"氏名": "連携から"}}, headers=h)
    assert created.status_code == 201
    assert client.put(f"{url}/{ids['R1']}", json={"record": {"氏名": "x"}}, headers=h).status_code == 403
    assert client.get("/api/v1/apps", headers=h).status_code == 401          # not a user
    other = admin.post("/api/v1/apps?deploy=true", json={**CASE_APP, "permissions": {}}).json["id"]
    assert client.get(f"/api/v1/apps/{other}/records", headers=h).status_code == 403
    with admin.app.extensions["kumiki"].Session() as s:
        from kumiki import audit
        entry = audit.query(s, action="record.create", app_id=app_id, limit=1)[0][0]
    assert entry.user_code == f"apptoken:{token_id}"
    assert admin.delete(f"/api/v1/apps/{app_id}/tokens/{token_id}").status_code == 204
    assert client.get(url, headers=h).status_code == 401


def test_hidden_records_answer_404_and_the_attempt_is_audited(world):
    from kumiki import audit

    kami, ids, url = world["apis"]["kami"], world["ids"], world["url"]
    assert kami.get(f"{url}/{ids['R1']}").status_code == 404
    assert kami.get(f"{url}/999999").status_code == 404          # truly missing: nothing to audit
    with kami.app.extensions["kumiki"].Session() as s:
        entries = audit.query(s, action="access.denied", user="kami")[0]
    assert [(e.record_id, e.detail["reason"]) for e in entries] == [(ids["R1"], "record.hidden")]


def test_primary_organization_in_record_rules(any_app):
    from kumiki import directory

    app = any_app
    _a, admin_token = make_user(app, "admin")
    tokens = {c: make_user(app, c, is_admin=False)[1] for c in ("sato", "suzuki")}
    with app.extensions["kumiki"].Session() as s:
        directory.create_organization(s, "itabashi-hc", "板橋健康福祉センター")
        directory.create_organization(s, "kami-hc", "上板橋健康福祉センター")
        directory.add_organization_member(s, "itabashi-hc", "sato", primary=True)
        directory.add_organization_member(s, "kami-hc", "suzuki", primary=True)
        s.commit()
    admin = ApiClient(app, admin_token)
    app_id = admin.post("/api/v1/apps?deploy=true", json={
        "name": "所属センター", "fields": [
            {"code": "氏名", "type": "SINGLE_LINE_TEXT", "label": "氏名"},
            {"code": "センター", "type": "ORGANIZATION_SELECT", "label": "センター"}],
        "permissions": {"record": [{"condition": "センター in (PRIMARY_ORGANIZATION())", "entities": [
            {"entity": {"type": "EVERYONE"}, "view": True}]},
            {"condition": "", "entities": []}]}}).json["id"]
    url = f"/api/v1/apps/{app_id}/records"
    admin.post(url, json={"records": [{"氏名": "A", "センター": ["itabashi-hc"]},
                                      {"氏名": "B", "センター": ["kami-hc"]}]})
    seen = {c: [r["氏名"] for r in ApiClient(app, t).get(url).json["records"]] for c, t in tokens.items()}
    assert seen == {"sato": ["A"], "suzuki": ["B"]}
