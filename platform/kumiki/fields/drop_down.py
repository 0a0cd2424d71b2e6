from __future__ import annotations

from sqlalchemy import Text

from kumiki.fields import _options
from kumiki.fields._common import SELECT_OPS
from kumiki.fields.base import Context, FieldType


class DropDown(FieldType):
    type_name = "DROP_DOWN"
    label = ("ドロップダウン", "Drop-down")
    operators = SELECT_OPS
    properties = frozenset({"options", "defaultValue"})

    def column_type(self, fdef):
        return Text()

    def normalise(self, fdef, value, ctx: Context):
        return _options.choose_one(fdef, value)

    def query_value(self, fdef, literal, ctx):
        return _options.query_literal(literal)

    def convert_from(self, fdef, old_type, old_value, ctx):
        return _options.convert_one(self, fdef, old_type, old_value, ctx)

    def check_definition(self, fdef, path):
        return _options.check_options(fdef, path) or _options.check_default_options(fdef, path, many=False)
