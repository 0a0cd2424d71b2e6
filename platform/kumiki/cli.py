"""The ``kumiki`` command: init, serve, worker, user and app administration.

Every command that touches the database goes through :class:`CliState` (one Config, one engine,
one migrated database per invocation, a session per unit of work). Errors that users can cause
(bad definitions, unknown ids, missing files, bad JSON) are printed in Japanese (``--lang en``
for English) without a traceback and exit with code 2.
"""
from __future__ import annotations

import json
import unicodedata
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import click
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from kumiki import i18n
from kumiki.config import PROJECT_ROOT, Config
from kumiki.errors import KumikiError

EXIT_BAD_INPUT = 2
DEFAULT_CATALOG_DIR = PROJECT_ROOT / "apps_catalog"

i18n.register({
    "cli.admin_created": ("初期管理者 {code} のワンタイムパスワード: {password}",
                          "One-time password of the first administrator {code}: {password}"),
    "cli.admin_password_note": ("（この表示は一度だけです。初回ログイン時に変更してください）",
                                "(shown only once; you will be asked to change it at first login)"),
    "cli.already_initialised": ("インスタンスは初期化済みです（{path}）。何も作成しませんでした。",
                                "The instance is already initialised ({path}); nothing was created."),
    "cli.initialised": ("インスタンスを初期化しました: {path}", "Initialised the instance: {path}"),
    "cli.demo_imported": ("デモアプリ「{name}」を作成して公開しました（ID: {app_id}）。",
                          "Created and deployed the demo app \"{name}\" (ID {app_id})."),
    "cli.user_unlocked": ("ログイン名「{code}」のロックを解除しました。", "Unlocked the login \"{code}\"."),
    "cli.demo_skipped": ("デモアプリ「{name}」は既にあります。", "The demo app \"{name}\" already exists."),
    "cli.serving": ("kumiki を起動します: {url}", "Starting kumiki at {url}"),
    "cli.user_created": ("ユーザー「{code}」（{name}）を作成しました。", "Created the user \"{code}\" ({name})."),
    "cli.user_password": ("ワンタイムパスワード: {password}  （この表示は一度だけです）",
                          "One-time password: {password} (shown only once)"),
    "cli.user_not_found": ("ユーザー「{code}」が見つかりません。", "The user \"{code}\" was not found."),
    "cli.token_created": ("ユーザー「{code}」のAPIトークン「{name}」を発行しました（この表示は一度だけです）:",
                          "Issued the API token \"{name}\" for \"{code}\" (shown only once):"),
    "cli.app_created": ("アプリ「{name}」を作成しました。ID: {app_id}", "Created the app \"{name}\". ID: {app_id}"),
    "cli.app_deployed": ("アプリ（ID: {app_id}）を公開しました（バージョン {version}）。",
                         "Deployed app {app_id} (version {version})."),
    "cli.app_exported": ("アプリ（ID: {app_id}）の定義を {path} に書き出しました。",
                         "Wrote the definition of app {app_id} to {path}."),
    "cli.no_apps": ("アプリはまだありません。", "There are no apps yet."),
    "cli.app_list_header": ("ID\tコード\tアプリ名\t公開バージョン\t編集中の版",
                            "ID\tcode\tname\tdeployed version\tdraft revision"),
    "cli.file_not_found": ("ファイル {path} が見つかりません。", "The file {path} does not exist."),
    "cli.file_unreadable": ("ファイル {path} を読めません: {detail}", "Cannot read the file {path}: {detail}"),
    "cli.file_unwritable": ("ファイル {path} に書き込めません: {detail}", "Cannot write the file {path}: {detail}"),
    "cli.bad_json": ("{path} はJSONとして読み取れません（{line}行{col}列）: {detail}",
                     "{path} is not valid JSON (line {line}, column {col}): {detail}"),
    "cli.not_utf8": ("{path} はUTF-8のテキストではありません。", "{path} is not UTF-8 text."),
    "cli.definition_not_object": ("{path} にはアプリ定義（JSONオブジェクト）を書いてください。",
                                  "{path} must hold an app definition (a JSON object)."),
    "cli.database_unavailable": ("データベースに接続できません: {detail}", "Cannot open the database: {detail}"),
    "cli.jobs_unavailable": ("ジョブ機能（kumiki.jobs）を読み込めません: {detail}",
                             "Cannot load the job queue (kumiki.jobs): {detail}"),
    "cli.worker_starting": ("バックグラウンドジョブのワーカーを起動します（{workers} 並列）。",
                            "Starting the background job worker ({workers} in parallel)."),
})


