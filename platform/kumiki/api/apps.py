"""Apps: create, read, list, edit the draft, deploy, versions."""
from __future__ import annotations

from flask_smorest import Blueprint
from marshmallow import INCLUDE, Schema, fields
from sqlalchemy import select

from kumiki.api.audit import record_in_request
from kumiki.api.common import actor, db, json_body, record_service, require_admin, state
from kumiki.definitions import deploy as lifecycle
from kumiki.errors import Forbidden, NotFound
from kumiki.model import App, AppVersion, User

PREFIX = "/apps"
blp = Blueprint("apps", __name__, description="アプリ / apps: definitions, drafts, deploys, versions")


class AppSummary(Schema):
    id = fields.Integer()
    code = fields.String(allow_none=True)
    name = fields.String()
    description = fields.String()
    version = fields.Integer(attribute="deployed_version", metadata={"description": "0 = not deployed yet"})
    draftRevision = fields.Integer(attribute="draft_revision")


class AppDetail(AppSummary):
    definition = fields.Dict(metadata={"description": "the deployed definition (schema_defs/app.schema.json)"})


class ListArgs(Schema):
    code = fields.String()
    limit = fields.Integer(load_default=100, validate=lambda n: 1 <= n <= 500)
    offset = fields.Integer(load_default=0, validate=lambda n: n >= 0)


class CreateArgs(Schema):
    deploy = fields.Boolean(load_default=False)


class DefinitionIn(Schema):
    class Meta:
        unknown = INCLUDE
    name = fields.String(required=True)


class DraftOut(Schema):
    revision = fields.Integer()
    definition = fields.Dict()


class DraftIn(Schema):
    definition = fields.Dict(required=True)
    revision = fields.Integer(metadata={"description": "the draft revision you edited; 409 if stale"})


class VersionOut(Schema):
    version = fields.Integer()
    deployedAt = fields.DateTime(attribute="deployed_at")
    deployedBy = fields.String(attribute="deployed_by_code", allow_none=True)
    report = fields.Dict()


class VersionDetail(VersionOut):
    definition = fields.Dict()


def may_app(app_id: int, right: str) -> bool:
    """The acting user's app right; an app never deployed yet is its administrators' only."""
    user = actor()
    if user.is_admin:
        return True
    try:
        return record_service().access(app_id).can(right)
    except NotFound:
        return False


def require_app_right(app_id: int, right: str) -> None:
    lifecycle.get_app(db(), app_id)           # 404 for an app that does not exist
    if not may_app(app_id, right):
        from kumiki.access import RIGHT_LABELS
        ja, en = RIGHT_LABELS[right]
        raise Forbidden("access.no_app_right", right=ja, right_en=en)


def _detail(app: App) -> dict:
    out = {"id": app.id, "code": app.code, "name": app.name, "description": app.description,
           "deployed_version": app.deployed_version, "draft_revision": app.draft_revision}
    definition = None
    if app.deployed_version:
        definition = db().scalar(select(AppVersion.definition).where(
            AppVersion.app_id == app.id, AppVersion.version == app.deployed_version))
    if definition is not None and not may_app(app.id, "manage"):
        definition = {k: v for k, v in definition.items() if k != "permissions"}
    out["definition"] = definition
    return out


@blp.route("", methods=["POST"])
@blp.arguments(CreateArgs, location="query")
@blp.arguments(DefinitionIn, location="json", description="an app definition")
@blp.response(201, AppDetail)
def create(args, _body):
    user = require_admin()
    session = db()
    app = lifecycle.create_app(session, json_body(), user)
    record_in_request("app.create", app_id=app.id, detail={"name": app.name})
    if args["deploy"]:
        version = lifecycle.deploy(session, app, user, timezone=state().config.timezone)
        _audit_deploy(app.id, version, None)
    session.commit()
    return _detail(app)


@blp.route("")
@blp.arguments(ListArgs, location="query")
@blp.response(200, AppSummary(many=True))
def list_apps(args):
    """The apps the user may use (view records in, or manage)."""
    actor()
    stmt = select(App).order_by(App.id)
    if args.get("code"):
        stmt = stmt.where(App.code == args["code"])
    mine = [a for a in db().scalars(stmt) if may_app(a.id, "view") or may_app(a.id, "manage")]
    return mine[args["offset"]:args["offset"] + args["limit"]]


@blp.route("/<int:app_id>")
@blp.response(200, AppDetail)
def get(app_id):
    app = lifecycle.get_app(db(), app_id)
    if not (may_app(app_id, "view") or may_app(app_id, "manage")):
        require_app_right(app_id, "view")
    return _detail(app)


@blp.route("/<int:app_id>/draft")
@blp.response(200, DraftOut)
def get_draft(app_id):
    require_app_right(app_id, "manage")
    app = lifecycle.get_app(db(), app_id)
    return {"revision": app.draft_revision, "definition": app.draft}


