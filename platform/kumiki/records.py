"""RecordService: THE ONE DOOR for every read and write of records.

REST, the kintone API, CSV import, OCR drafts, plugins and the UI all come through here. A write is
validated completely (every error of every record is collected) before anything is written; then
the rows, subtable rows and history rows are written in one transaction; then plugins hear of it.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

from sqlalchemy import and_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kumiki import i18n
from kumiki.db import write_intent
from kumiki.errors import Conflict, Detail, FieldValueError, NotFound, ValidationError
from kumiki.fields.base import Context
from kumiki.model import StoredFile, User
from kumiki.model._common import utcnow
from kumiki.plugins import RecordEvent
from kumiki import access as access_rules
from kumiki.query import compile_query
from kumiki.storage import records as store
from kumiki.storage import stats
from kumiki.storage.registry import load_schema
from kumiki.storage.schema import AppSchema, FieldDef

if TYPE_CHECKING:
    from kumiki.directory import Principal

DEFAULT_LIMIT = 100
MAX_LIMIT = 500
MAX_CURSOR_SIZE = 500

i18n.register({
    "record.not_found": ("レコード（ID: {record_id}）が見つかりません。", "Record {record_id} was not found."),
    "record.stale_revision": (
        "ほかのユーザーが先にこのレコードを更新しました（現在の版: {current}、送信された版: {sent}）。"
        "最新の内容を読み込んでからやり直してください。",
        "Someone else updated this record first (current revision {current}, sent {sent}). Reload and retry."),
    "record.bulk_too_many": ("一度に処理できるレコードは{max}件までです。", "At most {max} records per request."),
    "record.bulk_empty": ("レコードが指定されていません。", "No records were given."),
    "record.not_an_object": ("レコードはオブジェクト（{{…}}）で指定してください。", "A record must be an object."),
    "record.update_key_not_unique": ("「{code}」は重複禁止のフィールドではないため、キーに使えません。",
                                    "\"{code}\" is not a unique field and cannot be used as a key."),
    "record.update_key_missing": ("更新するレコードのIDまたはキー（updateKey）を指定してください。",
                                 "Give the record id or an updateKey."),
    "record.key_not_found": ("「{code}」が「{value}」のレコードが見つかりません。",
                             "No record has \"{code}\" = \"{value}\"."),
    "record.bad_limit": ("limit には1〜{max}の整数を指定してください。", "limit must be an integer from 1 to {max}."),
    "record.bad_offset": ("offset には0以上の整数を指定してください。", "offset must be a non-negative integer."),
    "record.subtable_row": ("テーブルの行の形式が正しくありません。", "A table row is malformed."),
    "record.subtable_row_unknown": ("テーブルの行（ID: {row_id}）はこのレコードにありません。",
                                    "Table row {row_id} does not belong to this record."),
    "record.unique_race": ("重複禁止のフィールドに同じ値が同時に登録されました。やり直してください。",
                           "A unique value was written concurrently; please retry."),
    "record.revision_not_found": ("版 {revision} は見つかりません。", "Revision {revision} was not found."),
    "record.not_in_trash": ("レコード（ID: {record_id}）はごみ箱にありません。", "Record {record_id} is not in the trash."),
    "cursor.invalid": ("カーソルが無効か、期限が切れています。", "The cursor is invalid or has expired."),
    "cursor.no_limit": ("カーソルのクエリには order by / limit / offset を指定できません（レコード番号の順に読みます）。",
                        "A cursor query cannot have order by / limit / offset (it reads in record-number order)."),
    "file.unknown": ("添付ファイル（{key}）が見つかりません。先にアップロードしてください。",
                     "File {key} was not found; upload it first."),
})


def _writes(method):
    """Start the write's transaction as a writer (see kumiki.db.write_intent)."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with write_intent():
            return method(self, *args, **kwargs)
    return wrapper


@dataclass
class _Prepared:
    """A validated record ready for storage."""
    columns: dict                # record-table column -> db value
    values: dict                 # code -> canonical value (the fields this write sets)
    subtables: dict              # subtable code -> list of (row_id | None, {column: db value}, canonical row)
    formula_errors: dict | None = None   # CALC code -> why its formula failed (the write still happens)


