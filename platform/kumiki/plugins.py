"""Plugin host: pluggy hookspecs, discovery, and per-app plugin settings.

Modelled on Datasette's ``hookspecs.py``. A plugin is any module or object with functions marked
``@kumiki.plugins.hookimpl``; it is discovered through the entry-point group ``kumiki.plugins``
(the entry point's name is the plugin's name) or listed in the Flask config key
``KUMIKI_EXTRA_PLUGINS`` (tests use that), e.g.::

    # pyproject.toml of a plugin distribution
    [project.entry-points."kumiki.plugins"]
    search = "kumiki_search.plugin"

    # kumiki_search/plugin.py
    from kumiki.plugins import hookimpl

    @hookimpl
    def record_changed(event):
        ...

Every hook is called once per plugin (see :func:`call_each`) so that the host always knows which
plugin answered and one plugin's failure is attributed to it.
"""
from __future__ import annotations

import importlib
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pluggy
from flask import Flask
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from sqlalchemy import select
from sqlalchemy.orm import Session

from kumiki import i18n
from kumiki.errors import Detail, ValidationError

log = logging.getLogger(__name__)

PROJECT = "kumiki"
ENTRY_POINT_GROUP = "kumiki.plugins"
URL_PREFIX = "/api/v1/plugins"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

__all__ = ["hookimpl", "hookspec", "RecordEvent", "KumikiSpecs", "PluginManager", "PluginError",
           "init_app", "make_manager", "get_manager", "call_each", "dispatch_record_changed",
           "collect_app_actions", "catalog_app_dirs", "validate_settings", "plugin_settings",
           "enabled_plugins", "ENTRY_POINT_GROUP"]


@dataclass(frozen=True)
class RecordEvent:
    """What RecordService tells plugins after a write has committed."""

    app_id: int
    action: str                      # "create" | "update" | "delete"
    record_ids: list[int]
    user_code: str | None = None     # the acting user (None for system writes)
    revisions: list[int] = field(default_factory=list)  # new $revision per record (same order)


class KumikiSpecs:
    """The hooks a kumiki plugin may implement. Every hook is optional for a plugin."""

    @hookspec
    def register_blueprints(self):
        """Return a list of ``flask_smorest.Blueprint`` (or ``flask.Blueprint``) objects.

        Each is mounted under ``/api/v1/plugins/<plugin name>/`` (plus the blueprint's own
        ``url_prefix``); requests are authenticated like every other API request, and
        ``kumiki.api.common.actor()`` / ``db()`` work inside the views.
        """

    @hookspec
    def register_jobs(self):
        """Return ``{kind: callable(ctx, **params)}`` of background jobs (see :mod:`kumiki.jobs`).

        Name kinds ``"<plugin>.<job>"``; a kind registered twice is a startup error.
        """

    @hookspec
    def plugin_settings_schema(self):
        """Return ``(plugin name, JSON Schema dict)`` (draft 2020-12) for the per-app settings.

        A plain schema dict is accepted too; the plugin's registered name is used either way.
        """

    @hookspec
    def record_changed(self, event):
        """Called after records were created, updated or deleted (``event`` is a RecordEvent).

        The write has already committed: an exception here is logged and swallowed. Do heavy work
        in a job (``kumiki.jobs.enqueue``), not here.
        """

    @hookspec
    def app_actions(self, app_id):
        """Return a list of ``{"id", "label": {"ja", "en"}, "job": kind}`` shown on the app's page.

        Only actions of plugins enabled for the app are shown (see :func:`collect_app_actions`).
        """

    @hookspec
    def catalog_apps(self):
        """Return a list of paths of catalog app folders (template package + sample data) shipped
        by the plugin."""


HOOK_NAMES = tuple(name for name in vars(KumikiSpecs) if not name.startswith("_"))


class PluginError(RuntimeError):
    """A plugin is broken in a way that must stop startup (bad schema, duplicate job kind…)."""


