"""The plugin host: discovery, every hook, per-app settings (Datasette-style: every hook has a test)."""
from __future__ import annotations

import importlib.metadata
import logging
from pathlib import Path

import pluggy
import pytest

from kumiki import plugins
from kumiki.app import create_app
from kumiki.plugins import KumikiSpecs, PluginError, RecordEvent, hookimpl
from tests.conftest import ApiClient, make_user
from tests.plugins import example_plugin

MINI_APP = {"name": "プラグイン試験", "fields": [
    {"code": "氏名", "type": "SINGLE_LINE_TEXT", "label": "氏名"}]}

GOOD_SETTINGS = {"threshold": 40, "label": "しきい値", "mode": "fast"}


def _spec_hook_names() -> list[str]:
    pm = pluggy.PluginManager("kumiki")
    pm.add_hookspecs(KumikiSpecs)
    return sorted(name for name, caller in vars(pm.hook).items()
                  if isinstance(caller, pluggy.HookCaller) and caller.spec is not None)


HOOKS = _spec_hook_names()


@pytest.fixture(autouse=True)
def _clear_events():
    example_plugin.EVENTS.clear()
    yield
    example_plugin.EVENTS.clear()


def _make(make_config, *extra_plugins, **extra):
    cfg = make_config("sqlite", extra={
        "KUMIKI_EXTRA_PLUGINS": [("example", example_plugin), *extra_plugins],
        "KUMIKI_JOBS_IMMEDIATE": True, **extra})
    return create_app(cfg)


@pytest.fixture
def papp(make_config):
    application = _make(make_config)
    yield application
    application.extensions["kumiki"].engine.dispose()


@pytest.fixture
def api(papp):
    _user, token = make_user(papp, "admin")
    return ApiClient(papp, token)


@pytest.fixture
def app_id(api):
    resp = api.post("/api/v1/apps?deploy=true", json=MINI_APP)
    assert resp.status_code == 201, resp.json
    return resp.json["id"]


def _enable(api, app_id, settings=GOOD_SETTINGS, enabled=True):
    resp = api.put(f"/api/v1/apps/{app_id}/plugins/example", json={"enabled": enabled, "settings": settings})
    assert resp.status_code == 200, resp.json
    return resp.json


# --- every hook is implemented by the example plugin and has a test --------------------------

def test_hookspecs_are_the_documented_ones():
    assert set(HOOKS) == {"register_blueprints", "register_jobs", "plugin_settings_schema",
                          "record_changed", "app_actions", "catalog_apps"}
    assert set(HOOKS) == set(plugins.HOOK_NAMES)


@pytest.mark.parametrize("hook", HOOKS)
def test_example_plugin_implements_every_hook(hook):
    pm = plugins.make_manager([("example", example_plugin)], entry_points=False)
    assert hook in pm.hooks_of("example"), f"the example plugin does not implement {hook}"


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_test(hook):
    tests = [name for name in globals() if name.startswith("test_hook_")]
    assert any(name.startswith(f"test_hook_{hook}") for name in tests), \
        f"no test_hook_{hook}* test in {__name__}"


# --- register_blueprints ---------------------------------------------------------------------

def test_hook_register_blueprints(papp, api):
    resp = api.get("/api/v1/plugins/example/hello")
    assert resp.status_code == 200, resp.json
    assert resp.json == {"plugin": "example", "user": "admin"}
    # authenticated like any API request
    assert ApiClient(papp).get("/api/v1/plugins/example/hello").status_code == 401
    # documented in the OpenAPI spec
    spec = api.get("/api/openapi.json").json
    assert "/api/v1/plugins/example/hello" in spec["paths"]


def test_hook_register_blueprints_can_read_plugin_settings(api, app_id):
    assert api.get(f"/api/v1/plugins/example/apps/{app_id}/settings").json == {"settings": None}
    _enable(api, app_id)
    assert api.get(f"/api/v1/plugins/example/apps/{app_id}/settings").json == {"settings": GOOD_SETTINGS}


# --- plugin_settings_schema and the settings API ---------------------------------------------