# --------------------------------------------------------------------------------------------
# Shared state and helpers
# --------------------------------------------------------------------------------------------

@dataclass
class CliState:
    """What every command shares: language, the Config and (lazily) one engine.

    Tests may pass ``obj=CliState(config=...)`` (or a bare Config) to ``CliRunner.invoke``.
    """

    config: Config | None = None
    lang: str = i18n.DEFAULT_LOCALE
    instance_dir: Path | None = None
    _engine: Engine | None = field(default=None, repr=False)
    _migrated: bool = field(default=False, repr=False)

    def get_config(self) -> Config:
        if self.config is None:
            overrides: dict[str, Any] = {}
            if self.instance_dir is not None:
                overrides["instance_dir"] = self.instance_dir
            self.config = Config.from_env(**overrides)
        return self.config

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            from kumiki.db import make_engine
            self._engine = make_engine(self.get_config().database_url)
        return self._engine

    def migrate(self) -> None:
        if self._migrated:
            return
        from sqlalchemy.exc import OperationalError
        from kumiki import migrate
        try:
            migrate.upgrade(self.engine)
        except OperationalError as exc:  # unreachable database, bad path, locked file…
            raise CliError([self.t("cli.database_unavailable", detail=str(exc.orig or exc))], exit_code=1) from None
        self._migrated = True

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A migrated database and one transaction: committed on success, rolled back on error."""
        self.migrate()
        from kumiki.db import make_sessionmaker
        with make_sessionmaker(self.engine)() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def t(self, key: str, **params) -> str:
        return i18n.translate(key, self.lang, **params)

    def say(self, key: str, *, err: bool = False, **params) -> None:
        click.echo(self.t(key, **params), err=err)


class CliError(click.ClickException):
    """A user-facing error: its lines go to stderr as they are, no 'Error:' prefix, no traceback."""

    def __init__(self, lines: list[str], exit_code: int = EXIT_BAD_INPUT):
        super().__init__("\n".join(lines))
        self.lines = lines
        self.exit_code = exit_code

    def show(self, file=None) -> None:  # noqa: D401 - click API
        for line in self.lines:
            click.echo(line, err=True)


def render_error(exc: KumikiError, lang: str) -> list[str]:
    """The message and each located detail (``fields[2].code: …``) of a kumiki error."""
    lines = [i18n.translate(exc.key, lang, **exc.params)]
    for d in exc.details:
        message = i18n.translate(d.key, lang, **(d.params or {}))
        lines.append(f"{d.path}: {message}" if d.path else message)
    return lines


class KumikiGroup(click.Group):
    """The root group: turns kumiki errors raised by any sub-command into clean exit-2 messages."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except KumikiError as exc:
            state = ctx.obj if isinstance(ctx.obj, CliState) else CliState()
            raise CliError(render_error(exc, state.lang)) from None


pass_state = click.make_pass_decorator(CliState)


