"""Installed plugins, per-app plugin settings and plugin actions."""
from __future__ import annotations

from flask_smorest import Blueprint
from marshmallow import Schema, fields
from sqlalchemy import select

from kumiki import jobs, plugins
from kumiki.api.common import actor, db
from kumiki.api.jobs import JobOut
from kumiki.errors import Conflict, NotFound
from kumiki.extensions import state
from kumiki.i18n import register
from kumiki.model import App, PluginSetting

PREFIX = ""
blp = Blueprint("plugins", __name__, description="プラグイン / plugins")

register({
    "plugins.not_enabled": ("このアプリではプラグイン「{plugin}」が有効になっていません。",
                            "The plugin “{plugin}” is not enabled for this app."),
})


class PluginOut(Schema):
    name = fields.String()
    version = fields.String(allow_none=True)
    hooks = fields.List(fields.String())
    settings_schema = fields.Dict(allow_none=True)


class ActionOut(Schema):
    id = fields.String()
    label = fields.Dict()
    job = fields.String()
    plugin = fields.String()


class AppPluginOut(Schema):
    plugin = fields.String()
    app_id = fields.Integer()
    enabled = fields.Boolean()
    settings = fields.Dict()
    settings_schema = fields.Dict(allow_none=True)
    actions = fields.List(fields.Nested(ActionOut))


class AppPluginIn(Schema):
    enabled = fields.Boolean(load_default=True)
    settings = fields.Dict(load_default=dict)


class ActionIn(Schema):
    params = fields.Dict(load_default=dict)


def _pm() -> plugins.PluginManager:
    return state().plugins


def _app(app_id: int) -> App:
    app = db().get(App, app_id)
    if app is None:
        raise NotFound("not_found")
    return app


def _plugin(name: str) -> str:
    pm = _pm()
    if pm is None or name not in pm.plugin_names():
        raise NotFound("not_found")
    return name


def _row(app_id: int, name: str) -> PluginSetting | None:
    return db().scalar(select(PluginSetting).where(PluginSetting.app_id == app_id,
                                                   PluginSetting.plugin == name))


def _state(app_id: int, name: str) -> dict:
    row = _row(app_id, name)
    enabled = bool(row and row.enabled)
    return {"plugin": name, "app_id": app_id, "enabled": enabled,
            "settings": dict(row.settings or {}) if row else {},
            "settings_schema": _pm().settings_schemas.get(name),
            "actions": plugins.collect_app_actions(_pm(), app_id, [name]) if enabled else []}


@blp.route("/plugins")
@blp.response(200, PluginOut(many=True))
def list_plugins():
    actor()
    pm = _pm()
    return pm.info() if pm is not None else []


@blp.route("/apps/<int:app_id>/plugins")
@blp.response(200, AppPluginOut(many=True))
def list_app_plugins(app_id):
    _app(app_id)
    _require_use(app_id)
    pm = _pm()
    return [_masked(app_id, _state(app_id, name)) for name in (pm.plugin_names() if pm is not None else [])]


@blp.route("/apps/<int:app_id>/plugins/<name>")
@blp.response(200, AppPluginOut)
def get_app_plugin(app_id, name):
    _app(app_id)
    _require_use(app_id)
    return _masked(app_id, _state(app_id, _plugin(name)))


def _require_use(app_id: int) -> None:
    """Plugin switches are visible to those who may use the app; their settings to its managers."""
    from kumiki.api.apps import may_app, require_app_right
    if not (may_app(app_id, "view") or may_app(app_id, "manage")):
        require_app_right(app_id, "view")


def _masked(app_id: int, state: dict) -> dict:
    from kumiki.api.apps import may_app
    if may_app(app_id, "manage"):
        return state
    return {**state, "settings": {}}


@blp.route("/apps/<int:app_id>/plugins/<name>", methods=["PUT"])
@blp.arguments(AppPluginIn)
@blp.response(200, AppPluginOut)
def put_app_plugin(body, app_id, name):
    from kumiki.api.apps import require_app_right
    from kumiki.api.audit import record_in_request
    _app(app_id)
    require_app_right(app_id, "manage")
    _plugin(name)
    plugins.validate_settings(_pm().settings_schemas.get(name), body["settings"])
    session = db()
    row = _row(app_id, name)
    if row is None:
        row = PluginSetting(app_id=app_id, plugin=name)
        session.add(row)
    row.enabled = body["enabled"]
    row.settings = body["settings"]
    record_in_request("plugin.settings", app_id=app_id, detail={"plugin": name, "enabled": row.enabled})
    session.commit()
    return _state(app_id, name)


@blp.route("/apps/<int:app_id>/plugins/<name>/actions/<action_id>", methods=["POST"])
@blp.arguments(ActionIn)
@blp.response(202, JobOut)
def run_action(body, app_id, name, action_id):
    """Start an app action's job (shown on the app's page); poll GET /api/v1/jobs/<id>."""
    # The job acts as this user through RecordService, which applies their rights to every record.
    from kumiki.api.apps import require_app_right
    user = actor()
    _app(app_id)
    require_app_right(app_id, "view")
    _plugin(name)
    session = db()
    if plugins.plugin_settings(session, app_id, name) is None:
        raise Conflict("plugins.not_enabled", plugin=name)
    action = next((a for a in plugins.collect_app_actions(_pm(), app_id, [name])
                   if a["id"] == action_id), None)
    if action is None:
        raise NotFound("not_found")
    return jobs.enqueue(session, action["job"], body["params"], user=user, app_id=app_id)
