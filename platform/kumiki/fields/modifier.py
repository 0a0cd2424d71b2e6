from __future__ import annotations

from kumiki.fields._system import UserRefField


class Modifier(UserRefField):
    type_name = "MODIFIER"
    label = ("更新者", "Updated by")