class PluginManager(pluggy.PluginManager):
    """pluggy's manager plus what the host learned at start-up."""

    def __init__(self) -> None:
        super().__init__(PROJECT)
        self.add_hookspecs(KumikiSpecs)
        self.settings_schemas: dict[str, dict] = {}

    def plugin_names(self) -> list[str]:
        return sorted(name for name, plugin in self.list_name_plugin() if plugin is not None)

    def hooks_of(self, name: str) -> list[str]:
        plugin = self.get_plugin(name)
        if plugin is None:
            return []
        return sorted(c.name for c in self.get_hookcallers(plugin) or [])

    def version_of(self, name: str) -> str | None:
        plugin = self.get_plugin(name)
        for p, dist in self.list_plugin_distinfo():
            if p is plugin:
                return dist.version
        return getattr(plugin, "__version__", None)

    def info(self) -> list[dict]:
        return [{"name": n, "version": self.version_of(n), "hooks": self.hooks_of(n),
                 "settings_schema": self.settings_schemas.get(n)} for n in self.plugin_names()]


# --- discovery -----------------------------------------------------------------------------

def _extra_entries(entries: Iterable[Any]) -> Iterable[tuple[str, Any]]:
    for entry in entries or ():
        if isinstance(entry, (tuple, list)):
            name, obj = entry
        else:
            name, obj = None, entry
        if isinstance(obj, str):
            obj = importlib.import_module(obj)
        if name is None:
            name = getattr(obj, "KUMIKI_PLUGIN_NAME", None) or \
                getattr(obj, "__name__", type(obj).__name__).rsplit(".", 1)[-1]
        yield name, obj


def make_manager(extra: Iterable[Any] = (), *, entry_points: bool = True,
                 blocked: Iterable[str] = ()) -> PluginManager:
    """Build the manager: ``extra`` plugins first (they win a name clash), then entry points."""
    pm = PluginManager()
    for name in blocked or ():
        pm.set_blocked(name)
    for name, obj in _extra_entries(extra):
        if pm.is_blocked(name):
            continue
        pm.register(obj, name=name)
    if entry_points:
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    try:
        pm.check_pending()   # a hookimpl whose name is no hook is a typo: say so at start-up
    except pluggy.PluginValidationError as exc:
        raise PluginError(str(exc)) from exc
    _load_schemas(pm)
    return pm


def call_each(pm: PluginManager, hook_name: str, **kwargs) -> list[tuple[str, Any]]:
    """Call ``hook_name`` on each plugin separately: ``[(plugin name, result)]``.

    Results that are ``None`` are dropped (as pluggy does). Exceptions propagate; callers that
    must survive a broken plugin catch them per plugin (see :func:`dispatch_record_changed`).
    """
    hook = getattr(pm.hook, hook_name)
    out = []
    for impl in reversed(hook.get_hookimpls()):   # pluggy's call order (LIFO, tryfirst first)
        if impl.hookwrapper or impl.wrapper:
            continue
        result = impl.function(*[kwargs[a] for a in impl.argnames])
        if result is not None:
            out.append((impl.plugin_name, result))
    return out


def _load_schemas(pm: PluginManager) -> None:
    for name, value in call_each(pm, "plugin_settings_schema"):
        if isinstance(value, (tuple, list)) and len(value) == 2:
            declared, schema = value
            if declared != name:
                log.warning("plugin %r declares its settings under the name %r; using %r",
                            name, declared, name)
        else:
            schema = value
        if not isinstance(schema, dict):
            raise PluginError(f"plugin {name!r}: plugin_settings_schema must return a JSON Schema dict")
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            raise PluginError(f"plugin {name!r}: invalid settings schema: {exc.message}") from exc
        pm.settings_schemas[name] = schema


# --- Flask integration -----------------------------------------------------------------------

def init_app(flask_app: Flask) -> PluginManager:
    """Discover plugins, mount their blueprints and register their jobs."""
    from kumiki import jobs

    cfg = flask_app.config
    pm = make_manager(cfg.get("KUMIKI_EXTRA_PLUGINS") or (),
                      entry_points=cfg.get("KUMIKI_LOAD_ENTRY_POINTS", True),
                      blocked=cfg.get("KUMIKI_BLOCKED_PLUGINS") or ())
    flask_app.extensions["kumiki"].plugins = pm
    _register_blueprints(flask_app, pm)
    registry = jobs.registry_for(flask_app)
    for name, kinds in call_each(pm, "register_jobs"):
        for kind, fn in dict(kinds).items():
            try:
                registry.add(kind, fn, plugin=name)
            except ValueError as exc:
                raise PluginError(str(exc)) from None
    return pm


def get_manager(flask_app: Flask | None = None) -> PluginManager | None:
    from flask import current_app
    app = flask_app or current_app
    return app.extensions["kumiki"].plugins


