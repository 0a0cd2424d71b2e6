from __future__ import annotations

from kumiki.fields._entities import EntitySelect


class GroupSelect(EntitySelect):
    """Codes are checked against the directory (kumiki.directory)."""

    type_name = "GROUP_SELECT"
    label = ("グループ選択", "Group selection")
    entity_type = "GROUP"

    def exists(self, code, ctx):
        return ctx.group_exists(code)
