"""GET /audit and /audit/export: administrators only (a refusal is itself audited), filters, CSV and
JSON Lines; and the helpers other endpoints audit with."""
from __future__ import annotations

import csv
import io
import json
import time

import pytest

from kumiki import audit
from kumiki.api.audit import denied, log_now, record_in_request
from kumiki.api.common import db
from kumiki.errors import Forbidden
from tests.conftest import ApiClient, make_user


def entries(flask_app, **kw):
    ext = flask_app.extensions["kumiki"]
    with ext.Session() as s:
        found, _total = audit.query(s, **kw)
        return [audit.entry_dict(e) for e in found]


def seed(flask_app):
    engine = flask_app.extensions["kumiki"].engine
    audit.log(engine, "login", user="tanaka", ip="192.0.2.10")
    audit.log(engine, "record.view", user="tanaka", app_id=1, record_id=7, detail={"fields": ["氏名"]})
    audit.log(engine, "record.update", user="suzuki", app_id=1, record_id=7, detail={"changed": ["住所"]})
    audit.log(engine, "record.list", user="suzuki", app_id=2, detail={"query": "氏名 like \"髙𠮷\"", "count": 3})


def test_admin_lists_newest_first_with_filters(any_admin_api):
    api = any_admin_api
    seed(api.app)
    resp = api.get("/api/v1/audit")
    assert resp.status_code == 200, resp.json
    body = resp.json
    assert body["total"] == 4 and [e["action"] for e in body["entries"]][:2] == ["record.list", "record.update"]
    first = body["entries"][-1]
    assert set(first) == set(audit.EXPORT_COLUMNS) and first["at"].endswith("+09:00")

    def ids(**params):
        r = api.get("/api/v1/audit", query_string=params)
        assert r.status_code == 200, r.json
        return [e["id"] for e in r.json["entries"]]

    assert ids(user="tanaka") == [2, 1]
    assert ids(app_id=1, record_id=7) == [3, 2]
    assert ids(action="record.*") == [4, 3, 2]
    assert ids(action="record.*", limit=1, offset=1) == [3]
    assert ids(since="2000-01-01", until="2999-12-31", action="record.view") == [2]
    assert ids(until="2000-01-01") == []
    # Looking at the log is logged (the "audit.view" entries of the calls above).
    assert len(entries(api.app, action="audit.view")) == 7


@pytest.mark.parametrize("params", [{"limit": 1001}, {"limit": 0}, {"offset": -1}, {"since": "someday"},
                                    {"until": "2025-02-30"}, {"app_id": "x"}])
def test_bad_query_parameters_are_400(admin_api, params):
    resp = admin_api.get("/api/v1/audit", query_string=params)
    assert resp.status_code == 400 and resp.json["code"] and resp.json["message"]


def test_non_admin_gets_403_and_the_attempt_is_audited(any_app):
    make_user(any_app, "admin")
    user, token = make_user(any_app, "clerk", is_admin=False)
    clerk = ApiClient(any_app, token)
    for path, params in (("/api/v1/audit", {}), ("/api/v1/audit", {"limit": 99999}),
                         ("/api/v1/audit/export", {"format": "csv"})):
        resp = clerk.get(path, query_string=params, headers={"User-Agent": "test-agent"})
        assert resp.status_code == 403, resp.json
        assert resp.json["code"] == "FORBIDDEN" and "権限" in resp.json["message"]
    denials = entries(any_app, action="access.denied")
    assert len(denials) == 3
    assert {(d["user_id"], d["user_code"]) for d in denials} == {(user.id, "clerk")}
    assert denials[-1]["detail"] == {"method": "GET", "path": "/api/v1/audit", "status": 403}
    assert denials[-1]["user_agent"] == "test-agent" and denials[-1]["ip"]


def test_anonymous_gets_401(app):
    assert app.test_client().get("/api/v1/audit").status_code == 401
    assert app.test_client().get("/api/v1/audit/export").status_code == 401


