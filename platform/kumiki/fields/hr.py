from __future__ import annotations

from kumiki.fields._layout import LayoutElement


class Hr(LayoutElement):
    type_name = "HR"
    label = ("罫線", "Border")
    properties = frozenset({"size"})
