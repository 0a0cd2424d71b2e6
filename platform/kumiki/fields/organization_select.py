from __future__ import annotations

from kumiki.fields._entities import EntitySelect


class OrganizationSelect(EntitySelect):
    """Codes are checked against the directory (kumiki.directory)."""

    type_name = "ORGANIZATION_SELECT"
    label = ("組織選択", "Department selection")
    entity_type = "ORGANIZATION"

    def exists(self, code, ctx):
        return ctx.org_exists(code)
