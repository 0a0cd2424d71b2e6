"""Security basics over HTTP: CSRF, sessions, headers, lockout, uploads, two-factor login."""
from __future__ import annotations

import io
from datetime import timedelta, timezone

import pyotp
import pytest

from kumiki import auth
from kumiki.app import create_app
from kumiki.model._common import utcnow
from tests.conftest import ApiClient, make_user

PASSWORD = "password-1234"


@pytest.fixture
def make_app(make_config):
    apps = []

    def factory(**overrides):
        application = create_app(make_config("sqlite", **overrides))
        apps.append(application)
        return application

    yield factory
    for a in apps:
        a.extensions["kumiki"].engine.dispose()


def _login(client, login="clerk", password=PASSWORD, **extra):
    return client.post("/api/v1/auth/login", json={"login": login, "password": password, **extra})


@pytest.fixture
def clerk(app):
    _user, token = make_user(app, "clerk", is_admin=False, password=PASSWORD)
    return token


# --- CSRF --------------------------------------------------------------------------------------

def test_cookie_writes_need_the_csrf_token(app, clerk):
    client = app.test_client()
    resp = _login(client)
    assert resp.status_code == 200
    token = resp.json["csrf_token"]
    assert token and client.get("/api/v1/me").json["csrf_token"] == token

    bad = client.post("/api/v1/me/tokens", json={"name": "x"})
    assert bad.status_code == 403 and bad.json["code"] == "CSRF_FAILED"
    assert "CSRF" in bad.json["message"] and "セッション" in bad.json["message"]
    wrong = client.post("/api/v1/me/tokens", json={"name": "x"}, headers={"X-CSRF-Token": token + "x"})
    assert wrong.status_code == 403
    ok = client.post("/api/v1/me/tokens", json={"name": "x"}, headers={"X-CSRF-Token": token})
    assert ok.status_code == 201
    # Reads need no token.
    assert client.get("/api/v1/me/tokens").status_code == 200


def test_bearer_tokens_need_no_csrf_token(app, clerk):
    api = ApiClient(app, clerk)
    assert api.post("/api/v1/me/tokens", json={"name": "script"}).status_code == 201
    assert api.get("/api/v1/me").json["csrf_token"] is None


def test_login_gives_a_fresh_session_and_logout_ends_it(app, clerk):
    client = app.test_client()
    first = _login(client).json["csrf_token"]
    second = _login(client).json["csrf_token"]  # logging in again while logged in: no CSRF needed
    assert first != second
    assert client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": first}).status_code == 403
    assert client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": second}).status_code == 204
    assert client.get("/api/v1/me").status_code == 401


# --- session cookie and headers ----------------------------------------------------------------

