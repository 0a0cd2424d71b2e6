"""Background jobs on huey: the job registry, the queue and ``enqueue``.

One generic huey task, ``run_job(job_id)``, runs every job; what a job *is* lives in the ``jobs``
table (:class:`kumiki.model.Job`: kind, params, status, progress, result, error), so the API can
show it live and nothing is lost when a job fails. Job kinds are registered by core modules with
``@job("kind")`` and by plugins through their ``register_jobs`` hook. A job is a callable
``fn(ctx, **params)`` receiving a :class:`JobContext`; it returns a JSON-able result.

Queue: ``SqliteHuey`` on ``config.jobs_db_path`` by default (no extra service), ``RedisHuey`` when
``config.redis_url`` (``KUMIKI_REDIS_URL``) is set, so workers on many machines share one queue.
Flask config keys: ``KUMIKI_JOBS_IMMEDIATE`` (run jobs inline at enqueue, for tests and
single-process demos) and ``KUMIKI_JOBS_NAME`` (the queue's name; also env ``KUMIKI_JOBS_NAME``;
default ``"kumiki"``).
"""
from __future__ import annotations

import importlib
import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Callable

from flask import Flask, current_app
from huey import RedisHuey, SqliteHuey
from huey.api import Huey
from huey.signals import SIGNAL_INTERRUPTED
from sqlalchemy.orm import Session

from kumiki import i18n
from kumiki.config import Config
from kumiki.errors import KumikiError
from kumiki.jobs.runner import JobContext, UnknownJobKind, mark_interrupted, run_job
from kumiki.model import Job

log = logging.getLogger(__name__)

__all__ = ["job", "enqueue", "init_app", "registry_for", "make_huey", "run_job", "run_worker",
           "worker_app", "JobContext", "JobRegistry", "UnknownJobKind", "QueueUnavailable",
           "CORE_JOB_MODULES"]

JobFn = Callable[..., Any]

# Modules that define core jobs with @job; imported by init_app so that the worker knows them.
CORE_JOB_MODULES: tuple[str, ...] = ()

_CORE_JOBS: dict[str, JobFn] = {}

i18n.register({
    "jobs.unknown_kind": ("登録されていないジョブの種類です: {kind}", "Unknown job kind: {kind}"),
    "jobs.params_not_json": ("ジョブのパラメーターをJSONに変換できません: {detail}",
                             "The job parameters are not JSON: {detail}"),
    "jobs.queue_unavailable": ("ジョブをキューに登録できませんでした: {detail}",
                               "The job could not be queued: {detail}"),
})


class QueueUnavailable(KumikiError):
    status = 503
    code = "SERVICE_UNAVAILABLE"


def job(kind: str) -> Callable[[JobFn], JobFn]:
    """Register a core job kind: ``@job("records.reindex") def reindex(ctx, app_id): ...``."""
    def decorator(fn: JobFn) -> JobFn:
        if _CORE_JOBS.get(kind, fn) is not fn:
            raise ValueError(f"job kind {kind!r} is already registered")
        _CORE_JOBS[kind] = fn
        return fn
    return decorator


class JobRegistry:
    """Job kinds known to one Flask app: the core ones plus its plugins' ones."""

    def __init__(self) -> None:
        self._plugin_jobs: dict[str, tuple[str | None, JobFn]] = {}

    def add(self, kind: str, fn: JobFn, *, plugin: str | None = None) -> None:
        if not callable(fn):
            raise ValueError(f"job {kind!r} of plugin {plugin!r} is not callable")
        if kind in _CORE_JOBS or kind in self._plugin_jobs:
            owner = self._plugin_jobs.get(kind, ("core", None))[0]
            raise ValueError(f"job kind {kind!r} of plugin {plugin!r} is already registered by {owner!r}")
        self._plugin_jobs[kind] = (plugin, fn)

    def get(self, kind: str) -> JobFn | None:
        if kind in _CORE_JOBS:
            return _CORE_JOBS[kind]
        entry = self._plugin_jobs.get(kind)
        return entry[1] if entry else None

    def __contains__(self, kind: str) -> bool:
        return self.get(kind) is not None

    def kinds(self) -> dict[str, str | None]:
        """``{kind: plugin name (None for core jobs)}``."""
        out: dict[str, str | None] = {k: None for k in _CORE_JOBS}
        out.update({k: plugin for k, (plugin, _fn) in self._plugin_jobs.items()})
        return out


