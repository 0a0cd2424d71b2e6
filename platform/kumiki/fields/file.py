from __future__ import annotations

from kumiki import i18n
from kumiki.db import JSONType
from kumiki.errors import Detail, FieldValueError
from kumiki.fields._common import LONG_TEXT_OPS, mismatch
from kumiki.fields.base import MULTI, Context, FieldType

THUMBNAIL_SIZES = ("50", "150", "250", "500")
_KEYS = ("fileKey", "name", "contentType", "size")


class File(FieldType):
    """Attachments: the column keeps [{"fileKey", "name", "contentType", "size"}] so that names are queryable."""

    type_name = "FILE"
    label = ("添付ファイル", "Attachment")
    kind = MULTI
    stores_list = True
    operators = LONG_TEXT_OPS
    sortable = False
    indexed = False
    properties = frozenset({"thumbnailSize"})

    def column_type(self, fdef):
        return JSONType

    def empty_value(self):
        return []

    def normalise(self, fdef, value, ctx: Context):
        if value is None or value == "":
            return []
        if isinstance(value, (str, dict)):
            value = [value]
        if not isinstance(value, list):
            raise mismatch("添付ファイルの一覧", "a list of files")
        out, seen = [], set()
        for item in value:
            key = item.get("fileKey") if isinstance(item, dict) else item
            if not isinstance(key, str) or not key:
                raise mismatch("添付ファイルのfileKey", "a fileKey")
            if key in seen:
                continue
            seen.add(key)
            info = ctx.file_info(key)
            if not info:
                raise FieldValueError("field.file_not_found", file_key=key)
            out.append({k: info.get(k) for k in _KEYS})
        return out

    def from_db(self, fdef, raw, ctx):
        if not isinstance(raw, list):
            return []
        return [{k: r.get(k) for k in _KEYS} for r in raw if isinstance(r, dict)]

    def query_value(self, fdef, literal, ctx):
        return literal  # a fragment of a file name

    def default(self, fdef, ctx):
        return []

    def to_csv(self, fdef, value):
        return "\n".join(str(f.get("name", "")) for f in value or [])

    def from_csv(self, fdef, text, ctx):
        if text.strip():
            raise FieldValueError("field.file_from_csv")
        return []

    def convert_from(self, fdef, old_type, old_value, ctx):
        if old_type.is_empty(old_value):
            return []
        raise FieldValueError("field.cannot_convert", value=str(old_value))

    def check_definition(self, fdef, path):
        size = fdef.get("thumbnailSize")
        if size not in (None, "") and (isinstance(size, bool) or str(size) not in THUMBNAIL_SIZES):
            return [Detail(f"{path}.thumbnailSize", "fielddef.thumbnail_size")]
        return []


i18n.register({
    "field.file_not_found": ("添付ファイルが見つかりません（{file_key}）。もう一度アップロードしてください。",
                             "The attachment {file_key} was not found. Upload it again."),
    "field.file_from_csv": ("添付ファイルはCSVから読み込めません。", "Attachments cannot be imported from CSV."),
    "fielddef.thumbnail_size": ("サムネイルの大きさは50、150、250、500のいずれかで指定してください。",
                                "The thumbnail size must be 50, 150, 250 or 500."),
})
