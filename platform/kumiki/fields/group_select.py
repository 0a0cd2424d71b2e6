from __future__ import annotations

from kumiki.fields._entities import EntitySelect


class GroupSelect(EntitySelect):
    """Groups arrive with the directory; until then any non-empty code is accepted."""

    type_name = "GROUP_SELECT"
    label = ("グループ選択", "Group selection")
    entity_type = "GROUP"
