"""The audit log over HTTP (administrators only), and the helpers other endpoints audit with.

Helpers for endpoints (they fill in the acting user, IP address and user agent):

- :func:`record_in_request` — part of the request's own write transaction (record writes,
  definition and permission changes, successful logins): committed or rolled back with it.
- :func:`log_now` — committed at once on its own connection, whatever happens next: reads (record
  views, list queries, exports) and events on the way to an error response (failed logins).
- :func:`denied` — ``raise denied(Forbidden("forbidden"), app_id=…)``: audits ``access.denied``.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from flask import Response, g, request, stream_with_context
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from kumiki import audit
from kumiki.api.common import actor, db
from kumiki.errors import Forbidden, KumikiError
from kumiki.extensions import state

PREFIX = ""
blp = Blueprint("audit", __name__, description="監査ログ / audit log")


# --------------------------------------------------------------------------------------------
# Helpers for every endpoint
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Who:
    id: int
    code: str


def _meta() -> dict:
    return {"ip": request.remote_addr, "user_agent": request.user_agent.string or None}


def _who(user):
    # Copy id and code now: a rollback would expire the ORM object, and reloading it would
    # start a new transaction.
    return _Who(user.id, user.code) if user is not None and not isinstance(user, str) else user


def record_in_request(action: str, **kwargs) -> None:
    """Audit inside the request's transaction (``db()``); commit as usual afterwards."""
    kwargs.setdefault("user", g.get("actor"))
    audit.record(db(), action, **_meta(), **kwargs)
    g.audit_head_held = True    # on PostgreSQL until commit: log_now must roll back first


def log_now(action: str, **kwargs) -> None:
    """Audit in a transaction of its own, committed before this returns.

    In a write request (POST/PUT/DELETE) the request's session holds SQLite's write lock from its
    first statement (and, after :func:`record_in_request`, PostgreSQL's lock on the audit head),
    so it is rolled back first: only call this there on the way to an error.
    """
    kwargs["user"] = _who(kwargs.get("user", g.get("actor")))
    held = g.pop("audit_head_held", False)
    session = g.get("db")
    if session is not None and (held or request.method not in ("GET", "HEAD", "OPTIONS")):
        session.rollback()
    audit.log(state().engine, action, **_meta(), **kwargs)


def denied(exc: KumikiError, **kwargs) -> KumikiError:
    """Audit a refused request as ``access.denied`` and hand back the error to raise."""
    detail = {"method": request.method, "path": request.path, "status": exc.status,
              **(kwargs.pop("detail", None) or {})}
    log_now("access.denied", detail=detail, **kwargs)
    g.denial_audited = True
    return exc


# --------------------------------------------------------------------------------------------
# Endpoints
# --------------------------------------------------------------------------------------------

@blp.before_request
def _admins_only():
    # Before the arguments are parsed: a non-administrator gets 403 whatever they send.
    user = actor()
    if not user.is_admin:
        raise denied(Forbidden("forbidden"))


class AuditFilterArgs(Schema):
    user = fields.String(metadata={"description": "ログイン名 / user code"})
    app_id = fields.Integer()
    record_id = fields.Integer()
    action = fields.String(metadata={"description": "e.g. record.view; a trailing * matches a prefix (record.*)"})
    since = fields.String(metadata={"description": "日付か日時（タイムゾーンなしは Asia/Tokyo）/ date or datetime, inclusive"})
    until = fields.String(metadata={"description": "日付か日時（日付はその日の終わりまで）/ date or datetime, inclusive"})


class AuditListArgs(AuditFilterArgs):
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0))


class AuditExportArgs(AuditFilterArgs):
    format = fields.String(load_default="csv", metadata={"enum": list(audit.FORMATS)})
    encoding = fields.String(load_default="utf-8", metadata={"description": "csv only: utf-8 (with BOM) or cp932"})


class AuditEntryOut(Schema):
    id = fields.Integer(metadata={"description": "sequence number"})
    at = fields.String(metadata={"description": "ISO 8601 with offset (Asia/Tokyo)"})
    user_id = fields.Integer(allow_none=True)
    user_code = fields.String(allow_none=True)
    action = fields.String()
    app_id = fields.Integer(allow_none=True)
    record_id = fields.Integer(allow_none=True)
    detail = fields.Raw(allow_none=True)
    ip = fields.String(allow_none=True)
    user_agent = fields.String(allow_none=True)
    prev_hash = fields.String()
    hash = fields.String()


class AuditList(Schema):
    entries = fields.List(fields.Nested(AuditEntryOut))
    total = fields.Integer()


def _filters(args: dict) -> dict:
    return {k: args.get(k) for k in ("user", "app_id", "record_id", "action", "since", "until")}


@blp.route("/audit")
@blp.arguments(AuditListArgs, location="query")
@blp.response(200, AuditList)
def list_audit(args):
    """監査ログを新しい順に検索します（管理者のみ） / search the audit log, newest first (admins only)."""
    tz = state().config.timezone
    filters = _filters(args)
    entries, total = audit.query(db(), limit=args["limit"], offset=args["offset"], tz=tz, **filters)
    # Who looked at the log is logged too.
    log_now("audit.view", detail={"filters": {k: v for k, v in filters.items() if v is not None},
                                  "total": total})
    return {"entries": [audit.entry_dict(e, tz) for e in entries], "total": total}


@blp.route("/audit/export")
@blp.arguments(AuditExportArgs, location="query")
@blp.doc(responses={"200": {"description": "CSV (UTF-8 with BOM, or CP932) or JSON Lines, oldest first",
                            "content": {"text/csv": {"schema": {"type": "string"}},
                                        "application/x-ndjson": {"schema": {"type": "string"}}}}})
def export_audit(args):
    """監査ログを CSV / JSON Lines で書き出します（管理者のみ） / export the audit log (admins only)."""
    st = state()
    fmt, enc = audit.check_export_options(args["format"], args["encoding"])
    filters = _filters(args)
    session = st.Session()
    try:
        chunks = audit.export(session, fmt, encoding=enc, tz=st.config.timezone, **filters)
        _entries, total = audit.query(session, limit=1, tz=st.config.timezone, **filters)
    except BaseException:
        session.close()
        raise
    log_now("audit.export", detail={"format": fmt, "encoding": enc, "count": total,
                                    "filters": {k: v for k, v in filters.items() if v is not None}})

    def stream():
        try:
            yield from chunks
        finally:
            session.close()

    stamp = datetime.now(ZoneInfo(st.config.timezone)).strftime("%Y%m%d-%H%M%S")
    if fmt == "csv":
        mimetype = "text/csv; charset=" + ("utf-8" if enc == "utf-8" else "Shift_JIS")
    else:
        mimetype = "application/x-ndjson; charset=utf-8"
    return Response(stream_with_context(stream()), mimetype=mimetype,
                    headers={"Content-Disposition": f'attachment; filename="audit-{stamp}.{fmt}"'})
