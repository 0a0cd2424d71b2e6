from __future__ import annotations

from kumiki import i18n
from kumiki.errors import Detail, FieldValueError
from kumiki.fields._common import mismatch
from kumiki.fields.base import MULTI, SCALAR, SUBTABLE, Context, FieldType


class Subtable(FieldType):
    """A table of rows kept in a child table. Only the outer shape is checked here; RecordService
    normalises each row's values with the inner fields' own types."""

    type_name = "SUBTABLE"
    label = ("テーブル", "Table")
    kind = SUBTABLE
    sortable = False
    indexed = False
    can_be_required = False
    properties = frozenset({"fields"})

    def empty_value(self):
        return []

    def normalise(self, fdef, value, ctx: Context):
        if value is None or value == "":
            return []
        if not isinstance(value, list):
            raise mismatch("テーブルの行の一覧", "a list of table rows")
        return [_row(r, i) for i, r in enumerate(value, start=1)]

    def to_db(self, fdef, value):
        return None

    def from_db(self, fdef, raw, ctx):
        return raw if isinstance(raw, list) else []

    def default(self, fdef, ctx):
        return []

    def convert_from(self, fdef, old_type, old_value, ctx):
        if old_type.is_empty(old_value):
            return []
        raise FieldValueError("field.cannot_convert", value=str(old_value))

    def check_definition(self, fdef, path):
        from kumiki.fields import all_types

        inner = fdef.get("fields")
        if not isinstance(inner, list) or not inner:
            return [Detail(f"{path}.fields", "fielddef.subtable_empty")]
        types, out = all_types(), []
        for i, f in enumerate(inner):
            type_name = f.get("type") if isinstance(f, dict) else None
            ftype = types.get(type_name) if isinstance(type_name, str) else None
            if ftype is None or ftype.kind not in (SCALAR, MULTI):
                out.append(Detail(f"{path}.fields[{i}].type", "fielddef.not_in_subtable", {"type": str(type_name)}))
            else:
                out += ftype.check_definition(f, f"{path}.fields[{i}]")
        return out


def _row(row, index: int) -> dict:
    if not isinstance(row, dict) or not isinstance(row.get("value"), dict):
        raise FieldValueError("field.subtable_row", row=index)
    rid = row.get("id")
    if rid in (None, ""):
        return {"id": None, "value": row["value"]}
    if isinstance(rid, str) and rid.strip().isascii() and rid.strip().isdigit():
        rid = int(rid)
    if isinstance(rid, bool) or not isinstance(rid, int):
        raise FieldValueError("field.subtable_row", row=index)
    return {"id": rid, "value": row["value"]}


i18n.register({
    "field.subtable_row": ("テーブルの{row}行目の形式が正しくありません。", "Row {row} of the table is not valid."),
    "fielddef.subtable_empty": ("テーブルにフィールドを1つ以上配置してください。", "Put at least one field in the table."),
    "fielddef.not_in_subtable": ("「{type}」はテーブルに配置できません。", "A {type} field cannot be placed in a table."),
})
