from __future__ import annotations

from kumiki.fields._common import check_bool_props
from kumiki.fields._layout import LayoutElement


class Group(LayoutElement):
    """A collapsible group of fields on the form."""

    type_name = "GROUP"
    label = ("グループ", "Field group")
    properties = frozenset({"openGroup"})

    def check_definition(self, fdef, path):
        return check_bool_props(fdef, path, ("openGroup",))
