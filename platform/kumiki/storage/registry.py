"""Build :class:`AppSchema` objects from a deployed version and the physical field registry."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from kumiki.errors import NotFound
from kumiki.model import App, AppField, AppVersion
from kumiki.storage.schema import (SYSTEM_FIELDS, AppSchema, FieldDef, record_table_name,
                                   subtable_table_name)


def iter_definition_fields(definition: dict):
    """Yield (fdef, parent_code) for every field, subtable inner fields after their table."""
    for fdef in definition.get("fields", []):
        yield fdef, None
        if fdef.get("type") == "SUBTABLE":
            for inner in fdef.get("fields", []):
                yield inner, fdef["code"]


def build_schema(app_id: int, version: int, definition: dict, registry: list[AppField]) -> AppSchema:
    by_id = {r.field_id: r for r in registry if r.status == "active"}
    fields: dict[str, FieldDef] = {}
    system_seen: set[str] = set()
    table = record_table_name(app_id)
    for fdef, parent in iter_definition_fields(definition):
        ftype = fdef["type"]
        if ftype in SYSTEM_FIELDS:
            system_seen.add(ftype)
            fields[fdef["code"]] = FieldDef(fdef.get("id", 0), fdef["code"], ftype, fdef, SYSTEM_FIELDS[ftype][1], table)
            continue
        reg = by_id.get(fdef.get("id"))
        column = reg.column_name if reg else None
        ftable = reg.table_name if reg else table
        if ftype == "SUBTABLE":
            ftable = subtable_table_name(app_id, fdef.get("id", 0))
        fields[fdef["code"]] = FieldDef(fdef.get("id", 0), fdef["code"], ftype, fdef, column, ftable, parent)
    for stype, (code, column) in SYSTEM_FIELDS.items():
        if stype not in system_seen and code not in fields:
            fields[code] = FieldDef(0, code, stype, {"code": code, "type": stype, "label": code}, column, table)
    return AppSchema(app_id=app_id, version=version, definition=definition, fields=fields)


def load_schema(session: Session, app_id: int, cache: dict | None = None) -> AppSchema:
    """The deployed schema of an app; NotFound when the app does not exist or was never deployed."""
    version = session.scalar(select(App.deployed_version).where(App.id == app_id))
    if not version:
        raise NotFound("app.not_found" if version is None else "app.not_deployed", app_id=app_id)
    key = (app_id, version)
    if cache is not None and key in cache:
        return cache[key]
    definition = session.scalar(select(AppVersion.definition).where(AppVersion.app_id == app_id,
                                                                     AppVersion.version == version))
    registry = list(session.scalars(select(AppField).where(AppField.app_id == app_id)))
    schema = build_schema(app_id, version, definition, registry)
    if cache is not None:
        cache[key] = schema
    return schema
