"""REST API of the directory: /organizations, /groups, /users/<code>/…, /directory/import."""
from __future__ import annotations

import io

import pytest

from tests.conftest import ApiClient, make_user

V1 = "/api/v1"


@pytest.fixture
def api(any_admin_api):
    for code, name, parent in [("itabashi", "板橋区", None), ("kenko-ikigai", "健康生きがい部", "itabashi"),
                               ("kenko-suishin", "健康推進課", "kenko-ikigai"),
                               ("itabashi-hc", "板橋健康福祉センター", "kenko-suishin")]:
        resp = any_admin_api.post(f"{V1}/organizations", json={"code": code, "name": name, "parent": parent})
        assert resp.status_code == 201, resp.json
    return any_admin_api


@pytest.fixture
def staff(api):
    """A logged-in user who is not an administrator."""
    _u, token = make_user(api.app, "sato", is_admin=False)
    return ApiClient(api.app, token)


def upload(api, data: bytes, **params):
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return api.client.post(f"{V1}/directory/import" + (f"?{query}" if query else ""),
                           data={"file": (io.BytesIO(data), "directory.csv")},
                           headers=api._headers(), content_type="multipart/form-data")


def test_tree_flat_and_one(api):
    (root,) = api.get(f"{V1}/organizations").json
    assert root["code"] == "itabashi"
    assert root["children"][0]["children"][0]["children"][0]["name"] == "板橋健康福祉センター"
    flat = api.get(f"{V1}/organizations?flat=true").json
    assert [(o["code"], o["depth"]) for o in flat] == [("itabashi", 0), ("kenko-ikigai", 1),
                                                       ("kenko-suishin", 2), ("itabashi-hc", 3)]
    one = api.get(f"{V1}/organizations/kenko-suishin").json
    assert one["parent"] == "kenko-ikigai"
    assert [a["name"] for a in one["ancestors"]] == ["板橋区", "健康生きがい部"]
    assert api.get(f"{V1}/organizations/nope").status_code == 404


def test_update_move_cycle_and_delete(api):
    resp = api.put(f"{V1}/organizations/itabashi-hc", json={"name": "板橋健康福祉センター（本所）", "parent": "itabashi"})
    assert resp.status_code == 200, resp.json
    assert (resp.json["name"], resp.json["parent"], resp.json["depth"]) == ("板橋健康福祉センター（本所）", "itabashi", 1)
    cycle = api.put(f"{V1}/organizations/kenko-ikigai", json={"parent": "kenko-suishin"})
    assert cycle.status_code == 400
    assert cycle.json["code"] == "VALIDATION_ERROR" and "下位組織" in cycle.json["errors"]["parent"][0]
    en = api.put(f"{V1}/organizations/kenko-ikigai", json={"parent": "kenko-suishin"},
                 headers={"Accept-Language": "en"})
    assert "sub-organizations" in en.json["errors"]["parent"][0]
    top = api.put(f"{V1}/organizations/kenko-suishin", json={"parent": None})
    assert top.json["parent"] is None

    refused = api.delete(f"{V1}/organizations/itabashi")
    assert refused.status_code == 409
    assert refused.json["message"] == ("組織「itabashi」には下位組織が2件あるため削除できません。"
                                       "先に下位組織を移動するか削除してください。")
    assert api.delete(f"{V1}/organizations/kenko-ikigai").status_code == 204
    assert api.get(f"{V1}/organizations/kenko-ikigai").status_code == 404
    assert api.post(f"{V1}/organizations", json={"code": "a/b", "name": "x"}).status_code == 400
    dup = api.post(f"{V1}/organizations", json={"code": "itabashi", "name": "x"})
    assert dup.status_code == 400 and dup.json["errors"] == {"code": ["組織コード「itabashi」は既に使われています。"]}
    assert api.post(f"{V1}/organizations", json={"name": "no code"}).status_code == 400


