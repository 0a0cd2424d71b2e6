from __future__ import annotations

from kumiki.fields._system import TimestampField


class CreatedTime(TimestampField):
    type_name = "CREATED_TIME"
    label = ("作成日時", "Created datetime")
