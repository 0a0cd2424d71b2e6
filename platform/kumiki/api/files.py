"""File upload (returns a fileKey to put in a FILE field) and download (always as an attachment)."""
from __future__ import annotations

import hashlib
import mimetypes
import uuid
from pathlib import Path

from flask import request, send_file
from flask_smorest import Blueprint
from marshmallow import Schema, fields
from sqlalchemy import select

from kumiki import i18n
from kumiki.api.common import actor, db, record_service, state
from kumiki.errors import Detail, NotFound, ValidationError
from kumiki.model import StoredFile

PREFIX = "/files"
blp = Blueprint("files", __name__, description="添付ファイル / files")

i18n.register({
    "file.missing": ("ファイルを選んでください（フォーム項目名 file）。", "Send a file in the form field \"file\"."),
    "file.empty": ("空のファイルはアップロードできません。", "Empty files cannot be uploaded."),
})


class UploadOut(Schema):
    fileKey = fields.String()
    name = fields.String()
    contentType = fields.String()
    size = fields.Integer()


@blp.route("", methods=["POST"])
@blp.response(201, UploadOut)
def upload():
    user = actor()
    f = request.files.get("file")
    if f is None or not f.filename:
        raise ValidationError([Detail("file", "file.missing")])
    data = f.read()
    if not data:
        raise ValidationError([Detail("file", "file.empty")])
    key = uuid.uuid4().hex
    folder = Path(state().config.files_dir) / key[:2]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / key
    path.write_bytes(data)
    name = Path(f.filename).name[:255]
    ctype = f.mimetype or mimetypes.guess_type(name)[0] or "application/octet-stream"
    session = db()
    sf = StoredFile(key=key, name=name, content_type=ctype, size=len(data),
                    sha256=hashlib.sha256(data).hexdigest(), storage_path=f"{key[:2]}/{key}",
                    uploaded_by=user.id)
    session.add(sf)
    session.commit()
    return {"fileKey": key, "name": name, "contentType": ctype, "size": len(data)}


@blp.route("/<string:file_key>")
@blp.response(200, description="the file, as an attachment")
def download(file_key):
    user = actor()
    sf = db().scalar(select(StoredFile).where(StoredFile.key == file_key))
    # An unattached upload is visible only to its uploader; an attached one to whoever may see
    # its record and field. Anything else is "not found": existence itself is not revealed.
    if sf is None:
        raise NotFound("not_found")
    if sf.app_id is None:
        if sf.uploaded_by != user.id:
            raise NotFound("not_found")
    elif not record_service().can_read_file(sf):
        raise NotFound("not_found")
    path = Path(state().config.files_dir) / sf.storage_path
    if not path.exists():
        raise NotFound("not_found")
    response = send_file(path, mimetype=sf.content_type, as_attachment=True, download_name=sf.name,
                         max_age=0)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
