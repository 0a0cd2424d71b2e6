"""Validate an app definition: JSON Schema (shape) + semantic checks, every problem located.

Two layers, both reporting :class:`~kumiki.errors.Detail` objects whose ``path`` points into the
definition (``fields[2].options``, ``fields[4].fields[0].type``, ``layout[1].fields[0]``,
``views[0].sort``):

1. ``schema_defs/app.schema.json`` (draft 2020-12) checks the shape: property types, enums,
   which properties each field type accepts, required properties.
2. Semantic checks do what JSON Schema cannot: field codes unique across the app *and* its tables,
   ``required``/``unique`` only where the field type allows it, references from the layout, views
   and settings to fields, the type-specific checks of each field type module
   (``FieldType.check_definition``) and default values (``FieldType.default``).

All problems are collected and raised together in one :class:`~kumiki.errors.ValidationError`.
A semantic problem at a location the schema already reported is dropped (one message per place),
and type-specific checks run only on fields whose shape is valid, so that field modules never see
malformed properties.
"""
from __future__ import annotations

import copy
import functools
import json
import math
import re
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Iterator

from jsonschema import Draft202012Validator

from kumiki import i18n
from kumiki.config import PROJECT_ROOT
from kumiki.errors import Detail, FieldValueError, KumikiError, ValidationError

SCHEMA_PATH = PROJECT_ROOT / "schema_defs" / "app.schema.json"

# System field types -> default code. Kept in step with kumiki.storage.schema.SYSTEM_FIELDS
# (imported lazily there; a test checks they agree).
SYSTEM_TYPES: dict[str, str] = {
    "RECORD_NUMBER": "レコード番号",
    "CREATOR": "作成者",
    "CREATED_TIME": "作成日時",
    "MODIFIER": "更新者",
    "UPDATED_TIME": "更新日時",
    "STATUS": "ステータス",
    "STATUS_ASSIGNEE": "作業者",
}
ID_PSEUDO_FIELD = "$id"  # the record id in queries (kumiki.storage.schema.ID_PSEUDO_FIELD)
LAYOUT_TYPES = frozenset({"LABEL", "SPACER", "HR", "GROUP"})
# Types that hold no value of their own: never shown as a list column, never a query field.
NO_VALUE_TYPES = LAYOUT_TYPES | {"SUBTABLE"}
CALENDAR_DATE_TYPES = frozenset({"DATE", "DATETIME", "CREATED_TIME", "UPDATED_TIME"})
TITLE_FIELD_TYPES = frozenset({
    "SINGLE_LINE_TEXT", "NUMBER", "CALC", "DATE", "TIME", "DATETIME", "RADIO_BUTTON", "DROP_DOWN", "LINK",
    "RECORD_NUMBER", "CREATOR", "CREATED_TIME", "MODIFIER", "UPDATED_TIME", "STATUS",
})

# Palette labels (GLOSSARY.md), used in messages when the type's module is not registered.
TYPE_LABELS: dict[str, tuple[str, str]] = {
    "SINGLE_LINE_TEXT": ("文字列（1行）", "Text"), "MULTI_LINE_TEXT": ("文字列（複数行）", "Text area"),
    "RICH_TEXT": ("リッチエディター", "Rich text"), "NUMBER": ("数値", "Number"), "CALC": ("計算", "Calculated"),
    "RADIO_BUTTON": ("ラジオボタン", "Radio button"), "CHECK_BOX": ("チェックボックス", "Check box"),
    "MULTI_SELECT": ("複数選択", "Multi-choice"), "DROP_DOWN": ("ドロップダウン", "Drop-down"),
    "DATE": ("日付", "Date"), "TIME": ("時刻", "Time"), "DATETIME": ("日時", "Date and time"),
    "FILE": ("添付ファイル", "Attachment"), "LINK": ("リンク", "Link"),
    "USER_SELECT": ("ユーザー選択", "User selection"), "ORGANIZATION_SELECT": ("組織選択", "Department selection"),
    "GROUP_SELECT": ("グループ選択", "Group selection"), "SUBTABLE": ("テーブル", "Table"),
    "LABEL": ("ラベル", "Label"), "SPACER": ("スペース", "Blank space"), "HR": ("罫線", "Border"),
    "GROUP": ("グループ", "Field group"), "RECORD_NUMBER": ("レコード番号", "Record number"),
    "CREATOR": ("作成者", "Created by"), "CREATED_TIME": ("作成日時", "Created datetime"),
    "MODIFIER": ("更新者", "Updated by"), "UPDATED_TIME": ("更新日時", "Updated datetime"),
    "STATUS": ("ステータス", "Status"), "STATUS_ASSIGNEE": ("作業者", "Assignee"),
}