@dataclass
class _JobsExtension:
    registry: JobRegistry = field(default_factory=JobRegistry)
    task: Any = None          # the huey TaskWrapper of run_job, bound to this app


def _ext(flask_app: Flask) -> _JobsExtension:
    ext = flask_app.extensions.get("kumiki_jobs")
    if ext is None:
        ext = flask_app.extensions["kumiki_jobs"] = _JobsExtension()
    return ext


def registry_for(flask_app: Flask | None = None) -> JobRegistry:
    return _ext(flask_app or current_app._get_current_object()).registry


def make_huey(config: Config, flask_config: dict | None = None) -> Huey:
    flask_config = flask_config or {}
    name = flask_config.get("KUMIKI_JOBS_NAME") or os.environ.get("KUMIKI_JOBS_NAME") or "kumiki"
    immediate = bool(flask_config.get("KUMIKI_JOBS_IMMEDIATE", False))
    # Results live in the jobs table, so huey keeps none.
    if config.redis_url:
        return RedisHuey(name, url=config.redis_url, results=False, immediate=immediate)
    config.jobs_db_path.parent.mkdir(parents=True, exist_ok=True)
    return SqliteHuey(name, filename=str(config.jobs_db_path), results=False, immediate=immediate)


def init_app(flask_app: Flask) -> Huey:
    """Create the app's huey and the generic ``run_job`` task bound to this app."""
    st = flask_app.extensions["kumiki"]
    for module in CORE_JOB_MODULES:
        importlib.import_module(module)
    huey = make_huey(st.config, flask_app.config)

    # The task runs in whichever process consumes the queue: a worker process builds its own
    # app (kumiki.jobs.worker.worker_app), whose init_app binds this task to that app.
    @huey.task(name="run_job")
    def run_job_task(job_id: int):
        with flask_app.app_context():
            run_job(job_id)

    @huey.signal(SIGNAL_INTERRUPTED)
    def _interrupted(signal, task, *args, **kwargs):
        if task.args:
            with flask_app.app_context():
                mark_interrupted(task.args[0])

    _ext(flask_app).task = run_job_task
    st.huey = huey
    return huey


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, ensure_ascii=False))


def enqueue(session: Session, kind: str, params: dict | None = None, *, user: Any,
            app_id: int | None = None) -> Job:
    """Insert a queued Job row, commit, and hand its id to the queue.

    ``user`` is a User, a user id, or None for system jobs. In immediate mode the job has run when
    this returns (the returned row is refreshed). Needs an app context.
    """
    flask_app = current_app._get_current_object()
    ext = _ext(flask_app)
    if kind not in ext.registry:
        raise UnknownJobKind(kind)
    try:
        params = _jsonable(dict(params or {}))
    except (TypeError, ValueError) as exc:
        raise KumikiError("jobs.params_not_json", detail=str(exc)) from None
    user_id = getattr(user, "id", user)
    job_row = Job(kind=kind, status="queued", progress=0.0, message="", params=params,
                  app_id=app_id, created_by=user_id)
    session.add(job_row)
    session.commit()
    huey = flask_app.extensions["kumiki"].huey
    try:
        ext.task(job_row.id)
    except Exception as exc:
        log.exception("could not queue job %s (%s)", job_row.id, kind)
        from kumiki.model._common import utcnow
        session.rollback()
        job_row.status, job_row.error, job_row.finished_at = "failed", f"queue: {exc}", utcnow()
        session.commit()
        raise QueueUnavailable("jobs.queue_unavailable", detail=str(exc)) from exc
    if huey.immediate:
        session.refresh(job_row)
    return job_row


def __getattr__(name: str):
    # run_worker / worker_app live in kumiki.jobs.worker (imported lazily: it imports kumiki.app).
    if name in ("run_worker", "worker_app"):
        from kumiki.jobs import worker
        return getattr(worker, name)
    raise AttributeError(name)
