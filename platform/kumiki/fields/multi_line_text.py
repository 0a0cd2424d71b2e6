from __future__ import annotations

from sqlalchemy import Text

from kumiki.fields._common import LONG_TEXT_OPS, check_default, to_text
from kumiki.fields.base import Context, FieldType
from kumiki.fields.single_line_text import check_length, check_length_props


class MultiLineText(FieldType):
    type_name = "MULTI_LINE_TEXT"
    label = ("文字列（複数行）", "Text area")
    operators = LONG_TEXT_OPS
    sortable = False
    indexed = False
    properties = frozenset({"defaultValue", "minLength", "maxLength"})

    def column_type(self, fdef):
        return Text()

    def normalise(self, fdef, value, ctx: Context):
        if value is None:
            return ""
        text = to_text(value).replace("\r\n", "\n").replace("\r", "\n")
        if text:
            check_length(fdef, text)
        return text

    def check_definition(self, fdef, path):
        return check_length_props(fdef, path) or check_default(self, fdef, path)
