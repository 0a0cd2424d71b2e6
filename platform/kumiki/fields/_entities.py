"""Entity selects (USER_SELECT, ORGANIZATION_SELECT, GROUP_SELECT) and user references of system fields.

The column holds a JSON list of codes; the API value is ``[{"code", "name"}]`` with names filled on read.
"""
from __future__ import annotations

from typing import Any

from kumiki import i18n
from kumiki.db import JSONType
from kumiki.errors import Detail, FieldValueError
from kumiki.fields._common import SELECT_OPS, mismatch
from kumiki.fields.base import MULTI, Context, FieldType

# defaultValue functions, per entity type.
FUNCTIONS = {"USER": {"LOGINUSER()"}, "ORGANIZATION": {"PRIMARY_ORGANIZATION()"}, "GROUP": set()}


def code_of(item: Any) -> str:
    """A code from "u1" or {"code": "u1", ...}."""
    if isinstance(item, dict):
        item = item.get("code")
    if not isinstance(item, str) or not item.strip():
        raise mismatch("コード", "a code")
    return item


def codes_of(value: Any) -> list[str]:
    """Distinct codes, in the order given."""
    if value is None or value == "":
        return []
    if isinstance(value, (str, dict)):
        value = [value]
    if not isinstance(value, list):
        raise mismatch("コードの一覧", "a list of codes")
    return list(dict.fromkeys(code_of(v) for v in value))


def stored_codes(raw: Any) -> list[str]:
    """Codes from a JSON column, skipping anything malformed (reads never fail on old data)."""
    if not isinstance(raw, list):
        return []
    codes = (r.get("code") if isinstance(r, dict) else r for r in raw)
    return [c for c in codes if isinstance(c, str) and c]


def user_ref(code: str | None, ctx: Context) -> dict:
    """{"code", "name"} of a user; the name falls back to the code when the user is unknown."""
    if not code:
        return {"code": "", "name": ""}
    return {"code": code, "name": ctx.user_name(code) or code}


class EntitySelect(FieldType):
    kind = MULTI
    stores_list = True
    operators = SELECT_OPS
    sortable = False
    indexed = False
    entity_type = "USER"
    properties = frozenset({"entities", "defaultValue"})

    def column_type(self, fdef):
        return JSONType

    def empty_value(self):
        return []

    def exists(self, code: str, ctx: Context) -> bool:
        return True

    def name(self, code: str, ctx: Context) -> str:
        return code

    def normalise(self, fdef, value, ctx: Context):
        out = []
        for code in codes_of(value):
            if not self.exists(code, ctx):
                raise FieldValueError(f"field.unknown_{self.entity_type.lower()}", code=code)
            out.append({"code": code, "name": self.name(code, ctx)})
        return out

    def to_db(self, fdef, value):
        codes = codes_of(value)
        return codes or None

    def from_db(self, fdef, raw, ctx):
        return [{"code": c, "name": self.name(c, ctx)} for c in stored_codes(raw)]

    def default(self, fdef, ctx):
        codes = []
        for entry in fdef.get("defaultValue") or []:
            if not isinstance(entry, dict) or not isinstance(entry.get("code"), str):
                continue
            code, etype = entry["code"], entry.get("type", self.entity_type)
            if etype == "FUNCTION":
                code = self.function_value(code, ctx)
            elif etype != self.entity_type:
                continue
            # A default naming someone who has since left must not block every new record.
            if code and self.exists(code, ctx):
                codes.append(code)
        return self.normalise(fdef, codes, ctx)

    def function_value(self, name: str, ctx: Context) -> str | None:
        if name == "LOGINUSER()" and self.entity_type == "USER":
            return ctx.user_code
        if name == "PRIMARY_ORGANIZATION()" and self.entity_type == "ORGANIZATION":
            return ctx.extra.get("primary_organization")
        return None

    def query_value(self, fdef, literal, ctx):
        return literal if literal != "" else None

    def to_csv(self, fdef, value):
        return "\n".join(code_of(v) for v in value or [])

    def from_csv(self, fdef, text, ctx):
        return self.normalise(fdef, [line.strip() for line in text.splitlines() if line.strip()], ctx)

    def check_definition(self, fdef, path):
        dv = fdef.get("defaultValue")
        if dv in (None, "", []):
            return []
        if not isinstance(dv, list):
            return [Detail(f"{path}.defaultValue", "fielddef.entity_default")]
        allowed = FUNCTIONS[self.entity_type]
        out = []
        for i, entry in enumerate(dv):
            etype = entry.get("type") if isinstance(entry, dict) else None
            code = entry.get("code") if isinstance(entry, dict) else None
            ok = isinstance(code, str) and bool(code) and (
                etype == self.entity_type or (etype == "FUNCTION" and code in allowed))
            if not ok:
                out.append(Detail(f"{path}.defaultValue[{i}]", "fielddef.entity_default"))
        return out


i18n.register({
    "field.unknown_user": ("ユーザー「{code}」は存在しません。", "There is no user \"{code}\"."),
    "field.unknown_organization": ("組織「{code}」は存在しません。", "There is no organization \"{code}\"."),
    "field.unknown_group": ("グループ「{code}」は存在しません。", "There is no group \"{code}\"."),
    "fielddef.entity_default": ("初期値の指定が正しくありません。", "The default value is not valid."),
})
