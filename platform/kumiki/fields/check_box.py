from __future__ import annotations

from kumiki.fields._options import MultiChoice


class CheckBox(MultiChoice):
    type_name = "CHECK_BOX"
    label = ("チェックボックス", "Check box")
