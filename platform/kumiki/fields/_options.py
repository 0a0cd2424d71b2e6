"""Option handling shared by RADIO_BUTTON, DROP_DOWN, CHECK_BOX and MULTI_SELECT.

``options`` is a list of strings in display order. kintone's object form
``{"label": {"label": "label", "index": "0"}}`` is read too, so that kintone definitions import as they are.
"""
from __future__ import annotations

import re
from typing import Any

from kumiki import i18n
from kumiki.db import JSONType
from kumiki.errors import Detail, FieldValueError
from kumiki.fields._common import SELECT_OPS, convert_single, mismatch, to_text
from kumiki.fields.base import MULTI, Context, FieldType


def options(fdef: dict) -> list[str]:
    opts = fdef.get("options")
    if isinstance(opts, dict):
        def index(item):
            meta = item[1] if isinstance(item[1], dict) else {}
            try:
                return int(meta.get("index", 0))
            except (TypeError, ValueError):
                return 0
        return [str(k) for k, _ in sorted(opts.items(), key=index)]
    if isinstance(opts, list):
        return [o for o in opts if isinstance(o, str)]
    return []


def check_options(fdef: dict, path: str) -> list[Detail]:
    opts = fdef.get("options")
    if isinstance(opts, dict):
        opts = options(fdef)
    if not isinstance(opts, list) or not opts:
        return [Detail(f"{path}.options", "fielddef.options_required")]
    out, seen = [], set()
    for i, o in enumerate(opts):
        if not isinstance(o, str) or not o.strip():
            out.append(Detail(f"{path}.options[{i}]", "fielddef.option_empty"))
        elif o in seen:
            out.append(Detail(f"{path}.options[{i}]", "fielddef.option_duplicate", {"value": o}))
        else:
            seen.add(o)
    return out


def check_default_options(fdef: dict, path: str, many: bool) -> list[Detail]:
    dv = fdef.get("defaultValue")
    if dv is None or dv == "" or dv == []:
        return []
    values = dv if many and isinstance(dv, list) else [dv]
    if (many and not isinstance(dv, list)) or not all(isinstance(v, str) for v in values):
        return [Detail(f"{path}.defaultValue", "fielddef.default_not_option", {"value": str(dv)})]
    opts = options(fdef)
    return [Detail(f"{path}.defaultValue", "fielddef.default_not_option", {"value": v})
            for v in values if v not in opts]


def choose_one(fdef: dict, value: Any) -> str:
    if value is None:
        return ""
    text = to_text(value, "選択肢", "one of the options")
    if text and text not in options(fdef):
        raise FieldValueError("field.not_an_option", value=text)
    return text


def choose_many(fdef: dict, value: Any) -> list[str]:
    """A list of distinct options, in the options' order."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise mismatch("選択肢の一覧", "a list of options")
    opts = options(fdef)
    chosen = set()
    for v in value:
        text = to_text(v, "選択肢", "one of the options")
        if text not in opts:
            raise FieldValueError("field.not_an_option", value=text)
        chosen.add(text)
    return [o for o in opts if o in chosen]


def split_many(fdef: dict, text: str) -> list[str]:
    """Text holding several options (CSV cell, retyped text): one per line, or comma-separated."""
    if text in options(fdef):
        return [text]
    parts = text.splitlines() if "\n" in text or "\r" in text else re.split(r"\s*[,、]\s*", text)
    return [p.strip() for p in parts if p.strip()]


def query_literal(literal: str) -> str | None:
    # Retired options stay queryable, so a literal is not checked against the current options.
    return literal if literal != "" else None


def convert_one(ftype: FieldType, fdef: dict, old_type: FieldType, old_value: Any, ctx: Context) -> str:
    """Retype into a single-choice field: the value (or a list's only element) must be an option."""
    return convert_single(ftype, fdef, old_type, old_value, ctx)


class MultiChoice(FieldType):
    """CHECK_BOX and MULTI_SELECT: a JSON list of distinct options in the options' order."""

    kind = MULTI
    stores_list = True
    operators = SELECT_OPS
    sortable = False
    indexed = False
    properties = frozenset({"options", "defaultValue", "align"})

    def column_type(self, fdef):
        return JSONType

    def empty_value(self):
        return []

    def normalise(self, fdef, value, ctx: Context):
        return choose_many(fdef, value)

    def from_db(self, fdef, raw, ctx):
        return list(raw) if isinstance(raw, list) else []

    def query_value(self, fdef, literal, ctx):
        return query_literal(literal)

    def from_csv(self, fdef, text, ctx):
        return self.normalise(fdef, split_many(fdef, text), ctx)

    def convert_from(self, fdef, old_type, old_value, ctx):
        if old_type.is_empty(old_value):
            return []
        if isinstance(old_value, list):
            values = [str(v.get("code", v.get("name", ""))) if isinstance(v, dict) else str(v) for v in old_value]
        else:
            values = split_many(fdef, str(old_value))
        try:
            return self.normalise(fdef, values, ctx)
        except FieldValueError as e:
            raise FieldValueError("field.cannot_convert", value=e.params.get("value", str(old_value))) from None

    def check_definition(self, fdef, path):
        return check_options(fdef, path) or check_default_options(fdef, path, many=True)


i18n.register({
    "fielddef.options_required": ("選択肢を1つ以上設定してください。", "Give at least one option."),
    "fielddef.option_empty": ("空の選択肢は設定できません。", "An option cannot be empty."),
    "fielddef.option_duplicate": ("選択肢「{value}」が重複しています。", "The option \"{value}\" appears twice."),
    "fielddef.default_not_option": ("初期値「{value}」が選択肢にありません。",
                                    "The default value \"{value}\" is not one of the options."),
})
