from __future__ import annotations

from kumiki.fields._entities import EntitySelect


class OrganizationSelect(EntitySelect):
    """Organizations arrive with the directory; until then any non-empty code is accepted."""

    type_name = "ORGANIZATION_SELECT"
    label = ("組織選択", "Department selection")
    entity_type = "ORGANIZATION"
