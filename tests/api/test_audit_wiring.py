"""Record views, lists, cursors, history and every write leave audit entries; the chain verifies."""
from __future__ import annotations

from kumiki import audit
from tests.conftest import ApiClient, make_user

APP = {"name": "監査", "fields": [{"code": "氏名", "type": "SINGLE_LINE_TEXT", "label": "氏名"}]}


def test_reads_and_writes_are_audited(any_app):
    _u, token = make_user(any_app, "admin")
    api = ApiClient(any_app, token)
    app_id = api.post("/api/v1/apps?deploy=true", json=APP).json["id"]
    url = f"/api/v1/apps/{app_id}/records"
    ids = api.post(url, json={"records": [{"氏名": "甲"}, {"氏名": "乙"}]}).json["ids"]
    api.put(f"{url}/{ids[0]}", json={"record": {"氏名": "甲2"}})
    api.get(f"{url}/{ids[0]}")
    api.get(url, query_string={"query": '氏名 like "甲"'})
    api.get(f"{url}/{ids[0]}/history")
    api.post(f"/api/v1/apps/{app_id}/cursors", json={})
    api.delete(f"{url}/{ids[1]}")

    ext = any_app.extensions["kumiki"]
    with ext.Session() as s:
        entries, _total = audit.query(s, app_id=app_id, limit=100)
        result = audit.verify(s)
    got = [(e.action, e.record_id) for e in reversed(entries)]
    assert ("record.create", ids[0]) in got and ("record.create", ids[1]) in got
    assert ("record.update", ids[0]) in got and ("record.view", ids[0]) in got
    assert ("record.history", ids[0]) in got and ("record.delete", ids[1]) in got
    listing = next(e for e in entries if e.action == "record.list")
    assert listing.detail["query"] == '氏名 like "甲"' and listing.user_code == "admin"
    assert listing.detail["via"].startswith("token")
    assert any(e.action == "record.cursor" for e in entries)
    update = next(e for e in entries if e.action == "record.update")
    assert update.detail["fields"] == ["氏名"] and "甲2" not in str(update.detail)   # no values in the log
    assert result.ok


def test_a_failed_write_leaves_no_audit_entry(app):
    _u, token = make_user(app, "admin")
    api = ApiClient(app, token)
    app_id = api.post("/api/v1/apps?deploy=true",
                      json={"name": "x", "fields": [{"code": "a", "type": "NUMBER", "label": "a"}]}).json["id"]
    assert api.post(f"/api/v1/apps/{app_id}/records", json={"record": {"a": "x"}}).status_code == 400
    with app.extensions["kumiki"].Session() as s:
        entries, _ = audit.query(s, action="record.*", app_id=app_id)
    assert entries == []


def test_definition_and_permission_changes_are_audited(admin_api):
    api = admin_api
    app_id = api.post("/api/v1/apps?deploy=true", json=APP).json["id"]
    definition = api.get(f"/api/v1/apps/{app_id}").json["definition"]
    definition["permissions"] = {"app": [{"entity": {"type": "USER", "code": "admin"}, "view": True}]}
    api.put(f"/api/v1/apps/{app_id}/draft", json={"definition": definition})
    api.post(f"/api/v1/apps/{app_id}/deploy")
    with api.app.extensions["kumiki"].Session() as s:
        actions = [e.action for e in reversed(audit.query(s, app_id=app_id)[0])]
    assert actions[:2] == ["app.create", "app.deploy"]
    assert "app.draft" in actions and actions[-1] == "permission.change"


def test_directory_changes_are_audited(admin_api):
    resp = admin_api.post("/api/v1/organizations", json={"code": "kenko", "name": "健康推進課"})
    assert resp.status_code == 201, resp.json
    with admin_api.app.extensions["kumiki"].Session() as s:
        entries, _ = audit.query(s, action="directory.change")
    assert entries and entries[0].detail["path"] == "/api/v1/organizations"


def test_logins_and_failures_are_audited(app):
    make_user(app, "clerk", is_admin=False, password="password-1234")
    client = app.test_client()
    assert client.post("/api/v1/auth/login", json={"login": "clerk", "password": "wrong-one-here"}).status_code == 401
    assert client.post("/api/v1/auth/login", json={"login": "nobody", "password": "wrong-one-here"}).status_code == 401
    assert client.post("/api/v1/auth/login", json={"login": "clerk", "password": "password-1234"}).status_code == 200
    with app.extensions["kumiki"].Session() as s:
        entries = list(reversed(audit.query(s, action="login*")[0]))
        assert audit.verify(s).ok
    assert [(e.action, e.user_code) for e in entries] == [
        ("login_failed", "clerk"), ("login_failed", "nobody"), ("login", "clerk")]
    assert entries[0].detail["outcome"] == "bad_password"


def test_refusals_are_audited(app):
    _u, admin_token = make_user(app, "admin")
    _c, clerk_token = make_user(app, "clerk", is_admin=False)
    admin, clerk = ApiClient(app, admin_token), ApiClient(app, clerk_token)
    app_id = admin.post("/api/v1/apps?deploy=true", json={**APP, "permissions": {
        "app": [{"entity": {"type": "USER", "code": "admin"}, "view": True}]}}).json["id"]
    assert clerk.get(f"/api/v1/apps/{app_id}/records").status_code == 403
    assert clerk.get("/api/v1/audit").status_code == 403
    with app.extensions["kumiki"].Session() as s:
        denied = list(reversed(audit.query(s, action="access.denied")[0]))
    assert [(e.user_code, e.detail["path"]) for e in denied] == [
        ("clerk", f"/api/v1/apps/{app_id}/records"), ("clerk", "/api/v1/audit")]
    assert denied[0].app_id == app_id
