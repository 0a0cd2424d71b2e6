"""Bad input never yields a 500: random JSON values, bodies and queries get 2xx or 4xx."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.test_records_api import CASE_APP
from tests.conftest import ApiClient, make_user

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12)

FIELD_CODES = [f["code"] for f in CASE_APP["fields"]] + ["$id", "レコード番号", "作成者", "unknown"]


@pytest.fixture(scope="module")
def fuzz_api(tmp_path_factory):
    from kumiki.app import create_app
    from kumiki.config import Config

    app = create_app(Config.from_env(instance_dir=tmp_path_factory.mktemp("fuzz"), secret_key="s", testing=True))
    _u, token = make_user(app, "admin")
    api = ApiClient(app, token)
    app_id = api.post("/api/v1/apps?deploy=true", json=CASE_APP).json["id"]
    yield api, app_id
    app.extensions["kumiki"].engine.dispose()


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(record=st.dictionaries(st.sampled_from(FIELD_CODES), json_values, max_size=6))
def test_random_record_values_never_500(fuzz_api, record):
    api, app_id = fuzz_api
    resp = api.post(f"/api/v1/apps/{app_id}/records", json={"record": record})
    assert resp.status_code in (201, 400), resp.json
    assert set(resp.json) >= ({"code", "message", "errors"} if resp.status_code == 400 else {"id"})


@SETTINGS
@given(body=json_values)
def test_random_bodies_never_500(fuzz_api, body):
    api, app_id = fuzz_api
    for method, path in (("POST", f"/api/v1/apps/{app_id}/records"), ("PUT", f"/api/v1/apps/{app_id}/records"),
                         ("PUT", f"/api/v1/apps/{app_id}/records/1"), ("DELETE", f"/api/v1/apps/{app_id}/records"),
                         ("POST", "/api/v1/apps"), ("POST", f"/api/v1/apps/{app_id}/cursors")):
        resp = api.request(method, path, json=body)
        assert resp.status_code < 500, (method, path, resp.json)


@SETTINGS
@given(query=st.text(max_size=60) | st.sampled_from(FIELD_CODES).flatmap(
    lambda c: st.tuples(st.just(c), st.sampled_from(["=", "!=", ">", "<", "in", "not in", "like", "is"]),
                        st.text(max_size=10)).map(lambda t: f'{t[0]} {t[1]} "{t[2]}"')))
def test_random_queries_never_500(fuzz_api, query):
    api, app_id = fuzz_api
    resp = api.get(f"/api/v1/apps/{app_id}/records", query_string={"query": query, "totalCount": "true"})
    assert resp.status_code in (200, 400), resp.json


def test_non_json_and_wrong_content_type(fuzz_api):
    api, app_id = fuzz_api
    resp = api.client.post(f"/api/v1/apps/{app_id}/records", data=b"\xff\xfe not json",
                           headers={**api._headers(), "Content-Type": "application/json"})
    assert resp.status_code == 400 and resp.json["code"]
    resp = api.client.post(f"/api/v1/apps/{app_id}/records", data="record=1", headers=api._headers())
    assert resp.status_code in (400, 415)


@SETTINGS
@given(perms=json_values | st.fixed_dictionaries({}, optional={
    "app": st.lists(st.fixed_dictionaries({"entity": json_values}, optional={"view": json_values}), max_size=2),
    "record": st.lists(st.fixed_dictionaries({"entities": json_values}, optional={"condition": json_values}), max_size=2),
    "field": st.lists(st.fixed_dictionaries({"code": json_values, "entities": json_values}), max_size=2)}))
def test_random_permissions_never_500(fuzz_api, perms):
    api, _app_id = fuzz_api
    resp = api.post("/api/v1/apps", json={**CASE_APP, "code": None, "permissions": perms})
    assert resp.status_code in (201, 400), resp.json
