"""Apps' definition lifecycle: create with a draft, edit the draft, deploy it as a numbered version.

Deploying diffs the draft against the physical registry (``app_fields``) and changes the record
tables non-destructively (see :mod:`kumiki.storage.ddl`), all in the caller's transaction.
"""
from __future__ import annotations

import copy

from sqlalchemy import MetaData, Table, select, update
from sqlalchemy.orm import Session

from kumiki import i18n
from kumiki.errors import Conflict, Detail, NotFound, ValidationError
from kumiki.fields import get as get_type
from kumiki.fields.base import Context, FieldValueError
from kumiki.model import App, AppField, AppVersion, User
from kumiki.model._common import utcnow
from kumiki.storage import ddl
from kumiki.storage.schema import SYSTEM_FIELDS, record_table_name, subtable_table_name

i18n.register({
    "app.not_found": ("アプリ（ID: {app_id}）が見つかりません。", "App {app_id} was not found."),
    "app.not_deployed": ("アプリ（ID: {app_id}）はまだ公開されていません。「アプリを更新」してください。",
                         "App {app_id} has not been deployed yet."),
    "app.code_taken": ("アプリコード「{code}」は既に使われています。", "The app code \"{code}\" is already used."),
    "app.stale_draft": ("編集中の設定がほかの人によって更新されています。再読み込みしてください。",
                        "Someone else changed the draft; reload it."),
    "deploy.unique_duplicates": ("既存のレコードに重複する値（{values}）があるため、重複禁止にできません。",
                                 "Existing records have duplicate values ({values}); cannot make the field unique."),
    "deploy.cannot_retype": ("「{old}」から「{new}」へはフィールドの種類を変更できません。",
                             "A field cannot change from {old} to {new}."),
    "deploy.cannot_move": ("フィールドをテーブルの内外に移動することはできません。", "A field cannot move into or out of a table."),
})


def _validate(definition: dict) -> dict:
    from kumiki.access import validate_permissions
    from kumiki.definitions.validate import validate_definition
    normalised = validate_definition(definition)
    errors = validate_permissions(normalised) + _formula_errors(normalised)
    if errors:
        raise ValidationError(errors)
    return normalised


def _formula_errors(definition: dict) -> list[Detail]:
    """CALC formulas must parse, name real fields and not depend on each other in a cycle."""
    from kumiki.formula import dependency_order

    fields = {f["code"]: f for f in definition.get("fields", []) if isinstance(f, dict) and "code" in f}
    formulas, paths = {}, {}
    for i, fdef in enumerate(definition.get("fields", [])):
        if fdef.get("type") == "CALC" and (fdef.get("formula") or "").strip():
            formulas[fdef["code"]] = fdef["formula"]
            paths[fdef["code"]] = f"fields[{i}]"
    if not formulas:
        return []
    try:
        dependency_order(formulas, fields, paths)
    except ValidationError as exc:
        return exc.details
    return []


def create_app(session: Session, definition: dict, user: User | None) -> App:
    definition = _validate(definition)
    code = definition.get("code") or None
    if code and session.scalar(select(App.id).where(App.code == code)) is not None:
        raise ValidationError([Detail("code", "app.code_taken", {"code": code})])
    app = App(code=code, name=definition["name"], description=definition.get("description", ""),
              draft=definition, draft_revision=1, deployed_version=0,
              created_by=user.id if user else None)
    session.add(app)
    session.flush()
    return app


def get_app(session: Session, app_id: int, *, for_update: bool = False) -> App:
    stmt = select(App).where(App.id == app_id)
    if for_update:
        stmt = stmt.with_for_update()
    app = session.scalar(stmt)
    if app is None:
        raise NotFound("app.not_found", app_id=app_id)
    return app


def save_draft(session: Session, app: App, definition: dict, expected_revision: int | None = None) -> App:
    if expected_revision is not None and expected_revision != app.draft_revision:
        raise Conflict("app.stale_draft")
    definition = _validate(definition)
    code = definition.get("code") or None
    if code and code != app.code and session.scalar(select(App.id).where(App.code == code, App.id != app.id)):
        raise ValidationError([Detail("code", "app.code_taken", {"code": code})])
    app.draft = definition
    app.draft_revision += 1
    return app


