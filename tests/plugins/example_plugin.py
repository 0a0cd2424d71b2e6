"""A tiny kumiki plugin implementing every hook; the plugin host tests load it.

Registered as ``("example", "tests.plugins.example_plugin")`` in ``KUMIKI_EXTRA_PLUGINS`` or through
a (fake) ``kumiki.plugins`` entry point.
"""
from __future__ import annotations

import threading
from pathlib import Path

from flask_smorest import Blueprint

from kumiki.plugins import hookimpl

SETTINGS_SCHEMA = {
    "type": "object",
    "properties": {
        "threshold": {"type": "integer", "minimum": 0, "maximum": 100},
        "label": {"type": "string", "maxLength": 10},
        "mode": {"enum": ["fast", "exact"]},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["threshold"],
    "additionalProperties": False,
}

EVENTS: list = []                 # RecordEvents received by record_changed
GATE = threading.Event()          # example.wait blocks on it (live-progress tests)

blp = Blueprint("example", __name__, description="example plugin")


@blp.route("/hello")
def hello():
    from kumiki.api.common import actor
    return {"plugin": "example", "user": actor().code}


@blp.route("/apps/<int:app_id>/settings")
def my_settings(app_id):
    from kumiki.api.common import db
    from kumiki.plugins import plugin_settings
    return {"settings": plugin_settings(db(), app_id, "example")}


def count_job(ctx, n=3):
    for i in range(n):
        ctx.progress(i / n, f"{i}/{n}")
    settings = ctx.plugin_settings("example") or {}
    return {"counted": n, "user_id": ctx.user_id, "user": ctx.user.code if ctx.user else None,
            "app_id": ctx.app_id, "threshold": settings.get("threshold")}


def fail_job(ctx, message="わざと失敗しました"):
    ctx.progress(0.5, "途中まで")
    raise RuntimeError(message)


def wait_job(ctx, timeout=20):
    ctx.progress(0.5, "待機中")
    if not GATE.wait(timeout):
        raise TimeoutError("gate was never opened")
    return {"waited": True}


@hookimpl
def register_blueprints():
    return [blp]


@hookimpl
def register_jobs():
    return {"example.count": count_job, "example.fail": fail_job, "example.wait": wait_job}


@hookimpl
def plugin_settings_schema():
    return ("example", SETTINGS_SCHEMA)


@hookimpl
def record_changed(event):
    EVENTS.append(event)


@hookimpl
def app_actions(app_id):
    return [{"id": "count", "label": {"ja": "件数を数える", "en": "Count"}, "job": "example.count"},
            {"id": "fail", "label": {"ja": "失敗する", "en": "Fail"}, "job": "example.fail"}]


@hookimpl
def catalog_apps():
    return [Path(__file__).parent / "example_catalog" / "hello"]


class BrokenPlugin:
    """A plugin whose hooks raise: the host must survive it."""

    @hookimpl
    def record_changed(self, event):
        raise RuntimeError("record_changed exploded")

    @hookimpl
    def app_actions(self, app_id):
        raise RuntimeError("app_actions exploded")