# Property names as staff see them in the app settings screens (kintone's words).
PROPERTY_LABELS: dict[str, str] = {
    "name": "アプリ名", "description": "説明", "fields": "フィールド", "layout": "レイアウト",
    "views": "一覧", "settings": "設定", "label": "フィールド名", "noLabel": "フィールド名を表示しない",
    "required": "必須項目にする", "unique": "値の重複を禁止する", "defaultValue": "初期値",
    "defaultNowValue": "レコード登録時の日付（日時）を初期値にする", "minLength": "最小文字数",
    "maxLength": "最大文字数", "minValue": "最小値", "maxValue": "最大値", "displayScale": "小数部の表示桁数",
    "unit": "単位記号", "unitPosition": "単位記号の位置", "digit": "桁区切りを表示する", "options": "選択肢",
    "align": "並び", "formula": "計算式", "format": "表示形式", "hideExpression": "計算式を表示しない",
    "protocol": "入力値の種類", "thumbnailSize": "サムネイルの大きさ", "entities": "選択肢",
    "openGroup": "グループを開いた状態で表示する", "id": "ID", "size": "サイズ", "width": "幅",
    "height": "高さ", "innerHeight": "入力欄の高さ", "filterCond": "絞り込み条件", "sort": "ソート",
    "date": "日付のフィールド", "title": "タイトルのフィールド", "theme": "デザインテーマ", "icon": "アイコン",
    "numberPrecision": "数値と計算の精度", "digits": "全体の桁数", "decimalPlaces": "小数部の桁数",
    "roundingMode": "数値の丸めかた", "titleField": "レコードのタイトル",
    "firstMonthOfFiscalYear": "年度の開始月", "enableComments": "コメント機能",
    "enableBulkDeletion": "レコードの一括削除", "enableDuplicateRecord": "レコードの再利用",
    "enableThumbnails": "サムネイル表示", "enableInlineRecordEditing": "一覧での編集",
    "process": "プロセス管理", "permissions": "アクセス権",
}
_JSON_TYPES_JA = {"string": "文字列", "integer": "整数", "number": "数値", "boolean": "true または false",
                  "array": "配列（[...]）", "object": "オブジェクト（{...}）", "null": "null"}

