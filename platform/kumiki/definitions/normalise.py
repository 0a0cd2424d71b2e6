"""Fill in the defaults of a *valid* app definition.

Defaults come from the JSON Schema's ``default`` annotations (one source for UI and engine):
``required``/``unique``/``noLabel`` false, ``unitPosition`` AFTER, ... -- only for properties the
field's type accepts, so a normalised definition validates again unchanged. Top level:
``description`` "", ``fields`` [], ``views`` [], ``settings`` {}. The layout defaults to one ROW per
top-level field in definition order (a GROUP element per group, a SUBTABLE element per table);
fields a given layout leaves out are appended the same way, so every field is on the form.
System fields are placed only where the layout places them.
"""
from __future__ import annotations

import copy
from typing import Any

from kumiki.definitions.validate import SYSTEM_TYPES, _schema, definition_fields

_MISSING = object()


def _resolve(schema: dict, node: Any) -> Any:
    """Follow local ``$ref``s (``#/$defs/...``)."""
    seen = 0
    while isinstance(node, dict) and "$ref" in node and seen < 20:
        if "default" in node:
            return node
        ref = node["$ref"]
        target: Any = schema
        for part in ref.lstrip("#/").split("/"):
            target = target[part]
        node = target
        seen += 1
    return node


def _default_of(schema: dict, prop_schema: Any) -> Any:
    node = _resolve(schema, prop_schema)
    if isinstance(node, dict) and "default" in node:
        return copy.deepcopy(node["default"])
    return _MISSING


def _fill(schema: dict, obj: dict, props: dict) -> None:
    for name, prop_schema in props.items():
        if name not in obj:
            value = _default_of(schema, prop_schema)
            if value is not _MISSING:
                obj[name] = value


def default_layout(fields: list[dict]) -> list[dict]:
    """One element per top-level field, in order: ROW for ordinary fields, GROUP / SUBTABLE elements."""
    layout: list[dict] = []
    for fdef in fields:
        if not isinstance(fdef, dict) or fdef.get("type") in SYSTEM_TYPES:
            continue
        code, ftype = fdef.get("code"), fdef.get("type")
        if ftype == "GROUP":
            layout.append({"type": "GROUP", "code": code, "layout": []})
        elif ftype == "SUBTABLE":
            layout.append({"type": "SUBTABLE", "code": code})
        else:
            layout.append({"type": "ROW", "fields": [code]})
    return layout


def placed_codes(layout: list) -> set[str]:
    """Codes of the top-level fields a layout places (rows, groups' rows, GROUP and SUBTABLE elements)."""
    placed: set[str] = set()

    def row(r: Any) -> None:
        for item in (r.get("fields") or []) if isinstance(r, dict) else []:
            code = item if isinstance(item, str) else item.get("code") if isinstance(item, dict) else None
            if isinstance(code, str):
                placed.add(code)

    for element in layout:
        if not isinstance(element, dict):
            continue
        if element.get("type") == "ROW":
            row(element)
        else:
            if isinstance(element.get("code"), str):
                placed.add(element["code"])
            for r in element.get("layout") or []:
                row(r)
    return placed


def normalise_definition(definition: dict) -> dict:
    """A copy of a valid definition with every default filled in (the input is not modified)."""
    schema = _schema()
    d = copy.deepcopy(definition)
    _fill(schema, d, {k: v for k, v in schema["properties"].items() if k != "layout"})
    type_defs = schema["$defs"]["fieldTypes"]
    for _path, fdef, _parent in definition_fields(d):
        tdef = type_defs.get(fdef.get("type"))
        if tdef:
            _fill(schema, fdef, tdef.get("properties", {}))

    if "layout" not in d:
        d["layout"] = default_layout(d["fields"])
    else:
        placed = placed_codes(d["layout"])
        d["layout"].extend(default_layout([f for f in d["fields"] if f.get("code") not in placed]))
    for element in d["layout"]:
        if element.get("type") == "GROUP":
            element.setdefault("layout", [])

    view_defs = {"LIST": schema["$defs"]["viewList"], "CALENDAR": schema["$defs"]["viewCalendar"]}
    for view in d["views"]:
        vdef = view_defs.get(view.get("type"))
        if vdef:
            _fill(schema, view, vdef.get("properties", {}))
    return d
