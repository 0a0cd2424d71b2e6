from __future__ import annotations

from kumiki.fields._system import UserRefField


class Creator(UserRefField):
    type_name = "CREATOR"
    label = ("作成者", "Created by")