def _register_blueprints(flask_app: Flask, pm: PluginManager) -> None:
    import flask
    import flask_smorest

    api = flask_app.extensions.get("kumiki_api")
    for name, blueprints in call_each(pm, "register_blueprints"):
        if isinstance(blueprints, flask.Blueprint) or not isinstance(blueprints, (list, tuple)):
            blueprints = [blueprints]
        for blp in blueprints:
            prefix = f"{URL_PREFIX}/{name}" + (blp.url_prefix or "").rstrip("/")
            reg_name = re.sub(r"[^A-Za-z0-9_]", "_", f"plugin_{name}_{blp.name}")
            if api is not None and isinstance(blp, flask_smorest.Blueprint):
                api.register_blueprint(blp, url_prefix=prefix, name=reg_name)
            else:
                flask_app.register_blueprint(blp, url_prefix=prefix, name=reg_name)


# --- hooks the platform calls ----------------------------------------------------------------

def dispatch_record_changed(pm: PluginManager | None, event: RecordEvent) -> None:
    """Tell every plugin about a committed write. Never raises: a failing plugin is logged."""
    if pm is None:
        return
    for impl in reversed(pm.hook.record_changed.get_hookimpls()):
        if impl.hookwrapper or impl.wrapper:
            continue
        try:
            impl.function(*[{"event": event}[a] for a in impl.argnames])
        except Exception:
            log.exception("plugin %r failed in record_changed (app %s, %s %s)",
                          impl.plugin_name, event.app_id, event.action, event.record_ids)


def collect_app_actions(pm: PluginManager | None, app_id: int,
                        enabled: Iterable[str] | None = None) -> list[dict]:
    """Actions for the app's page: ``[{"id", "label", "job", "plugin"}]``.

    ``enabled`` limits them to those plugins (pass :func:`enabled_plugins`); a plugin whose hook
    fails contributes nothing (logged).
    """
    if pm is None:
        return []
    allowed = None if enabled is None else set(enabled)
    actions = []
    for impl in reversed(pm.hook.app_actions.get_hookimpls()):
        name = impl.plugin_name
        if allowed is not None and name not in allowed:
            continue
        try:
            result = impl.function(*[{"app_id": app_id}[a] for a in impl.argnames]) or []
        except Exception:
            log.exception("plugin %r failed in app_actions (app %s)", name, app_id)
            continue
        for action in result:
            actions.append({"id": action["id"], "label": action.get("label") or {},
                            "job": action["job"], "plugin": name})
    return actions


def catalog_app_dirs(pm: PluginManager | None) -> list[tuple[str, Path]]:
    """``[(plugin name, folder)]`` of the catalog apps plugins ship."""
    if pm is None:
        return []
    return [(name, Path(p)) for name, paths in call_each(pm, "catalog_apps") for p in paths]


# --- per-app settings ------------------------------------------------------------------------

def plugin_settings(session: Session, app_id: int, name: str) -> dict | None:
    """The plugin's settings for the app, or None when the plugin is not enabled for it."""
    from kumiki.model import PluginSetting

    row = session.scalar(select(PluginSetting).where(PluginSetting.app_id == app_id,
                                                     PluginSetting.plugin == name))
    if row is None or not row.enabled:
        return None
    return dict(row.settings or {})


def enabled_plugins(session: Session, app_id: int) -> set[str]:
    from kumiki.model import PluginSetting

    return set(session.scalars(select(PluginSetting.plugin).where(
        PluginSetting.app_id == app_id, PluginSetting.enabled.is_(True))))


_TYPE_NAMES = {"string": ("文字列", "string"), "integer": ("整数", "integer"),
               "number": ("数値", "number"), "boolean": ("真偽値（true/false）", "boolean"),
               "object": ("オブジェクト", "object"), "array": ("配列", "array"), "null": ("null", "null")}