@blp.route("/<int:app_id>/draft", methods=["PUT"])
@blp.arguments(DraftIn)
@blp.response(200, DraftOut)
def put_draft(body, app_id):
    require_app_right(app_id, "manage")
    session = db()
    app = lifecycle.get_app(session, app_id, for_update=True)
    lifecycle.save_draft(session, app, body["definition"], body.get("revision"))
    record_in_request("app.draft", app_id=app_id, detail={"draft_revision": app.draft_revision})
    session.commit()
    return {"revision": app.draft_revision, "definition": app.draft}


@blp.route("/<int:app_id>/deploy", methods=["POST"])
@blp.response(200, VersionDetail)
def deploy(app_id):
    require_app_right(app_id, "manage")
    user = actor()
    session = db()
    app = lifecycle.get_app(session, app_id, for_update=True)
    before = session.scalar(select(AppVersion.definition).where(
        AppVersion.app_id == app_id, AppVersion.version == app.deployed_version)) if app.deployed_version else None
    version = lifecycle.deploy(session, app, user, timezone=state().config.timezone)
    _audit_deploy(app_id, version, before)
    session.commit()
    return _version_out(version)


@blp.route("/<int:app_id>/versions")
@blp.response(200, VersionOut(many=True))
def versions(app_id):
    require_app_right(app_id, "manage")
    rows = db().scalars(select(AppVersion).where(AppVersion.app_id == app_id).order_by(AppVersion.version.desc()))
    return [_version_out(v, with_definition=False) for v in rows]


@blp.route("/<int:app_id>/versions/<int:version>")
@blp.response(200, VersionDetail)
def version_detail(app_id, version):
    require_app_right(app_id, "manage")
    v = db().scalar(select(AppVersion).where(AppVersion.app_id == app_id, AppVersion.version == version))
    if v is None:
        raise NotFound("not_found")
    return _version_out(v)


def _audit_deploy(app_id: int, version: AppVersion, before: dict | None) -> None:
    """A deploy is a definition change; a change of its permissions is audited as one too."""
    record_in_request("app.deploy", app_id=app_id, detail={"version": version.version})
    old = (before or {}).get("permissions")
    new = version.definition.get("permissions")
    if old != new:
        record_in_request("permission.change", app_id=app_id,
                          detail={"version": version.version, "parts": sorted(
                              k for k in {"app", "record", "field"} if (old or {}).get(k) != (new or {}).get(k))})


def _version_out(v: AppVersion, with_definition: bool = True) -> dict:
    code = db().scalar(select(User.code).where(User.id == v.deployed_by)) if v.deployed_by else None
    out = {"version": v.version, "deployed_at": v.deployed_at, "deployed_by_code": code, "report": v.report}
    if with_definition:
        out["definition"] = v.definition
    return out


class AppTokenIn(Schema):
    name = fields.String(required=True)
    scopes = fields.List(fields.String(), required=True,
                         metadata={"description": "one or more of view, add, edit, delete"})


class AppTokenOut(Schema):
    id = fields.Integer()
    name = fields.String()
    prefix = fields.String()
    scopes = fields.List(fields.String())
    created_at = fields.DateTime()
    last_used_at = fields.DateTime(allow_none=True)
    revoked_at = fields.DateTime(allow_none=True)


class AppTokenCreated(AppTokenOut):
    token = fields.String(metadata={"description": "shown once; send it as X-Kumiki-App-Token"})


@blp.route("/<int:app_id>/tokens")
@blp.response(200, AppTokenOut(many=True))
def list_app_tokens(app_id):
    require_app_right(app_id, "manage")
    from kumiki.model import AppToken
    return db().scalars(select(AppToken).where(AppToken.app_id == app_id).order_by(AppToken.id)).all()


@blp.route("/<int:app_id>/tokens", methods=["POST"])
@blp.arguments(AppTokenIn)
@blp.response(201, AppTokenCreated)
def create_app_token(body, app_id):
    require_app_right(app_id, "manage")
    from kumiki.access import tokens
    session = db()
    token, secret = tokens.issue(session, app_id, body["name"], body["scopes"], actor().id)
    record_in_request("token.create", app_id=app_id, detail={"token_id": token.id, "scopes": token.scopes})
    session.commit()
    return {**{k: getattr(token, k) for k in AppTokenOut().fields}, "token": secret}


@blp.route("/<int:app_id>/tokens/<int:token_id>", methods=["DELETE"])
@blp.response(204)
def revoke_app_token(app_id, token_id):
    require_app_right(app_id, "manage")
    from kumiki.access import tokens
    session = db()
    tokens.revoke(session, app_id, token_id)
    record_in_request("token.revoke", app_id=app_id, detail={"token_id": token_id})
    session.commit()
    return None
