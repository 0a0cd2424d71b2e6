"""Organizations (a tree), groups, users' memberships and the directory CSV import.

Reads need a logged-in user; writes need an administrator. The logic is in :mod:`kumiki.directory`.
"""
from __future__ import annotations

from flask import request
from flask_smorest import Blueprint
from flask_smorest.fields import Upload
from marshmallow import Schema, fields

from kumiki import directory as d
from kumiki import i18n
from kumiki.api.common import actor, db, require_admin
from kumiki.errors import Detail, ValidationError

PREFIX = ""
blp = Blueprint("directory", __name__, description="組織・グループ / organizations and groups")

i18n.register({"directory.file_missing": ("CSVファイルを選んでください（フォーム項目名 file）。",
                                          "Send the CSV file in the form field \"file\".")})


class CodeName(Schema):
    code = fields.String()
    name = fields.String()


class OrgOut(Schema):
    code = fields.String()
    name = fields.String()
    parent = fields.String(allow_none=True, metadata={"description": "code of the parent; null = top level"})
    position = fields.Integer(metadata={"description": "order among siblings"})
    depth = fields.Integer(metadata={"description": "0 = top level"})


class OrgDetail(OrgOut):
    ancestors = fields.List(fields.Nested(CodeName), metadata={"description": "root first (breadcrumbs)"})
    children = fields.List(fields.Nested(CodeName))


class OrgNode(Schema):
    code = fields.String()
    name = fields.String()
    position = fields.Integer()
    children = fields.List(fields.Nested(lambda: OrgNode()))


class OrgListArgs(Schema):
    flat = fields.Boolean(load_default=False, metadata={
        "description": "true: a flat list in tree order (OrgOut) instead of nested nodes (OrgNode)"})


class OrgIn(Schema):
    code = fields.String(required=True)
    name = fields.String(required=True)
    parent = fields.String(allow_none=True, metadata={"description": "code of the parent; omit or null = top level"})
    position = fields.Integer(allow_none=True)


class OrgUpdate(Schema):
    name = fields.String()
    parent = fields.String(allow_none=True, metadata={"description": "present = move (null = top level)"})
    position = fields.Integer(allow_none=True)


class Member(CodeName):
    primary = fields.Boolean()


class GroupOut(Schema):
    code = fields.String()
    name = fields.String()
    description = fields.String()
    members = fields.Integer(metadata={"description": "number of members"})


class GroupIn(Schema):
    code = fields.String(required=True)
    name = fields.String(required=True)
    description = fields.String(load_default="")


class GroupUpdate(Schema):
    name = fields.String()
    description = fields.String()


class UserOrgs(Schema):
    organizations = fields.List(fields.String(), required=True, metadata={"description": "organization codes"})
    primary = fields.String(allow_none=True, metadata={"description": "the primary one (主所属); default: the first"})


class UserGroups(Schema):
    groups = fields.List(fields.String(), required=True, metadata={"description": "group codes"})


class ImportArgs(Schema):
    encoding = fields.String(metadata={"description": "auto (default), utf-8 or cp932; may also be a form field"})


class ImportFile(Schema):
    file = Upload(metadata={"description": "the CSV file (see kumiki.directory for its columns)"})


class ImportOut(Schema):
    rows = fields.Integer()
    organizations_created = fields.Integer()
    organizations_updated = fields.Integer()
    groups_created = fields.Integer()
    groups_updated = fields.Integer()
    users_updated = fields.Integer(metadata={"description": "users whose memberships changed"})


def _group_out(code: str) -> dict:
    return next(g for g in d.list_groups(db()) if g["code"] == code)


# ---- organizations -------------------------------------------------------------------------

@blp.route("/organizations")
@blp.arguments(OrgListArgs, location="query")
@blp.response(200, description="the tree: OrgNode[] (or OrgOut[] with ?flat=true)")
def list_organizations(args):
    actor()
    return d.flat_list(db()) if args["flat"] else d.tree(db())


@blp.route("/organizations", methods=["POST"])
@blp.arguments(OrgIn)
@blp.response(201, OrgDetail)
def create_organization(body):
    require_admin()
    session = db()
    org = d.create_organization(session, body["code"], body["name"], body.get("parent"), body.get("position"))
    session.commit()
    return d.organization_info(session, org.code)


@blp.route("/organizations/<string:code>")
@blp.response(200, OrgDetail)
def get_organization(code):
    actor()
    return d.organization_info(db(), code)


