"""The audit log: append-only, hash-chained, queryable, exportable.

Every entry carries ``hash = sha256(canonical(id, at, user_id, user_code, action, app_id,
record_id, detail, ip, user_agent, prev_hash))`` where ``prev_hash`` is the previous entry's hash
(64 zeros for the first). Editing, deleting or reordering any entry breaks the chain, and
:func:`verify` names the first broken entry.

How appends are serialised: the one-row ``audit_head`` holds the last id and hash. An append
locks it (``SELECT … FOR UPDATE`` on PostgreSQL; on SQLite the transaction is already the single
writer: ``record()`` runs in the caller's write transaction, ``log()`` opens one with
``write_intent``), takes ``last_id + 1`` as the new id, hashes, inserts the row and moves the head.
Taking the id from the head (rather than autoincrement + insert-then-update) means an audit row is
written exactly once and never updated, so the database triggers can refuse every UPDATE and
DELETE on ``audit_log`` without exception; and the head lets :func:`verify` detect deletion of
the newest entries, which a chain alone cannot.

What the chain cannot detect: someone with write access to the database who rewrites the chain
from some entry onwards *and* the head. ``kumiki audit verify`` prints the newest hash; keeping
that figure elsewhere (a paper log, another system) anchors everything before it.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Iterator, Mapping
from zoneinfo import ZoneInfo

from sqlalchemy import func, insert, select, update

from kumiki import i18n
from kumiki.db import write_intent
from kumiki.errors import Detail, FieldValueError, KumikiError, ValidationError
from kumiki.model._common import utcnow
from kumiki.model.audit import GENESIS_HASH, AuditHead, AuditLog

LOG = AuditLog.__table__
HEAD = AuditHead.__table__
HEAD_ID = 1
USER_AGENT_MAX = 256
FORMATS = ("csv", "jsonl")
ENCODINGS = {"utf-8": "utf-8", "utf8": "utf-8", "utf-8-sig": "utf-8", "cp932": "cp932",
             "shift_jis": "cp932", "sjis": "cp932", "windows-31j": "cp932", "ms932": "cp932"}
EXPORT_COLUMNS = ("id", "at", "user_id", "user_code", "action", "app_id", "record_id", "detail",
                  "ip", "user_agent", "prev_hash", "hash")
_REORDER_WINDOW = 10_000   # how far from its position verify looks for a moved entry's true id

i18n.register({
    "audit.ok": ("OK: 監査ログ {count} 件の連鎖は正常です（最新ハッシュ {hash}）。",
                 "OK, {count} entries; the chain is intact (newest hash {hash})."),
    "audit.broken": ("監査ログの改ざんを検出しました（正常に確認できたのは {count} 件）。",
                     "The audit log has been tampered with ({count} entries verified before the break)."),
    "audit.edited": ("ID {id} のエントリが書き換えられています（内容がハッシュと一致しません）。",
                     "Entry {id} has been edited (its content does not match its hash)."),
    "audit.rehashed": ("ID {id} のエントリが書き換えられています（ハッシュが再計算され、次の ID {next} からの連鎖と一致しません）。",
                       "Entry {id} has been edited and re-hashed (entry {next} no longer links to it)."),
    "audit.head_mismatch": ("最新の ID {id} のエントリが書き換えられています（ハッシュが管理情報 audit_head と一致しません）。",
                            "The newest entry {id} has been edited (its hash differs from audit_head)."),
    "audit.deleted": ("ID {ids} のエントリが削除されています。", "Entry {ids} has been deleted."),
    "audit.deleted_tail": ("末尾の ID {ids} のエントリが削除されています（最終 ID は {last} のはずです）。",
                           "The newest entries {ids} have been deleted (the last id should be {last})."),
    "audit.reordered": ("ID {id} のエントリは並べ替えられています（本来は ID {orig}）。",
                        "Entry {id} has been moved (it was entry {orig})."),
    "audit.unchained": ("ID {id} のエントリは kumiki を経由せずに追加されています。",
                        "Entry {id} was added outside kumiki."),
    "audit.head_missing": ("監査ログの管理情報（audit_head）が削除されています。",
                           "The audit log's head row (audit_head) has been deleted."),
    "audit.unavailable": ("監査ログに記録できません（管理情報 audit_head がありません）。",
                          "Cannot write to the audit log (its head row audit_head is missing)."),
    "audit.bad_period": ("日付または日時（例: 2025-04-01、2025-04-01T09:00、令和7年4月1日）で指定してください。",
                         "Use a date or a date and time (e.g. 2025-04-01, 2025-04-01T09:00)."),
    "audit.bad_format": ("形式は csv か jsonl を指定してください。", "The format must be csv or jsonl."),
    "audit.bad_encoding": ("文字コードは utf-8 か cp932 を指定してください。", "The encoding must be utf-8 or cp932."),
})


class AuditUnavailable(KumikiError):
    status = 500
    code = "AUDIT_UNAVAILABLE"


# --------------------------------------------------------------------------------------------
# Canonical form and hashing
# --------------------------------------------------------------------------------------------

def _text(value: Any, limit: int) -> str | None:
    """A string both databases store unchanged: no NUL (PostgreSQL refuses it), valid UTF-8."""
    if value is None:
        return None
    s = str(value).replace("\x00", "\ufffd")[:limit]
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:   # lone surrogates
        s = s.encode("utf-8", "replace").decode("utf-8")
    return s


def _json_safe(value: Any) -> Any:
    """Detail as it will read back from JSON (SQLite) and JSONB (PostgreSQL), so hashes match:
    string keys, no NaN, floats that are whole numbers as ints (JSONB prints 1e20 as an int)."""
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return int(value) if value.is_integer() else value
    if isinstance(value, str):
        return _text(value, len(value))
    if isinstance(value, Mapping):
        return {_text(k, len(str(k))): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_json_safe(v) for v in value]
    return _text(value, 10_000)    # dates, Decimals…: their text


def _canonical_tail(e: Mapping) -> str:
    """The canonical JSON of everything after the id ("[id," + tail is the whole payload)."""
    at = e["at"].isoformat(timespec="microseconds")
    body = [at, e["user_id"], e["user_code"], e["action"], e["app_id"], e["record_id"], e["detail"],
            e["ip"], e["user_agent"], e["prev_hash"]]
    return json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))[1:]


def _hash(entry_id: int, tail: str) -> str:
    return hashlib.sha256(f"[{entry_id},{tail}".encode("utf-8")).hexdigest()


def entry_hash(e: Mapping) -> str:
    """The hash an entry (a row mapping or dict) must carry."""
    return _hash(e["id"], _canonical_tail(e))


# --------------------------------------------------------------------------------------------
# Appending
# --------------------------------------------------------------------------------------------

def _entry(action: str, *, user=None, app_id=None, record_id=None, detail: dict | None = None,
           ip=None, user_agent=None) -> dict:
    if user is None:
        user_id, user_code = None, None
    elif isinstance(user, str):          # e.g. the login name of a failed login
        user_id, user_code = None, user
    else:                                # a User, or anything with .id and .code
        user_id, user_code = user.id, user.code
    return {
        "user_id": int(user_id) if user_id is not None else None,
        "user_code": _text(user_code, 128),
        "action": _text(action, 64),
        "app_id": int(app_id) if app_id is not None else None,
        "record_id": int(record_id) if record_id is not None else None,
        "detail": _json_safe(detail) if detail is not None else None,
        "ip": _text(ip, 64),
        "user_agent": _text(user_agent, USER_AGENT_MAX),
    }


def _append(conn, entries: list[dict]) -> None:
    """Chain and insert entries; ``conn`` is a Session or Connection in a write transaction."""
    head = conn.execute(select(HEAD.c.last_id, HEAD.c.last_hash)
                        .where(HEAD.c.id == HEAD_ID).with_for_update()).one_or_none()
    if head is None:
        head = _create_head(conn)
    last_id, prev = head
    at = utcnow()   # taken under the lock: ids and times rise together
    for e in entries:
        last_id += 1
        e.update(id=last_id, at=at, prev_hash=prev)
        e["hash"] = prev = entry_hash(e)
    conn.execute(insert(LOG), entries)
    conn.execute(update(HEAD).where(HEAD.c.id == HEAD_ID).values(last_id=last_id, last_hash=prev))


def _create_head(conn):
    # The migration creates the head; only an empty log may (re)start without one.
    if conn.execute(select(func.count()).select_from(LOG)).scalar():
        raise AuditUnavailable("audit.unavailable")
    conn.execute(insert(HEAD).values(id=HEAD_ID, last_id=0, last_hash=GENESIS_HASH))
    return 0, GENESIS_HASH


def record(session, action: str, *, user=None, app_id=None, record_id=None, detail: dict | None = None,
           ip=None, user_agent=None) -> None:
    """Append an entry inside the caller's (write) transaction: it commits or rolls back with it.

    On PostgreSQL the head row stays locked until that commit, so call this as the last step
    before committing. ``user`` is a User, a login name (str) or None.
    """
    _append(session, [_entry(action, user=user, app_id=app_id, record_id=record_id, detail=detail,
                             ip=ip, user_agent=user_agent)])


def record_many(session, action: str, *, record_ids, user=None, app_id=None, detail: dict | None = None,
                ip=None, user_agent=None) -> None:
    """One entry per record id (bulk writes), under one lock and one INSERT."""
    entries = [_entry(action, user=user, app_id=app_id, record_id=r, detail=detail, ip=ip,
                      user_agent=user_agent) for r in record_ids]
    if entries:
        _append(session, entries)


def log(engine, action: str, **kwargs) -> None:
    """Append an entry in its own short transaction on its own connection (reads, logins).

    Never call it while this thread holds a write transaction on the same database (SQLite's
    write lock, or the audit head after ``record()``): it would wait for itself.
    """
    entry = _entry(action, **kwargs)
    with write_intent(), engine.begin() as conn:
        if conn.dialect.name == "postgresql":   # fail like SQLite's busy timeout, never hang
            conn.exec_driver_sql("SET LOCAL lock_timeout = '30s'")
        _append(conn, [entry])


# --------------------------------------------------------------------------------------------
# Verifying
# --------------------------------------------------------------------------------------------

@dataclass
class VerifyResult:
    ok: bool
    count: int                      # entries verified (all of them when ok)
    first_bad_id: int | None = None
    key: str | None = None          # message key of the reason
    params: dict = field(default_factory=dict)
    last_hash: str = GENESIS_HASH

    def message(self, locale: str = i18n.DEFAULT_LOCALE) -> str:
        if self.ok:
            return i18n.translate("audit.ok", locale, count=self.count, hash=self.last_hash)
        return i18n.translate(self.key, locale, **self.params)

    @property
    def reason(self) -> str | None:
        return None if self.ok else self.message()


def _ids(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}〜{last}"


def _original_id(row: Mapping) -> int | None:
    """The id under which this intact entry was written, if it was moved to another one."""
    tail = _canonical_tail(row)
    for cand in range(max(1, row["id"] - _REORDER_WINDOW), row["id"] + _REORDER_WINDOW + 1):
        if cand != row["id"] and _hash(cand, tail) == row["hash"]:
            return cand
    return None


def verify(session, *, batch: int = 1000) -> VerifyResult:
    """Walk the chain from the first entry to the head; report the first break."""
    def bad(count, bad_id, key, **params):
        return VerifyResult(False, count, bad_id, key, params)

    head = session.execute(select(HEAD.c.last_id, HEAD.c.last_hash).where(HEAD.c.id == HEAD_ID)).one_or_none()
    if head is None:
        first = session.scalar(select(func.min(LOG.c.id)))
        return VerifyResult(True, 0) if first is None else bad(0, first, "audit.head_missing")
    last_id, last_hash = head
    expected, prev, count = 1, GENESIS_HASH, 0
    after = None
    while True:
        # Only up to the head read above: later appends are not part of this check.
        stmt = select(LOG).where(LOG.c.id <= last_id).order_by(LOG.c.id).limit(batch)
        if after is not None:
            stmt = stmt.where(LOG.c.id > after)
        rows = session.execute(stmt).mappings().all()
        if not rows:
            break
        for row in rows:
            rid = row["id"]
            if rid < expected:
                return bad(count, rid, "audit.unchained", id=rid)
            if rid > expected:
                return bad(count, expected, "audit.deleted", ids=_ids(expected, rid - 1))
            if entry_hash(row) != row["hash"]:
                orig = _original_id(row)
                if orig is not None:
                    return bad(count, rid, "audit.reordered", id=rid, orig=orig)
                return bad(count, rid, "audit.edited", id=rid)
            if row["prev_hash"] != prev:   # intact itself, but its predecessor changed (re-hashed)
                bad_id = rid - 1 if rid > 1 else rid
                return bad(count - 1 if rid > 1 else count, bad_id, "audit.rehashed", id=bad_id, next=rid)
            prev, expected, count = row["hash"], expected + 1, count + 1
        after = rows[-1]["id"]
    if expected - 1 < last_id:
        return bad(count, expected, "audit.deleted_tail", ids=_ids(expected, last_id), last=last_id)
    if prev != last_hash:
        return bad(count - 1, last_id, "audit.head_mismatch", id=last_id)
    # Rows beyond the head that no append accounts for (an append commits row and head together,
    # so a row seen here whose id the head, read afterwards, does not cover was forged).
    extra = session.scalar(select(func.min(LOG.c.id)).where(LOG.c.id > last_id))
    if extra is not None:
        now_last = session.scalar(select(HEAD.c.last_id).where(HEAD.c.id == HEAD_ID))
        if now_last is None or extra > now_last:
            return bad(count, extra, "audit.unchained", id=extra)
    return VerifyResult(True, count, last_hash=prev)


# --------------------------------------------------------------------------------------------
# Querying and exporting
# --------------------------------------------------------------------------------------------

def period_bound(value, tz: str, *, path: str = "since", end: bool = False) -> datetime:
    """A period bound as naive UTC. Dates (ISO, 2025/4/1, 令和7年4月1日) are whole days in ``tz``:
    ``since`` from the day's start, ``until`` up to the next day's start. Naive datetimes are in
    ``tz``. Returns an exclusive upper bound when ``end``."""
    zone = ZoneInfo(tz)
    if isinstance(value, str):
        value = _parse_period(value.strip(), path)
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=zone)
        if end:
            moment += timedelta(microseconds=1)
    elif isinstance(value, date):
        day = value + timedelta(days=1) if end else value
        moment = datetime.combine(day, time(0), tzinfo=zone)
    else:
        raise ValidationError([Detail(path, "audit.bad_period")])
    return moment.astimezone(timezone.utc).replace(tzinfo=None)


def _parse_period(text: str, path: str) -> date | datetime:
    from kumiki.fields._era import parse_date
    try:
        d = parse_date(text)
    except FieldValueError:
        d = None
    if d is not None:
        return d
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError([Detail(path, "audit.bad_period")]) from None


def _where(*, user=None, app_id=None, record_id=None, action=None, since=None, until=None,
           tz: str = "Asia/Tokyo") -> list:
    where = []
    if user is not None and user != "":
        if isinstance(user, int):
            where.append(LOG.c.user_id == user)
        elif isinstance(user, str):
            where.append(LOG.c.user_code == user)
        else:
            where.append(LOG.c.user_id == user.id)
    if app_id is not None:
        where.append(LOG.c.app_id == app_id)
    if record_id is not None:
        where.append(LOG.c.record_id == record_id)
    if action:
        if action.endswith("*"):       # "record.*": every record action
            prefix = action[:-1].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            where.append(LOG.c.action.like(prefix + "%", escape="\\"))
        else:
            where.append(LOG.c.action == action)
    if since is not None and since != "":
        where.append(LOG.c.at >= period_bound(since, tz, path="since"))
    if until is not None and until != "":
        where.append(LOG.c.at < period_bound(until, tz, path="until", end=True))
    return where


def query(session, *, user=None, app_id=None, record_id=None, action=None, since=None, until=None,
          limit: int = 100, offset: int = 0, tz: str = "Asia/Tokyo") -> tuple[list[AuditLog], int]:
    """Entries matching every given filter, newest first, and how many match in all.

    ``user`` is a login name (str), a user id (int) or a User; ``action`` ending in ``*`` is a
    prefix; ``since``/``until`` are dates or datetimes (see :func:`period_bound`), both inclusive.
    """
    where = _where(user=user, app_id=app_id, record_id=record_id, action=action, since=since,
                   until=until, tz=tz)
    total = session.scalar(select(func.count()).select_from(LOG).where(*where))
    entries = session.scalars(select(AuditLog).where(*where).order_by(AuditLog.id.desc())
                              .limit(limit).offset(offset)).all()
    return list(entries), total


def entry_dict(e, tz: str = "Asia/Tokyo") -> dict:
    """An entry (model or row) for output: ``at`` as ISO 8601 with the offset of ``tz``."""
    at = e.at.replace(tzinfo=timezone.utc).astimezone(ZoneInfo(tz))
    return {"id": e.id, "at": at.isoformat(), "user_id": e.user_id, "user_code": e.user_code,
            "action": e.action, "app_id": e.app_id, "record_id": e.record_id, "detail": e.detail,
            "ip": e.ip, "user_agent": e.user_agent, "prev_hash": e.prev_hash, "hash": e.hash}


def check_export_options(fmt: str, encoding: str) -> tuple[str, str]:
    """Normalised (format, encoding) or a ValidationError."""
    fmt = (fmt or "csv").lower()
    if fmt not in FORMATS:
        raise ValidationError([Detail("format", "audit.bad_format")])
    enc = ENCODINGS.get((encoding or "utf-8").lower())
    if enc is None:
        raise ValidationError([Detail("encoding", "audit.bad_encoding")])
    return fmt, enc


def _csv_cell(value) -> Any:
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value          # a spreadsheet must not run it as a formula
    return value


def export(session, fmt: str = "csv", *, encoding: str = "utf-8", tz: str = "Asia/Tokyo",
           batch: int = 1000, **filters) -> Iterator[bytes]:
    """The matching entries, oldest first, as CSV (UTF-8 with BOM, or CP932 with characters it
    lacks replaced by '?') or JSON Lines (UTF-8). Options are checked before the first chunk;
    entries appended after the call are not included. CSV cells that a spreadsheet would take
    for a formula get a leading apostrophe; JSON Lines is the faithful copy."""
    fmt, enc = check_export_options(fmt, encoding)
    where = _where(tz=tz, **filters)
    upto = session.scalar(select(func.max(LOG.c.id)))

    def chunks() -> Iterator[bytes]:
        if fmt == "csv":
            yield ("\ufeff" if enc == "utf-8" else "").encode(enc) + _csv_rows([EXPORT_COLUMNS], enc)
        after = None
        while upto is not None:
            stmt = select(LOG).where(*where, LOG.c.id <= upto).order_by(LOG.c.id).limit(batch)
            if after is not None:
                stmt = stmt.where(LOG.c.id > after)
            entries = session.execute(stmt).all()   # plain rows: nothing piles up in the session
            if not entries:
                break
            after = entries[-1].id
            dicts = [entry_dict(e, tz) for e in entries]
            if fmt == "csv":
                yield _csv_rows([[_csv_cell(d[c]) for c in EXPORT_COLUMNS] for d in dicts], enc)
            else:
                yield "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in dicts).encode("utf-8")

    return chunks()


def _csv_rows(rows, enc: str) -> bytes:
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    return buf.getvalue().encode(enc, errors="replace")