def deploy(session: Session, app: App, user: User | None, *, timezone: str = "Asia/Tokyo") -> AppVersion:
    """Deploy the draft: assign field ids, change the tables, store version N+1 with a report."""
    definition = _validate(copy.deepcopy(app.draft))
    conn = session.connection()
    registry = {r.field_id: r for r in session.scalars(select(AppField).where(AppField.app_id == app.id))}
    by_code = {(r.code, r.parent_field_id): r for r in registry.values() if r.status == "active"}
    report: dict = {"added": [], "renamed": [], "retired": [], "retyped": [], "unconverted": [],
                    "unique_added": [], "unique_removed": []}
    table = record_table_name(app.id)
    first_deploy = app.deployed_version == 0
    new_version = app.deployed_version + 1

    # 1. Assign stable ids: an explicit id of this app, else the active field with the same code.
    seen: set[int] = set()
    parent_ids: dict[str, int] = {}
    errors: list[Detail] = []
    for path, fdef, parent_code in _walk(definition):
        if fdef["type"] in SYSTEM_FIELDS:
            continue
        parent_id = parent_ids.get(parent_code) if parent_code else None
        reg = registry.get(fdef.get("id")) if isinstance(fdef.get("id"), int) else None
        if reg is None:
            reg = by_code.get((fdef["code"], parent_id))
        if reg is not None and reg.field_id in seen:
            reg = None
        if reg is not None and reg.parent_field_id != parent_id:
            errors.append(Detail(f"{path}.id", "deploy.cannot_move"))
            continue
        if reg is not None:
            fdef["id"] = reg.field_id
        else:
            fdef["id"] = app.next_field_id
            app.next_field_id += 1
        seen.add(fdef["id"])
        if fdef["type"] == "SUBTABLE":
            parent_ids[fdef["code"]] = fdef["id"]
    if errors:
        raise ValidationError(errors)

    # 2. Tables and columns.
    new_columns: dict[str, list] = {}      # table -> [(column, type)] for tables created now
    pending_unique: list[tuple[str, AppField, dict]] = []
    if first_deploy:
        new_columns[table] = []
    for path, fdef, parent_code in _walk(definition):
        ftype_name = fdef["type"]
        if ftype_name in SYSTEM_FIELDS:
            continue
        ftype = get_type(ftype_name)
        fid = fdef["id"]
        parent_id = parent_ids.get(parent_code) if parent_code else None
        ftable = subtable_table_name(app.id, parent_id) if parent_id else table
        reg = registry.get(fid)
        col_type = ftype.column_type(fdef)
        if reg is None:
            column = f"f_{fid}" if col_type is not None else None
            reg = AppField(app_id=app.id, field_id=fid, parent_field_id=parent_id, code=fdef["code"],
                           type=ftype_name, column_name=column, table_name=ftable, status="active",
                           backup_columns=[])
            session.add(reg)
            registry[fid] = reg
            report["added"].append(fdef["code"])
            if ftype_name == "SUBTABLE":
                new_columns[subtable_table_name(app.id, fid)] = []
            elif column:
                if ftable in new_columns:
                    new_columns[ftable].append((column, col_type))
                else:
                    ddl.add_column(conn, ftable, column, col_type)
        else:
            if reg.status != "active":
                reg.status = "active"
            if reg.code != fdef["code"]:
                report["renamed"].append({"from": reg.code, "to": fdef["code"]})
                reg.code = fdef["code"]
            if reg.type != ftype_name:
                _retype(conn, app.id, new_version, reg, fdef, path, report, timezone)
        if fdef.get("unique") and reg.column_name and not reg.unique_index:
            pending_unique.append((path, reg, fdef))
        elif not fdef.get("unique") and reg.unique_index:
            ddl.drop_index(conn, reg.table_name, reg.unique_index)
            reg.unique_index = None
            report["unique_removed"].append(fdef["code"])

    for fid, reg in registry.items():
        if fid not in seen and reg.status == "active":
            reg.status = "retired"
            report["retired"].append(reg.code)

    if first_deploy:
        ddl.create_record_table(conn, table, new_columns.pop(table))
    for tname, cols in new_columns.items():
        ddl.create_child_table(conn, tname, table, cols)

    for path, reg, fdef in pending_unique:
        dupes = ddl.duplicate_values(conn, reg.table_name, reg.column_name)
        if dupes:
            errors.append(Detail(f"{path}.unique", "deploy.unique_duplicates",
                                 {"values": "、".join(str(d) for d in dupes[:5])}))
            continue
        reg.unique_index = ddl.create_unique_index(conn, reg.table_name, reg.column_name)
        report["unique_added"].append(fdef["code"])
    if errors:
        raise ValidationError(errors)
    _sync_view_indexes(conn, definition, registry, report)

    version = AppVersion(app_id=app.id, version=new_version, definition=definition, report=report,
                         deployed_by=user.id if user else None, deployed_at=utcnow())
    session.add(version)
    app.deployed_version = new_version
    app.name = definition["name"]
    app.code = definition.get("code") or app.code
    app.description = definition.get("description", "")
    app.draft = copy.deepcopy(definition)   # the draft now carries the assigned ids
    app.draft_revision += 1
    session.flush()
    return version


