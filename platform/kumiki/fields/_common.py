"""Helpers shared by several field types (not a field type: underscore modules are not registered)."""
from __future__ import annotations

import unicodedata
from typing import Any

from kumiki import i18n
from kumiki.errors import Detail, FieldValueError
from kumiki.fields.base import IN, IS_EMPTY, IS_NOT_EMPTY, LIKE, NOT_IN, NOT_LIKE, ORDERED_OPS

# Operator sets used by more than one type.
ORDERED_EMPTY_OPS = ORDERED_OPS | {IS_EMPTY, IS_NOT_EMPTY}
LONG_TEXT_OPS = frozenset({LIKE, NOT_LIKE, IS_EMPTY, IS_NOT_EMPTY})
SELECT_OPS = frozenset({IN, NOT_IN})
DISPLAY_SCALE_MAX = 10


def nfkc(text: str) -> str:
    """Fold full-width digits, letters and signs to ASCII (１２３ → 123, ＋ → +, ㍻ → 平成)."""
    return unicodedata.normalize("NFKC", text)


def mismatch(expected: str, expected_en: str) -> FieldValueError:
    return FieldValueError("field.type_mismatch", expected=expected, expected_en=expected_en)


def to_text(value: Any, expected: str = "文字列", expected_en: str = "text") -> str:
    """A scalar JSON value as text; lists, objects and booleans are refused."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise mismatch(expected, expected_en)
    return str(value)


def convert_single(ftype, fdef: dict, old_type, old_value: Any, ctx) -> Any:
    """Retype into a single-valued field: the value (or a list's only element) must normalise."""
    if old_type.is_empty(old_value):
        return ""
    value = single_element(old_value)
    try:
        return ftype.normalise(fdef, value, ctx)
    except FieldValueError:
        raise FieldValueError("field.cannot_convert", value=str(value)) from None


def single_element(value: Any) -> Any:
    """For retyping a list value into a single-valued type: its only element (or "" when empty)."""
    if not isinstance(value, list):
        return value
    if len(value) > 1:
        raise FieldValueError("field.multiple_values")
    if not value:
        return ""
    item = value[0]
    return item.get("code", item.get("name", "")) if isinstance(item, dict) else item


def check_bool_props(fdef: dict, path: str, names: tuple[str, ...]) -> list[Detail]:
    return [Detail(f"{path}.{n}", "fielddef.not_bool", {"name": n})
            for n in names if n in fdef and not isinstance(fdef[n], bool)]


def check_display_props(fdef: dict, path: str) -> list[Detail]:
    """displayScale (0..10 or empty) and unitPosition (BEFORE/AFTER) of NUMBER and CALC."""
    out: list[Detail] = []
    scale = fdef.get("displayScale")
    if scale not in (None, ""):
        try:
            ok = not isinstance(scale, bool) and 0 <= int(str(scale)) <= DISPLAY_SCALE_MAX
        except ValueError:
            ok = False
        if not ok:
            out.append(Detail(f"{path}.displayScale", "fielddef.display_scale", {"max": DISPLAY_SCALE_MAX}))
    if fdef.get("unitPosition") not in (None, "", "BEFORE", "AFTER"):
        out.append(Detail(f"{path}.unitPosition", "fielddef.unit_position"))
    if not isinstance(fdef.get("unit", ""), str):
        out.append(Detail(f"{path}.unit", "fielddef.not_text", {"name": "unit"}))
    return out


def check_default(ftype, fdef: dict, path: str, ctx=None) -> list[Detail]:
    """Check that ``defaultValue`` is a valid value of the field (reusing the value's message)."""
    from kumiki.fields.base import Context

    if "defaultValue" not in fdef or ftype.is_empty(fdef["defaultValue"]):
        return []
    try:
        ftype.normalise(fdef, fdef["defaultValue"], ctx or Context())
    except FieldValueError as e:
        return [Detail(f"{path}.defaultValue", e.key, dict(e.params))]
    return []


i18n.register({
    "field.multiple_values": ("値を1つだけ指定してください。", "Give only one value."),
    "field.cannot_convert": ("「{value}」は変換できません。", "\"{value}\" cannot be converted."),
    "fielddef.not_bool": ("「{name}」には true か false を指定してください。", "\"{name}\" must be true or false."),
    "fielddef.not_text": ("「{name}」には文字列を指定してください。", "\"{name}\" must be text."),
    "fielddef.not_number": ("数値を指定してください。", "Enter a number."),
    "fielddef.display_scale": ("小数部の表示桁数は0から{max}までの整数で指定してください。",
                               "The number of decimal places must be a whole number from 0 to {max}."),
    "fielddef.unit_position": ("単位記号の位置は「BEFORE」（前）か「AFTER」（後）で指定してください。",
                               "The unit position must be BEFORE or AFTER."),
})
