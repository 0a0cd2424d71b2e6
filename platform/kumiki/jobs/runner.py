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
    (together with the ``done`` status) and rolls it back when the job raises. ``progress()``
    commits it too: a progress report is a checkpoint, so work done before it is kept even if the
    job fails later (this keeps SQLite, which allows one writer, from blocking on itself).
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
        row = self.session.get(Job, self.job_id)
        row.progress = min(1.0, max(0.0, fraction))
        row.message = str(message or "")
        self.session.commit()

    def plugin_settings(self, name: str) -> dict | None:
        """The plugin's settings for this job's app (None when not enabled)."""
        from kumiki.plugins import plugin_settings
        return plugin_settings(self.session, self.app_id, name) if self.app_id is not None else None


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
        fn = registry_for(flask_app).get(row.kind)
        try:
            if fn is None:
                raise UnknownJobKind(row.kind)
            result = _to_json(fn(ctx, **ctx.params))
            row = session.get(Job, job_id)
            row.status, row.result, row.progress = "done", result, 1.0
            row.finished_at = utcnow()
            session.commit()          # the job's own work and "done" together
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


def _save_failure(flask_app: Flask, job_id: int, error: str, *, only_running: bool = False) -> None:
    st = flask_app.extensions["kumiki"]
    with st.Session() as s:
        row = s.get(Job, job_id)
        if row is None or (only_running and row.status != "running"):
            return
        row.status, row.error, row.finished_at = "failed", error, utcnow()
        s.commit()


def mark_interrupted(job_id: int) -> None:
    """A worker stopped while the job ran (huey's SIGNAL_INTERRUPTED): don't leave it 'running'."""
    try:
        _save_failure(current_app._get_current_object(), job_id,
                      i18n.translate("jobs.interrupted", "ja"), only_running=True)
    except Exception:  # pragma: no cover - shutting down; nothing more to do
        log.exception("could not mark job %s as interrupted", job_id)