def view_fields(definition: dict) -> set[str]:
    """Codes of the fields any view filters or sorts on."""
    from kumiki.query import parse_query, referenced_fields

    codes: set[str] = set()
    for view in definition.get("views", []):
        for text in (view.get("filterCond"), ("order by " + view["sort"]) if view.get("sort") else None):
            if text:
                codes |= referenced_fields(parse_query(text))
        if view.get("type") == "CALENDAR" and view.get("date"):
            codes.add(view["date"])
    return codes


def _sync_view_indexes(conn, definition: dict, registry: dict, report: dict) -> None:
    """Index exactly the columns that views filter or sort on (unique ones have their own index).

    Every index costs each insert a B-tree update: on a million records, indexing every column
    halved the bulk insert rate, while a query on a column no view uses is rare and still correct.
    """
    wanted = view_fields(definition)
    report.setdefault("indexed", [])
    report.setdefault("unindexed", [])
    for reg in registry.values():
        ftype = get_type(reg.type)
        want = (reg.status == "active" and reg.code in wanted and reg.column_name is not None
                and ftype.indexed and not ftype.stores_list and not reg.unique_index)
        if want and not reg.index_name:
            reg.index_name = ddl.create_index(conn, reg.table_name, reg.column_name)
            report["indexed"].append(reg.code)
        elif not want and reg.index_name:
            ddl.drop_index(conn, reg.table_name, reg.index_name)
            reg.index_name = None
            report["unindexed"].append(reg.code)


def _walk(definition: dict):
    for i, fdef in enumerate(definition.get("fields", [])):
        yield f"fields[{i}]", fdef, None
        if fdef.get("type") == "SUBTABLE":
            for j, inner in enumerate(fdef.get("fields", [])):
                yield f"fields[{i}].fields[{j}]", inner, fdef["code"]


def _retype(conn, app_id: int, version: int, reg: AppField, fdef: dict, path: str, report: dict,
            timezone: str) -> None:
    """Convert a field to a new type in a new column; the old column stays as a backup."""
    old_type, new_type = get_type(reg.type), get_type(fdef["type"])
    new_col_type = new_type.column_type(fdef)
    if reg.column_name is None or new_col_type is None:
        raise ValidationError([Detail(f"{path}.type", "deploy.cannot_retype",
                                      {"old": reg.type, "new": fdef["type"]})])
    new_column = f"f_{reg.field_id}_v{version}"
    ddl.add_column(conn, reg.table_name, new_column, new_col_type)
    if reg.index_name:
        ddl.drop_index(conn, reg.table_name, reg.index_name)  # the sync re-creates it on the new column
        reg.index_name = None
    md = MetaData()
    old_fdef = {"code": reg.code, "type": reg.type}
    t = Table(reg.table_name, md,
              *_columns(("id", None), (reg.column_name, old_type.column_type(old_fdef)), (new_column, new_col_type)))
    ctx = Context(now=utcnow(), timezone=timezone, is_create=False)
    rows = conn.execute(select(t.c.id, t.c[reg.column_name]).where(t.c[reg.column_name].is_not(None))).all()
    converted = 0
    for rid, raw in rows:
        try:
            value = new_type.convert_from(fdef, old_type, old_type.from_db(old_fdef, raw, ctx), ctx)
        except FieldValueError:
            report["unconverted"].append({"field": fdef["code"], "id": rid, "value": _jsonable(raw)})
            continue
        conn.execute(update(t).where(t.c.id == rid).values({new_column: new_type.to_db(fdef, value)}))
        converted += 1
    report["retyped"].append({"field": fdef["code"], "from": reg.type, "to": fdef["type"],
                              "converted": converted, "backup_column": reg.column_name})
    reg.backup_columns = [*(reg.backup_columns or []), {"column": reg.column_name, "type": reg.type}]
    reg.column_name = new_column
    reg.type = fdef["type"]
    if reg.unique_index:
        ddl.drop_index(conn, reg.table_name, reg.unique_index)
        reg.unique_index = None


def _columns(*specs):
    from sqlalchemy import Column, Integer
    return [Column(n, t if t is not None else Integer(), primary_key=(n == "id")) for n, t in specs]


def _jsonable(v):
    return v if isinstance(v, (str, int, float, bool, type(None), list, dict)) else str(v)