def test_hook_plugin_settings_schema_listed(api):
    resp = api.get("/api/v1/plugins")
    assert resp.status_code == 200
    example = next(p for p in resp.json if p["name"] == "example")
    assert example["settings_schema"] == example_plugin.SETTINGS_SCHEMA
    assert set(example["hooks"]) == set(HOOKS)


def test_hook_plugin_settings_schema_good_settings_are_saved(papp, api, app_id):
    before = api.get(f"/api/v1/apps/{app_id}/plugins/example")
    assert before.status_code == 200
    assert before.json["enabled"] is False and before.json["settings"] == {}
    assert before.json["actions"] == []

    out = _enable(api, app_id)
    assert out["enabled"] is True and out["settings"] == GOOD_SETTINGS
    again = api.get(f"/api/v1/apps/{app_id}/plugins/example").json
    assert again["settings"] == GOOD_SETTINGS and again["enabled"] is True

    st = papp.extensions["kumiki"]
    with st.Session() as s:
        assert plugins.plugin_settings(s, app_id, "example") == GOOD_SETTINGS
        assert plugins.enabled_plugins(s, app_id) == {"example"}

    # switching it off keeps the settings but plugins no longer see them
    out = _enable(api, app_id, {"threshold": 1}, enabled=False)
    assert out["enabled"] is False and out["settings"] == {"threshold": 1}
    with st.Session() as s:
        assert plugins.plugin_settings(s, app_id, "example") is None
        assert plugins.enabled_plugins(s, app_id) == set()


def test_hook_plugin_settings_schema_bad_settings_are_located_in_japanese(api, app_id):
    bad = {"threshold": -5, "label": "とても長いラベルの名前です", "mode": "slow", "colour": "red",
           "tags": ["a", 3]}
    resp = api.put(f"/api/v1/apps/{app_id}/plugins/example", json={"enabled": True, "settings": bad})
    assert resp.status_code == 400, resp.json
    body = resp.json
    assert body["code"] == "VALIDATION_ERROR"
    assert body["message"] == "プラグインの設定に誤りがあります。"
    errors = body["errors"]
    assert errors["settings.threshold"] == ["0以上の値を指定してください。"]
    assert errors["settings.label"] == ["10文字以内で入力してください。"]
    assert errors["settings.mode"] == ['次のいずれかを指定してください: "fast", "exact"']
    assert errors["settings.colour"] == ["この設定項目はありません。"]
    assert errors["settings.tags[1]"] == ["文字列で指定してください。"]
    # nothing was saved
    assert api.get(f"/api/v1/apps/{app_id}/plugins/example").json["enabled"] is False

    missing = api.put(f"/api/v1/apps/{app_id}/plugins/example", json={"settings": {}})
    assert missing.status_code == 400
    assert missing.json["errors"] == {"settings.threshold": ["必須項目です。"]}

    wrong_type = api.put(f"/api/v1/apps/{app_id}/plugins/example", json={"settings": {"threshold": "50"}})
    assert wrong_type.json["errors"] == {"settings.threshold": ["整数で指定してください。"]}


def test_hook_plugin_settings_schema_messages_in_english(papp, app_id):
    _user, token = make_user(papp, "eng", is_admin=True)
    api_en = ApiClient(papp, token, lang="en")
    resp = api_en.put(f"/api/v1/apps/{app_id}/plugins/example", json={"settings": {"threshold": 101}})
    assert resp.status_code == 400
    assert resp.json["message"] == "The plugin settings are not valid."
    assert resp.json["errors"] == {"settings.threshold": ["Must be at most 100."]}


def test_hook_plugin_settings_schema_bad_bodies_are_400_not_500(api, app_id):
    for body in ({"settings": [1, 2]}, {"settings": "x"}, {"enabled": "maybe", "settings": {"threshold": 1}},
                 {"unknown": 1, "settings": {"threshold": 1}}):
        resp = api.put(f"/api/v1/apps/{app_id}/plugins/example", json=body)
        assert resp.status_code == 400, (body, resp.json)
        assert resp.json["errors"], body
    resp = api.put(f"/api/v1/apps/{app_id}/plugins/example", data="{not json",
                   headers={"Content-Type": "application/json"})
    assert resp.status_code == 400