def _display_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(_display_width(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for r in rows:
        cells = [c + " " * (widths[i] - _display_width(c)) for i, c in enumerate(r)]
        out.append("  ".join(cells).rstrip())
    return out


def read_json_file(state: CliState, path: Path) -> Any:
    """Read a JSON file (UTF-8, BOM allowed) or raise a CliError in the user's language."""
    if not path.exists() or path.is_dir():
        raise CliError([state.t("cli.file_not_found", path=path)])
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CliError([state.t("cli.file_unreadable", path=path, detail=exc.strerror or exc)]) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CliError([state.t("cli.not_utf8", path=path)]) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError([state.t("cli.bad_json", path=path, line=exc.lineno, col=exc.colno, detail=exc.msg)]) from None


def dump_json(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


# --------------------------------------------------------------------------------------------
# Operations shared by several commands (init, serve)
# --------------------------------------------------------------------------------------------

def initialise(state: CliState, *, admin_code: str = "admin", admin_name: str = "管理者",
               demo: bool = False, catalog_dir: Path | None = None) -> bool:
    """Create the instance dir, migrate, and create the first admin when there is no user.

    Prints the admin's one-time password once. Returns True when the admin was created.
    """
    from kumiki import auth
    from kumiki.model import User

    config = state.get_config()   # creates the instance and files dirs
    created = False
    with state.session() as session:
        admin = None
        if not session.scalar(select(func.count()).select_from(User)):
            password = auth.generate_password()
            admin = auth.create_user(session, admin_code, admin_name, password, is_admin=True,
                                     must_change_password=True)
            created = True
        else:
            admin = session.scalar(select(User).where(User.is_admin.is_(True)).order_by(User.id))
    if created:
        state.say("cli.initialised", path=config.instance_dir)
        click.echo(i18n.translate("cli.admin_created", "ja", code=admin_code, password=password))
        click.echo(i18n.translate("cli.admin_created", "en", code=admin_code, password=password))
        state.say("cli.admin_password_note")
    else:
        state.say("cli.already_initialised", path=config.instance_dir)
    if demo:
        import_demo_apps(state, admin.id if admin is not None else None, catalog_dir or DEFAULT_CATALOG_DIR)
    return created


def _catalog_definition(data: Any) -> dict | None:
    if isinstance(data, dict) and isinstance(data.get("definition"), dict):
        return data["definition"]       # a template package that wraps the definition
    return data if isinstance(data, dict) else None


def import_demo_apps(state: CliState, user_id: int | None, catalog_dir: Path) -> list[int]:
    """Create and deploy every ``<catalog>/*/app.json`` not yet present (matched by code, else name)."""
    from kumiki.definitions.deploy import create_app, deploy
    from kumiki.model import App, User

    created: list[int] = []
    if not catalog_dir.is_dir():
        return created
    for path in sorted(catalog_dir.glob("*/app.json")):
        definition = _catalog_definition(read_json_file(state, path))
        if definition is None:
            raise CliError([state.t("cli.definition_not_object", path=path)])
        name = definition.get("name") or path.parent.name
        with state.session() as session:
            code = definition.get("code")
            cond = App.code == code if code else App.name == name
            if session.scalar(select(App.id).where(cond)) is not None:
                state.say("cli.demo_skipped", name=name)
                continue
            user = session.get(User, user_id) if user_id else None
            try:
                app = create_app(session, definition, user)
                deploy(session, app, user, timezone=state.get_config().timezone)
            except KumikiError as exc:
                raise CliError([str(path), *render_error(exc, state.lang)]) from None
            app_id, app_name = app.id, app.name
        created.append(app_id)
        state.say("cli.demo_imported", name=app_name, app_id=app_id)
    return created


def has_users(state: CliState) -> bool:
    from kumiki.model import User
    with state.session() as session:
        return bool(session.scalar(select(func.count()).select_from(User)))


# --------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------

@click.group(cls=KumikiGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--lang", type=click.Choice(["ja", "en"]), default=None, envvar="KUMIKI_LANG",
              help="表示言語（既定: ja） / message language (default: ja)")
@click.option("--instance-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="インスタンスのフォルダ（既定: $KUMIKI_INSTANCE_DIR または ./instance） / "
                   "instance folder (default: $KUMIKI_INSTANCE_DIR or ./instance)")
@click.version_option(package_name="kumiki")
@click.pass_context
def main(ctx: click.Context, lang: str | None, instance_dir: Path | None) -> None:
    """kumiki — 自治体のためのノーコード業務アプリ基盤 / a no-code record app platform."""
    if isinstance(ctx.obj, Config):
        ctx.obj = CliState(config=ctx.obj)
    elif not isinstance(ctx.obj, CliState):
        ctx.obj = CliState()
    state: CliState = ctx.obj
    if lang:
        state.lang = lang
    if instance_dir is not None and state.config is None:
        state.instance_dir = instance_dir
    ctx.call_on_close(state.close)


@main.command(short_help="初期化と初期管理者の作成 / initialise the instance")
@click.option("--admin-code", default="admin", show_default=True,
              help="初期管理者のログイン名 / login name of the first administrator")
@click.option("--admin-name", default="管理者", show_default=True,
              help="初期管理者の表示名 / display name of the first administrator")
@click.option("--demo", is_flag=True,
              help="apps_catalog のデモアプリも作成して公開します / also import and deploy the demo apps")
@click.option("--catalog-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="デモアプリのフォルダ（既定: apps_catalog） / folder of the demo apps (default: apps_catalog)")
@pass_state
def init(state: CliState, admin_code: str, admin_name: str, demo: bool, catalog_dir: Path | None) -> None:
    """インスタンスを初期化し、初期管理者を作成します / initialise the instance and create the first admin."""
    initialise(state, admin_code=admin_code, admin_name=admin_name, demo=demo, catalog_dir=catalog_dir)


def _start_worker_process(config: Config, lang: str):
    """The embedded setup runs one job worker beside the web server, stopped when serve exits."""
    import atexit
    import os
    import subprocess
    import sys

    env = dict(os.environ, KUMIKI_INSTANCE_DIR=str(config.instance_dir),
               KUMIKI_DATABASE_URL=config.database_url, KUMIKI_SECRET_KEY=config.secret_key)
    if config.redis_url:
        env["KUMIKI_REDIS_URL"] = config.redis_url
    proc = subprocess.Popen([sys.executable, "-m", "kumiki.cli", "--lang", lang, "worker"], env=env)

    def _stop() -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()

    atexit.register(_stop)
    return proc


def _build_gunicorn_application(config: Config, options: dict):
    """A gunicorn application in-process; each worker builds its app with ``kumiki.app:create_app``."""
    from gunicorn.app.base import BaseApplication

    class KumikiServer(BaseApplication):
        def __init__(self):
            self.options = options
            self.config_obj = config
            super().__init__()

        def load_config(self):
            for key, value in self.options.items():
                if key in self.cfg.settings and value is not None:
                    self.cfg.set(key.lower(), value)

        def load(self):
            from kumiki import app as factory
            flask_app = factory.create_app(self.config_obj)
            factory.freeze_startup_objects()
            return flask_app

    return KumikiServer()


def _public_url(host: str, port: int) -> str:
    shown = "localhost" if host in ("127.0.0.1", "0.0.0.0", "::", "", "localhost") else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/"


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="待ち受けるアドレス / address to listen on")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535),
              help="待ち受けるポート / port to listen on")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 256),
              help="gunicorn のワーカー数 / number of gunicorn workers")
