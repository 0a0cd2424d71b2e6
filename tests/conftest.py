"""Shared fixtures: a fresh kumiki per test on SQLite, and on PostgreSQL when
KUMIKI_TEST_POSTGRES_URL is set (each test gets its own schema there)."""
from __future__ import annotations

import os
import uuid

import pytest
from sqlalchemy import create_engine, text

from kumiki.app import create_app
from kumiki.config import Config

PG_URL = os.environ.get("KUMIKI_TEST_POSTGRES_URL")
REDIS_URL = os.environ.get("KUMIKI_TEST_REDIS_URL")

BACKENDS = ["sqlite"] + (["postgres"] if PG_URL else [])


def _pg_schema_url(schema: str) -> str:
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}options=-csearch_path%3D{schema}"


@pytest.fixture
def make_config(tmp_path):
    """Return a factory for a Config on the given backend ("sqlite" or "postgres")."""
    schemas: list[str] = []

    def factory(backend: str = "sqlite", **overrides) -> Config:
        instance = tmp_path / f"instance-{backend}-{len(schemas)}-{uuid.uuid4().hex[:6]}"
        if backend == "postgres":
            if not PG_URL:
                pytest.skip("KUMIKI_TEST_POSTGRES_URL is not set")
            schema = "t_" + uuid.uuid4().hex[:12]
            with create_engine(_pg_url_driver(PG_URL)).begin() as conn:
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            schemas.append(schema)
            overrides.setdefault("database_url", _pg_schema_url(schema))
        else:
            schemas.append("")
        return Config.from_env(instance_dir=instance, secret_key="test-secret", testing=True, **overrides)

    yield factory
    real = [s for s in schemas if s]
    if real:
        engine = create_engine(_pg_url_driver(PG_URL))
        with engine.begin() as conn:
            for s in real:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{s}" CASCADE'))
        engine.dispose()


def _pg_url_driver(url: str) -> str:
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture
def app(make_config):
    application = create_app(make_config("sqlite"))
    yield application
    application.extensions["kumiki"].engine.dispose()


@pytest.fixture
def any_app(make_config, backend):
    """The app on every configured backend (SQLite, and PostgreSQL in CI)."""
    application = create_app(make_config(backend))
    yield application
    application.extensions["kumiki"].engine.dispose()


class ApiClient:
    """A test client that sends an API token and JSON."""

    def __init__(self, flask_app, token: str | None = None, lang: str | None = None):
        self.app = flask_app
        self.client = flask_app.test_client()
        self.token = token
        self.lang = lang

    def _headers(self, extra=None):
        h = {}
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        if self.lang:
            h["Accept-Language"] = self.lang
        h.update(extra or {})
        return h

    def request(self, method, path, json=None, headers=None, **kw):
        return self.client.open(path, method=method, json=json, headers=self._headers(headers), **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, json=None, **kw):
        return self.request("POST", path, json=json, **kw)

    def put(self, path, json=None, **kw):
        return self.request("PUT", path, json=json, **kw)

    def delete(self, path, json=None, **kw):
        return self.request("DELETE", path, json=json, **kw)


def make_user(flask_app, code="admin", *, is_admin=True, password="correct horse battery"):
    from kumiki.auth import create_user, issue_token
    from kumiki.extensions import Kumiki

    ext: Kumiki = flask_app.extensions["kumiki"]
    with ext.Session() as session:
        user = create_user(session, code, code.title(), password, is_admin=is_admin)
        _token, secret = issue_token(session, user, "test")
        session.commit()
        return user, secret


@pytest.fixture
def admin_api(app):
    _user, token = make_user(app, "admin")
    return ApiClient(app, token)


@pytest.fixture
def any_admin_api(any_app):
    _user, token = make_user(any_app, "admin")
    return ApiClient(any_app, token)
