from __future__ import annotations

from kumiki.errors import Detail
from kumiki.fields._layout import LayoutElement


class Label(LayoutElement):
    """Text shown on the form; its HTML is sanitised when the form is rendered."""

    type_name = "LABEL"
    label = ("ラベル", "Label")
    properties = frozenset({"label", "size"})

    def check_definition(self, fdef, path):
        if not isinstance(fdef.get("label", ""), str):
            return [Detail(f"{path}.label", "fielddef.not_text", {"name": "label"})]
        return []