i18n.register({
    "plugins.settings_invalid": ("プラグインの設定に誤りがあります。", "The plugin settings are not valid."),
    "plugins.settings.type": ("{type_ja}で指定してください。", "Must be of type {type_en}."),
    "plugins.settings.required": ("必須項目です。", "This setting is required."),
    "plugins.settings.unknown": ("この設定項目はありません。", "Unknown setting."),
    "plugins.settings.minimum": ("{limit}以上の値を指定してください。", "Must be at least {limit}."),
    "plugins.settings.maximum": ("{limit}以下の値を指定してください。", "Must be at most {limit}."),
    "plugins.settings.exclusiveMinimum": ("{limit}より大きい値を指定してください。",
                                          "Must be greater than {limit}."),
    "plugins.settings.exclusiveMaximum": ("{limit}より小さい値を指定してください。",
                                          "Must be less than {limit}."),
    "plugins.settings.multipleOf": ("{limit}の倍数を指定してください。", "Must be a multiple of {limit}."),
    "plugins.settings.minLength": ("{limit}文字以上で入力してください。",
                                   "Must be at least {limit} characters."),
    "plugins.settings.maxLength": ("{limit}文字以内で入力してください。",
                                   "Must be at most {limit} characters."),
    "plugins.settings.minItems": ("{limit}個以上指定してください。", "Needs at least {limit} items."),
    "plugins.settings.maxItems": ("{limit}個以内で指定してください。", "Allows at most {limit} items."),
    "plugins.settings.uniqueItems": ("同じ値が重複しています。", "Items must be unique."),
    "plugins.settings.pattern": ("形式が正しくありません（{pattern}）。",
                                 "Does not match the pattern {pattern}."),
    "plugins.settings.format": ("{format}の形式で入力してください。", "Must be a valid {format}."),
    "plugins.settings.enum": ("次のいずれかを指定してください: {choices}", "Must be one of: {choices}"),
    "plugins.settings.const": ("{value}を指定してください。", "Must be {value}."),
    "plugins.settings.invalid": ("値が正しくありません（{detail}）。", "Invalid value ({detail})."),
})

_LIMIT_KEYWORDS = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
                   "minLength", "maxLength", "minItems", "maxItems"}


def _locate(prefix: str, parts: Iterable[Any]) -> str:
    out = prefix
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _details_for(err, prefix: str) -> list[Detail]:
    path = _locate(prefix, err.absolute_path)
    kw, value = err.validator, err.validator_value
    if kw == "required" and isinstance(err.instance, dict):
        return [Detail(_locate(path, [m]), "plugins.settings.required")
                for m in value if m not in err.instance]
    if kw == "additionalProperties" and value is False and isinstance(err.instance, dict):
        props = err.schema.get("properties", {})
        patterns = err.schema.get("patternProperties", {})
        extras = [k for k in err.instance
                  if k not in props and not any(re.search(p, k) for p in patterns)]
        return [Detail(_locate(path, [k]), "plugins.settings.unknown") for k in extras]
    if kw == "type":
        names = [value] if isinstance(value, str) else list(value)
        ja = "・".join(_TYPE_NAMES.get(n, (n, n))[0] for n in names)
        en = " or ".join(_TYPE_NAMES.get(n, (n, n))[1] for n in names)
        return [Detail(path, "plugins.settings.type", {"type_ja": ja, "type_en": en})]
    if kw in _LIMIT_KEYWORDS:
        return [Detail(path, f"plugins.settings.{kw}", {"limit": value})]
    if kw == "enum":
        choices = ", ".join(json.dumps(v, ensure_ascii=False) for v in value)
        return [Detail(path, "plugins.settings.enum", {"choices": choices})]
    if kw == "const":
        return [Detail(path, "plugins.settings.const", {"value": json.dumps(value, ensure_ascii=False)})]
    if kw == "pattern":
        return [Detail(path, "plugins.settings.pattern", {"pattern": value})]
    if kw == "format":
        return [Detail(path, "plugins.settings.format", {"format": value})]
    if kw == "uniqueItems":
        return [Detail(path, "plugins.settings.uniqueItems")]
    return [Detail(path, "plugins.settings.invalid", {"detail": err.message})]


def validate_settings(schema: dict | None, settings: Any, prefix: str = "settings") -> None:
    """Validate ``settings`` against a plugin's schema; raise ValidationError with located,
    translated details (``settings.threshold``: ``0以上の値を指定してください。``)."""
    schema = schema if schema is not None else {"type": "object"}
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(settings),
                    key=lambda e: ([str(p) for p in e.absolute_path], e.validator))
    details: list[Detail] = []
    for err in errors:
        details.extend(_details_for(err, prefix))
    if details:
        raise ValidationError(details, key="plugins.settings_invalid")
