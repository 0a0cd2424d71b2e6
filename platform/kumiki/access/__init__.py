"""Who may do what: app, record and field permissions, compiled into SQL filters and field masks.

Permissions live in the app definition under ``permissions`` and take effect when the app is
deployed (as in kintone). Rules are ordered lists; for each, the FIRST entry that matches decides:

    "permissions": {
      "app":    [{"entity": {"type": "ORGANIZATION", "code": "健康推進課", "includeSubs": true},
                  "view": true, "add": true, "edit": true, "delete": false,
                  "manage": false, "import": false, "export": false}, ...],
      "record": [{"condition": "担当センター in (\\"板橋\\")",
                  "entities": [{"entity": {"type": "FIELD_ENTITY", "code": "担当者"},
                                "view": true, "edit": true, "delete": false}, ...]}, ...],
      "field":  [{"code": "相談内容",
                  "entities": [{"entity": {"type": "GROUP", "code": "ケースワーカー"}, "access": "edit"},
                               {"entity": {"type": "EVERYONE"}, "access": "none"}]}]
    }

- App rules: the first entry whose entity includes the user gives all seven rights; no entry →
  no rights. Without an ``app`` list everyone may view/add/edit/delete/import/export (kintone's
  default); ``manage`` (edit the app itself) is for administrators and entries that grant it.
- Record rules: for a record, the first rule whose condition matches it applies; within that rule
  the first matching entity decides view/edit/delete; a user no entity matches gets nothing. A
  record that no rule's condition matches is open to everyone with app rights.
- Field rules: the first matching entity gives "edit", "view" or "none"; a user no entity
  matches gets "none"; a field without a rule is "edit".
- Entities: USER, GROUP, ORGANIZATION (``includeSubs`` also covers its sub-organizations),
  EVERYONE; in record rules also CREATOR and FIELD_ENTITY (a user, organization or group
  selection field of the record that names the user, one of their organizations or groups).
- Administrators (``is_admin``) are not restricted.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import and_, false, func, not_, or_, true
from sqlalchemy.sql import ColumnElement

from kumiki import i18n
from kumiki.errors import Detail
from kumiki.fields.base import Context
from kumiki.storage.schema import AppSchema

if TYPE_CHECKING:  # the directory module imports nothing from here; avoid a cycle at import time
    from kumiki.directory import Principal

APP_RIGHTS = ("view", "add", "edit", "delete", "manage", "import", "export")
RECORD_RIGHTS = ("view", "edit", "delete")
FIELD_ACCESS = ("edit", "view", "none")
STATIC_ENTITIES = ("USER", "GROUP", "ORGANIZATION", "EVERYONE")
RECORD_ENTITIES = STATIC_ENTITIES + ("CREATOR", "FIELD_ENTITY")
ENTITY_FIELD_TYPES = ("USER_SELECT", "ORGANIZATION_SELECT", "GROUP_SELECT", "CREATOR", "MODIFIER",
                      "STATUS_ASSIGNEE")

i18n.register({
    "access.no_app_right": ("このアプリで「{right}」を行う権限がありません。", "You may not {right_en} in this app."),
    "access.field_read_only": ("このフィールドを編集する権限がありません。", "You may not edit this field."),
    "access.field_hidden": ("フィールド「{code}」を参照する権限がありません。", "You may not see the field \"{code}\"."),
    "access.record_not_found": ("レコード（ID: {record_id}）が見つからないか、参照する権限がありません。",
                                "Record {record_id} was not found or you may not see it."),
    "access.no_record_right": ("このレコードを{right}する権限がありません。", "You may not {right_en} this record."),
    "perm.entity_code": ("エンティティのコードを指定してください。", "Give the entity's code."),
    "perm.entity_field": ("「{code}」はユーザー・組織・グループを選ぶフィールドではありません。",
                          "\"{code}\" is not a user, organization or group field."),
    "perm.unknown_field": ("フィールドコード「{code}」はありません。", "There is no field \"{code}\"."),
    "perm.not_text": ("文字列で指定してください。", "Give a text."),
})

RIGHT_LABELS = {"view": ("レコード閲覧", "view records"), "add": ("レコード追加", "add records"),
                "edit": ("レコード編集", "edit records"), "delete": ("レコード削除", "delete records"),
                "manage": ("アプリ管理", "manage the app"), "import": ("ファイルから読み込む", "import"),
                "export": ("ファイルに書き出す", "export")}


@dataclass(frozen=True)
class AppRights:
    view: bool = False
    add: bool = False
    edit: bool = False
    delete: bool = False
    manage: bool = False
    import_: bool = False
    export: bool = False

    def has(self, right: str) -> bool:
        return bool(getattr(self, "import_" if right == "import" else right))


ALL_RIGHTS = AppRights(True, True, True, True, True, True, True)
DEFAULT_APP_RULES = [{"entity": {"type": "EVERYONE"}, "view": True, "add": True, "edit": True, "delete": True,
                      "manage": False, "import": True, "export": True}]


@dataclass
class Access:
    """What one principal may do in one deployed app."""

    principal: Principal
    rights: AppRights
    field_access: dict[str, str] = field(default_factory=dict)   # code -> edit / view / none
    unrestricted: bool = False

    def can(self, right: str) -> bool:
        return self.unrestricted or self.rights.has(right)

    def visible(self, code: str) -> bool:
        return self.unrestricted or self.field_access.get(code, "edit") != "none"

    def editable(self, code: str) -> bool:
        return self.unrestricted or self.field_access.get(code, "edit") == "edit"


def _permissions(schema: AppSchema) -> dict:
    return schema.definition.get("permissions") or {}


def entity_matches(entity: dict, principal: Principal) -> bool | None:
    """True/False for entities decided by the user alone; None for record-dependent ones."""
    kind, code = entity.get("type"), entity.get("code")
    if kind == "EVERYONE":
        return True
    if kind == "USER":
        return principal.code is not None and code == principal.code
    if kind == "GROUP":
        return code in principal.groups
    if kind == "ORGANIZATION":
        return code in (principal.organizations_up if entity.get("includeSubs") else principal.organizations)
    return None


def access_for(schema: AppSchema, principal: Principal, rights: AppRights | None = None) -> Access:
    """``rights`` replaces the app rules (an app token's scopes); record and field rules still apply."""
    if principal.is_admin:
        return Access(principal, ALL_RIGHTS, unrestricted=True)
    perms = _permissions(schema)
    if rights is None:
        rights = AppRights()
        for rule in perms.get("app") or DEFAULT_APP_RULES:
            if entity_matches(rule.get("entity") or {}, principal):
                rights = AppRights(*(bool(rule.get(r)) for r in APP_RIGHTS))
                break
    fields: dict[str, str] = {}
    for rule in perms.get("field") or []:
        level = "none"
        for entry in rule.get("entities") or []:
            if entity_matches(entry.get("entity") or {}, principal):
                level = entry.get("access", "none")
                break
        fields[rule.get("code")] = level
    return Access(principal, rights, fields)


def record_filter(schema: AppSchema, access: Access, right: str, ctx: Context,
                  dialect_name: str) -> ColumnElement | None:
    """A SQL condition selecting the records on which ``access`` has ``right`` (None = all)."""
    if access.unrestricted:
        return None
    rules = _permissions(schema).get("record") or []
    if not rules:
        return None
    # Built once per app version, user, right and minute (conditions may use TODAY() or NOW()):
    # building it costs ~0.5 ms, a noticeable share of a 5 ms page.
    minute = ctx.now.replace(second=0, microsecond=0) if ctx.now else None
    key = (id(schema), access.principal, right, dialect_name, minute, ctx.timezone)
    cached = _FILTERS.get(key)
    if cached is None or cached[0] is not schema:   # the schema object itself is part of the key
        if len(_FILTERS) > 2048:
            _FILTERS.clear()
        cached = _FILTERS[key] = (schema, _build_record_filter(schema, rules, access, right, ctx, dialect_name))
    return cached[1]


_FILTERS: dict = {}


def _build_record_filter(schema: AppSchema, rules: list, access: Access, right: str, ctx: Context,
                         dialect_name: str) -> ColumnElement:
    from kumiki.query import compile_query

    allowed: ColumnElement = true()          # a record no rule matches is open
    for rule in reversed(rules):
        text = (rule.get("condition") or "").strip()
        cond = true() if not text else compile_query(text, schema, ctx, dialect_name).where
        cond = true() if cond is None else func.coalesce(cond, false())
        decided = _first_match(rule.get("entities") or [], right, schema, access.principal, dialect_name)
        allowed = or_(and_(cond, decided), and_(not_(cond), allowed))
    return allowed


def _first_match(entries: list[dict], right: str, schema: AppSchema, principal: Principal,
                 dialect_name: str) -> ColumnElement:
    result: ColumnElement = false()          # nobody matched: no right
    for entry in reversed(entries):
        granted = true() if entry.get(right) else false()
        match = entity_matches(entry.get("entity") or {}, principal)
        if match is True:
            result = granted
        elif match is None:
            dyn = _dynamic_match(entry.get("entity") or {}, schema, principal, dialect_name)
            result = or_(and_(dyn, granted), and_(not_(dyn), result))
    return result


def _dynamic_match(entity: dict, schema: AppSchema, principal: Principal, dialect_name: str) -> ColumnElement:
    table = schema.table
    if entity.get("type") == "CREATOR":
        return func.coalesce(table.c.created_by == principal.code, false()) if principal.code else false()
    f = schema.fields.get(entity.get("code") or "")
    if f is None or f.column is None or f.in_subtable:
        return false()
    col = table.c[f.column]
    if f.type in ("CREATOR", "MODIFIER"):
        return func.coalesce(col == principal.code, false()) if principal.code else false()
    if f.type in ("USER_SELECT", "STATUS_ASSIGNEE"):
        codes = [principal.code] if principal.code else []
    elif f.type == "ORGANIZATION_SELECT":
        codes = sorted(principal.organizations)
    elif f.type == "GROUP_SELECT":
        codes = sorted(principal.groups)
    else:
        return false()
    if not codes:
        return false()
    return _json_list_has_any(col, codes, dialect_name)


def _json_list_has_any(col, codes: list[str], dialect_name: str) -> ColumnElement:
    """The JSON list column contains any of ``codes`` (SQLite json_each / PostgreSQL JSONB ?|)."""
    from sqlalchemy import String, exists, literal, select, type_coerce
    from sqlalchemy.dialects.postgresql import ARRAY, JSONB

    if dialect_name == "postgresql":
        return func.coalesce(type_coerce(col, JSONB).has_any(type_coerce(codes, ARRAY(String))), false())
    elements = func.json_each(col).table_valued("value")
    return exists(select(literal(1)).select_from(elements).where(elements.c.value.in_(codes)))


def _permissions_validator():
    import json

    from jsonschema import Draft202012Validator

    from kumiki.config import PROJECT_ROOT

    global _VALIDATOR
    if _VALIDATOR is None:
        schema = json.loads((PROJECT_ROOT / "schema_defs" / "permissions.schema.json").read_text("utf-8"))
        _VALIDATOR = Draft202012Validator(schema)
    return _VALIDATOR


_VALIDATOR = None


def validate_permissions(definition: dict) -> list[Detail]:
    """Located errors for the ``permissions`` block: its shape (schema_defs/permissions.schema.json),
    then what the schema cannot know (codes given, fields that exist and hold entities, conditions
    that parse and name real fields)."""
    perms = definition.get("permissions")
    if perms is None:
        return []
    from kumiki.definitions.validate import format_path

    shape = sorted(_permissions_validator().iter_errors(perms), key=lambda e: list(map(str, e.absolute_path)))
    errors: list[Detail] = [
        Detail(f"permissions.{format_path(e.absolute_path)}".rstrip(".").replace(".[", "["),
               "schema.invalid", {"detail": e.message}) for e in shape]
    if not isinstance(perms, dict):
        return errors
    fields = {}
    for fdef in definition.get("fields", []):
        fields[fdef.get("code")] = fdef
        for inner in fdef.get("fields", []) if fdef.get("type") == "SUBTABLE" else []:
            fields[inner.get("code")] = inner
    from kumiki.storage.schema import SYSTEM_FIELDS
    for stype, (code, _col) in SYSTEM_FIELDS.items():
        fields.setdefault(code, {"code": code, "type": stype})

    def items(value):
        return [x for x in value if isinstance(x, dict)] if isinstance(value, list) else []

    def entity_errors(entity, path: str) -> list[Detail]:
        if not isinstance(entity, dict):
            return []
        kind = entity.get("type")
        if kind in ("USER", "GROUP", "ORGANIZATION", "FIELD_ENTITY") and not entity.get("code"):
            return [Detail(f"{path}.code", "perm.entity_code")]
        if kind == "FIELD_ENTITY" and isinstance(entity["code"], str):
            f = fields.get(entity["code"])
            if f is None:
                return [Detail(f"{path}.code", "perm.unknown_field", {"code": entity["code"]})]
            if f.get("type") not in ENTITY_FIELD_TYPES:
                return [Detail(f"{path}.code", "perm.entity_field", {"code": entity["code"]})]
        return []

    for i, rule in enumerate(items(perms.get("app"))):
        errors += entity_errors(rule.get("entity"), f"permissions.app[{i}].entity")
    for i, rule in enumerate(items(perms.get("record"))):
        path = f"permissions.record[{i}]"
        if isinstance(rule.get("condition"), str):
            errors += _condition_errors(rule["condition"], f"{path}.condition", definition)
        for j, entry in enumerate(items(rule.get("entities"))):
            errors += entity_errors(entry.get("entity"), f"{path}.entities[{j}].entity")
    for i, rule in enumerate(items(perms.get("field"))):
        path = f"permissions.field[{i}]"
        if isinstance(rule.get("code"), str) and rule["code"] not in fields:
            errors.append(Detail(f"{path}.code", "perm.unknown_field", {"code": rule["code"]}))
        for j, entry in enumerate(items(rule.get("entities"))):
            errors += entity_errors(entry.get("entity"), f"{path}.entities[{j}].entity")
    return errors


def _condition_errors(text, path: str, definition: dict) -> list[Detail]:
    if text in (None, ""):
        return []
    if not isinstance(text, str):
        return [Detail(path, "perm.not_text")]
    from kumiki.definitions.validate import check_view_queries

    probe = {**definition, "views": [{"name": "_", "type": "LIST", "filterCond": text}]}
    return [Detail(path, d.key, d.params) for d in check_view_queries(probe)]


def check(access: Access, right: str) -> None:
    from kumiki.errors import Forbidden

    if not access.can(right):
        ja, en = RIGHT_LABELS[right]
        raise Forbidden("access.no_app_right", right=ja, right_en=en)