i18n.register({
    # JSON Schema (shape) problems
    "appdef.schema.required": ("「{name}」は必須です。", "{raw}"),
    "appdef.schema.unknown_property": ("「{name}」は使えないプロパティです。",
                                       "\"{name_en}\" is not an allowed property here."),
    "appdef.schema.type": ("「{name}」には{expected}を指定してください。", "{raw}"),
    "appdef.schema.enum": ("「{name}」には次のいずれかを指定してください: {choices}", "{raw}"),
    "appdef.schema.min_length": ("「{name}」は{limit}文字以上で入力してください。", "{raw}"),
    "appdef.schema.max_length": ("「{name}」は{limit}文字以内で入力してください。", "{raw}"),
    "appdef.schema.minimum": ("「{name}」には{limit}以上の値を指定してください。", "{raw}"),
    "appdef.schema.maximum": ("「{name}」には{limit}以下の値を指定してください。", "{raw}"),
    "appdef.schema.min_items": ("「{name}」を{limit}件以上指定してください。", "{raw}"),
    "appdef.schema.max_items": ("「{name}」は{limit}件までです。", "{raw}"),
    "appdef.schema.unique_items": ("「{name}」に同じ値が重複しています。", "{raw}"),
    "appdef.schema.pattern": ("「{name}」の形式が正しくありません。", "{raw}"),
    "appdef.schema.invalid": ("「{name}」の値が正しくありません。", "{raw}"),
    "appdef.not_finite": ("「{name}」に数値として扱えない値（NaN、Infinity）が含まれています。",
                          "\"{name_en}\" holds a value that is not a finite number (NaN or Infinity)."),
    "appdef.code_format": (
        "「{value}」はフィールドコードに使えません。数字や「$」で始めず、空白と記号（「_」「・」以外）を含めないでください。",
        "\"{value}\" cannot be a field code: it must not start with a digit or \"$\" and must not contain "
        "whitespace or symbols other than \"_\" and \"・\"."),
    # fields
    "appdef.duplicate_code": ("フィールドコード「{code}」が重複しています（{other}）。",
                              "The field code \"{code}\" is used twice (also at {other})."),
    "appdef.reserved_code": ("フィールドコード「{code}」は{type_label}のフィールドコードとして使われています。",
                             "The field code \"{code}\" is the code of the {type_label_en} field."),
    "appdef.duplicate_id": ("フィールドID {id} が重複しています（{other}）。",
                            "The field id {id} is used twice (also at {other})."),
    "appdef.system_once": ("{type_label}のフィールドは1つしか置けません。",
                           "There can be only one {type_label_en} field."),
    "appdef.unknown_type": ("「{value}」というフィールドタイプはありません。", "{raw}"),
    "appdef.type_unavailable": ("フィールドタイプ「{type}」はこのサーバーでは使えません。",
                                "The field type \"{type}\" is not available on this server."),
    "appdef.required_not_allowed": ("{type_label}のフィールドは必須項目にできません。",
                                    "A {type_label_en} field cannot be required."),
    "appdef.unique_not_allowed": ("{type_label}のフィールドには値の重複の禁止を設定できません。",
                                  "A {type_label_en} field cannot prohibit duplicate values."),
    "appdef.subtable_inner_type": ("テーブルの中に{type_label}のフィールドは置けません。",
                                   "A {type_label_en} field cannot be placed in a table."),
    "appdef.subtable_unique": ("テーブルの中のフィールドには値の重複の禁止を設定できません。",
                               "Fields in a table cannot prohibit duplicate values."),
    "appdef.subtable_empty": ("テーブルにはフィールドを1つ以上置いてください。",
                              "A table needs at least one field."),
    # layout
    "appdef.unknown_field": ("フィールドコード「{code}」のフィールドはありません。",
                             "There is no field with code \"{code}\"."),
    "appdef.layout_twice": ("フィールド「{code}」はすでに配置されています（{other}）。",
                            "The field \"{code}\" is already placed (at {other})."),
    "appdef.layout_not_group": ("「{code}」はグループのフィールドではありません。",
                                "\"{code}\" is not a group field."),
    "appdef.layout_not_subtable": ("「{code}」はテーブルのフィールドではありません。",
                                   "\"{code}\" is not a table field."),
    "appdef.layout_group_in_row": ("グループ「{code}」は行の中ではなく、GROUP 要素として配置してください。",
                                   "Place the group \"{code}\" as a GROUP element, not inside a row."),
    "appdef.layout_subtable_in_row": ("テーブル「{code}」は行の中ではなく、SUBTABLE 要素として配置してください。",
                                      "Place the table \"{code}\" as a SUBTABLE element, not inside a row."),
    "appdef.layout_inner_outside": ("フィールド「{code}」はテーブル「{table}」の中のフィールドです。テーブルの外には配置できません。",
                                    "The field \"{code}\" belongs to the table \"{table}\" and cannot be placed outside it."),
    "appdef.layout_not_in_table": ("フィールド「{code}」はテーブル「{table}」のフィールドではありません。",
                                   "The field \"{code}\" is not a field of the table \"{table}\"."),
    # views and settings
    "appdef.view_name_duplicate": ("一覧名「{name}」が重複しています。", "The view name \"{name}\" is used twice."),
    "appdef.view_field_no_value": ("{type_label}のフィールド「{code}」は一覧に表示できません。",
                                   "The {type_label_en} field \"{code}\" cannot be shown in a view."),
    "appdef.calendar_date_type": ("カレンダー表示の日付には日付・日時のフィールドを指定してください（「{code}」は{type_label}）。",
                                  "A calendar needs a date or date-and-time field (\"{code}\" is {type_label_en})."),
    "appdef.top_level_only": ("テーブルの中のフィールド「{code}」はここでは使えません。",
                              "The table field \"{code}\" cannot be used here."),
    "appdef.title_field_type": ("{type_label}のフィールド「{code}」はレコードのタイトルにできません。",
                                "The {type_label_en} field \"{code}\" cannot be the record title."),
    "appdef.query_field_no_value": ("{type_label}のフィールド「{code}」は条件やソートに使えません。",
                                    "The {type_label_en} field \"{code}\" cannot be used in a condition or sort."),
    "appdef.query_operator": ("{type_label}のフィールド「{code}」には演算子「{op}」を使えません。",
                              "The operator \"{op}\" cannot be used with the {type_label_en} field \"{code}\"."),
    "appdef.query_not_sortable": ("{type_label}のフィールド「{code}」ではソートできません。",
                                  "The {type_label_en} field \"{code}\" cannot be sorted on."),
    "appdef.filter_condition_only": ("絞り込み条件には条件だけを書いてください（order by・limit・offset は使えません）。",
                                     "The filter may hold only a condition (no order by, limit or offset)."),
    "appdef.sort_only": ("ソートには「フィールドコード asc|desc」だけを書いてください。",
                         "The sort may hold only \"field asc|desc\" items."),
})


# ----------------------------------------------------------------------------------------------
# The JSON Schema


@functools.lru_cache(maxsize=1)
def _schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def load_app_schema_json() -> dict:
    """The app definition JSON Schema (a fresh copy; serve it to UIs as it is)."""
    return copy.deepcopy(_schema())


@functools.lru_cache(maxsize=1)
def _validator() -> Draft202012Validator:
    schema = _schema()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


# ----------------------------------------------------------------------------------------------
# Paths


def format_path(parts: Iterable[Any]) -> str:
    """``["fields", 2, "options"]`` -> ``"fields[2].options"``."""
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += f".{p}" if out else str(p)
    return out


_TOKEN = re.compile(r"\[(\d+)\]|\.?([^.\[]+)")


def path_key(path: str) -> tuple:
    """A sort key putting paths in document order (array indexes compared as numbers)."""
    key = []
    for m in _TOKEN.finditer(path or ""):
        key.append((0, int(m.group(1)), "") if m.group(1) is not None else (1, 0, m.group(2)))
    return tuple(key)


def _is_within(path: str, root: str) -> bool:
    return path == root or path.startswith(root + ".") or path.startswith(root + "[")