def test_hook_plugin_settings_schema_permissions_and_404s(papp, api, app_id):
    _user, token = make_user(papp, "clerk", is_admin=False)
    clerk = ApiClient(papp, token)
    resp = clerk.put(f"/api/v1/apps/{app_id}/plugins/example", json={"settings": GOOD_SETTINGS})
    assert resp.status_code == 403
    assert clerk.get(f"/api/v1/apps/{app_id}/plugins/example").status_code == 200
    assert ApiClient(papp).get(f"/api/v1/apps/{app_id}/plugins/example").status_code == 401

    assert api.get(f"/api/v1/apps/{app_id}/plugins/nosuch").status_code == 404
    assert api.put(f"/api/v1/apps/{app_id}/plugins/nosuch", json={"settings": {}}).status_code == 404
    assert api.get("/api/v1/apps/9999/plugins/example").status_code == 404
    resp = api.put("/api/v1/apps/9999/plugins/example", json={"settings": GOOD_SETTINGS})
    assert resp.status_code == 404 and resp.json["code"] == "NOT_FOUND"


def test_validate_settings_unit():
    plugins.validate_settings(example_plugin.SETTINGS_SCHEMA, GOOD_SETTINGS)
    plugins.validate_settings(None, {"anything": 1})       # no schema: any object
    with pytest.raises(plugins.ValidationError) as info:
        plugins.validate_settings({"type": "object", "properties": {
            "n": {"type": "number", "exclusiveMinimum": 0, "multipleOf": 5},
            "s": {"type": "string", "pattern": "^[0-9]+$", "format": "email"},
            "l": {"type": "array", "minItems": 2, "uniqueItems": True},
            "c": {"const": "x"}, "o": {"type": "object", "properties": {"deep": {"type": "boolean"}}}}},
            {"n": 0, "s": "abc", "l": [1], "c": "y", "o": {"deep": "yes"}})
    keys = {(d.path, d.key) for d in info.value.details}
    assert ("settings.n", "plugins.settings.exclusiveMinimum") in keys
    assert ("settings.s", "plugins.settings.pattern") in keys
    assert ("settings.s", "plugins.settings.format") in keys
    assert ("settings.l", "plugins.settings.minItems") in keys
    assert ("settings.c", "plugins.settings.const") in keys
    assert ("settings.o.deep", "plugins.settings.type") in keys


# --- record_changed --------------------------------------------------------------------------

def test_hook_record_changed_dispatch(papp):
    event = RecordEvent(app_id=7, action="update", record_ids=[1, 2], user_code="admin", revisions=[3, 4])
    plugins.dispatch_record_changed(papp.extensions["kumiki"].plugins, event)
    assert example_plugin.EVENTS == [event]
    plugins.dispatch_record_changed(None, event)   # no plugin host: nothing happens


def test_hook_record_changed_through_the_records_api(api, app_id):
    resp = api.post(f"/api/v1/apps/{app_id}/records", json={"record": {"氏名": "山田 太郎"}})
    assert resp.status_code == 201, resp.json
    rid = resp.json["id"]
    assert len(example_plugin.EVENTS) == 1
    event = example_plugin.EVENTS[0]
    assert (event.app_id, event.action, event.record_ids, event.user_code) == (app_id, "create", [rid], "admin")
    assert event.revisions == [1]


