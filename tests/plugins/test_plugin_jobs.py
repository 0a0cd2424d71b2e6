"""Background jobs: registry, enqueue, status API, and real huey consumers (SQLite, Redis)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from huey import RedisHuey, SqliteHuey

from kumiki import jobs
from kumiki.app import create_app
from kumiki.jobs import JobContext, UnknownJobKind, enqueue, job, run_job
from kumiki.model import Job
from tests.conftest import REDIS_URL, ApiClient, make_user
from tests.plugins import example_plugin

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = [("example", "tests.plugins.example_plugin")]


@job("tests.core_echo")
def core_echo(ctx: JobContext, text="", bad_result=False):
    if bad_result:
        return {"when": object()}
    return {"echo": text, "job_id": ctx.job_id, "kind": ctx.kind}


def _app(make_config, *, immediate=True, **kw):
    extra = {"KUMIKI_EXTRA_PLUGINS": EXAMPLE}
    if immediate:
        extra["KUMIKI_JOBS_IMMEDIATE"] = True
    extra.update(kw.pop("extra", {}))
    return create_app(make_config("sqlite", extra=extra, **kw))


@pytest.fixture
def japp(make_config):
    application = _app(make_config)
    yield application
    application.extensions["kumiki"].engine.dispose()


@pytest.fixture
def admin(japp):
    user, token = make_user(japp, "admin")
    return user, ApiClient(japp, token)


def _enqueue(flask_app, kind, params=None, *, user=None, app_id=None) -> int:
    with flask_app.app_context():
        st = flask_app.extensions["kumiki"]
        with st.Session() as s:
            return enqueue(s, kind, params, user=user, app_id=app_id).id


def _row(flask_app, job_id) -> Job:
    with flask_app.extensions["kumiki"].Session() as s:
        return s.get(Job, job_id)


# --- queue selection -------------------------------------------------------------------------

def test_sqlite_huey_by_default_and_redis_when_configured(make_config):
    cfg = make_config("sqlite")
    h = jobs.make_huey(cfg)
    assert isinstance(h, SqliteHuey) and not h.immediate
    assert h.storage.filename == str(cfg.jobs_db_path)
    cfg.redis_url = "redis://127.0.0.1:6379/15"
    h = jobs.make_huey(cfg, {"KUMIKI_JOBS_NAME": "q1"})
    assert isinstance(h, RedisHuey) and h.name == "q1"


def test_redis_url_comes_from_the_environment(make_config, monkeypatch):
    monkeypatch.setenv("KUMIKI_REDIS_URL", "redis://127.0.0.1:6379/15")
    papp = create_app(make_config("sqlite"))
    try:
        assert isinstance(papp.extensions["kumiki"].huey, RedisHuey)
    finally:
        papp.extensions["kumiki"].engine.dispose()


def test_immediate_mode(japp):
    assert japp.extensions["kumiki"].huey.immediate


# --- running jobs inline (immediate mode) ----------------------------------------------------

def test_core_job_runs_and_result_is_visible(japp, admin):
    user, api = admin
    job_id = _enqueue(japp, "tests.core_echo", {"text": "こんにちは"}, user=user)
    resp = api.get(f"/api/v1/jobs/{job_id}")
    assert resp.status_code == 200
    body = resp.json
    assert set(body) >= {"id", "kind", "status", "progress", "message", "result", "error",
                         "created_at", "started_at", "finished_at"}
    assert body["status"] == "done" and body["progress"] == 1.0
    assert body["result"] == {"echo": "こんにちは", "job_id": job_id, "kind": "tests.core_echo"}


def test_enqueue_returns_the_finished_row_in_immediate_mode(japp, admin):
    user, _api = admin
    with japp.app_context():
        with japp.extensions["kumiki"].Session() as s:
            row = enqueue(s, "example.count", {"n": 2}, user=user.id, app_id=None)
            assert row.status == "done" and row.result["counted"] == 2 and row.created_by == user.id


def test_failing_job_ends_failed_with_its_error(japp, admin):
    user, api = admin
    job_id = _enqueue(japp, "example.fail", {"message": "入力ファイルが壊れています"}, user=user)
    body = api.get(f"/api/v1/jobs/{job_id}").json
    assert body["status"] == "failed"
    assert body["error"] == "RuntimeError: 入力ファイルが壊れています"
    assert body["progress"] == 0.5 and body["message"] == "途中まで"   # the checkpoint is kept
    assert body["finished_at"] and body["result"] is None


def test_result_that_is_not_json_fails_the_job(japp, admin):
    user, api = admin
    job_id = _enqueue(japp, "tests.core_echo", {"bad_result": True}, user=user)
    body = api.get(f"/api/v1/jobs/{job_id}").json
    assert body["status"] == "failed" and "JSON" in body["error"]


def test_kumiki_errors_in_jobs_are_saved_in_japanese(japp, admin):
    from kumiki.errors import Detail, ValidationError

    @job("tests.validation_fails")
    def validation_fails(ctx):
        raise ValidationError([Detail("records[0].氏名", "validation_failed")])

    user, api = admin
    job_id = _enqueue(japp, "tests.validation_fails", user=user)
    body = api.get(f"/api/v1/jobs/{job_id}").json
    assert body["status"] == "failed"
    assert body["error"].startswith("入力内容に誤りがあります。") and "records[0].氏名" in body["error"]


def test_unknown_kind_and_bad_params_are_refused(japp, admin):
    user, _api = admin
    with japp.app_context():
        with japp.extensions["kumiki"].Session() as s:
            with pytest.raises(UnknownJobKind):
                enqueue(s, "no.such.kind", {}, user=user)
            with pytest.raises(jobs.KumikiError):
                enqueue(s, "tests.core_echo", {"text": object()}, user=user)
            assert s.query(Job).count() == 0


def test_core_job_kinds_cannot_be_registered_twice():
    with pytest.raises(ValueError):
        job("tests.core_echo")(lambda ctx: None)
    assert job("tests.core_echo")(core_echo) is core_echo    # re-decorating the same function is fine


def test_a_job_runs_once(japp, admin):
    user, _api = admin
    job_id = _enqueue(japp, "example.count", {"n": 1}, user=user)
    with japp.app_context():
        assert run_job(job_id) is None           # already done: not run again
        assert run_job(999999) is None           # missing row
    assert _row(japp, job_id).status == "done"


def test_job_whose_kind_vanished_fails(japp, admin):
    user, _api = admin
    with japp.extensions["kumiki"].Session() as s:
        row = Job(kind="gone.kind", status="queued", params={}, created_by=user.id)
        s.add(row)
        s.commit()
        job_id = row.id
    with japp.app_context():
        assert run_job(job_id) == "failed"
    assert "gone.kind" in _row(japp, job_id).error


# --- the jobs API ----------------------------------------------------------------------------

def test_jobs_are_visible_to_their_creator_and_admins_only(japp, admin):
    admin_user, api = admin
    clerk, clerk_token = make_user(japp, "clerk", is_admin=False)
    other, other_token = make_user(japp, "other", is_admin=False)
    clerk_api, other_api = ApiClient(japp, clerk_token), ApiClient(japp, other_token)

    mine = _enqueue(japp, "example.count", {"n": 1}, user=clerk)
    assert clerk_api.get(f"/api/v1/jobs/{mine}").status_code == 200
    assert api.get(f"/api/v1/jobs/{mine}").status_code == 200           # admin
    resp = other_api.get(f"/api/v1/jobs/{mine}")
    assert resp.status_code == 404 and resp.json["code"] == "NOT_FOUND"
    assert clerk_api.get("/api/v1/jobs/424242").status_code == 404
    assert ApiClient(japp).get(f"/api/v1/jobs/{mine}").status_code == 401


def test_job_list_is_the_callers_newest_first(japp, admin):
    admin_user, api = admin
    clerk, clerk_token = make_user(japp, "clerk", is_admin=False)
    clerk_api = ApiClient(japp, clerk_token)
    ids = [_enqueue(japp, "example.count", {"n": 1}, user=clerk) for _ in range(3)]
    failed = _enqueue(japp, "example.fail", user=clerk)
    _enqueue(japp, "example.count", {"n": 1}, user=admin_user)

    body = clerk_api.get("/api/v1/jobs").json
    assert body["total"] == 4
    assert [j["id"] for j in body["jobs"]] == [failed, *reversed(ids)]
    page = clerk_api.get("/api/v1/jobs?limit=2&offset=1").json
    assert [j["id"] for j in page["jobs"]] == [ids[2], ids[1]] and page["total"] == 4
    assert [j["id"] for j in clerk_api.get("/api/v1/jobs?status=failed").json["jobs"]] == [failed]
    assert len(api.get("/api/v1/jobs").json["jobs"]) == 1              # admin sees their own list
    bad = clerk_api.get("/api/v1/jobs?limit=0")
    assert bad.status_code == 400 and "limit" in bad.json["errors"]


# --- real consumers --------------------------------------------------------------------------

def _poll(fetch, until, timeout=20.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fetch()
        if until(last):
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out; last seen: {last}")


def _consume_in_thread(flask_app, monkeypatch):
    huey = flask_app.extensions["kumiki"].huey
    consumer = huey.create_consumer(workers=2, periodic=False, initial_delay=0.02, max_delay=0.2,
                                    check_worker_health=False, shutdown_timeout=10)
    monkeypatch.setattr(consumer, "_set_signal_handlers", lambda: None)  # not the main thread's job
    consumer.start()
    return consumer


def _live_progress_round_trip(papp, monkeypatch):
    user, token = make_user(papp, "admin")
    api = ApiClient(papp, token)
    # The token's first use writes last_used_at; do it before workers write concurrently
    # (see the SQLite note in the report: a read-then-write transaction fails at once then).
    assert api.get("/api/v1/jobs").status_code == 200
    example_plugin.GATE.clear()
    consumer = _consume_in_thread(papp, monkeypatch)
    try:
        waiting = _enqueue(papp, "example.wait", user=user)
        quick = _enqueue(papp, "example.count", {"n": 5}, user=user)
        # progress of a running job is visible live through the API
        live = _poll(lambda: api.get(f"/api/v1/jobs/{waiting}").json,
                     lambda j: j["status"] == "running" and j["progress"] == 0.5)
        assert live["message"] == "待機中" and live["started_at"] and live["finished_at"] is None
        done = _poll(lambda: api.get(f"/api/v1/jobs/{quick}").json, lambda j: j["status"] == "done")
        assert done["result"]["counted"] == 5
        example_plugin.GATE.set()
        done = _poll(lambda: api.get(f"/api/v1/jobs/{waiting}").json, lambda j: j["status"] != "running")
        assert done["status"] == "done" and done["result"] == {"waited": True}
        failed = _enqueue(papp, "example.fail", user=user)
        body = _poll(lambda: api.get(f"/api/v1/jobs/{failed}").json, lambda j: j["status"] == "failed")
        assert body["error"] == "RuntimeError: わざと失敗しました"
    finally:
        example_plugin.GATE.set()
        consumer.stop(graceful=True)


def test_sqlite_huey_consumer(make_config, monkeypatch):
    papp = _app(make_config, immediate=False)
    try:
        huey = papp.extensions["kumiki"].huey
        assert isinstance(huey, SqliteHuey) and not huey.immediate
        _live_progress_round_trip(papp, monkeypatch)
    finally:
        papp.extensions["kumiki"].engine.dispose()


@pytest.mark.redis
def test_redis_huey_consumer(make_config, monkeypatch):
    if not REDIS_URL:
        pytest.skip("KUMIKI_TEST_REDIS_URL is not set")
    name = f"kumiki-test-{uuid.uuid4().hex[:10]}"
    papp = _app(make_config, immediate=False, redis_url=REDIS_URL, extra={"KUMIKI_JOBS_NAME": name})
    huey = papp.extensions["kumiki"].huey
    try:
        assert isinstance(huey, RedisHuey) and huey.name == name
        _live_progress_round_trip(papp, monkeypatch)
    finally:
        huey.flush()
        papp.extensions["kumiki"].engine.dispose()


WORKER_SCRIPT = textwrap.dedent("""
    import sys
    from kumiki.config import Config
    from kumiki.jobs import run_worker
    cfg = Config.from_env(instance_dir=sys.argv[1], secret_key="test-secret",
                          extra={"KUMIKI_EXTRA_PLUGINS": [("example", "tests.plugins.example_plugin")],
                                 "KUMIKI_JOBS_NAME": sys.argv[2]})
    run_worker(cfg, workers=2)