def test_export_csv_utf8_bom_cp932_and_jsonl_each_audited(any_admin_api):
    api = any_admin_api
    seed(api.app)
    resp = api.get("/api/v1/audit/export")
    assert resp.status_code == 200
    assert resp.mimetype == "text/csv" and "attachment" in resp.headers["Content-Disposition"]
    assert resp.data.startswith(b"\xef\xbb\xbf")
    table = list(csv.DictReader(io.StringIO(resp.data.decode("utf-8-sig"))))
    assert [r["action"] for r in table] == ["login", "record.view", "record.update", "record.list"]
    assert "髙𠮷" in table[-1]["detail"]

    resp = api.get("/api/v1/audit/export", query_string={"encoding": "cp932", "user": "suzuki"})
    assert resp.status_code == 200 and "Shift_JIS" in resp.headers["Content-Type"]
    table = list(csv.DictReader(io.StringIO(resp.data.decode("cp932"))))
    assert [r["id"] for r in table] == ["3", "4"]
    assert "髙?" in table[-1]["detail"]           # 髙 is in CP932, 𠮷 is not

    resp = api.get("/api/v1/audit/export", query_string={"format": "jsonl", "action": "record.*"})
    assert resp.status_code == 200 and resp.mimetype == "application/x-ndjson"
    lines = [json.loads(line) for line in resp.data.decode("utf-8").splitlines()]
    assert [e["id"] for e in lines] == [2, 3, 4] and lines[-1]["detail"]["count"] == 3

    exports = entries(api.app, action="audit.export")
    assert [e["detail"]["format"] for e in exports] == ["jsonl", "csv", "csv"]
    assert exports[1]["detail"] == {"format": "csv", "encoding": "cp932", "count": 2,
                                    "filters": {"user": "suzuki"}}
    assert exports[0]["user_code"] == "admin"
    with api.app.extensions["kumiki"].Session() as s:
        assert audit.verify(s).ok


@pytest.mark.parametrize("params", [{"format": "xlsx"}, {"encoding": "latin-1"}, {"since": "2025-99-01"}])
def test_export_bad_options_are_400(admin_api, params):
    resp = admin_api.get("/api/v1/audit/export", query_string=params)
    assert resp.status_code == 400 and resp.json["message"]
    assert entries(admin_api.app, action="audit.export") == []


def test_helpers_in_read_and_write_requests(make_config, backend):
    """log_now in a write request does not wait for the request's own lock; record_in_request
    commits with the request, and a failing request takes its entry with it."""
    from flask import jsonify
    from kumiki.app import create_app

    flask_app = create_app(make_config(backend))
    outcomes = {}

    def write(outcome):
        record_in_request("record.update", app_id=1, record_id=1, detail={"changed": ["氏名"]})
        if outcome == "ok":
            db().commit()
            return jsonify(ok=True)
        if outcome == "fail":
            raise Forbidden("forbidden")
        raise denied(Forbidden("forbidden"), app_id=1, detail={"reason": "test"})

    def read():
        log_now("record.view", app_id=1, record_id=1)
        return jsonify(ok=True)

    flask_app.add_url_rule("/api/v1/_t/write/<outcome>", "t_write", write, methods=["POST"])
    flask_app.add_url_rule("/api/v1/_t/read", "t_read", read)
    _u, token = make_user(flask_app, "clerk", is_admin=False)
    api = ApiClient(flask_app, token)
    started = time.perf_counter()
    outcomes["ok"] = api.post("/api/v1/_t/write/ok", json={}).status_code
    outcomes["fail"] = api.post("/api/v1/_t/write/fail", json={}).status_code
    outcomes["deny"] = api.post("/api/v1/_t/write/deny", json={}).status_code
    outcomes["read"] = api.get("/api/v1/_t/read").status_code
    assert time.perf_counter() - started < 10
    assert outcomes == {"ok": 200, "fail": 403, "deny": 403, "read": 200}
    found = entries(flask_app)
    # the failed write's own entry is rolled back with it, but its refusal is audited (centrally)
    assert [e["action"] for e in reversed(found)] == ["record.update", "access.denied", "access.denied",
                                                      "record.view"]
    assert all(e["user_code"] == "clerk" for e in found)
    assert found[2]["detail"]["path"] == "/api/v1/_t/write/fail"
    assert found[1]["detail"] == {"method": "POST", "path": "/api/v1/_t/write/deny", "status": 403,
                                  "reason": "test"}
    with flask_app.extensions["kumiki"].Session() as s:
        assert audit.verify(s).ok
    flask_app.extensions["kumiki"].engine.dispose()


def test_audit_endpoints_are_documented(app):
    spec = app.test_client().get("/api/openapi.json").json
    assert "/api/v1/audit" in spec["paths"] and "/api/v1/audit/export" in spec["paths"]
