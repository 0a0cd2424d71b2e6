from __future__ import annotations

from kumiki.fields._layout import LayoutElement


class Spacer(LayoutElement):
    type_name = "SPACER"
    label = ("スペース", "Blank space")
    properties = frozenset({"elementId", "size"})
