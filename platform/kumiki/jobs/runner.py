"""Running one job: claim the row, call the job, record progress, result or error."""
from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app
from sqlalchemy import update
from sqlalchemy.orm import Session

from kumiki import i18n
from kumiki.errors import KumikiError
from kumiki.model import Job, User
from kumiki.model._common import utcnow

log = logging.getLogger("kumiki.jobs")

i18n.register({
    "jobs.interrupted": ("ワーカーの停止によりジョブが中断されました。",
                         "The job was interrupted because its worker stopped."),
    "jobs.result_not_json": ("ジョブの結果をJSONに変換できません: {detail}",
                             "The job's result is not JSON: {detail}"),
})


class UnknownJobKind(KumikiError):
    status = 400
    code = "UNKNOWN_JOB_KIND"

    def __init__(self, kind: str):
        super().__init__("jobs.unknown_kind", kind=kind)


@dataclass
class JobContext:
    """What a job callable gets as ``ctx``.

    ``session`` is the job's own database session. The runner commits it when the job returns
    (then records ``done``) and rolls it back when the job raises. ``progress()`` commits it too:
    a progress report is a checkpoint, so work done before it is kept even if the job fails later
    (a separate session for progress would make SQLite, which allows one writer, block on itself).
    """

    job_id: int
    kind: str
    session: Session
    app: Flask
    user_id: int | None
    app_id: int | None
    params: dict

    @property
    def user(self) -> User | None:
        return self.session.get(User, self.user_id) if self.user_id is not None else None

    def progress(self, fraction: float, message: str = "") -> None:
        """Persist progress (0..1) and a short message; visible at GET /api/v1/jobs/<id>."""
        try:
            fraction = float(fraction)
        except (TypeError, ValueError):
            fraction = 0.0
        if math.isnan(fraction):
            fraction = 0.0
        _write_job(self.session, self.job_id, progress=min(1.0, max(0.0, fraction)),
                   message=str(message or ""))

    def plugin_settings(self, name: str) -> dict | None:
        """The plugin's settings for this job's app (None when not enabled)."""
        from kumiki.plugins import plugin_settings
        return plugin_settings(self.session, self.app_id, name) if self.app_id is not None else None


def _write_job(session: Session, job_id: int, **values) -> None:
    """Commit what the session holds, then update the job row in a transaction of its own.

    On SQLite a transaction that has read and then writes fails at once ("database is locked",
    SQLITE_BUSY_SNAPSHOT) if another connection committed in between; a transaction whose first
    statement is the write waits for the lock instead. So the bookkeeping write comes first.
    """
    session.commit()
    session.execute(update(Job).where(Job.id == job_id).values(**values))
    session.commit()


def describe(exc: BaseException) -> str:
    """The error text saved on the job: translated for kumiki errors, ``Type: message`` otherwise."""
    if isinstance(exc, KumikiError):
        text = i18n.translate(exc.key, "ja", **exc.params)
        parts = [f"{d.path}: {i18n.translate(d.key, 'ja', **d.params)}" if d.path
                 else i18n.translate(d.key, "ja", **d.params) for d in exc.details]
        return "\n".join([text, *parts])
    if isinstance(exc, (KeyboardInterrupt, SystemExit)):
        return i18n.translate("jobs.interrupted", "ja")
    return f"{type(exc).__name__}: {exc}"


def _to_json(value: Any) -> Any:
    try:
        return json.loads(json.dumps(value, ensure_ascii=False))
    except (TypeError, ValueError) as exc:
        raise KumikiError("jobs.result_not_json", detail=str(exc)) from None


def run_job(job_id: int) -> str | None:
    """Run job ``job_id`` in the current app context; return its final status.

    Returns None when the row is missing or not queued (already taken by another worker).
    Never raises for a failing job; the failure is saved on the row.
    """
    from kumiki.jobs import registry_for

    flask_app = current_app._get_current_object()
    st = flask_app.extensions["kumiki"]
    session: Session = st.Session()
    try:
        claimed = session.execute(
            update(Job).where(Job.id == job_id, Job.status == "queued")
            .values(status="running", started_at=utcnow(), progress=0.0, message="")
        ).rowcount
        session.commit()
        if claimed != 1:
            log.warning("job %s is missing or not queued; skipped", job_id)
            return None
        row = session.get(Job, job_id)
        ctx = JobContext(job_id=job_id, kind=row.kind, session=session, app=flask_app,
                         user_id=row.created_by, app_id=row.app_id, params=dict(row.params or {}))
        session.commit()              # the job starts with no open read transaction
        fn = registry_for(flask_app).get(row.kind)
        try:
            if fn is None:
                raise UnknownJobKind(row.kind)
            result = _to_json(fn(ctx, **ctx.params))
            # commits the job's own work, then records "done"
            _write_job(session, job_id, status="done", result=result, progress=1.0,
                       finished_at=utcnow())
        except BaseException as exc:
            session.rollback()
            if isinstance(exc, Exception):
                log.exception("job %s (%s) failed", job_id, ctx.kind)
            _save_failure(flask_app, job_id, describe(exc))
            if not isinstance(exc, Exception):
                raise
            return "failed"
        log.info("job %s (%s) done", job_id, ctx.kind)
        return "done"
    finally:
        session.close()


def _save_failure(flask_app: Flask, job_id: int, error: str, *, only_running: bool = False,
                  attempts: int = 3) -> None:
    """Record a failure in a fresh session (the job's may be broken); retried so it is not lost."""
    st = flask_app.extensions["kumiki"]
    where = [Job.id == job_id] + ([Job.status == "running"] if only_running else [])
    for attempt in range(attempts):
        try:
            with st.Session() as s:
                s.execute(update(Job).where(*where)
                          .values(status="failed", error=error, finished_at=utcnow()))
                s.commit()
            return
        except Exception:
            if attempt == attempts - 1:
                raise
            log.warning("could not record the failure of job %s; retrying", job_id, exc_info=True)


def mark_interrupted(job_id: int) -> None:
    """A worker stopped while the job ran (huey's SIGNAL_INTERRUPTED): don't leave it 'running'."""
    try:
        _save_failure(current_app._get_current_object(), job_id,
                      i18n.translate("jobs.interrupted", "ja"), only_running=True)
    except Exception:  # pragma: no cover - shutting down; nothing more to do
        log.exception("could not mark job %s as interrupted", job_id)
