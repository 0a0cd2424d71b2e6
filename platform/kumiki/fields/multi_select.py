from __future__ import annotations

from kumiki.fields._options import MultiChoice


class MultiSelect(MultiChoice):
    type_name = "MULTI_SELECT"
    label = ("複数選択", "Multi-choice")
    properties = frozenset({"options", "defaultValue"})
