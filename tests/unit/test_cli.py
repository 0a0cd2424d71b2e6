"""The `kumiki` command line: init, user, app import/export, and how serve/worker are wired."""
from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from kumiki import auth
from kumiki.cli import main
from kumiki.db import make_engine, make_sessionmaker
from kumiki.model import ApiToken, App, User

VALID = {"name": "テスト", "fields": [{"code": "氏名", "type": "SINGLE_LINE_TEXT", "label": "氏名"}]}


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def config(make_config, backend):
    return make_config(backend)


@pytest.fixture
def cli(runner, config):
    """Invoke `kumiki ARGS…` against this test's instance (SQLite, and PostgreSQL in CI)."""
    def invoke(*args, **kw):
        return runner.invoke(main, list(args), obj=config, catch_exceptions=False, **kw)
    return invoke


@pytest.fixture
def db(config):
    engine = make_engine(config.database_url)
    yield make_sessionmaker(engine)
    engine.dispose()


def _password(output: str) -> str:
    m = re.search(r"ワンタイムパスワード: (\S+)", output)
    assert m, output
    return m.group(1)


def _write(path, data):
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


# ---- init ----------------------------------------------------------------------------------

def test_init_creates_admin_whose_printed_password_logs_in(runner, tmp_path, monkeypatch):
    instance = tmp_path / "fresh" / "instance"
    env = {"KUMIKI_INSTANCE_DIR": str(instance), "KUMIKI_DATABASE_URL": "", "KUMIKI_REDIS_URL": ""}
    result = runner.invoke(main, ["init"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert instance.is_dir() and (instance / "kumiki.db").exists()
    assert "初期管理者 admin のワンタイムパスワード: " in result.output
    assert "One-time password" in result.output
    password = _password(result.output)

    engine = make_engine(f"sqlite:///{instance / 'kumiki.db'}")
    with make_sessionmaker(engine)() as session:
        user = auth.authenticate(session, "admin", password)
        assert user is not None and user.is_admin and user.must_change_password
        assert user.name == "管理者"
        assert auth.authenticate(session, "admin", password + "x") is None
    engine.dispose()

    again = runner.invoke(main, ["init"], env=env, catch_exceptions=False)
    assert again.exit_code == 0
    assert "初期化済み" in again.output
    assert "パスワード" not in again.output
    engine = make_engine(f"sqlite:///{instance / 'kumiki.db'}")
    with make_sessionmaker(engine)() as session:
        assert len(session.scalars(select(User)).all()) == 1
    engine.dispose()


def test_init_options_and_second_run_is_noop(cli, db):
    first = cli("init", "--admin-code", "root", "--admin-name", "情報政策課")
    assert first.exit_code == 0
    assert "初期管理者 root のワンタイムパスワード" in first.output
    second = cli("init", "--admin-code", "other")
    assert second.exit_code == 0
    assert "初期化済み" in second.output
    with db() as session:
        assert [(u.code, u.name) for u in session.scalars(select(User))] == [("root", "情報政策課")]


def test_init_english(cli):
    cli("init")
    result = cli("--lang", "en", "init")
    assert "already initialised" in result.output


def test_init_demo_skips_silently_without_catalog(cli, tmp_path):
    result = cli("init", "--demo", "--catalog-dir", str(tmp_path / "no-catalog"))
    assert result.exit_code == 0
    assert "デモ" not in result.output


def test_init_demo_imports_and_deploys_catalog_apps_once(cli, db, tmp_path):
    catalog = tmp_path / "catalog"
    (catalog / "meibo").mkdir(parents=True)
    _write(catalog / "meibo" / "app.json", {**VALID, "name": "名簿"})
    first = cli("init", "--demo", "--catalog-dir", str(catalog))
    assert first.exit_code == 0, first.output
    assert "デモアプリ「名簿」を作成して公開しました" in first.output
    second = cli("init", "--demo", "--catalog-dir", str(catalog))
    assert second.exit_code == 0
    with db() as session:
        apps = session.scalars(select(App)).all()
        assert [(a.name, a.deployed_version) for a in apps] == [("名簿", 1)]
        assert apps[0].created_by is not None


# ---- users ---------------------------------------------------------------------------------

def test_user_add_with_generated_password_and_token(cli, db):
    result = cli("user", "add", "tanaka", "--name", "田中 太郎", "--email", "tanaka@example.jp")
    assert result.exit_code == 0, result.output
    assert "ユーザー「tanaka」（田中 太郎）を作成しました" in result.output
    password = _password(result.output)
    with db() as session:
        user = auth.authenticate(session, "tanaka", password)
        assert user is not None and not user.is_admin and user.must_change_password
        assert user.email == "tanaka@example.jp"

    tok = cli("user", "token", "tanaka", "--name", "連携用")
    assert tok.exit_code == 0
    secret = tok.stdout.strip().splitlines()[-1]
    assert secret.startswith(auth.TOKEN_PREFIX)
    with db() as session:
        assert auth.user_for_token(session, secret).code == "tanaka"
        assert session.scalar(select(ApiToken.name)) == "連携用"


def test_user_add_admin_with_password(cli, db):
    result = cli("user", "add", "suzuki", "--name", "鈴木", "--admin", "--password", "long enough pw")
    assert result.exit_code == 0
    assert "ワンタイムパスワード" not in result.output
    with db() as session:
        user = auth.authenticate(session, "suzuki", "long enough pw")
        assert user.is_admin and not user.must_change_password


def test_user_errors_exit_2_in_japanese(cli):
    short = cli("user", "add", "sato", "--name", "佐藤", "--password", "short")
    assert short.exit_code == 2
    assert "password: パスワードは10文字以上にしてください。" in short.stderr
    assert "Traceback" not in short.output
    cli("user", "add", "sato", "--name", "佐藤")
    dup = cli("user", "add", "sato", "--name", "佐藤")
    assert dup.exit_code == 2 and "既に使われています" in dup.stderr
    missing = cli("user", "token", "nobody", "--name", "x")
    assert missing.exit_code == 2 and "ユーザー「nobody」が見つかりません" in missing.stderr
    english = cli("--lang", "en", "user", "token", "nobody", "--name", "x")
    assert english.exit_code == 2 and 'The user "nobody" was not found.' in english.stderr


# ---- apps ----------------------------------------------------------------------------------

def test_app_import_deploy_export_round_trip(cli, tmp_path):
    src = _write(tmp_path / "def.json", VALID)
    result = cli("app", "import", str(src), "--deploy")
    assert result.exit_code == 0, result.output
    app_id = int(re.search(r"ID: (\d+)", result.output).group(1))
    assert "公開しました" in result.output

    out = tmp_path / "out.json"
    exported = cli("app", "export", str(app_id), "-o", str(out))
    assert exported.exit_code == 0, exported.output
    text = out.read_text(encoding="utf-8")
    assert "氏名" in text and "\\u" not in text          # UTF-8, not escaped
    definition = json.loads(text)
    assert definition["name"] == "テスト"
    [field] = definition["fields"]
    assert field["code"] == "氏名" and field["type"] == "SINGLE_LINE_TEXT"
    assert isinstance(field["id"], int)

    # The exported definition imports again as a new app.
    again = cli("app", "import", str(out), "--deploy")
    assert again.exit_code == 0, again.output
    listing = cli("app", "list")
    assert listing.exit_code == 0
    assert listing.output.count("テスト") == 2

    stdout = cli("app", "export", str(app_id))
    assert json.loads(stdout.stdout) == definition


def test_export_of_undeployed_app_needs_draft(cli, tmp_path):
    src = _write(tmp_path / "def.json", VALID)
    result = cli("app", "import", str(src))
    app_id = re.search(r"ID: (\d+)", result.output).group(1)
    not_deployed = cli("app", "export", app_id)
    assert not_deployed.exit_code == 2
    assert "まだ公開されていません" in not_deployed.stderr
    draft = cli("app", "export", app_id, "--draft")
    assert draft.exit_code == 0
    assert json.loads(draft.stdout)["name"] == "テスト"


def test_import_invalid_definition_exits_2_with_located_message(cli, db, tmp_path):
    bad = _write(tmp_path / "bad.json", {"name": "テスト", "fields": [
        {"code": "氏名", "type": "SINGLE_LINE_TEXT", "label": "氏名"},
        {"code": "氏名", "type": "NO_SUCH_TYPE", "label": "重複"},
    ]})
    result = cli("app", "import", str(bad), "--deploy")
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert re.search(r"^fields\[1\]\.\w+: .+", result.stderr, re.M), result.stderr
    assert re.search(r"[ぁ-んァ-ヶ一-龠]", result.stderr)      # Japanese by default
    with db() as session:
        assert session.scalars(select(App)).all() == []   # nothing half-written


@pytest.mark.parametrize("content, expected", [
    (None, "見つかりません"),
    ("{not json", "JSONとして読み取れません"),
    ("[1, 2]", "アプリ定義（JSONオブジェクト）"),
    (b"\x82\xa0\x82\xa2", "UTF-8"),
])
def test_import_bad_files_exit_2(cli, tmp_path, content, expected):
    path = tmp_path / "input.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    result = cli("app", "import", str(path))
    assert result.exit_code == 2
    assert expected in result.stderr
    assert "Traceback" not in result.output


def test_unknown_app_id_exits_2(cli):
    result = cli("app", "export", "999")
    assert result.exit_code == 2
    assert "アプリ（ID: 999）が見つかりません。" in result.stderr


def test_app_list_empty(cli):
    result = cli("app", "list")
    assert result.exit_code == 0 and "アプリはまだありません" in result.output


# ---- serve and worker (wiring only; no server is started) -----------------------------------

def test_serve_builds_gunicorn_with_options_and_initialises(cli, config, monkeypatch):
    from gunicorn.app.base import BaseApplication

    ran, workers = [], []
    monkeypatch.setattr(BaseApplication, "run", lambda self: ran.append(self))
    monkeypatch.setattr("kumiki.cli._start_worker_process", lambda cfg, lang: workers.append(cfg))
    result = cli("serve", "--host", "0.0.0.0", "--port", "8123", "--workers", "3")
    assert result.exit_code == 0, result.output
    assert workers == [config]           # the embedded setup runs a job worker beside the server
    assert "http://localhost:8123/" in result.output
    assert "初期管理者 admin のワンタイムパスワード" in result.output   # fresh instance → init first
    [server] = ran
    assert server.cfg.bind == ["0.0.0.0:8123"]
    assert server.cfg.workers == 3

    # Each worker builds its app with the factory and the CLI's config.
    built = []
    monkeypatch.setattr("kumiki.app.create_app", lambda cfg=None, **kw: built.append(cfg) or "wsgi-app")
    assert server.load() == "wsgi-app"
    assert built == [config]

    again = cli("serve", "--no-worker")
    assert again.exit_code == 0
    assert len(workers) == 1
    assert "ワンタイムパスワード" not in again.output
    assert ran[-1].cfg.bind == ["127.0.0.1:8000"] and ran[-1].cfg.workers == 2


def test_serve_dev_runs_flask_development_server(cli, config, monkeypatch):
    calls = {}

    class FakeFlask:
        def run(self, **kw):
            calls["run"] = kw

    def fake_create_app(cfg=None, **kw):
        calls["config"] = cfg
        return FakeFlask()

    monkeypatch.setattr("kumiki.app.create_app", fake_create_app)
    monkeypatch.setattr("kumiki.cli._start_worker_process", lambda cfg, lang: None)
    result = cli("serve", "--dev", "--port", "5001")
    assert result.exit_code == 0, result.output
    assert calls["config"] is config
    assert calls["run"]["host"] == "127.0.0.1" and calls["run"]["port"] == 5001
    assert "http://localhost:5001/" in result.output


def test_worker_calls_run_worker(cli, config, monkeypatch):
    calls = []
    monkeypatch.setattr("kumiki.jobs.run_worker", lambda cfg, workers=1: calls.append((cfg, workers)),
                        raising=False)
    result = cli("worker", "--workers", "4")
    assert result.exit_code == 0, result.output
    assert calls == [(config, 4)]
    cli("worker")
    assert calls[-1] == (config, 1)