def test_hook_record_changed_failure_does_not_break_the_write(make_config, caplog):
    papp = _make(make_config, ("broken", example_plugin.BrokenPlugin()))
    try:
        _user, token = make_user(papp, "admin")
        api = ApiClient(papp, token)
        app_id = api.post("/api/v1/apps?deploy=true", json=MINI_APP).json["id"]
        event = RecordEvent(app_id, "delete", [5], None, [2])
        with caplog.at_level(logging.ERROR, logger="kumiki.plugins"):
            plugins.dispatch_record_changed(papp.extensions["kumiki"].plugins, event)   # no exception
        assert example_plugin.EVENTS == [event]           # the healthy plugin still got it
        assert "broken" in caplog.text and "record_changed" in caplog.text

        resp = api.post(f"/api/v1/apps/{app_id}/records", json={"record": {"氏名": "佐藤 花子"}})
        assert resp.status_code == 201, resp.json
        rid = resp.json["id"]
        got = api.get(f"/api/v1/apps/{app_id}/records/{rid}")
        assert got.status_code == 200 and got.json["氏名"] == "佐藤 花子"
        assert [e.action for e in example_plugin.EVENTS] == ["delete", "create"]
    finally:
        papp.extensions["kumiki"].engine.dispose()


# --- register_jobs (more in test_plugin_jobs.py) ----------------------------------------------

def test_hook_register_jobs(papp, api, app_id):
    from kumiki.jobs import registry_for
    kinds = registry_for(papp).kinds()
    assert kinds["example.count"] == "example" and kinds["example.fail"] == "example"

    _enable(api, app_id)
    resp = api.post(f"/api/v1/apps/{app_id}/plugins/example/actions/count", json={"params": {"n": 4}})
    assert resp.status_code == 202, resp.json
    job = api.get(f"/api/v1/jobs/{resp.json['id']}").json
    assert job["status"] == "done" and job["kind"] == "example.count" and job["progress"] == 1.0
    assert job["result"]["counted"] == 4 and job["result"]["user"] == "admin"
    assert job["result"]["app_id"] == app_id and job["result"]["threshold"] == 40
    assert job["message"] == "3/4"
    assert job["started_at"] and job["finished_at"] and job["error"] is None


def test_duplicate_job_kind_is_a_startup_error(make_config):
    class Copycat:
        @hookimpl
        def register_jobs(self):
            return {"example.count": lambda ctx: None}

    with pytest.raises(PluginError, match="example.count"):
        _make(make_config, ("copycat", Copycat()))


# --- app_actions -----------------------------------------------------------------------------

def test_hook_app_actions(papp, api, app_id):
    assert api.get(f"/api/v1/apps/{app_id}/plugins/example").json["actions"] == []
    # an action of a plugin not enabled for the app cannot run
    resp = api.post(f"/api/v1/apps/{app_id}/plugins/example/actions/count", json={})
    assert resp.status_code == 409 and "有効になっていません" in resp.json["message"]

    _enable(api, app_id)
    actions = api.get(f"/api/v1/apps/{app_id}/plugins/example").json["actions"]
    assert actions[0] == {"id": "count", "label": {"ja": "件数を数える", "en": "Count"},
                          "job": "example.count", "plugin": "example"}
    listing = api.get(f"/api/v1/apps/{app_id}/plugins").json
    assert [p["plugin"] for p in listing] == ["example"] and listing[0]["actions"] == actions

    assert api.post(f"/api/v1/apps/{app_id}/plugins/example/actions/nosuch", json={}).status_code == 404
    # anyone who may use the app may start its actions (the job then acts with their rights) ...
    _user, token = make_user(papp, "clerk", is_admin=False)
    clerk = ApiClient(papp, token)
    resp = clerk.post(f"/api/v1/apps/{app_id}/plugins/example/actions/count", json={})
    assert resp.status_code == 202
    # ... but sees no plugin settings and cannot change them
    assert clerk.get(f"/api/v1/apps/{app_id}/plugins/example").json["settings"] == {}
    assert clerk.put(f"/api/v1/apps/{app_id}/plugins/example", json={"enabled": False}).status_code == 403
    # and someone the app's rules leave out cannot start them at all
    definition = api.get(f"/api/v1/apps/{app_id}").json["definition"]
    definition["permissions"] = {"app": [{"entity": {"type": "USER", "code": "admin"}, "view": True}]}
    definition.pop("layout", None)
    assert api.put(f"/api/v1/apps/{app_id}/draft", json={"definition": definition}).status_code == 200
    assert api.post(f"/api/v1/apps/{app_id}/deploy").status_code == 200
    resp = clerk.post(f"/api/v1/apps/{app_id}/plugins/example/actions/count", json={})
    assert resp.status_code == 403