def _short(value: Any, limit: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ----------------------------------------------------------------------------------------------
# Walking a definition


def definition_fields(definition: Any) -> list[tuple[str, dict, str | None]]:
    """Every field object: ``(path, fdef, parent_code)``, top-level fields in order, each SUBTABLE
    followed by its inner fields (``parent_code`` = the table's code; None at top level).

    Tolerates malformed input (non-dict entries are skipped), so it can run on unvalidated JSON.
    """
    out: list[tuple[str, dict, str | None]] = []
    fields = definition.get("fields") if isinstance(definition, dict) else None
    if not isinstance(fields, list):
        return out
    for i, fdef in enumerate(fields):
        if not isinstance(fdef, dict):
            continue
        path = f"fields[{i}]"
        out.append((path, fdef, None))
        inner = fdef.get("fields")
        if fdef.get("type") == "SUBTABLE" and isinstance(inner, list):
            parent = fdef.get("code") if isinstance(fdef.get("code"), str) else None
            for j, idef in enumerate(inner):
                if isinstance(idef, dict):
                    out.append((f"{path}.fields[{j}]", idef, parent))
    return out


def _registry() -> dict:
    from kumiki import fields as field_types

    return field_types.all_types()


def type_label(type_name: Any) -> tuple[str, str]:
    """(ja, en) palette label of a field type."""
    if not isinstance(type_name, str):
        return str(type_name), str(type_name)
    ftype = _registry().get(type_name)
    if ftype is not None and ftype.label and ftype.label[0]:
        return ftype.label
    return TYPE_LABELS.get(type_name, (type_name, type_name))


def _type_params(type_name: Any) -> dict:
    ja, en = type_label(type_name)
    return {"type_label": f"「{ja}」", "type_label_en": en}


def _property_label(parts: list) -> tuple[str, str]:
    """(ja, en) name of the property at a schema path, for messages."""
    names = [p for p in parts if isinstance(p, str)]
    if not names:
        if parts:  # an array element directly under the root (not in this schema) or an item
            return format_path(parts), format_path(parts)
        return "アプリの定義", "the definition"
    last = names[-1]
    en = last
    parent = names[-2] if len(names) > 1 else None
    if last == "code":
        ja = "アプリコード" if len(parts) == 1 else "フィールドコード"
    elif last == "type":
        ja = {"fields": "フィールドタイプ", "views": "一覧の種類"}.get(parent, "種類")
    elif last == "name" and parent == "views":
        ja = "一覧名"
    elif last == "fields" and parent == "views":
        ja = "表示するフィールド"
    elif last == "label" and parent == "fields":
        ja = "フィールド名"
    else:
        ja = PROPERTY_LABELS.get(last, last)
    return ja, en


# ----------------------------------------------------------------------------------------------
# Layer 1: JSON Schema


def _non_finite(definition: Any) -> list[Detail]:
    """JSON has no NaN/Infinity, but Python's json module reads them: report them located."""
    out, stack = [], [((), definition)]
    while stack:
        parts, node = stack.pop()
        if isinstance(node, float) and not math.isfinite(node):
            ja, en = _property_label(list(parts))
            out.append(Detail(format_path(parts), "appdef.not_finite", {"name": ja, "name_en": en}))
        elif isinstance(node, dict):
            stack.extend(((*parts, k), v) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend(((*parts, i), v) for i, v in enumerate(node))
    return out


def _error_sort_key(err) -> tuple:
    return (tuple((0, p, "") if isinstance(p, int) else (1, 0, str(p)) for p in err.absolute_path),
            err.validator != "type", str(err.validator))


def schema_details(definition: Any) -> list[Detail]:
    """JSON Schema errors as located Details (Japanese by default; English carries the raw message)."""
    out: list[Detail] = []
    for err in sorted(_validator().iter_errors(definition), key=_error_sort_key):
        out.extend(_convert(err))
    return out


def _convert(err) -> list[Detail]:
    parts = list(err.absolute_path)
    path = format_path(parts)
    raw = err.message if len(err.message) <= 300 else err.message[:299] + "…"
    validator = err.validator
    schema = err.schema if isinstance(err.schema, dict) else {}
    instance = err.instance

    if validator == "required":
        missing = [p for p in err.validator_value if isinstance(instance, dict) and p not in instance]
        details = []
        for name in missing:
            ja, en = _property_label(parts + [name])
            details.append(Detail(format_path(parts + [name]), "appdef.schema.required",
                                  {"name": ja, "name_en": en, "raw": f"{name!r} is a required property"}))
        return details
    if validator in ("additionalProperties", "unevaluatedProperties"):
        known = schema.get("properties", {})
        patterns = list(schema.get("patternProperties", {}))
        extras = [k for k in (instance if isinstance(instance, dict) else {})
                  if k not in known and not any(re.search(p, k) for p in patterns)]
        details = []
        ftype_name = instance.get("type") if isinstance(instance, dict) and parts[:1] == ["fields"] else None
        for name in extras:
            if name in ("required", "unique") and isinstance(ftype_name, str):
                # the field type does not support it: say so rather than "unknown property"
                key = "appdef.required_not_allowed" if name == "required" else "appdef.unique_not_allowed"
                details.append(Detail(format_path(parts + [name]), key, _type_params(ftype_name)))
                continue
            ja, _ = _property_label(parts + [name])
            details.append(Detail(format_path(parts + [name]), "appdef.schema.unknown_property",
                                  {"name": name if ja == name else f"{name}（{ja}）", "name_en": name, "raw": raw}))
        return details
    if validator == "false":  # a `false` subschema: the property is not allowed here
        name = str(parts[-1]) if parts else ""
        return [Detail(path, "appdef.schema.unknown_property", {"name": name, "name_en": name, "raw": raw})]

    ja, en = _property_label(parts)
    params: dict[str, Any] = {"name": ja, "name_en": en, "raw": raw, "value": _short(instance)}
    custom = schema.get("x-message-keys", {}) if isinstance(schema.get("x-message-keys"), dict) else {}
    if validator in custom:
        key = custom[validator]
        if key == "appdef.subtable_inner_type":
            params.update(_type_params(instance))
        return [Detail(path, key, params)]

    value = err.validator_value
    if validator == "type":
        types = value if isinstance(value, list) else [value]
        params["expected"] = "・".join(_JSON_TYPES_JA.get(t, t) for t in types)
        key = "appdef.schema.type"
    elif validator in ("enum", "const"):
        choices = value if validator == "enum" else [value]
        params["choices"] = "、".join(_short(c, 40) for c in choices)
        key = "appdef.schema.enum"
    else:
        key = {
            "minLength": "appdef.schema.min_length", "maxLength": "appdef.schema.max_length",
            "minimum": "appdef.schema.minimum", "exclusiveMinimum": "appdef.schema.minimum",
            "maximum": "appdef.schema.maximum", "exclusiveMaximum": "appdef.schema.maximum",
            "minItems": "appdef.schema.min_items", "maxItems": "appdef.schema.max_items",
            "uniqueItems": "appdef.schema.unique_items", "pattern": "appdef.schema.pattern",
        }.get(validator, "appdef.schema.invalid")
        params["limit"] = value
    return [Detail(path, key, params)]


# ----------------------------------------------------------------------------------------------
# Layer 2: semantic checks


def _type(fdef: dict) -> str | None:
    """The field's type name, or None when it is not a string (malformed input)."""
    t = fdef.get("type")
    return t if isinstance(t, str) else None


class _Index:
    """What the semantic checks need to know about the fields of a definition."""

    def __init__(self, definition: Any):
        self.entries = definition_fields(definition)
        self.top: dict[str, dict] = {}              # top-level code -> fdef
        self.inner: dict[str, tuple[str, dict]] = {}  # inner code -> (table code, fdef)
        self.table_inner: dict[str, set[str]] = {}  # table code -> its inner codes
        listed_system = set()
        for _path, fdef, parent in self.entries:
            code = fdef.get("code")
            if not isinstance(code, str):
                continue
            if parent is None:
                self.top.setdefault(code, fdef)
                if _type(fdef) in SYSTEM_TYPES:
                    listed_system.add(_type(fdef))
            else:
                self.inner.setdefault(code, (parent, fdef))
                self.table_inner.setdefault(parent, set()).add(code)
        # System fields not listed exist anyway, under their default codes.
        self.implicit: dict[str, str] = {code: t for t, code in SYSTEM_TYPES.items() if t not in listed_system}

    def type_of(self, code: str) -> str | None:
        if code in self.top:
            return _type(self.top[code])
        if code in self.inner:
            return _type(self.inner[code][1])
        return self.implicit.get(code)

    def exists(self, code: str) -> bool:
        return code in self.top or code in self.inner or code in self.implicit


def semantic_details(definition: Any, clean: Callable[[str], bool] = lambda path: True) -> list[Detail]:
    """The checks JSON Schema cannot express. ``clean(path)`` says whether the subtree at ``path``
    passed the schema; type-specific checks run only on clean fields."""
    if not isinstance(definition, dict):
        return []
    index = _Index(definition)
    out: list[Detail] = []
    out += _check_fields(index, clean)
    out += _check_layout(definition, index)
    out += _check_views(definition, index)
    out += _check_settings(definition, index)
    return out


def _check_fields(index: _Index, clean: Callable[[str], bool]) -> list[Detail]:
    registry = _registry()
    out: list[Detail] = []
    codes: dict[str, str] = {}
    ids: dict[int, str] = {}
    system_seen: dict[str, str] = {}
    for path, fdef, parent in index.entries:
        code, ftype_name = fdef.get("code"), _type(fdef)
        # codes unique across the app, tables included; not the code of an implicit system field
        if isinstance(code, str):
            if code in codes:
                out.append(Detail(f"{path}.code", "appdef.duplicate_code", {"code": code, "other": codes[code]}))
            else:
                codes[code] = path
                if code in index.implicit and ftype_name != index.implicit[code]:
                    out.append(Detail(f"{path}.code", "appdef.reserved_code",
                                      {"code": code, **_type_params(index.implicit[code])}))
        fid = fdef.get("id")
        if isinstance(fid, int) and not isinstance(fid, bool):
            if fid in ids:
                out.append(Detail(f"{path}.id", "appdef.duplicate_id", {"id": fid, "other": ids[fid]}))
            else:
                ids[fid] = path
        if not isinstance(ftype_name, str):
            continue
        if ftype_name in SYSTEM_TYPES and parent is None:
            if ftype_name in system_seen:
                out.append(Detail(f"{path}.type", "appdef.system_once", _type_params(ftype_name)))
            system_seen[ftype_name] = path
        ftype = registry.get(ftype_name)
        if ftype is None:
            out.append(Detail(f"{path}.type", "appdef.type_unavailable", {"type": _short(ftype_name)}))
            continue
        kind = getattr(ftype, "kind", "scalar")
        if parent is not None and (ftype_name in SYSTEM_TYPES or kind in ("subtable", "system", "layout")):
            out.append(Detail(f"{path}.type", "appdef.subtable_inner_type", _type_params(ftype_name)))
        if fdef.get("required") is True and not ftype.can_be_required:
            out.append(Detail(f"{path}.required", "appdef.required_not_allowed", _type_params(ftype_name)))
        if fdef.get("unique") is True:
            if not ftype.can_be_unique:
                out.append(Detail(f"{path}.unique", "appdef.unique_not_allowed", _type_params(ftype_name)))
            elif parent is not None:
                out.append(Detail(f"{path}.unique", "appdef.subtable_unique", {}))
        if ftype_name == "SUBTABLE" and not (isinstance(fdef.get("fields"), list) and fdef["fields"]):
            out.append(Detail(f"{path}.fields", "appdef.subtable_empty", {}))
        if clean(path):
            out += _check_type_specific(ftype, fdef, path)
    return out


def _check_type_specific(ftype, fdef: dict, path: str) -> list[Detail]:
    from kumiki.fields.base import Context

    details = list(ftype.check_definition(fdef, path) or [])
    if not details and "defaultValue" in fdef:
        ctx = Context(now=datetime.now(timezone.utc).replace(tzinfo=None))
        try:
            ftype.default(fdef, ctx)
        except FieldValueError as e:
            details.append(Detail(f"{path}.defaultValue", e.key, dict(e.params)))
    return details


def _layout_code(item: Any, path: str) -> tuple[str | None, str]:
    if isinstance(item, str):
        return item, path
    if isinstance(item, dict) and isinstance(item.get("code"), str):
        return item["code"], f"{path}.code"
    return None, path


def _check_layout(definition: dict, index: _Index) -> list[Detail]:
    layout = definition.get("layout")
    if not isinstance(layout, list):
        return []
    out: list[Detail] = []
    placed: dict[str, str] = {}

    def place(code: str, path: str) -> None:
        if code in placed:
            out.append(Detail(path, "appdef.layout_twice", {"code": code, "other": placed[code]}))
        else:
            placed[code] = path

    def check_row(row: dict, rpath: str) -> None:
        items = row.get("fields")
        if not isinstance(items, list):
            return
        for k, item in enumerate(items):
            code, ipath = _layout_code(item, f"{rpath}.fields[{k}]")
            if code is None:
                continue
            if code in index.inner and code not in index.top:
                out.append(Detail(ipath, "appdef.layout_inner_outside", {"code": code, "table": index.inner[code][0]}))
            elif not index.exists(code):
                out.append(Detail(ipath, "appdef.unknown_field", {"code": code}))
            elif index.type_of(code) == "GROUP":
                out.append(Detail(ipath, "appdef.layout_group_in_row", {"code": code}))
            elif index.type_of(code) == "SUBTABLE":
                out.append(Detail(ipath, "appdef.layout_subtable_in_row", {"code": code}))
            else:
                place(code, ipath)

    for i, element in enumerate(layout):
        if not isinstance(element, dict):
            continue
        epath = f"layout[{i}]"
        etype = element.get("type")
        if etype == "ROW":
            check_row(element, epath)
        elif etype in ("GROUP", "SUBTABLE"):
            code = element.get("code")
            if isinstance(code, str):
                cpath = f"{epath}.code"
                if not index.exists(code) or (code in index.inner and code not in index.top):
                    out.append(Detail(cpath, "appdef.unknown_field", {"code": code}))
                elif index.type_of(code) != etype:
                    key = "appdef.layout_not_group" if etype == "GROUP" else "appdef.layout_not_subtable"
                    out.append(Detail(cpath, key, {"code": code}))
                else:
                    place(code, cpath)
            if etype == "GROUP" and isinstance(element.get("layout"), list):
                for j, row in enumerate(element["layout"]):
                    if isinstance(row, dict) and row.get("type") == "ROW":
                        check_row(row, f"{epath}.layout[{j}]")
            elif etype == "SUBTABLE" and isinstance(element.get("fields"), list) and isinstance(code, str):
                own = index.table_inner.get(code, set()) if index.type_of(code) == "SUBTABLE" else None
                seen: dict[str, str] = {}
                for k, item in enumerate(element["fields"]):
                    icode, ipath = _layout_code(item, f"{epath}.fields[{k}]")
                    if icode is None or own is None:
                        continue
                    if icode not in own:
                        out.append(Detail(ipath, "appdef.layout_not_in_table", {"code": icode, "table": code}))
                    elif icode in seen:
                        out.append(Detail(ipath, "appdef.layout_twice", {"code": icode, "other": seen[icode]}))
                    else:
                        seen[icode] = ipath
    return out


def _ref(index: _Index, code: Any, path: str, out: list[Detail], *, top_level: bool = False,
         value_only: bool = True, no_value_key: str = "appdef.view_field_no_value") -> str | None:
    """Check a reference to a field by code; return the field's type if usable, else None."""
    if not isinstance(code, str):
        return None
    if not index.exists(code):
        out.append(Detail(path, "appdef.unknown_field", {"code": code}))
        return None
    ftype_name = index.type_of(code)
    if top_level and code in index.inner and code not in index.top:
        out.append(Detail(path, "appdef.top_level_only", {"code": code}))
        return None
    if value_only and ftype_name in NO_VALUE_TYPES:
        out.append(Detail(path, no_value_key, {"code": code, **_type_params(ftype_name)}))
        return None
    return ftype_name if isinstance(ftype_name, str) else None


def _check_views(definition: dict, index: _Index) -> list[Detail]:
    views = definition.get("views")
    if not isinstance(views, list):
        return []
    out: list[Detail] = []
    names: dict[str, str] = {}
    for i, view in enumerate(views):
        if not isinstance(view, dict):
            continue
        vpath = f"views[{i}]"
        name = view.get("name")
        if isinstance(name, str):
            if name in names:
                out.append(Detail(f"{vpath}.name", "appdef.view_name_duplicate", {"name": name}))
            else:
                names[name] = vpath
        if isinstance(view.get("fields"), list):
            for k, code in enumerate(view["fields"]):
                _ref(index, code, f"{vpath}.fields[{k}]", out)
        if view.get("type") == "CALENDAR":
            t = _ref(index, view.get("date"), f"{vpath}.date", out, top_level=True)
            if t is not None and t not in CALENDAR_DATE_TYPES:
                out.append(Detail(f"{vpath}.date", "appdef.calendar_date_type",
                                  {"code": view["date"], **_type_params(t)}))
            _ref(index, view.get("title"), f"{vpath}.title", out, top_level=True)
    out += check_view_queries(definition, None, _index=index)
    return out


def _check_settings(definition: dict, index: _Index) -> list[Detail]:
    settings = definition.get("settings")
    if not isinstance(settings, dict):
        return []
    out: list[Detail] = []
    t = _ref(index, settings.get("titleField"), "settings.titleField", out, top_level=True,
             no_value_key="appdef.title_field_type")
    if t is not None and t not in TITLE_FIELD_TYPES:
        out.append(Detail("settings.titleField", "appdef.title_field_type",
                          {"code": settings["titleField"], **_type_params(t)}))
    return out


# ----------------------------------------------------------------------------------------------
# View queries


def check_view_queries(definition: Any, schema_builder: Callable[[dict], Any] | None = None, *,
                       _index: _Index | None = None) -> list[Detail]:
    """Check each view's ``filterCond`` and ``sort`` as query text.

    Always (when :mod:`kumiki.query` is importable): the text parses; ``filterCond`` holds only a
    condition and ``sort`` only order items; every field it names exists, holds a value, supports
    the operator used (``FieldType.operators``) and, for ``sort``, is sortable.

    With ``schema_builder`` (a callable turning the definition into an
    :class:`~kumiki.storage.schema.AppSchema`, e.g. a provisional one before deploy), the texts are
    also compiled with ``kumiki.query.compile_query`` so that literal values are checked against
    their fields exactly as at run time. Errors are located at ``views[i].filterCond`` /
    ``views[i].sort``; the query's own position params are kept.
    """
    try:
        from kumiki.query import parse_query
        from kumiki.query import parser as query_ast
    except ImportError:  # the query package is optional for this check
        return []
    if not isinstance(definition, dict) or not isinstance(definition.get("views"), list):
        return []
    index = _index or _Index(definition)
    registry = _registry()
    out: list[Detail] = []
    compiled_ok: list[tuple[str, str]] = []
    for i, view in enumerate(definition["views"]):
        if not isinstance(view, dict):
            continue
        for prop, prefix in (("filterCond", ""), ("sort", "order by ")):
            text = view.get(prop)
            if not isinstance(text, str) or not text.strip():
                continue
            path = f"views[{i}].{prop}"
            try:
                q = parse_query(prefix + text)
            except KumikiError as e:
                out += [_relocate(d, path, len(prefix)) for d in e.details] or [Detail(path, e.key, dict(e.params))]
                continue
            if prop == "filterCond" and (q.order_by or q.limit is not None or q.offset is not None):
                out.append(Detail(path, "appdef.filter_condition_only", {}))
                continue
            if prop == "sort" and (q.where is not None or q.limit is not None or q.offset is not None):
                out.append(Detail(path, "appdef.sort_only", {}))
                continue
            before = len(out)
            for cond in _conditions(q.where, query_ast):
                if cond.field == ID_PSEUDO_FIELD:
                    continue
                t = _ref(index, cond.field, path, out, no_value_key="appdef.query_field_no_value")
                ftype = registry.get(t) if t else None
                if ftype is not None and ftype.operators and cond.op not in ftype.operators:
                    out.append(Detail(path, "appdef.query_operator", {"code": cond.field, "op": cond.op, **_type_params(t)}))
            for item in q.order_by:
                if item.field == ID_PSEUDO_FIELD:
                    continue
                t = _ref(index, item.field, path, out, no_value_key="appdef.query_field_no_value")
                ftype = registry.get(t) if t else None
                if ftype is not None and not (ftype.sortable and not ftype.stores_list
                                              and ftype.kind in ("scalar", "system")
                                              and not (item.field in index.inner and item.field not in index.top)):
                    out.append(Detail(path, "appdef.query_not_sortable", {"code": item.field, **_type_params(t)}))
            if len(out) == before:
                compiled_ok.append((path, prefix + text))
    if schema_builder is not None and compiled_ok:
        out += _compile_view_queries(definition, schema_builder, compiled_ok)
    return out


def _compile_view_queries(definition: dict, schema_builder, texts: list[tuple[str, str]]) -> list[Detail]:
    try:
        from kumiki.query import compile_query
    except ImportError:
        return []
    from kumiki.fields.base import Context

    app_schema = schema_builder(definition)
    out: list[Detail] = []
    for path, text in texts:
        try:
            compile_query(text, app_schema, Context(), "sqlite")
        except KumikiError as e:
            out += [Detail(path, d.key, dict(d.params)) for d in e.details] or [Detail(path, e.key, dict(e.params))]
        except FieldValueError as e:
            out.append(Detail(path, e.key, dict(e.params)))
    return out


def _conditions(expr, ast) -> Iterator:
    stack = [expr] if expr is not None else []
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Condition):
            yield node
        elif isinstance(node, (ast.And, ast.Or)):
            stack.extend(reversed(node.items))


def _relocate(detail: Detail, path: str, shift: int) -> Detail:
    params = dict(detail.params)
    if shift and isinstance(params.get("position"), int):
        params["position"] = max(1, params["position"] - shift)
        if params.get("line") == 1 and isinstance(params.get("column"), int):
            params["column"] = max(1, params["column"] - shift)
    return Detail(path, detail.key, params)


# ----------------------------------------------------------------------------------------------
# Entry point


def collect_details(definition: Any, schema_builder: Callable[[dict], Any] | None = None) -> list[Detail]:
    """Every problem of ``definition``, schema and semantic, in document order; [] when valid."""
    shape = _non_finite(definition) + schema_details(definition)
    bad_paths = {d.path for d in shape}

    def clean(path: str) -> bool:
        return not any(_is_within(bp, path) for bp in bad_paths)

    semantic = semantic_details(definition, clean)
    if schema_builder is not None and not shape and not semantic:
        # Only an otherwise valid definition can be turned into an AppSchema to compile against.
        semantic += check_view_queries(definition, schema_builder)
    result: list[Detail] = []
    seen_paths: set[str] = set()
    seen: set[tuple] = set()
    for d in shape:  # one shape message per place
        if d.path in seen_paths:
            continue
        seen_paths.add(d.path)
        result.append(d)
    shape_paths = set(seen_paths)
    for d in semantic:
        if d.path in shape_paths:
            continue
        key = (d.path, d.key, json.dumps(d.params, sort_keys=True, default=str))
        if key in seen:
            continue
        seen.add(key)
        result.append(d)
    result.sort(key=lambda d: path_key(d.path))
    return result


def validate_definition(definition: Any, *, schema_builder: Callable[[dict], Any] | None = None) -> dict:
    """Validate an app definition and return a normalised copy.

    Raises :class:`~kumiki.errors.ValidationError` carrying *every* problem found, each a Detail
    located by a JSON path (``fields[2].code``). The returned copy has defaults filled in (see
    :func:`kumiki.definitions.normalise.normalise_definition`); the input is not modified.
    ``schema_builder`` (optional) also compiles the views' queries; see :func:`check_view_queries`.
    """
    details = collect_details(definition, schema_builder)
    if details:
        raise ValidationError(details, key="appdef.invalid")
    from kumiki.definitions.normalise import normalise_definition

    return normalise_definition(definition)


i18n.register({"appdef.invalid": ("アプリの設定に誤りがあります。", "The app definition is not valid.")})
