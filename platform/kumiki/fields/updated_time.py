from __future__ import annotations

from kumiki.fields._system import TimestampField


class UpdatedTime(TimestampField):
    type_name = "UPDATED_TIME"
    label = ("更新日時", "Updated datetime")