def test_session_cookie_flags_on_plain_http(app, clerk):
    cookie = _login(app.test_client()).headers["Set-Cookie"]
    assert cookie.startswith("kumiki_session=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Expires=" in cookie
    assert "Secure" not in cookie


def test_session_cookie_and_hsts_on_https(make_app):
    application = make_app(base_url="https://kumiki.example.lg.jp", secure_cookies=True)
    make_user(application, "clerk", is_admin=False, password=PASSWORD)
    client = application.test_client()
    resp = _login(client)
    cookie = resp.headers["Set-Cookie"]
    assert cookie.startswith("__Host-kumiki_session=") and "Secure" in cookie and "Domain" not in cookie
    assert resp.headers["Strict-Transport-Security"].startswith("max-age=")


def test_security_headers_on_api_and_pages(app):
    client = app.test_client()
    for path in ("/api/openapi.json", "/api/v1/apps", "/"):
        resp = client.get(path)
        h = resp.headers
        assert h["X-Content-Type-Options"] == "nosniff", path
        assert h["X-Frame-Options"] == "DENY"
        assert h["Referrer-Policy"] == "same-origin"
        assert "camera=()" in h["Permissions-Policy"]
        csp = h["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
        assert "Strict-Transport-Security" not in h  # plain http
    api = client.get("/api/openapi.json")
    assert api.headers["Cache-Control"] == "no-store"
    assert api.headers["Content-Security-Policy"].startswith("default-src 'none'")
    page = client.get("/").headers["Content-Security-Policy"]
    assert "default-src 'self'" in page and "object-src 'none'" in page and "base-uri 'self'" in page


# --- lockout and throttling --------------------------------------------------------------------

class Clock:
    """kumiki.auth's clock, stopped; advance it by calling it with timedelta arguments."""

    def __init__(self):
        self.now = utcnow()

    def __call__(self, **delta):
        self.now += timedelta(**delta)

    def unix(self) -> float:
        return self.now.replace(tzinfo=timezone.utc).timestamp()


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(auth, "clock", lambda: c.now)
    return c


def test_lockout_message_and_unlock(app, clerk, clock):
    client = app.test_client()
    for _ in range(4):
        resp = _login(client, password="wrong")
        assert resp.status_code == 401 and resp.json["message"] == "ログイン名またはパスワードが違います。"
        clock(seconds=10)
    fifth = _login(client, password="wrong")
    assert fifth.status_code == 429 and fifth.json["code"] == "ACCOUNT_LOCKED"
    assert fifth.json["message"] == "アカウントがロックされています。15分後に再度お試しください。"
    assert fifth.headers["Retry-After"] == str(15 * 60)
    clock(minutes=10)
    during = _login(client)  # the right password does not help while locked
    assert during.status_code == 429 and "5分後" in during.json["message"]
    english = client.post("/api/v1/auth/login", json={"login": "clerk", "password": PASSWORD},
                          headers={"Accept-Language": "en"})
    assert english.json["message"] == "The account is locked. Try again in 5 minutes."
    clock(minutes=5, seconds=1)
    assert _login(client).status_code == 200


def test_unknown_login_gets_the_same_answers(app, clerk, clock):
    client = app.test_client()
    known = [_login(client, password="wrong").json for _ in range(5)]
    unknown = [_login(client, login="no-such-user", password="wrong").json for _ in range(5)]
    assert known == unknown


def test_ip_throttle(make_app, clock):
    application = make_app(login_ip_max_failures=3)
    make_user(application, "clerk", is_admin=False, password=PASSWORD)
    client = application.test_client()
    for name in ("sato", "suzuki", "takahashi"):
        assert _login(client, login=name, password="x").status_code == 401
    resp = _login(client)
    assert resp.status_code == 429 and resp.json["code"] == "TOO_MANY_ATTEMPTS"
    assert "ログインの試行が多すぎます" in resp.json["message"] and int(resp.headers["Retry-After"]) > 0
    other = application.test_client()
    assert other.post("/api/v1/auth/login", json={"login": "clerk", "password": PASSWORD},
                      environ_base={"REMOTE_ADDR": "192.0.2.7"}).status_code == 200
    clock(minutes=16)
    assert _login(client).status_code == 200


def test_wrong_current_password_counts_towards_the_lock(app, clerk, clock):
    client = app.test_client()
    csrf = {"X-CSRF-Token": _login(client).json["csrf_token"]}
    for _ in range(5):
        resp = client.post("/api/v1/me/password", json={"current": "wrong", "new": "another-password-1"},
                           headers=csrf)
    assert resp.status_code == 429 and resp.json["code"] == "ACCOUNT_LOCKED"


# --- uploads -----------------------------------------------------------------------------------

def _upload(api, name, data):
    return api.client.post("/api/v1/files", data={"file": (io.BytesIO(data), name)},
                           headers=api._headers(), content_type="multipart/form-data")


def test_oversized_upload_is_a_json_413(make_app):
    application = make_app(max_upload_bytes=1000)
    _u, token = make_user(application, "admin")
    api = ApiClient(application, token)
    resp = _upload(api, "big.pdf", b"%PDF" + b"x" * 5000)
    assert resp.status_code == 413 and resp.is_json
    assert resp.json["code"] == "PAYLOAD_TOO_LARGE" and "大きすぎます" in resp.json["message"]
    assert _upload(api, "small.pdf", b"%PDF-1.7 small").status_code == 201


@pytest.mark.parametrize("name", ["setup.exe", "run.BAT", "tool.ps1", "page.html", "logo.svg", "x.js",
                                  "app.hta", "lib.jar", "installer.msi", "evil.exe. "])
def test_blocked_extensions(admin_api, name):
    resp = _upload(admin_api, name, b"harmless bytes")
    assert resp.status_code == 400
    assert "アップロードできません" in resp.json["errors"]["file"][0]


@pytest.mark.parametrize("name, data", [
    ("report.pdf", b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00"),
    ("notes.txt", b"<!DOCTYPE html><html><script>alert(1)</script></html>"),
    ("image.png", b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"></svg>'),
])
def test_blocked_content(admin_api, name, data):
    resp = _upload(admin_api, name, data)
    assert resp.status_code == 400 and "実行ファイルまたはスクリプト" in resp.json["errors"]["file"][0]


@pytest.mark.parametrize("name, data", [
    ("申請書.pdf", b"%PDF-1.7"), ("一覧.csv", "氏名\n山田\n".encode("cp932")), ("写真.png", b"\x89PNG\r\n\x1a\n"),
    ("資料.docx", b"PK\x03\x04rest"), ("台帳.xlsx", b"PK\x03\x04rest"), ("メモ.txt", "テキスト".encode()),
])
def test_common_files_are_allowed(admin_api, name, data):
    assert _upload(admin_api, name, data).status_code == 201


def test_blocked_list_is_configurable(make_app):
    application = make_app(upload_blocked_extensions=("pdf",))
    _u, token = make_user(application, "admin")
    api = ApiClient(application, token)
    assert _upload(api, "a.pdf", b"%PDF").status_code == 400
    # Not on the configured list: allowed, but never served as a document a browser would run.
    resp = _upload(api, "data.xml", b'<?xml version="1.0"?><root/>')
    assert resp.status_code == 201
    dl = api.get(f"/api/v1/files/{resp.json['fileKey']}")
    assert dl.status_code == 200 and dl.headers["Content-Type"] == "application/octet-stream"
    assert dl.headers["Content-Disposition"].startswith("attachment")
    assert dl.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in dl.headers["Content-Security-Policy"]
    assert dl.headers["Cache-Control"] == "no-store"


def test_cookie_upload_needs_csrf(app, clerk):
    client = app.test_client()
    token = _login(client).json["csrf_token"]
    data = lambda: {"file": (io.BytesIO(b"%PDF"), "a.pdf")}  # noqa: E731
    assert client.post("/api/v1/files", data=data(), content_type="multipart/form-data").status_code == 403
    assert client.post("/api/v1/files", data=data(), content_type="multipart/form-data",
                       headers={"X-CSRF-Token": token}).status_code == 201


# --- two-factor login --------------------------------------------------------------------------

def test_totp_setup_enable_login_replay_and_disable(app, clerk, clock):
    client = app.test_client()
    csrf = {"X-CSRF-Token": _login(client).json["csrf_token"]}

    assert client.post("/api/v1/me/totp/setup", json={"password": "wrong"}, headers=csrf).status_code == 400
    setup = client.post("/api/v1/me/totp/setup", json={"password": PASSWORD}, headers=csrf)
    assert setup.status_code == 200
    secret = setup.json["secret"]
    assert setup.json["otpauth_uri"].startswith("otpauth://totp/kumiki:clerk?secret=" + secret)
    totp = pyotp.TOTP(secret)
    code = lambda seconds=0: totp.at(clock.unix() + seconds)  # noqa: E731
    # Not in force until a code proves the authenticator app has it.
    assert client.get("/api/v1/me").json["totp_enabled"] is False
    bad = client.post("/api/v1/me/totp/enable", json={"code": "000000" if code() != "000000" else "111111"},
                      headers=csrf)
    assert bad.status_code == 400 and bad.json["errors"]["code"] == ["確認コードが違います。"]
    on = client.post("/api/v1/me/totp/enable", json={"code": code()}, headers=csrf)
    assert on.status_code == 200 and on.json["totp_enabled"] is True
    me = client.get("/api/v1/me").json
    assert "totp_secret" not in me and secret not in str(me)
    assert client.post("/api/v1/me/totp/setup", json={"password": PASSWORD}, headers=csrf).status_code == 409
    client.post("/api/v1/auth/logout", headers=csrf)

    # Login now asks for the code.
    need = _login(client)
    assert need.status_code == 401 and need.json["code"] == "OTP_REQUIRED"
    assert "確認コード" in need.json["message"]
    assert client.get("/api/v1/me").status_code == 401
    wrong = _login(client, otp="123456" if code() != "123456" else "654321")
    assert wrong.status_code == 401 and wrong.json["code"] == "OTP_INVALID"
    # The enabling code's step is used up; the next step's code is accepted (±1 step).
    assert _login(client, otp=code()).json["code"] == "OTP_INVALID"
    next_code = code(30)
    ok = _login(client, otp=next_code)
    assert ok.status_code == 200
    csrf = {"X-CSRF-Token": ok.json["csrf_token"]}
    # Replay of a used code is refused.
    assert _login(app.test_client(), otp=next_code).json["code"] == "OTP_INVALID"

    # Disable: needs password and a fresh code.
    clock(seconds=60)
    later = code()
    assert client.post("/api/v1/me/totp/disable", json={"password": PASSWORD, "code": next_code},
                       headers=csrf).status_code == 400
    off = client.post("/api/v1/me/totp/disable", json={"password": PASSWORD, "code": later}, headers=csrf)
    assert off.status_code == 204
    assert client.get("/api/v1/me").json["totp_enabled"] is False
    assert _login(app.test_client()).status_code == 200


def test_wrong_codes_count_towards_the_lock(app, clerk, clock):
    from kumiki.model import User
    with app.extensions["kumiki"].Session() as s:
        user = s.query(User).filter_by(code="clerk").one()
        secret, _uri = auth.totp_begin(user)
        user.totp_enabled = True
        s.commit()
    good = pyotp.TOTP(secret).at(clock.unix())
    wrong = "000000" if good != "000000" else "111111"
    client = app.test_client()
    codes = [_login(client, otp=wrong).json["code"] for _ in range(5)]
    assert codes == ["OTP_INVALID"] * 4 + ["ACCOUNT_LOCKED"]
    assert _login(client, otp=good).status_code == 429
