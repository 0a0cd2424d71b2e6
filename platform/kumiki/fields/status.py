from __future__ import annotations

from kumiki.fields._system import StatusField


class Status(StatusField):
    type_name = "STATUS"
    label = ("ステータス", "Status")