def test_groups(api):
    resp = api.post(f"{V1}/groups", json={"code": "hokenshi", "name": "保健師"})
    assert resp.status_code == 201
    assert resp.json == {"code": "hokenshi", "name": "保健師", "description": "", "members": 0}
    assert api.put(f"{V1}/groups/hokenshi", json={"description": "地区担当"}).json["description"] == "地区担当"
    assert [g["code"] for g in api.get(f"{V1}/groups").json] == ["hokenshi"]
    assert api.get(f"{V1}/groups/hokenshi").json["name"] == "保健師"
    assert api.put(f"{V1}/users/admin/groups", json={"groups": ["hokenshi"]}).json == {"groups": ["hokenshi"]}
    assert api.get(f"{V1}/groups/hokenshi/members").json == [{"code": "admin", "name": "Admin"}]
    assert api.delete(f"{V1}/groups/hokenshi").status_code == 204
    assert api.get(f"{V1}/users/admin/groups").json == {"groups": []}
    assert api.get(f"{V1}/groups/hokenshi").status_code == 404


def test_user_memberships(api):
    url = f"{V1}/users/admin/organizations"
    assert api.get(url).json == {"organizations": [], "primary": None}
    resp = api.put(url, json={"organizations": ["itabashi", "itabashi-hc"], "primary": "itabashi-hc"})
    assert resp.status_code == 200, resp.json
    assert resp.json == {"organizations": ["itabashi-hc", "itabashi"], "primary": "itabashi-hc"}
    assert api.get(f"{V1}/organizations/itabashi-hc/members").json == [
        {"code": "admin", "name": "Admin", "primary": True}]
    bad = api.put(url, json={"organizations": ["itabashi", "nope"]})
    assert bad.status_code == 400 and bad.json["errors"] == {"organizations[1]": ["組織コード「nope」はありません。"]}
    not_member = api.put(url, json={"organizations": ["itabashi"], "primary": "itabashi-hc"})
    assert not_member.status_code == 400 and "primary" in not_member.json["errors"]
    assert api.get(url).json["primary"] == "itabashi-hc"          # nothing changed
    assert api.put(url, json={"organizations": "itabashi"}).status_code == 400
    assert api.get(f"{V1}/users/nobody/organizations").status_code == 404
    refused = api.delete(f"{V1}/organizations/itabashi-hc")
    assert refused.status_code == 409 and "所属ユーザー" in refused.json["message"]


def test_reads_need_login_and_writes_need_admin(api, staff):
    assert staff.get(f"{V1}/organizations").status_code == 200
    assert staff.get(f"{V1}/groups").status_code == 200
    assert staff.get(f"{V1}/users/sato/organizations").status_code == 200
    for method, path, body in [("POST", "/organizations", {"code": "x", "name": "X"}),
                               ("PUT", "/organizations/itabashi", {"name": "X"}),
                               ("DELETE", "/organizations/itabashi-hc", None),
                               ("POST", "/groups", {"code": "g", "name": "G"}),
                               ("PUT", "/users/sato/organizations", {"organizations": ["itabashi"]}),
                               ("PUT", "/users/sato/groups", {"groups": []})]:
        resp = staff.request(method, V1 + path, json=body)
        assert resp.status_code == 403, (method, path, resp.json)
        assert resp.json["message"] == "この操作を行う権限がありません。"
    assert upload(staff, "種別,コード,名前\n組織,x,X\n".encode()).status_code == 403
    assert ApiClient(api.app).get(f"{V1}/organizations").status_code == 401
    assert api.get(f"{V1}/organizations/itabashi").json["name"] == "板橋区"


CSV = ("種別,コード,名前,親組織コード,ユーザー,主所属\n"
       "所属,center-2,,,admin,○\n"
       "組織,center-2,志村健康福祉センター,kenko-suishin,,\n"
       "グループ,hokenshi,保健師,,,\n"
       "所属,hokenshi,,,admin,\n"
       "所属,itabashi,,,admin,\n")


