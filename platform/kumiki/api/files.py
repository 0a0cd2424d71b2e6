"""File upload (returns a fileKey to put in a FILE field) and download (always as an attachment).

Uploads: at most Config.max_upload_bytes (413 JSON), and no executables or scripts, judged by the
extension (Config.upload_blocked_extensions, default DEFAULT_BLOCKED) and by the first bytes.
Downloads: always an attachment, nosniff, a sandboxing CSP, and never an HTML/SVG/script type.
"""
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
from kumiki.errors import Detail, NotFound, PayloadTooLarge, ValidationError
from kumiki.model import StoredFile

PREFIX = "/files"
blp = Blueprint("files", __name__, description="添付ファイル / files")

i18n.register({
    "file.missing": ("ファイルを選んでください（フォーム項目名 file）。", "Send a file in the form field \"file\"."),
    "file.empty": ("空のファイルはアップロードできません。", "Empty files cannot be uploaded."),
    "file.too_large": ("ファイルが大きすぎます。{mb}MBまでのファイルをアップロードできます。",
                       "The file is too large. Files up to {mb} MB can be uploaded."),
    "file.blocked_type": ("この種類のファイル（.{ext}）は安全のためアップロードできません。",
                          "Files of this type (.{ext}) cannot be uploaded, for safety."),
    "file.blocked_content": ("ファイルの中身が実行ファイルまたはスクリプト（HTML・SVGを含む）のため、アップロードできません。",
                             "The file contains a program or script (HTML and SVG included) and cannot be uploaded."),
})

# Programs, scripts, installers, shortcuts, and documents that run script when opened in a browser.
# Office files, PDF, images, text, CSV, XML and zip stay allowed.
DEFAULT_BLOCKED = frozenset({
    "exe", "dll", "com", "scr", "pif", "cpl", "sys", "msi", "msp", "msc", "bat", "cmd", "ps1", "psm1",
    "vbs", "vbe", "js", "jse", "mjs", "wsf", "wsh", "hta", "lnk", "reg", "inf", "jar", "apk", "sh",
    "html", "htm", "xhtml", "shtml", "mht", "mhtml", "svg", "svgz", "url", "iso", "img", "vhd", "vhdx",
})
# Served as application/octet-stream whatever was stored: a browser could render or run them.
_UNSAFE_TYPE_WORDS = ("html", "svg", "javascript", "ecmascript", "xml", "x-sh", "msdownload")
_BINARY_MAGIC = (b"\x7fELF", b"\xca\xfe\xba\xbe", b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf",
                 b"\xce\xfa\xed\xfe", b"\xcf\xfa\xed\xfe", b"#!/", b"#! /")
_MARKUP_STARTS = ("<!doctype html", "<html", "<head", "<body", "<script", "<iframe", "<svg")
_BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))


def _clean_name(filename: str) -> str:
    """The base name without path parts, characters Windows refuses, or trailing dots/spaces."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join("_" if c in '<>:"|?*' or ord(c) < 32 else c for c in name).rstrip(". ")
    return name[:255] or "file"


def _extension(name: str) -> str:
    return name.rsplit(".", 1)[-1].lower() if "." in name else ""


def is_executable_content(head: bytes) -> bool:
    """A Windows/Linux/macOS program, a script with #!, or an HTML/SVG document."""
    if head.startswith(b"MZ") and b"\x00" in head[2:64]:  # DOS/PE header, not text starting "MZ"
        return True
    if head.startswith(_BINARY_MAGIC):
        return True
    text = None
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            text = head[len(bom):].decode(encoding, "ignore")
    if text is None:
        text = head.decode("latin-1")
    text = text.lstrip().lower()
    return text.startswith(_MARKUP_STARTS) or (text.startswith("<?xml") and "<svg" in text)


def safe_content_type(ctype: str | None) -> str:
    ctype = (ctype or "").lower()
    if not ctype or any(word in ctype for word in _UNSAFE_TYPE_WORDS):
        return "application/octet-stream"
    return ctype


class UploadOut(Schema):
    fileKey = fields.String()
    name = fields.String()
    contentType = fields.String()
    size = fields.Integer()


@blp.route("", methods=["POST"])
@blp.response(201, UploadOut)
def upload():
    user = actor()
    config = state().config
    limit = config.max_upload_bytes
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge("file.too_large", mb=_mb(limit))
    f = request.files.get("file")  # a body without a length still stops at MAX_CONTENT_LENGTH (413)
    if f is None or not f.filename:
        raise ValidationError([Detail("file", "file.missing")])
    name = _clean_name(f.filename)
    ext = _extension(name)
    if ext in (set(config.upload_blocked_extensions) or DEFAULT_BLOCKED):
        raise ValidationError([Detail("file", "file.blocked_type", {"ext": ext})])
    data = f.read()
    if not data:
        raise ValidationError([Detail("file", "file.empty")])
    if len(data) > limit:
        raise PayloadTooLarge("file.too_large", mb=_mb(limit))
    if is_executable_content(data[:1024]):
        raise ValidationError([Detail("file", "file.blocked_content")])
    key = uuid.uuid4().hex
    folder = Path(state().config.files_dir) / key[:2]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / key
    path.write_bytes(data)
    # The extension decides the type; what the browser claimed only when the extension says nothing.
    ctype = (mimetypes.guess_type(name)[0] or f.mimetype or "application/octet-stream")[:255]
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
    response = send_file(path, mimetype=safe_content_type(sf.content_type), as_attachment=True,
                         download_name=sf.name, max_age=0)
    response.headers["X-Content-Type-Options"] = "nosniff"
    # Should a browser ever render it anyway: no scripts, no plugins, an opaque origin.
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


def _mb(size: int) -> str:
    mb = size / (1024 * 1024)
    return f"{mb:g}" if mb >= 1 else f"{mb:.2f}"
