"""Records: get, list (query, fields, totalCount), create (one or up to 1,000), update by id or
unique key, upsert, bulk update, delete, bulk delete, history, and the keyset cursor."""
from __future__ import annotations

from flask import request
from flask_smorest import Blueprint
from marshmallow import INCLUDE, Schema
from marshmallow import fields as ma

from kumiki.api.common import record_service
from kumiki.errors import Detail, ValidationError

PREFIX = "/apps"
blp = Blueprint("records", __name__, description="レコード / records")

RECORD_DOC = ("A record as {fieldCode: value}. Values are plain JSON (kintone's {\"value\": ...} "
              "wrapping is accepted too). Reads add $id and $revision.")


class ListArgs(Schema):
    query = ma.String(metadata={"description": "kintone query language, e.g. 区分 in (\"母子保健\") order by 更新日時 desc limit 100"})
    fields = ma.List(ma.String(), metadata={"description": "field codes to return (repeat or comma-separated)"})
    totalCount = ma.Boolean(load_default=False)


class RecordsOut(Schema):
    records = ma.List(ma.Dict(), metadata={"description": RECORD_DOC})
    totalCount = ma.Integer(allow_none=True)


class CreateIn(Schema):
    record = ma.Dict(metadata={"description": RECORD_DOC})
    records = ma.List(ma.Dict(), metadata={"description": "bulk create: up to 1,000, all or nothing"})


class IdRev(Schema):
    id = ma.Integer()
    revision = ma.Integer()
    created = ma.Boolean()
    formulaErrors = ma.Dict(metadata={"description": "CALC fields whose formula failed, and why (the write still happened)"})


class CreatedOut(IdRev):
    ids = ma.List(ma.Integer())
    revisions = ma.List(ma.Integer())


class UpdateKey(Schema):
    field = ma.String(required=True)
    value = ma.Raw(required=True)


class UpdateItem(Schema):
    class Meta:
        unknown = INCLUDE
    id = ma.Integer()
    updateKey = ma.Nested(UpdateKey)
    revision = ma.Integer(allow_none=True)
    record = ma.Dict(load_default=dict)


class UpdateOneIn(Schema):
    record = ma.Dict(load_default=dict)
    revision = ma.Integer(allow_none=True, metadata={"description": "expected revision; 409 when stale"})


class UpdateManyIn(Schema):
    updateKey = ma.Nested(UpdateKey)
    record = ma.Dict()
    revision = ma.Integer(allow_none=True)
    records = ma.List(ma.Nested(UpdateItem))
    upsert = ma.Boolean(load_default=False)


class UpdatedOut(Schema):
    id = ma.Integer()
    revision = ma.Integer()
    created = ma.Boolean()
    records = ma.List(ma.Nested(IdRev))


class DeleteIn(Schema):
    ids = ma.List(ma.Integer(), required=True)
    revisions = ma.List(ma.Integer(allow_none=True))


class DeleteArgs(Schema):
    revision = ma.Integer()


class HistoryOut(Schema):
    revision = ma.Integer()
    action = ma.String()
    at = ma.String()
    user = ma.Dict(allow_none=True)
    snapshot = ma.Dict(allow_none=True)
    diff = ma.Dict(allow_none=True)


class CursorIn(Schema):
    query = ma.String()
    fields = ma.List(ma.String())
    size = ma.Integer(load_default=500)


class CursorOut(Schema):
    id = ma.String()
    totalCount = ma.Integer()


class CursorNextArgs(Schema):
    id = ma.String(required=True)


class CursorPage(Schema):
    records = ma.List(ma.Dict())
    next = ma.Boolean()
    cursor = ma.String(allow_none=True, metadata={"description": "pass as id to read the next page"})


