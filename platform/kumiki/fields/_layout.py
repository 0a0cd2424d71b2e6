"""Layout-only elements (LABEL, SPACER, HR, GROUP): no value, no column, no operators."""
from __future__ import annotations

from kumiki.errors import FieldValueError
from kumiki.fields.base import LAYOUT, Context, FieldType


class LayoutElement(FieldType):
    kind = LAYOUT
    sortable = False
    indexed = False
    can_be_required = False
    read_only = True

    def normalise(self, fdef, value, ctx: Context):
        if not self.is_empty(value):
            raise FieldValueError("field.read_only")
        return ""

    def to_db(self, fdef, value):
        return None

    def from_db(self, fdef, raw, ctx):
        return ""

    def default(self, fdef, ctx):
        return ""