@blp.route("/organizations/<string:code>", methods=["PUT"])
@blp.arguments(OrgUpdate)
@blp.response(200, OrgDetail)
def update_organization(body, code):
    require_admin()
    session = db()
    d.update_organization(session, code, name=body.get("name"), position=body.get("position"),
                          parent=body["parent"] if "parent" in body else d.UNSET)
    session.commit()
    return d.organization_info(session, code)


@blp.route("/organizations/<string:code>", methods=["DELETE"])
@blp.response(204)
def delete_organization(code):
    require_admin()
    session = db()
    d.delete_organization(session, code)
    session.commit()
    return None


@blp.route("/organizations/<string:code>/members")
@blp.response(200, Member(many=True))
def organization_members(code):
    actor()
    return d.organization_members(db(), code)


# ---- groups --------------------------------------------------------------------------------

@blp.route("/groups")
@blp.response(200, GroupOut(many=True))
def list_groups():
    actor()
    return d.list_groups(db())


@blp.route("/groups", methods=["POST"])
@blp.arguments(GroupIn)
@blp.response(201, GroupOut)
def create_group(body):
    require_admin()
    session = db()
    group = d.create_group(session, body["code"], body["name"], body.get("description", ""))
    session.commit()
    return _group_out(group.code)


@blp.route("/groups/<string:code>")
@blp.response(200, GroupOut)
def get_group(code):
    actor()
    d.get_group(db(), code)
    return _group_out(code)


@blp.route("/groups/<string:code>", methods=["PUT"])
@blp.arguments(GroupUpdate)
@blp.response(200, GroupOut)
def update_group(body, code):
    require_admin()
    session = db()
    d.update_group(session, code, name=body.get("name"), description=body.get("description"))
    session.commit()
    return _group_out(code)


@blp.route("/groups/<string:code>", methods=["DELETE"])
@blp.response(204)
def delete_group(code):
    require_admin()
    session = db()
    d.delete_group(session, code)
    session.commit()
    return None


@blp.route("/groups/<string:code>/members")
@blp.response(200, CodeName(many=True))
def group_members(code):
    actor()
    return d.group_members(db(), code)


# ---- a user's memberships ------------------------------------------------------------------

@blp.route("/users/<string:code>/organizations")
@blp.response(200, UserOrgs)
def get_user_organizations(code):
    actor()
    session = db()
    return d.user_organizations(session, d.get_user(session, code))


@blp.route("/users/<string:code>/organizations", methods=["PUT"])
@blp.arguments(UserOrgs)
@blp.response(200, UserOrgs)
def put_user_organizations(body, code):
    require_admin()
    session = db()
    user = d.get_user(session, code)
    d.set_user_organizations(session, user, body["organizations"], body.get("primary"))
    session.commit()
    return d.user_organizations(session, user)


@blp.route("/users/<string:code>/groups")
@blp.response(200, UserGroups)
def get_user_groups(code):
    actor()
    session = db()
    return d.user_groups(session, d.get_user(session, code))


@blp.route("/users/<string:code>/groups", methods=["PUT"])
@blp.arguments(UserGroups)
@blp.response(200, UserGroups)
def put_user_groups(body, code):
    require_admin()
    session = db()
    user = d.get_user(session, code)
    d.set_user_groups(session, user, body["groups"])
    session.commit()
    return d.user_groups(session, user)


# ---- CSV import ----------------------------------------------------------------------------

@blp.route("/directory/import", methods=["POST"])
@blp.arguments(ImportArgs, location="query")
@blp.arguments(ImportFile, location="files")
@blp.response(200, ImportOut)
def import_directory(args, _files):
    """組織・グループ・所属をCSVから読み込みます（全件成功か、何も書き込まないか） / import the directory CSV."""
    require_admin()
    f = request.files.get("file")
    if f is None:
        raise ValidationError([Detail("file", "directory.file_missing")])
    session = db()
    encoding = args.get("encoding") or request.form.get("encoding") or "auto"
    report = d.import_csv(session, f.read(), encoding)
    session.commit()
    return report.as_dict()


@blp.after_request
def _audit_changes(response):
    """Memberships decide permissions: every successful change of the directory is audited."""
    from flask import request

    from kumiki.api.audit import log_now

    if request.method not in ("GET", "HEAD", "OPTIONS") and response.status_code < 400:
        log_now("directory.change", detail={"method": request.method, "path": request.path})
    return response