def test_hook_app_actions_survives_a_broken_plugin(make_config):
    papp = _make(make_config, ("broken", example_plugin.BrokenPlugin()))
    try:
        pm = papp.extensions["kumiki"].plugins
        actions = plugins.collect_app_actions(pm, 1)
        assert {a["plugin"] for a in actions} == {"example"}
        assert plugins.collect_app_actions(pm, 1, enabled=[]) == []
    finally:
        papp.extensions["kumiki"].engine.dispose()


# --- catalog_apps ----------------------------------------------------------------------------

def test_hook_catalog_apps(papp):
    dirs = plugins.catalog_app_dirs(papp.extensions["kumiki"].plugins)
    assert dirs == [("example", Path(example_plugin.__file__).parent / "example_catalog" / "hello")]
    assert (dirs[0][1] / "README.md").is_file()


# --- discovery -------------------------------------------------------------------------------

class _FakeDistribution(importlib.metadata.Distribution):
    """An installed distribution declaring a kumiki.plugins entry point (nothing on disk)."""

    FILES = {
        "METADATA": "Metadata-Version: 2.1\nName: kumiki-example-plugin\nVersion: 9.9.9\n",
        "entry_points.txt": "[kumiki.plugins]\nepdemo = tests.plugins.example_plugin\n",
    }

    def read_text(self, filename):
        return self.FILES.get(filename)

    def locate_file(self, path):
        return Path("/nonexistent") / path


def test_entry_point_discovery(make_config, monkeypatch):
    real = importlib.metadata.distributions
    monkeypatch.setattr(importlib.metadata, "distributions",
                        lambda **kw: [*real(**kw), _FakeDistribution()])
    papp = create_app(make_config("sqlite", extra={"KUMIKI_JOBS_IMMEDIATE": True}))
    try:
        pm = papp.extensions["kumiki"].plugins
        assert "epdemo" in pm.plugin_names()
        assert pm.get_plugin("epdemo") is example_plugin
        assert pm.version_of("epdemo") == "9.9.9"
        _user, token = make_user(papp, "admin")
        api = ApiClient(papp, token)
        assert api.get("/api/v1/plugins/epdemo/hello").json == {"plugin": "example", "user": "admin"}
        listed = {p["name"]: p for p in api.get("/api/v1/plugins").json}
        assert listed["epdemo"]["version"] == "9.9.9"
        assert listed["epdemo"]["settings_schema"] == example_plugin.SETTINGS_SCHEMA
    finally:
        papp.extensions["kumiki"].engine.dispose()


def test_blocked_plugins_and_disabled_entry_points(make_config, monkeypatch):
    real = importlib.metadata.distributions
    monkeypatch.setattr(importlib.metadata, "distributions",
                        lambda **kw: [*real(**kw), _FakeDistribution()])
    pm = plugins.make_manager(blocked=["epdemo"])
    assert "epdemo" not in pm.plugin_names()
    pm = plugins.make_manager(entry_points=False)
    assert "epdemo" not in pm.plugin_names()


def test_extra_plugins_accept_import_strings(make_config):
    pm = plugins.make_manager([("ex2", "tests.plugins.example_plugin")], entry_points=False)
    assert pm.get_plugin("ex2") is example_plugin
    pm = plugins.make_manager(["tests.plugins.example_plugin"], entry_points=False)
    assert pm.plugin_names() == ["example_plugin"]


def test_misspelt_hook_is_a_startup_error():
    class Typo:
        @hookimpl
        def record_changd(self, event):
            pass

    with pytest.raises(PluginError, match="record_changd"):
        plugins.make_manager([("typo", Typo())], entry_points=False)


def test_invalid_settings_schema_is_a_startup_error():
    class BadSchema:
        @hookimpl
        def plugin_settings_schema(self):
            return ("bad", {"type": "no-such-type"})

    with pytest.raises(PluginError, match="bad"):
        plugins.make_manager([("bad", BadSchema())], entry_points=False)