@click.option("--dev", is_flag=True,
              help="Flask の開発用サーバーで起動します（自動再読み込み） / run the Flask development server")
@click.option("--demo", is_flag=True,
              help="デモアプリも作成して公開します / also import and deploy the demo apps")
@click.option("--worker/--no-worker", default=True, show_default=True,
              help="バックグラウンド処理のワーカーも起動します / also run a background job worker")
@pass_state
def serve(state: CliState, host: str, port: int, workers: int, dev: bool, demo: bool, worker: bool) -> None:
    """Webサーバーを起動します / run the web server."""
    config = state.get_config()
    if demo or not has_users(state):
        initialise(state, demo=demo)
    state.close()   # the server processes open their own connections
    if worker:
        _start_worker_process(config, state.lang)
    bind_host = f"[{host}]" if ":" in host else host
    state.say("cli.serving", url=_public_url(host, port))
    if dev:
        from kumiki.app import create_app
        flask_app = create_app(config)
        flask_app.run(host=host, port=port, debug=True)
        return
    options = {
        "bind": f"{bind_host}:{port}",
        "workers": workers,
        "accesslog": "-",
        "errorlog": "-",
        "timeout": 120,
        "proc_name": "kumiki",
    }
    _build_gunicorn_application(config, options).run()


@main.command()
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 256),
              help="並列に処理するジョブ数 / number of jobs processed in parallel")
@pass_state
def worker(state: CliState, workers: int) -> None:
    """バックグラウンドジョブのワーカーを起動します / start the background job worker."""
    config = state.get_config()
    try:
        from kumiki.jobs import run_worker
    except ImportError as exc:
        raise CliError([state.t("cli.jobs_unavailable", detail=exc)], exit_code=1) from None
    state.say("cli.worker_starting", workers=workers)
    run_worker(config, workers=workers)


# ---- users ---------------------------------------------------------------------------------

@main.group()
def user() -> None:
    """ユーザーを管理します / manage users."""


@user.command("add")
@click.argument("code")
@click.option("--name", required=True, help="表示名 / display name")
@click.option("--admin", "is_admin", is_flag=True, help="管理者にします / make the user an administrator")
@click.option("--email", default=None, help="メールアドレス / e-mail address")
@click.option("--password", default=None,
              help="パスワード（省略時は生成して一度だけ表示） / password (generated and shown once if omitted)")