""")


def _worker_round_trip(papp, tmp_path, extra_env=None):
    cfg = papp.extensions["kumiki"].config
    user, _token = make_user(papp, "admin")
    env = {**os.environ, "PYTHONPATH": str(REPO), **(extra_env or {})}
    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-c", WORKER_SCRIPT, str(cfg.instance_dir),
                                 papp.config["KUMIKI_JOBS_NAME"]],
                                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        job_ids = [_enqueue(papp, "example.count", {"n": 3}, user=user) for _ in range(3)]
        failing = _enqueue(papp, "example.fail", user=user)
        for job_id in job_ids:
            row = _poll(lambda: _row(papp, job_id), lambda r: r.status in ("done", "failed"), timeout=60)
            assert row.status == "done", (row.error, log_path.read_text())
            assert row.result["counted"] == 3 and row.result["user"] == "admin"
        row = _poll(lambda: _row(papp, failing), lambda r: r.status == "failed", timeout=60)
        assert row.error == "RuntimeError: わざと失敗しました"
    finally:
        proc.send_signal(signal.SIGINT)        # huey: graceful shutdown
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, log_path.read_text()


def test_run_worker_in_a_subprocess_sqlite(make_config, tmp_path):
    papp = _app(make_config, immediate=False, extra={"KUMIKI_JOBS_NAME": "kumiki"})
    try:
        _worker_round_trip(papp, tmp_path)
    finally:
        papp.extensions["kumiki"].engine.dispose()


@pytest.mark.redis
def test_run_worker_in_a_subprocess_redis(make_config, tmp_path):
    if not REDIS_URL:
        pytest.skip("KUMIKI_TEST_REDIS_URL is not set")
    name = f"kumiki-test-{uuid.uuid4().hex[:10]}"
    papp = _app(make_config, immediate=False, redis_url=REDIS_URL, extra={"KUMIKI_JOBS_NAME": name})
    try:
        _worker_round_trip(papp, tmp_path, {"KUMIKI_REDIS_URL": REDIS_URL})
    finally:
        papp.extensions["kumiki"].huey.flush()
        papp.extensions["kumiki"].engine.dispose()


def test_run_worker_refuses_immediate_mode(make_config, monkeypatch):
    from kumiki.jobs import worker
    papp = _app(make_config)
    monkeypatch.setattr(worker, "_app", papp)
    try:
        with pytest.raises(RuntimeError, match="IMMEDIATE"):
            worker.run_worker()
        assert worker.worker_app() is papp          # one app per process, cached
        assert worker.huey is papp.extensions["kumiki"].huey
    finally:
        papp.extensions["kumiki"].engine.dispose()
