from __future__ import annotations

from sqlalchemy import Text

from kumiki.errors import Detail, FieldValueError
from kumiki.fields.base import TEXT_OPS, Context, FieldType


class SingleLineText(FieldType):
    type_name = "SINGLE_LINE_TEXT"
    label = ("文字列（1行）", "Text")
    operators = TEXT_OPS
    can_be_unique = True
    properties = frozenset({"defaultValue", "minLength", "maxLength", "unique"})

    def column_type(self, fdef):
        return Text()

    def normalise(self, fdef, value, ctx: Context):
        if value is None:
            return ""
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise FieldValueError("field.type_mismatch", expected="文字列", expected_en="text")
        text = str(value)
        if "\n" in text or "\r" in text:
            raise FieldValueError("field.single_line")
        if text:
            check_length(fdef, text)
        return text

    def check_definition(self, fdef, path):
        return check_length_props(fdef, path)


def check_length(fdef: dict, text: str) -> None:
    lo, hi = fdef.get("minLength"), fdef.get("maxLength")
    if lo is not None and len(text) < int(lo):
        raise FieldValueError("field.too_short", min=lo)
    if hi is not None and len(text) > int(hi):
        raise FieldValueError("field.too_long", max=hi)


def check_length_props(fdef: dict, path: str) -> list[Detail]:
    lo, hi = fdef.get("minLength"), fdef.get("maxLength")
    if lo is not None and hi is not None and int(lo) > int(hi):
        return [Detail(f"{path}.minLength", "definition.min_gt_max")]
    return []


from kumiki import i18n  # noqa: E402

i18n.register({"field.single_line": ("改行は入力できません。", "Line breaks are not allowed.")})