@pass_state
def user_add(state: CliState, code: str, name: str, is_admin: bool, email: str | None,
             password: str | None) -> None:
    """ユーザーを作成します / create a user."""
    from kumiki import auth

    generated = password is None
    if generated:
        password = auth.generate_password()
    with state.session() as session:
        created = auth.create_user(session, code, name, password, is_admin=is_admin, email=email,
                                   must_change_password=generated)
        code, name = created.code, created.name
    state.say("cli.user_created", code=code, name=name)
    if generated:
        state.say("cli.user_password", password=password)


@user.command("token")
@click.argument("code")
@click.option("--name", required=True, help="トークンの名前（用途） / token name (what it is for)")
@pass_state
def user_token(state: CliState, code: str, name: str) -> None:
    """APIトークンを発行して一度だけ表示します / issue an API token and print it once."""
    from kumiki import auth
    from kumiki.model import User

    with state.session() as session:
        target = session.scalar(select(User).where(User.code == code))
        if target is None:
            raise CliError([state.t("cli.user_not_found", code=code)])
        _token, secret = auth.issue_token(session, target, name)
    state.say("cli.token_created", code=code, name=name, err=True)
    click.echo(secret)


@user.command("unlock")
@click.argument("code")
@pass_state
def user_unlock(state: CliState, code: str) -> None:
    """ログイン失敗によるロックを解除します / lift a lock left by failed logins."""
    from kumiki import audit, auth

    with state.session() as session:
        auth.unlock(session, code)
        audit.record(session, "user.unlock", user=None, detail={"login": code, "via": "cli"})
    state.say("cli.user_unlocked", code=code)


# ---- apps ----------------------------------------------------------------------------------

@main.group("app")
def app_group() -> None:
    """アプリを管理します / manage apps."""


@app_group.command("list")
@pass_state
def app_list(state: CliState) -> None:
    """アプリの一覧を表示します / list the apps."""
    from kumiki.model import App

    with state.session() as session:
        apps = session.scalars(select(App).order_by(App.id)).all()
        rows = [[str(a.id), a.code or "-", a.name, str(a.deployed_version or "-"), str(a.draft_revision)]
                for a in apps]
    if not rows:
        state.say("cli.no_apps")
        return
    header = state.t("cli.app_list_header").split("\t")
    for line in _table([header, *rows]):
        click.echo(line)


@app_group.command("export")
@click.argument("app_id", type=int)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="書き出すファイル（省略時は標準出力） / output file (default: standard output)")
@click.option("--draft", is_flag=True, help="公開版ではなく編集中の定義を書き出します / export the draft instead")
@pass_state
def app_export(state: CliState, app_id: int, output: Path | None, draft: bool) -> None:
    """アプリ定義をJSONで書き出します / export an app definition as JSON."""
    from kumiki.definitions.deploy import get_app
    from kumiki.model import AppVersion

    with state.session() as session:
        app = get_app(session, app_id)
        if draft:
            definition = app.draft
        else:
            if not app.deployed_version:
                raise KumikiError("app.not_deployed", app_id=app_id)
            definition = session.scalar(select(AppVersion.definition).where(
                AppVersion.app_id == app.id, AppVersion.version == app.deployed_version))
    text = dump_json(definition)
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CliError([state.t("cli.file_unwritable", path=output, detail=exc.strerror or exc)]) from None
    state.say("cli.app_exported", app_id=app_id, path=output, err=True)


@app_group.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--deploy", "do_deploy", is_flag=True, help="作成後すぐに公開します / deploy it right away")
@pass_state
def app_import(state: CliState, file: Path, do_deploy: bool) -> None:
    """JSONのアプリ定義からアプリを作成します / create an app from a JSON definition."""
    from kumiki.definitions.deploy import create_app, deploy

    definition = read_json_file(state, file)
    if not isinstance(definition, dict):
        raise CliError([state.t("cli.definition_not_object", path=file)])
    version = None
    with state.session() as session:
        app = create_app(session, definition, None)
        if do_deploy:
            version = deploy(session, app, None, timezone=state.get_config().timezone).version
        app_id, name = app.id, app.name
    state.say("cli.app_created", name=name, app_id=app_id)
    if version is not None:
        state.say("cli.app_deployed", app_id=app_id, version=version)


# Command groups kept in their own modules register themselves on `main`.
from kumiki import cli_audit, cli_directory  # noqa: E402,F401

if __name__ == "__main__":  # pragma: no cover
    main()