def _field_list(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    out = []
    for v in values:
        out += [p.strip() for p in v.split(",") if p.strip()]
    return out or None


@blp.route("/<int:app_id>/records")
@blp.arguments(ListArgs, location="query")
@blp.response(200, RecordsOut)
def list_records(args, app_id):
    fields_arg = _field_list(request.args.getlist("fields") or args.get("fields"))
    return record_service().list(app_id, args.get("query"), fields_arg, args["totalCount"])


@blp.route("/<int:app_id>/records", methods=["POST"])
@blp.arguments(CreateIn)
@blp.response(201, CreatedOut)
def create_records(body, app_id):
    svc = record_service()
    if "records" in body:
        results = svc.create_many(app_id, body["records"])
        return {"ids": [r["id"] for r in results], "revisions": [r["revision"] for r in results]}
    if "record" not in body:
        raise ValidationError([Detail("record", "field.required")])
    return svc.create(app_id, body["record"])


@blp.route("/<int:app_id>/records", methods=["PUT"])
@blp.arguments(UpdateManyIn)
@blp.response(200, UpdatedOut)
def update_records(body, app_id):
    svc = record_service()
    if "records" in body:
        results = svc.update_many(app_id, body["records"], upsert=body["upsert"])
        return {"records": results}
    if "updateKey" not in body:
        raise ValidationError([Detail("updateKey", "record.update_key_missing")])
    return svc.update(app_id, body.get("record") or {}, update_key=body["updateKey"],
                      revision=body.get("revision"), upsert=body["upsert"])


@blp.route("/<int:app_id>/records", methods=["DELETE"])
@blp.arguments(DeleteIn)
@blp.response(200, Schema.from_dict({"deleted": ma.Integer()}, name="DeletedOut"))
def delete_records(body, app_id):
    return {"deleted": record_service().delete_many(app_id, body["ids"], body.get("revisions"))}


@blp.route("/<int:app_id>/records/<int:record_id>")
@blp.response(200, description=RECORD_DOC)
def get_record(app_id, record_id):
    return record_service().get(app_id, record_id)


@blp.route("/<int:app_id>/records/<int:record_id>", methods=["PUT"])
@blp.arguments(UpdateOneIn)
@blp.response(200, IdRev)
def update_record(body, app_id, record_id):
    return record_service().update(app_id, body.get("record") or {}, record_id=record_id,
                                   revision=body.get("revision"))


@blp.route("/<int:app_id>/records/<int:record_id>", methods=["DELETE"])
@blp.arguments(DeleteArgs, location="query")
@blp.response(200, Schema.from_dict({"deleted": ma.Integer()}, name="DeletedOneOut"))
def delete_record(args, app_id, record_id):
    revisions = [args["revision"]] if "revision" in args else None
    return {"deleted": record_service().delete_many(app_id, [record_id], revisions)}


@blp.route("/<int:app_id>/records/<int:record_id>/history")
@blp.response(200, HistoryOut(many=True))
def record_history(app_id, record_id):
    return record_service().history(app_id, record_id)


@blp.route("/<int:app_id>/cursors", methods=["POST"])
@blp.arguments(CursorIn)
@blp.response(201, CursorOut)
def open_cursor(body, app_id):
    return record_service().cursor_open(app_id, body.get("query"), _field_list(body.get("fields")), body["size"])


@blp.route("/<int:app_id>/cursors/next")
@blp.arguments(CursorNextArgs, location="query")
@blp.response(200, CursorPage)
def cursor_next(args, app_id):
    return record_service().cursor_next(args["id"], app_id)


class DiffArgs(Schema):
    from_ = ma.Integer(required=True, data_key="from", metadata={"description": "revision"})
    to = ma.Integer(required=True, metadata={"description": "revision"})


class RestoreIn(Schema):
    revision = ma.Integer(required=True)


class TrashArgs(Schema):
    limit = ma.Integer(load_default=100, validate=lambda n: 1 <= n <= 500)
    offset = ma.Integer(load_default=0, validate=lambda n: n >= 0)


@blp.route("/<int:app_id>/records/<int:record_id>/diff")
@blp.arguments(DiffArgs, location="query")
@blp.response(200, Schema.from_dict({"from": ma.Integer(), "to": ma.Integer(), "diff": ma.Dict()}, name="DiffOut"))
def record_diff(args, app_id, record_id):
    """The difference between any two revisions (変更履歴)."""
    return record_service().diff(app_id, record_id, args["from_"], args["to"])


@blp.route("/<int:app_id>/records/<int:record_id>/restore", methods=["POST"])
@blp.arguments(RestoreIn)
@blp.response(200, IdRev)
def restore_revision(body, app_id, record_id):
    """Put an old revision back as a new revision (この版に戻す)."""
    return record_service().restore(app_id, record_id, body["revision"])


@blp.route("/<int:app_id>/trash")
@blp.arguments(TrashArgs, location="query")
@blp.response(200, Schema.from_dict({"records": ma.List(ma.Dict()), "totalCount": ma.Integer()}, name="TrashOut"))
def trash(args, app_id):
    """Deleted records (ごみ箱), for those who manage the app."""
    return record_service().trash(app_id, args["limit"], args["offset"])


@blp.route("/<int:app_id>/trash/<int:record_id>/restore", methods=["POST"])
@blp.response(200, IdRev)
def undelete(app_id, record_id):
    """Bring a deleted record back under its own record number."""
    return record_service().undelete(app_id, record_id)


class MentionIn(Schema):
    code = ma.String(required=True)
    type = ma.String(load_default="USER", metadata={"description": "USER, GROUP or ORGANIZATION"})


class CommentIn(Schema):
    text = ma.String(required=True)
    mentions = ma.List(ma.Nested(MentionIn), load_default=list)
    parent_id = ma.Integer(allow_none=True, load_default=None, metadata={"description": "reply to this comment"})


@blp.route("/<int:app_id>/records/<int:record_id>/comments")
@blp.response(200, description="the record's comments, oldest first, replies under their comment")
def list_comments(app_id, record_id):
    from kumiki import comments
    return {"comments": comments.thread(record_service(), app_id, record_id)}


@blp.route("/<int:app_id>/records/<int:record_id>/comments", methods=["POST"])
@blp.arguments(CommentIn)
@blp.response(201, description="the new comment")
def add_comment(body, app_id, record_id):
    from kumiki import comments
    return comments.add(record_service(), app_id, record_id, body["text"], body["mentions"], body["parent_id"])


@blp.route("/<int:app_id>/records/<int:record_id>/comments/<int:comment_id>", methods=["DELETE"])
@blp.response(204)
def delete_comment(app_id, record_id, comment_id):
    from kumiki import comments
    comments.delete(record_service(), app_id, record_id, comment_id)
    return None
