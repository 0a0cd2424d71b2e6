from __future__ import annotations

from kumiki.fields._entities import EntitySelect


class UserSelect(EntitySelect):
    type_name = "USER_SELECT"
    label = ("ユーザー選択", "User selection")
    entity_type = "USER"

    def exists(self, code, ctx):
        return ctx.user_exists(code)

    def name(self, code, ctx):
        return ctx.user_name(code) or code