def test_import(api):
    resp = upload(api, CSV.encode("cp932"))
    assert resp.status_code == 200, resp.json
    assert resp.json == {"rows": 5, "organizations_created": 1, "organizations_updated": 0, "groups_created": 1,
                         "groups_updated": 0, "users_updated": 1}
    assert api.get(f"{V1}/users/admin/organizations").json == {"organizations": ["center-2", "itabashi"],
                                                              "primary": "center-2"}
    assert api.get(f"{V1}/organizations/center-2").json["ancestors"][-1]["code"] == "kenko-suishin"
    again = upload(api, CSV.encode("utf-8-sig"), encoding="utf-8")
    assert again.json["organizations_created"] == 0 and again.json["users_updated"] == 0


def test_import_errors_write_nothing(api):
    before = api.get(f"{V1}/organizations?flat=true").json
    bad = CSV.replace("kenko-suishin", "X") + "所属,itabashi,,,nobody,\n"
    resp = upload(api, bad.encode("cp932"))
    assert resp.status_code == 400
    assert resp.json["code"] == "VALIDATION_ERROR"
    assert resp.json["message"] == "ファイルの2行に誤りがあります。何も読み込んでいません。"
    assert resp.json["errors"] == {"rows[3].親組織コード": ["組織コード「X」はありません。"],
                                   "rows[7].ユーザー": ["ユーザー「nobody」はありません。"]}
    assert api.get(f"{V1}/organizations?flat=true").json == before
    assert api.get(f"{V1}/groups").json == []

    en = ApiClient(api.app, api.token, lang="en")
    resp = upload(en, bad.encode("cp932"))
    assert resp.json["message"] == "2 row(s) of the file have errors; nothing was imported."
    assert resp.json["errors"]["rows[3].親組織コード"] == ['There is no organization with the code "X".']

    missing = api.client.post(f"{V1}/directory/import", data={}, headers=api._headers(),
                              content_type="multipart/form-data")
    assert missing.status_code == 400 and "file" in missing.json["errors"]
    assert upload(api, b"\xff\xfe\x00garbage\x81").status_code == 400
    assert upload(api, CSV.encode(), encoding="latin-1").status_code == 400


@pytest.mark.parametrize("method,path,body", [
    ("POST", "/organizations", {"code": "x\x00", "name": "X"}),
    ("POST", "/organizations", {"code": "x", "name": "X\x00"}),
    ("POST", "/organizations", {"code": "x", "name": "X", "position": 10**30}),
    ("POST", "/organizations", {"code": "x", "name": "X", "position": -1}),
    ("POST", "/organizations", {"code": 5, "name": ["X"], "parent": {}}),
    ("PUT", "/organizations/itabashi", {"position": 2**40}),
    ("PUT", "/organizations/itabashi", {"parent": "\x00"}),
    ("PUT", "/organizations/%00", {"name": "X"}),
    ("GET", "/organizations/%00", None),
    ("POST", "/groups", {"code": "g", "name": "G", "description": "\x00"}),
    ("PUT", "/users/%00/organizations", {"organizations": []}),
    ("PUT", "/users/admin/organizations", {"organizations": ["\x00"], "primary": "\x00"}),
    ("PUT", "/users/admin/groups", {"groups": ["\x00", 3]}),
    ("PUT", "/users/admin/groups", [1, 2]),
])
def test_bad_input_is_4xx(api, method, path, body):
    resp = api.request(method, V1 + path, json=body)
    assert 400 <= resp.status_code < 500, (resp.status_code, resp.json)
    assert set(resp.json) == {"code", "message", "errors"}


def test_bad_csv_cells_are_4xx(api):
    for text in ("種別,コード,名前\n組織,x,\x00\n", "種別,コード,名前,表示順\n組織,x,X,99999999999\n",
                 "種別,コード,ユーザー\n所属,itabashi,\x00\n", "種別,コード,名前,説明\nグループ,g,G,\x00\n"):
        resp = upload(api, text.encode())
        assert resp.status_code == 400, (text, resp.json)