class RecordService:
    def __init__(self, session: Session, user: User | None, *, timezone: str = "Asia/Tokyo",
                 locale: str = "ja", schema_cache: dict | None = None,
                 on_change: Callable[[RecordEvent], None] | None = None, secret_key: str = "",
                 bulk_limit: int = 1000, principal: "Principal | None" = None, actor_code: str | None = None,
                 app_token=None, audit_meta: dict | None = None):
        """``user`` None with no ``principal`` is the system itself (jobs, migrations): unrestricted.
        An app token passes its own restricted ``principal`` and an ``actor_code`` for 作成者/更新者."""
        self.session = session
        self.user = user
        self._principal = principal
        self._actor_code = actor_code
        self.app_token = app_token   # an AppToken: rights = its scopes, on its own app only
        self.audit_meta = audit_meta or {}   # ip, user_agent and how the request authenticated
        if app_token is not None:
            from kumiki.access import tokens
            from kumiki.directory import ANONYMOUS
            self._principal = ANONYMOUS
            self._actor_code = tokens.actor_code(app_token)
        self._access_cache: dict[int, access_rules.Access] = {}
        self.timezone = timezone
        self.locale = locale
        self.schema_cache = schema_cache if schema_cache is not None else {}
        self.on_change = on_change
        self.secret_key = secret_key
        self.bulk_limit = bulk_limit
        self._user_names: dict[str, str | None] = {}
        self._directory_cache: dict[tuple[str, str], bool] = {}

    # ------------------------------------------------------------------ context
    @property
    def user_code(self) -> str | None:
        if self._actor_code is not None:
            return self._actor_code
        return self.user.code if self.user is not None else None

    @property
    def principal(self) -> "Principal":
        if self._principal is None:
            from kumiki.directory import Principal, principal_of
            if self.user is None:  # the system itself
                self._principal = Principal(None, None, True, frozenset(), frozenset(), None, frozenset())
            else:
                self._principal = principal_of(self.session, self.user)
        return self._principal

    def access(self, app_id: int) -> access_rules.Access:
        """What the acting user may do in the app (403 if they may not even see it)."""
        if app_id not in self._access_cache:
            override = None
            if self.app_token is not None:
                from kumiki.access import tokens
                override = tokens.rights(self.app_token) if self.app_token.app_id == app_id else access_rules.AppRights()
            self._access_cache[app_id] = access_rules.access_for(self.schema(app_id), self.principal, override)
        return self._access_cache[app_id]

    def _require(self, app_id: int, right: str) -> access_rules.Access:
        acc = self.access(app_id)
        access_rules.check(acc, right)
        return acc

    def _record_filter(self, schema: AppSchema, right: str):
        return access_rules.record_filter(schema, self.access(schema.app_id), right,
                                          self._context(is_create=False), self._conn.dialect.name)

    def _visible_query(self, schema: AppSchema, query: str | None):
        """Compile a user's query, refusing hidden fields (a filter on them would leak their values)."""
        acc = self.access(schema.app_id)
        cq = compile_query(query, schema, self._context(is_create=False), self._conn.dialect.name)
        if not acc.unrestricted and cq.query is not None:
            from kumiki.query import referenced_fields
            hidden = sorted(c for c in referenced_fields(cq.query) if not acc.visible(c))
            if hidden:
                raise ValidationError([Detail("query", "access.field_hidden", {"code": c}) for c in hidden])
        return cq

    # ------------------------------------------------------------------ audit
    def _audited(self) -> bool:
        return self.user is not None or self.app_token is not None   # the system itself is not a person

    def _audit_kwargs(self, app_id: int, record_id: int | None, detail: dict | None) -> dict:
        via = self.audit_meta.get("via")
        detail = {**(detail or {}), **({"via": via} if via else {})}
        return {"user": self.user if self.user is not None else self.user_code, "app_id": app_id,
                "record_id": record_id, "detail": detail or None,
                "ip": self.audit_meta.get("ip"), "user_agent": self.audit_meta.get("user_agent")}

    def _audit_write(self, action: str, app_id: int, ids: list[int], detail: dict | None = None) -> None:
        """In the write's own transaction: the write and its audit entry commit together or not at all."""
        if not self._audited() or not ids:
            return
        from kumiki import audit
        kwargs = self._audit_kwargs(app_id, None, detail)
        kwargs.pop("record_id")
        audit.record_many(self.session, action, record_ids=ids, **kwargs)

    def _audit_read(self, action: str, app_id: int, record_id: int | None = None, detail: dict | None = None) -> None:
        """Before data leaves: a read that cannot be audited fails. A read inside a write transaction
        (e.g. POST …/cursors) is audited in it; otherwise in a short transaction of its own, so a
        GET's read transaction never has to become a write (see kumiki.db.write_intent)."""
        if not self._audited():
            return
        from kumiki import audit
        from kumiki.db import _WRITE_INTENT
        kwargs = self._audit_kwargs(app_id, record_id, detail)
        if _WRITE_INTENT.get():
            audit.record(self.session, action, **kwargs)
        else:
            audit.log(self.session.get_bind(), action, **kwargs)

    def _audit_hidden(self, schema: AppSchema, record_id: int) -> None:
        """A record that exists but is hidden answers 404 like a missing one; the attempt is audited."""
        t = schema.table
        if self.session.execute(select(t.c.id).where(t.c.id == record_id)).first() is not None:
            self._audit_read("access.denied", schema.app_id, record_id, {"reason": "record.hidden"})

    @staticmethod
    def _and(*conds):
        conds = [c for c in conds if c is not None]
        if not conds:
            return None
        return conds[0] if len(conds) == 1 else and_(*conds)

    def schema(self, app_id: int) -> AppSchema:
        return load_schema(self.session, app_id, self.schema_cache)

    def _context(self, *, is_create: bool, now: datetime | None = None) -> Context:
        return Context(user_code=self.user_code, now=now or utcnow(), timezone=self.timezone,
                       is_create=is_create, locale=self.locale, user_name=self._user_name,
                       user_exists=lambda code: self._user_name(code) is not None,
                       org_exists=lambda code: self._directory_has("org", code),
                       group_exists=lambda code: self._directory_has("group", code),
                       file_info=self._file_info,
                       extra={"primary_organization": self._primary_organization()})

    USER_VALUED = ("USER_SELECT", "CREATOR", "MODIFIER", "STATUS_ASSIGNEE")

    def _prefetch_user_names(self, fields: list[FieldDef], rows, children: dict) -> None:
        """Load the names of every user on a page in one query (not one per user)."""
        codes: set[str] = set()

        def collect(raw):
            if isinstance(raw, str):
                codes.add(raw)
            elif isinstance(raw, list):
                codes.update(c for c in raw if isinstance(c, str))

        for f in fields:
            if f.type in self.USER_VALUED and f.column:
                for row in rows:
                    collect(row[f.column])
            elif f.type == "SUBTABLE":
                has_users = [i for i in f.props.get("fields", []) if i.get("type") == "USER_SELECT"]
                if has_users:
                    for crows in children[f.code].values():
                        for crow in crows:
                            for key, value in crow.items():
                                if key.startswith("f_") and isinstance(value, list):
                                    collect(value)
        self._load_user_names(codes)

    def _primary_organization(self) -> str | None:
        """For PRIMARY_ORGANIZATION() in queries and record rules (no lookup for the system itself)."""
        if self.user is None and self._principal is None:
            return None
        return self.principal.primary_organization

    def _directory_has(self, kind: str, code: str) -> bool:
        key = (kind, code)
        if key not in self._directory_cache:
            from kumiki import directory
            lookup = directory.org_exists if kind == "org" else directory.group_exists
            self._directory_cache[key] = lookup(self.session, code)
        return self._directory_cache[key]

    def _prefetch_input_users(self, schema: AppSchema, records: Sequence) -> None:
        """Check every user a bulk write names with one query (not one query per user)."""
        user_fields = [f for f in schema.fields.values() if f.type == "USER_SELECT"]
        if not user_fields:
            return
        codes: set[str] = set()

        def collect(value):
            value = _unwrap(value)
            if isinstance(value, list):
                for v in value:
                    v = v.get("code") if isinstance(v, dict) else v
                    if isinstance(v, str):
                        codes.add(v)

        for values in records:
            if not isinstance(values, dict):
                continue
            for f in user_fields:
                if f.parent_code is None:
                    collect(values.get(f.code))
                else:
                    rows = _unwrap(values.get(f.parent_code))
                    for row in rows if isinstance(rows, list) else []:
                        if isinstance(row, dict) and isinstance(row.get("value"), dict):
                            collect(row["value"].get(f.code))
        self._load_user_names(codes)

    def _load_user_names(self, codes: Iterable[str]) -> None:
        missing = [c for c in codes if c not in self._user_names]
        for start in range(0, len(missing), 500):
            chunk = missing[start:start + 500]
            found = dict(self.session.execute(select(User.code, User.name).where(User.code.in_(chunk))).all())
            for code in chunk:
                self._user_names[code] = found.get(code)

    def _user_name(self, code: str) -> str | None:
        if code not in self._user_names:
            self._user_names[code] = self.session.scalar(select(User.name).where(User.code == code))
        return self._user_names[code]

    def _file_info(self, key: str) -> dict | None:
        f = self.session.scalar(select(StoredFile).where(StoredFile.key == str(key)))
        if f is None:
            return None
        if f.app_id is None and f.uploaded_by != (self.user.id if self.user else None):
            return None  # someone else's unattached upload
        return {"fileKey": f.key, "name": f.name, "contentType": f.content_type, "size": str(f.size)}

    @property
    def _conn(self):
        return self.session.connection()

    # ------------------------------------------------------------------ reads
    def get(self, app_id: int, record_id: int) -> dict:
        schema = self.schema(app_id)
        self._require(app_id, "view")
        where = self._and(schema.table.c.id == record_id, self._record_filter(schema, "view"))
        rows = store.select_rows(self._conn, schema, self._columns(schema, None), where, [], 1, None)
        if not rows:
            self._audit_hidden(schema, record_id)
            raise NotFound("record.not_found", record_id=record_id)
        out = self._to_records(schema, rows, None)[0]
        self._audit_read("record.view", app_id, record_id)
        return out

    def list(self, app_id: int, query: str | None = None, fields: Sequence[str] | None = None,
             total_count: bool = False) -> dict:
        schema = self.schema(app_id)
        self._require(app_id, "view")
        cq = self._visible_query(schema, query)
        where = self._and(cq.where, self._record_filter(schema, "view"))
        limit = DEFAULT_LIMIT if cq.limit is None else cq.limit
        if not (1 <= limit <= MAX_LIMIT):
            raise ValidationError([Detail("query", "record.bad_limit", {"max": MAX_LIMIT})])
        selected = self._check_field_list(schema, fields)
        rows = store.select_rows(self._conn, schema, self._columns(schema, selected), where,
                                 cq.order_by, limit, cq.offset)
        out: dict[str, Any] = {"records": self._to_records(schema, rows, selected)}
        out["totalCount"] = store.count_rows(self._conn, schema, where) if total_count else None
        self._audit_read("record.list", app_id, detail={"query": query or "", "returned": len(out["records"])})
        return out

    def count(self, app_id: int, query: str | None = None) -> int:
        schema = self.schema(app_id)
        self._require(app_id, "view")
        cq = self._visible_query(schema, query)
        return store.count_rows(self._conn, schema, self._and(cq.where, self._record_filter(schema, "view")))

    # Keyset cursor: a signed, stateless token (works across any number of web workers).
    def cursor_open(self, app_id: int, query: str | None = None, fields: Sequence[str] | None = None,
                    size: int = MAX_CURSOR_SIZE) -> dict:
        schema = self.schema(app_id)
        self._require(app_id, "view")
        cq = self._visible_query(schema, query)
        if cq.limit is not None or cq.offset is not None or cq.query.order_by:
            raise ValidationError([Detail("query", "cursor.no_limit")])
        if not (1 <= int(size) <= MAX_CURSOR_SIZE):
            raise ValidationError([Detail("size", "record.bad_limit", {"max": MAX_CURSOR_SIZE})])
        selected = self._check_field_list(schema, fields)
        total = store.count_rows(self._conn, schema, self._and(cq.where, self._record_filter(schema, "view")))
        state = {"a": app_id, "q": query or "", "f": selected, "s": int(size), "l": 0,
                 "u": self.user_code, "e": (utcnow() + timedelta(minutes=30)).isoformat()}
        self._audit_read("record.cursor", app_id, detail={"query": query or "", "total": total})
        return {"id": self._sign(state), "totalCount": total}

    def cursor_next(self, cursor_id: str, app_id: int | None = None) -> dict:
        state = self._unsign(cursor_id)
        if app_id is not None and state["a"] != app_id:
            raise ValidationError([Detail("cursor", "cursor.invalid")])
        app_id = state["a"]
        schema = self.schema(app_id)
        self._require(app_id, "view")
        cq = self._visible_query(schema, state["q"] or None)
        where = self._and(schema.table.c.id > state["l"], cq.where, self._record_filter(schema, "view"))
        rows = store.select_rows(self._conn, schema, self._columns(schema, state["f"]), where,
                                 [schema.table.c.id.asc()], state["s"] + 1, None)
        more = len(rows) > state["s"]
        rows = rows[: state["s"]]
        records = self._to_records(schema, rows, state["f"])
        nxt = None
        if more:
            state["l"] = rows[-1]["id"]
            state["e"] = (utcnow() + timedelta(minutes=30)).isoformat()
            nxt = self._sign(state)
        return {"records": records, "next": more, "cursor": nxt}

    def _sign(self, state: dict) -> str:
        payload = base64.urlsafe_b64encode(json.dumps(state, ensure_ascii=False).encode()).decode()
        mac = hmac.new(self.secret_key.encode(), payload.encode(), hashlib.sha256).hexdigest()[:32]
        return f"{payload}.{mac}"

    def _unsign(self, token: str) -> dict:
        try:
            payload, mac = token.rsplit(".", 1)
            good = hmac.new(self.secret_key.encode(), payload.encode(), hashlib.sha256).hexdigest()[:32]
            if not hmac.compare_digest(mac, good):
                raise ValueError
            state = json.loads(base64.urlsafe_b64decode(payload.encode()))
            if state.get("u") != self.user_code or datetime.fromisoformat(state["e"]) < utcnow():
                raise ValueError
            return state
        except (ValueError, KeyError, TypeError):
            raise ValidationError([Detail("cursor", "cursor.invalid")]) from None

    def _check_field_list(self, schema: AppSchema, fields: Sequence[str] | None) -> list[str] | None:
        if not fields:
            return None
        acc = self.access(schema.app_id)
        errors = [Detail(f"fields[{i}]", "field.unknown", {"code": c}) for i, c in enumerate(fields)
                  if (c not in schema.fields or not acc.visible(c)) and c not in ("$id", "$revision")]
        if errors:
            raise ValidationError(errors)
        return [c for c in fields if c in schema.fields]

    def _columns(self, schema: AppSchema, selected: list[str] | None, masked: bool = True) -> list[str]:
        cols = ["id", "revision"]
        for f in self._output_fields(schema, selected, masked):
            if f.column and f.column not in cols:
                cols.append(f.column)
        return cols

    def _output_fields(self, schema: AppSchema, selected: list[str] | None, masked: bool = True) -> list[FieldDef]:
        """The fields a read returns; ``masked`` drops those the user may not see (internal reads
        for history snapshots and merges are unmasked and never leave RecordService)."""
        acc = self.access(schema.app_id)
        fields = schema.top_level_fields()
        if masked and not acc.unrestricted:
            fields = [f for f in fields if acc.visible(f.code)]
        if selected is not None:
            wanted = set(selected)
            fields = [f for f in fields if f.code in wanted]
        return fields

    def _to_records(self, schema: AppSchema, rows, selected: list[str] | None, masked: bool = True) -> list[dict]:
        ctx = self._context(is_create=False)
        fields = self._output_fields(schema, selected, masked)
        ids = [r["id"] for r in rows]
        children: dict[str, dict[int, list]] = {}
        for f in fields:
            if f.type == "SUBTABLE":
                by_record: dict[int, list] = {}
                for crow in store.select_child_rows(self._conn, schema, f.code, ids):
                    by_record.setdefault(crow["record_id"], []).append(crow)
                children[f.code] = by_record
        self._prefetch_user_names(fields, rows, children)
        out = []
        for row in rows:
            rec: dict[str, Any] = {"$id": row["id"], "$revision": row["revision"]}
            for f in fields:
                if f.type == "SUBTABLE":
                    rec[f.code] = [self._child_to_api(schema, f.code, c, ctx, masked)
                                   for c in children[f.code].get(row["id"], [])]
                elif f.column:
                    rec[f.code] = f.ftype.from_db(f.props, row[f.column], ctx)
            out.append(rec)
        return out

    def _child_to_api(self, schema: AppSchema, code: str, crow, ctx: Context, masked: bool = True) -> dict:
        acc = self.access(schema.app_id)
        return {"id": crow["id"], "value": {inner.code: inner.ftype.from_db(inner.props, crow[inner.column], ctx)
                                            for inner in schema.subtable_fields(code)
                                            if inner.column and (not masked or acc.visible(inner.code))}}

    # ------------------------------------------------------------------ writes
    def create(self, app_id: int, values: dict) -> dict:
        return self.create_many(app_id, [values], path_prefix="record")[0]

    @_writes
    def create_many(self, app_id: int, records: Sequence[dict], *, path_prefix: str = "records",
                    enforce_limit: bool = True) -> list[dict]:
        """Create records atomically: one bad record and nothing is written."""
        schema = self.schema(app_id)
        self._require(app_id, "add")
        self._check_bulk(records, enforce_limit)
        now = utcnow()
        ctx = self._context(is_create=True, now=now)
        self._prefetch_input_users(schema, records)
        prepared, errors = [], []
        for i, values in enumerate(records):
            prefix = path_prefix if path_prefix == "record" else f"{path_prefix}[{i}]"
            try:
                p = self._prepare(schema, values, ctx, prefix, existing=None)
                self._calculate(schema, p, p.values, ctx)
                prepared.append(p)
            except ValidationError as exc:
                errors.extend(exc.details)
        if not errors:
            errors = self._check_unique(schema, prepared, [None] * len(prepared), path_prefix)
        if errors:
            raise ValidationError(errors)

        conn = self._conn
        system = {"revision": 1, "created_by": self.user_code, "created_at": now,
                  "updated_by": self.user_code, "updated_at": now, "status": None, "assignees": None}
        try:
            ids = store.insert_records(conn, schema, [{**system, **p.columns} for p in prepared])
            for code in schema.child_tables:
                rows = []
                for rid, p in zip(ids, prepared):
                    for pos, (_rowid, cols, _canon) in enumerate(p.subtables.get(code, [])):
                        rows.append({"record_id": rid, "position": pos, **cols})
                store.insert_child_rows(conn, schema, code, rows)
            self._attach_files(schema, ids, prepared)
            history = []
            for rid, p in zip(ids, prepared):
                snapshot = self._snapshot_from_values(schema, p)
                history.append(self._history_row(app_id, rid, 1, "create", snapshot, None, now))
            store.insert_history(conn, history)
            self._audit_write("record.create", app_id, ids)
            self.session.commit()
        except IntegrityError:
            self.session.rollback()
            raise ValidationError([Detail(path_prefix, "record.unique_race")]) from None
        self._grew(schema, len(ids))
        self._emit(RecordEvent(app_id, "create", ids, self.user_code, [1] * len(ids)))
        return [{"id": rid, "revision": 1, **({"formulaErrors": p.formula_errors} if p.formula_errors else {})}
                for rid, p in zip(ids, prepared)]

    def update(self, app_id: int, values: dict, *, record_id: int | None = None,
               update_key: dict | None = None, revision: int | None = None, upsert: bool = False) -> dict:
        return self.update_many(app_id, [{"id": record_id, "updateKey": update_key, "revision": revision,
                                          "record": values}], upsert=upsert, path_prefix="record")[0]

    @_writes
    def update_many(self, app_id: int, items: Sequence[dict], *, upsert: bool = False,
                    path_prefix: str = "records", enforce_limit: bool = True) -> list[dict]:
        """Update (or with ``upsert`` create) records atomically.

        Each item: {"id" | "updateKey": {"field", "value"}, "revision" (optional), "record": {...}}.
        """
        schema = self.schema(app_id)
        self._require(app_id, "edit")
        if upsert:
            self._require(app_id, "add")
        self._check_bulk(items, enforce_limit)
        now = utcnow()
        ctx_update = self._context(is_create=False, now=now)
        ctx_create = self._context(is_create=True, now=now)
        self._prefetch_input_users(schema, [i.get("record") for i in items if isinstance(i, dict)])
        errors: list[Detail] = []
        plans = []  # (kind, item index, record_id | None, expected revision, existing snapshot, prepared)
        conn = self._conn
        for i, item in enumerate(items):
            prefix = path_prefix if path_prefix == "record" else f"{path_prefix}[{i}]"
            if not isinstance(item, dict) or not isinstance(item.get("record", {}), dict):
                errors.append(Detail(prefix, "record.not_an_object"))
                continue
            values = item.get("record") or {}
            rpath = prefix if path_prefix == "record" else f"{prefix}.record"   # where the values' errors go
            try:
                record_id = self._resolve_id(schema, item, prefix, ctx_update)
            except ValidationError as exc:
                errors.extend(exc.details)
                continue
            except NotFound:
                if upsert and item.get("updateKey"):
                    key = item["updateKey"]
                    merged = {**values, key["field"]: key["value"]}
                    try:
                        created = self._prepare(schema, merged, ctx_create, rpath, existing=None)
                        self._calculate(schema, created, created.values, ctx_create)
                        plans.append(("create", i, None, None, None, created))
                    except ValidationError as exc:
                        errors.extend(exc.details)
                    continue
                raise
            existing = self._load_for_update(schema, record_id)
            sent = item.get("revision")
            if sent not in (None, -1, "-1", "") and int(sent) != existing["$revision"]:
                raise Conflict("record.stale_revision", current=existing["$revision"], sent=sent)
            try:
                p = self._prepare(schema, values, ctx_update, rpath, existing=existing)
                self._calculate(schema, p, {**existing, **p.values}, ctx_update)
            except ValidationError as exc:
                errors.extend(exc.details)
                continue
            plans.append(("update", i, record_id, existing["$revision"], existing, p))
        if not errors:
            errors = self._check_unique(schema, [p[5] for p in plans], [p[2] for p in plans], path_prefix)
        if errors:
            raise ValidationError(errors)

        results: list[dict | None] = [None] * len(items)
        created_ids, updated = [], []
        try:
            creates = [p for p in plans if p[0] == "create"]
            if creates:
                system = {"revision": 1, "created_by": self.user_code, "created_at": now,
                          "updated_by": self.user_code, "updated_at": now, "status": None, "assignees": None}
                ids = store.insert_records(conn, schema, [{**system, **p[5].columns} for p in creates])
                for code in schema.child_tables:
                    rows = [{"record_id": rid, "position": pos, **cols}
                            for rid, p in zip(ids, creates)
                            for pos, (_r, cols, _c) in enumerate(p[5].subtables.get(code, []))]
                    store.insert_child_rows(conn, schema, code, rows)
                self._attach_files(schema, ids, [p[5] for p in creates])
                hist = []
                for rid, p in zip(ids, creates):
                    snap = self._snapshot_from_values(schema, p[5])
                    hist.append(self._history_row(app_id, rid, 1, "create", snap, None, now))
                    results[p[1]] = {"id": rid, "revision": 1, "created": True}
                store.insert_history(conn, hist)
                created_ids = ids
            hist = []
            for _kind, idx, rid, rev, existing, p in (x for x in plans if x[0] == "update"):
                cols = {**p.columns, "updated_by": self.user_code, "updated_at": now}
                if not store.update_record(conn, schema, rid, cols, rev):
                    self.session.rollback()
                    current = self.get(app_id, rid)["$revision"]
                    raise Conflict("record.stale_revision", current=current, sent=rev)
                self._write_subtables(schema, rid, p)
                self._attach_files(schema, [rid], [p])
                after = self._merge_snapshot(schema, existing, p)
                diff = _diff(existing, after)
                hist.append(self._history_row(app_id, rid, rev + 1, "update", after, diff, now))
                results[idx] = {"id": rid, "revision": rev + 1,
                                **({"formulaErrors": p.formula_errors} if p.formula_errors else {})}
                updated.append((rid, rev + 1))
            store.insert_history(conn, hist)
            self._audit_write("record.create", app_id, created_ids)
            self._audit_write("record.update", app_id, [u[0] for u in updated],
                              {"fields": sorted({code for plan in plans if plan[0] == "update" for code in plan[5].values})})
            self.session.commit()
        except IntegrityError:
            self.session.rollback()
            raise ValidationError([Detail(path_prefix, "record.unique_race")]) from None
        if created_ids:
            self._grew(schema, len(created_ids))
            self._emit(RecordEvent(app_id, "create", created_ids, self.user_code, [1] * len(created_ids)))
        if updated:
            self._emit(RecordEvent(app_id, "update", [u[0] for u in updated], self.user_code, [u[1] for u in updated]))
        return results  # type: ignore[return-value]

    @_writes
    def delete_many(self, app_id: int, ids: Sequence[int], revisions: Sequence[int] | None = None,
                    *, enforce_limit: bool = True) -> int:
        schema = self.schema(app_id)
        self._require(app_id, "delete")
        self._check_bulk(ids, enforce_limit)
        if revisions is not None and len(revisions) != len(ids):
            raise ValidationError([Detail("revisions", "bad_request")])
        ids = [int(i) for i in ids]
        visible = self._and(schema.table.c.id.in_(ids), self._record_filter(schema, "view"))
        rows = {r["$id"]: r for r in self._to_records(
            schema, store.select_rows(self._conn, schema, self._columns(schema, None, masked=False),
                                      visible, [], None, None, for_update=True), None, masked=False)}
        for i, rid in enumerate(ids):
            if rid not in rows:
                raise NotFound("record.not_found", record_id=rid)
            if revisions is not None and revisions[i] not in (None, -1) and int(revisions[i]) != rows[rid]["$revision"]:
                raise Conflict("record.stale_revision", current=rows[rid]["$revision"], sent=revisions[i])
        self._check_record_right(schema, ids, "delete")
        now = utcnow()
        store.delete_records(self._conn, schema, ids)
        store.insert_history(self._conn, [
            self._history_row(app_id, rid, rows[rid]["$revision"] + 1, "delete",
                              self._merge_snapshot(schema, rows[rid], _Prepared({}, {}, {})), None, now)
            for rid in ids])
        self._audit_write("record.delete", app_id, ids)
        self.session.commit()
        self._grew(schema, len(ids))
        self._emit(RecordEvent(app_id, "delete", ids, self.user_code, [rows[r]["$revision"] + 1 for r in ids]))
        return len(ids)

    def history(self, app_id: int, record_id: int) -> list[dict]:
        """Every revision of a record the user may see now, without the fields hidden from them.

        A deleted record's history is for those who manage the app (its rules cannot be evaluated
        on a row that no longer exists)."""
        schema = self.schema(app_id)
        acc = self._require(app_id, "view")
        t = schema.table
        exists = self.session.execute(select(t.c.id).where(t.c.id == record_id)).first() is not None
        if exists:
            visible = self.session.execute(select(t.c.id).where(
                self._and(t.c.id == record_id, self._record_filter(schema, "view")))).first()
            if visible is None:
                self._audit_hidden(schema, record_id)
                raise NotFound("record.not_found", record_id=record_id)
        elif not acc.can("manage"):
            raise NotFound("record.not_found", record_id=record_id)
        rows = store.history_rows(self._conn, app_id, record_id)
        if not rows:
            raise NotFound("record.not_found", record_id=record_id)
        names: dict = {}
        self._audit_read("record.history", app_id, record_id)
        return [{"revision": r["revision"], "action": r["action"], "at": _iso(r["at"]),
                 "user": names.setdefault(r["user_id"], self._user_code_by_id(r["user_id"])),
                 "snapshot": self._mask(acc, r["snapshot"]), "diff": self._mask(acc, r["diff"])}
                for r in rows]

    def require_visible(self, app_id: int, record_id: int) -> None:
        """404 unless the user may see this record (what comments and other record-bound data need)."""
        schema = self.schema(app_id)
        self._require(app_id, "view")
        t = schema.table
        if self.session.execute(select(t.c.id).where(
                self._and(t.c.id == record_id, self._record_filter(schema, "view")))).first() is None:
            self._audit_hidden(schema, record_id)
            raise NotFound("record.not_found", record_id=record_id)

    def diff(self, app_id: int, record_id: int, rev_from: int, rev_to: int) -> dict:
        """What changed between two revisions of a record (fields hidden from the user left out)."""
        hist = {h["revision"]: h for h in self.history(app_id, record_id)}
        missing = [r for r in (rev_from, rev_to) if r not in hist]
        if missing:
            raise NotFound("record.revision_not_found", revision=missing[0])
        before, after = hist[rev_from]["snapshot"] or {}, hist[rev_to]["snapshot"] or {}
        return {"from": rev_from, "to": rev_to, "diff": _diff(before, after)}

    def restore(self, app_id: int, record_id: int, revision: int) -> dict:
        """Put an old revision back, as a new revision (この版に戻す). Only fields the user may edit
        are restored; the others keep their current values."""
        history = {h["revision"]: h for h in self.history(app_id, record_id)}
        old = history.get(revision)
        if old is None or old["action"] == "delete" or old["snapshot"] is None:
            raise NotFound("record.revision_not_found", revision=revision)
        schema = self.schema(app_id)
        acc = self.access(app_id)
        values = {}
        for code, value in old["snapshot"].items():
            f = schema.fields.get(code)
            if f is None or f.in_subtable or code not in schema.writable or not acc.editable(code):
                continue
            if f.type == "SUBTABLE":   # old rows come back as rows of today's table
                value = [{"value": {k: v for k, v in row.get("value", {}).items() if acc.editable(k)}}
                         for row in value or []]
            values[code] = value
        return self.update(app_id, values, record_id=record_id)

    def trash(self, app_id: int, limit: int = 100, offset: int = 0) -> dict:
        """Deleted records (ごみ箱), newest first: for those who manage the app."""
        schema = self.schema(app_id)
        self._require(app_id, "manage")
        rows = store.deleted_records(self._conn, schema, limit, offset)
        acc = self.access(app_id)
        return {"records": [{"$id": r["record_id"], "deletedAt": _iso(r["at"]),
                             "deletedBy": self._user_code_by_id(r["user_id"]),
                             "record": self._mask(acc, r["snapshot"])} for r in rows["rows"]],
                "totalCount": rows["total"]}

    @_writes
    def undelete(self, app_id: int, record_id: int) -> dict:
        """Bring a deleted record back under its own record number, as a new revision."""
        schema = self.schema(app_id)
        self._require(app_id, "manage")
        last = store.last_deletion(self._conn, schema, record_id)
        if last is None:
            raise NotFound("record.not_in_trash", record_id=record_id)
        now = utcnow()
        ctx = self._context(is_create=True, now=now)
        snapshot = {}
        for code, value in (last["snapshot"] or {}).items():
            if code in schema.writable:
                if schema.fields[code].type == "SUBTABLE":   # its rows were deleted with it: new rows
                    value = [{"value": row.get("value", {})} for row in value or []]
                snapshot[code] = value
        p = self._prepare(schema, snapshot, ctx, "record", existing=None)
        errors = self._check_unique(schema, [p], [record_id], "record")
        if errors:
            raise ValidationError(errors)
        revision = last["revision"] + 1
        first = store.first_history(self._conn, schema, record_id)
        system = {"id": record_id, "revision": revision, "created_by": first["user_code"] if first else self.user_code,
                  "created_at": first["at"] if first else now, "updated_by": self.user_code, "updated_at": now,
                  "status": None, "assignees": None}
        try:
            store.insert_record_with_id(self._conn, schema, {**system, **p.columns})
            self._write_subtables(schema, record_id, p)
            store.insert_history(self._conn, [self._history_row(
                app_id, record_id, revision, "restore", self._snapshot_from_values(schema, p), None, now)])
            self._audit_write("record.restore", app_id, [record_id])
            self.session.commit()
        except IntegrityError:
            self.session.rollback()
            raise ValidationError([Detail("record", "record.unique_race")]) from None
        self._emit(RecordEvent(app_id, "create", [record_id], self.user_code, [revision]))
        return {"id": record_id, "revision": revision}

    def can_read_file(self, stored_file) -> bool:
        """A file attached to a record is readable by whoever may see that record and field."""
        if stored_file.app_id is None or stored_file.record_id is None:
            return False
        schema = self.schema(stored_file.app_id)
        acc = self.access(schema.app_id)
        if not acc.can("view"):
            return False
        code = next((f.code for f in schema.fields.values() if f.id == stored_file.field_id), None)
        if code is None or not acc.visible(code):
            return False
        parent = schema.fields[code].parent_code
        if parent is not None and not acc.visible(parent):
            return False
        t = schema.table
        where = self._and(t.c.id == stored_file.record_id, self._record_filter(schema, "view"))
        return self.session.execute(select(t.c.id).where(where)).first() is not None

    @staticmethod
    def _mask(acc, values: dict | None) -> dict | None:
        if values is None or acc.unrestricted:
            return values
        out = {}
        for code, value in values.items():
            if not acc.visible(code):
                continue
            if isinstance(value, list) and value and isinstance(value[0], dict) and "value" in value[0]:
                value = [{**row, "value": {k: v for k, v in row["value"].items() if acc.visible(k)}} for row in value]
            elif isinstance(value, dict) and set(value) == {"old", "new"}:
                value = {k: RecordService._mask_rows(acc, v) for k, v in value.items()}
            out[code] = value
        return out

    @staticmethod
    def _mask_rows(acc, value):
        if isinstance(value, list) and value and isinstance(value[0], dict) and "value" in value[0]:
            return [{**row, "value": {k: v for k, v in row["value"].items() if acc.visible(k)}} for row in value]
        return value

    # ------------------------------------------------------------------ helpers
    def _user_code_by_id(self, user_id):
        if user_id is None:
            return None
        u = self.session.get(User, user_id)
        return {"code": u.code, "name": u.name} if u else None

    def _check_bulk(self, items: Sequence, enforce_limit: bool) -> None:
        if not items:
            raise ValidationError([Detail("records", "record.bulk_empty")])
        if enforce_limit and len(items) > self.bulk_limit:
            raise ValidationError([Detail("records", "record.bulk_too_many", {"max": self.bulk_limit})])

    def _resolve_id(self, schema: AppSchema, item: dict, prefix: str, ctx: Context) -> int:
        if item.get("id") not in (None, ""):
            try:
                return int(item["id"])
            except (TypeError, ValueError):
                raise ValidationError([Detail(f"{prefix}.id", "field.type_mismatch",
                                              {"expected": "整数", "expected_en": "an integer"})]) from None
        key = item.get("updateKey")
        if not isinstance(key, dict) or "field" not in key:
            raise ValidationError([Detail(prefix, "record.update_key_missing")])
        f = schema.fields.get(key["field"])
        if f is None:
            raise ValidationError([Detail(f"{prefix}.updateKey.field", "field.unknown", {"code": key["field"]})])
        if not f.props.get("unique") or f.in_subtable or not f.column:
            raise ValidationError([Detail(f"{prefix}.updateKey.field", "record.update_key_not_unique",
                                          {"code": f.code})])
        try:
            dbv = f.ftype.to_db(f.props, f.ftype.normalise(f.props, key.get("value"), ctx))
        except FieldValueError as exc:
            raise ValidationError([Detail(f"{prefix}.updateKey.value", exc.key, exc.params)]) from None
        if not self.access(schema.app_id).visible(f.code):
            raise ValidationError([Detail(f"{prefix}.updateKey.field", "access.field_hidden", {"code": f.code})])
        rid = self.session.execute(select(schema.table.c.id).where(schema.table.c[f.column] == dbv)).scalar()
        if rid is None or dbv is None:
            raise NotFound("record.key_not_found", code=f.code, value=key.get("value"))
        return rid

    def _load_for_update(self, schema: AppSchema, record_id: int, right: str = "edit") -> dict:
        """The whole record (unmasked, for history) if the user may see it and has ``right`` on it."""
        rows = store.select_rows(self._conn, schema, self._columns(schema, None, masked=False),
                                 self._and(schema.table.c.id == record_id, self._record_filter(schema, "view")),
                                 [], 1, None, for_update=True)
        if not rows:
            raise NotFound("record.not_found", record_id=record_id)
        self._check_record_right(schema, [record_id], right)
        return self._to_records(schema, rows, None, masked=False)[0]

    def _check_record_right(self, schema: AppSchema, ids: list[int], right: str) -> None:
        cond = self._record_filter(schema, right)
        if cond is None:
            return
        t = schema.table
        ok = set(self.session.execute(select(t.c.id).where(t.c.id.in_(ids), cond)).scalars())
        denied = [i for i in ids if i not in ok]
        if denied:
            from kumiki.errors import Forbidden
            ja, en = {"edit": ("編集", "edit"), "delete": ("削除", "delete")}[right]
            raise Forbidden("access.no_record_right", right=ja, right_en=en)

    def _prepare(self, schema: AppSchema, values: Any, ctx: Context, prefix: str,
                 existing: dict | None) -> _Prepared:
        if not isinstance(values, dict):
            raise ValidationError([Detail(prefix, "record.not_an_object")])
        errors: list[Detail] = []
        columns: dict = {}
        canon: dict = {}
        subtables: dict = {}
        writable = schema.writable
        acc = self.access(schema.app_id)
        for code, raw in values.items():
            f = writable.get(code)
            if f is None:
                other = schema.fields.get(code)
                if not code.startswith("$") and (other is None or other.in_subtable):
                    errors.append(Detail(f"{prefix}.{code}", "field.unknown", {"code": code}))
                # $id / $revision, system fields and calculated values are the server's to set
                continue
            if not acc.editable(code):
                errors.append(Detail(f"{prefix}.{code}", "access.field_read_only"))
                continue
            if type(raw) is dict:
                raw = _unwrap(raw)
            ftype = f.ftype
            try:
                if f.type == "SUBTABLE":
                    rows = ftype.normalise(f.props, raw, ctx)
                    subtables[code] = self._prepare_rows(schema, f, rows, ctx, f"{prefix}.{code}", existing, errors)
                    canon[code] = [r[2] for r in subtables[code]]
                else:
                    value = ftype.normalise(f.props, raw, ctx)
                    canon[code] = value
                    columns[f.column] = ftype.to_db(f.props, value)
            except FieldValueError as exc:
                errors.append(Detail(f"{prefix}.{code}", exc.key, exc.params))
        if existing is None and len(canon) < len(writable):
            for code, f in writable.items():
                if code in canon or code in values:
                    continue
                try:
                    if f.type == "SUBTABLE":
                        subtables[code], canon[code] = [], []
                        continue
                    value = f.ftype.default(f.props, ctx)
                    canon[code] = value
                    columns[f.column] = f.ftype.to_db(f.props, value)
                except FieldValueError as exc:
                    errors.append(Detail(f"{prefix}.{code}", exc.key, exc.params))
        for f in schema.required:
            if f.code in canon and f.ftype.is_empty(canon[f.code]):
                errors.append(Detail(f"{prefix}.{f.code}", "field.required"))
        if errors:
            raise ValidationError(errors)
        return _Prepared(columns=columns, values=canon, subtables=subtables)

    def _prepare_rows(self, schema: AppSchema, table_field: FieldDef, rows: list, ctx: Context, prefix: str,
                      existing: dict | None, errors: list[Detail]) -> list:
        inner = {f.code: f for f in schema.subtable_fields(table_field.code)}
        existing_rows = {r["id"]: r for r in (existing or {}).get(table_field.code, [])}
        out = []
        for j, row in enumerate(rows):
            rpath = f"{prefix}[{j}]"
            row_id = row.get("id")
            if row_id is not None and row_id not in existing_rows:
                errors.append(Detail(f"{rpath}.id", "record.subtable_row_unknown", {"row_id": row_id}))
                continue
            base = dict(existing_rows[row_id]["value"]) if row_id is not None else {}
            cols, canon = {}, {}
            given = row.get("value") or {}
            for code, raw in given.items():
                f = inner.get(code)
                if f is None:
                    errors.append(Detail(f"{rpath}.value.{code}", "field.unknown", {"code": code}))
                    continue
                if f.ftype.read_only:
                    continue
                if not self.access(schema.app_id).editable(code):
                    errors.append(Detail(f"{rpath}.value.{code}", "access.field_read_only"))
                    continue
                try:
                    canon[code] = f.ftype.normalise(f.props, _unwrap(raw), ctx)
                    cols[f.column] = f.ftype.to_db(f.props, canon[code])
                except FieldValueError as exc:
                    errors.append(Detail(f"{rpath}.value.{code}", exc.key, exc.params))
            for code, f in inner.items():
                if code in canon or f.ftype.read_only:
                    continue
                if row_id is not None:
                    canon[code] = base.get(code, f.ftype.empty_value())
                    continue
                try:
                    canon[code] = f.ftype.default(f.props, ctx)
                    cols[f.column] = f.ftype.to_db(f.props, canon[code])
                except FieldValueError as exc:
                    errors.append(Detail(f"{rpath}.value.{code}", exc.key, exc.params))
            for code, f in inner.items():
                if f.props.get("required") and f.ftype.is_empty(canon.get(code)):
                    errors.append(Detail(f"{rpath}.value.{code}", "field.required"))
            out.append((row_id, cols, {"id": row_id, "value": canon}))
        return out

    def _calculate(self, schema: AppSchema, p: _Prepared, record_values: dict, ctx: Context) -> None:
        """Evaluate the CALC fields of a record being written (formula order, see kumiki.formula).

        A formula that fails stores an empty value and never blocks the write or the other fields;
        the reason is kept in ``p.formula_errors`` for the response."""
        calc = schema.calc_fields
        if not calc:
            return
        from kumiki.formula import evaluate_all
        values, errors = evaluate_all(record_values, calc, schema.definition_fields, tz=self.timezone, now=ctx.now)
        for code in calc:
            f = schema.fields[code]
            try:
                canon = f.ftype.empty_value() if values.get(code) is None else f.ftype.normalise(f.props, values[code], ctx)
            except FieldValueError as exc:
                errors[code] = {"key": exc.key, "params": exc.params}
                canon = f.ftype.empty_value()
            p.values[code] = canon
            p.columns[f.column] = f.ftype.to_db(f.props, canon)
        if errors:
            p.formula_errors = {code: i18n.translate(e["key"], self.locale, **e.get("params", {}))
                                for code, e in errors.items()}

    def _check_unique(self, schema: AppSchema, prepared: list[_Prepared], ids: list[int | None],
                      path_prefix: str) -> list[Detail]:
        errors: list[Detail] = []
        for f in schema.data_fields():
            if not f.props.get("unique") or not f.column:
                continue
            seen: dict = {}
            for i, p in enumerate(prepared):
                v = p.columns.get(f.column)
                if v is None:
                    continue
                path = path_prefix if path_prefix == "record" else f"{path_prefix}[{i}]"
                if v in seen:
                    errors.append(Detail(f"{path}.{f.code}", "field.unique"))
                seen.setdefault(v, ids[i])
            if not seen:
                continue
            col = schema.table.c[f.column]
            hits = self.session.execute(select(schema.table.c.id, col).where(col.in_(list(seen)))).all()
            for rid, v in hits:
                for i, p in enumerate(prepared):
                    if p.columns.get(f.column) == v and ids[i] != rid:
                        path = path_prefix if path_prefix == "record" else f"{path_prefix}[{i}]"
                        errors.append(Detail(f"{path}.{f.code}", "field.unique"))
        return errors

    def _write_subtables(self, schema: AppSchema, record_id: int, p: _Prepared) -> None:
        conn = self._conn
        for code, rows in p.subtables.items():
            keep = [r[0] for r in rows if r[0] is not None]
            store.delete_child_rows(conn, schema, code, record_id, keep)
            updates = [{"id": rid, "position": pos, **cols} for pos, (rid, cols, _c) in enumerate(rows) if rid is not None]
            store.update_child_rows(conn, schema, code, updates)
            new_rows = [{"record_id": record_id, "position": pos, **cols}
                        for pos, (rid, cols, _c) in enumerate(rows) if rid is None]
            new_ids = store.insert_child_rows(conn, schema, code, new_rows)
            it = iter(new_ids)
            for rid, _cols, canon in rows:
                if rid is None:
                    canon["id"] = next(it)

    def _attach_files(self, schema: AppSchema, ids: list[int], prepared: list[_Prepared]) -> None:
        file_fields = [f for f in schema.fields.values() if f.type == "FILE"]
        if not file_fields:
            return
        for rid, p in zip(ids, prepared):
            keys: list[tuple[str, int]] = []
            for f in file_fields:
                if f.in_subtable:
                    for _r, _c, canon in p.subtables.get(f.parent_code, []):
                        keys += [(v["fileKey"], f.id) for v in canon["value"].get(f.code) or []]
                else:
                    keys += [(v["fileKey"], f.id) for v in p.values.get(f.code) or []]
            for key, fid in keys:
                sf = self.session.scalar(select(StoredFile).where(StoredFile.key == key))
                if sf is not None and sf.app_id is None:
                    sf.app_id, sf.record_id, sf.field_id = schema.app_id, rid, fid

    def _snapshot_from_values(self, schema: AppSchema, p: _Prepared) -> dict:
        return {f.code: p.values[f.code] for f in schema.top_level_fields() if f.code in p.values}

    def _merge_snapshot(self, schema: AppSchema, existing: dict, p: _Prepared) -> dict:
        """The record's data fields after the write (system values live on the history row)."""
        after = {f.code: existing.get(f.code) for f in schema.top_level_fields() if not f.is_system}
        after.update(p.values)
        return after

    def _history_row(self, app_id, record_id, revision, action, snapshot, diff, now) -> dict:
        return {"app_id": app_id, "record_id": record_id, "revision": revision, "action": action,
                "user_id": self.user.id if self.user else None, "at": now,
                "snapshot": snapshot, "diff": diff}

    def _grew(self, schema: AppSchema, count: int) -> None:
        stats.note_writes(self.session.get_bind(), [schema.table_name, *(t.name for t in schema.child_tables.values())],
                          count)

    def _emit(self, event: RecordEvent) -> None:
        if self.on_change is not None:
            self.on_change(event)


def _diff(before: dict, after: dict) -> dict:
    out = {}
    for code, new in after.items():
        if code.startswith("$"):
            continue
        old = before.get(code)
        if old != new:
            out[code] = {"old": old, "new": new}
    return out


def _unwrap(raw: Any) -> Any:
    """Accept kintone-style {"value": ...} (and {"type", "value"}) as well as plain values."""
    if isinstance(raw, dict) and "value" in raw and set(raw) <= {"value", "type"}:
        return raw["value"]
    return raw


def _iso(dt) -> str | None:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ") if dt else None
