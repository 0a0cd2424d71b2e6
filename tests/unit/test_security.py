"""Security basics without HTTP: password policy, lockout and throttling, TOTP, rich text, uploads."""
from __future__ import annotations

from datetime import timedelta, timezone

import pyotp
import pytest

from kumiki import auth, i18n
from kumiki.api.files import _clean_name, is_executable_content, safe_content_type
from kumiki.config import Config
from kumiki.errors import ValidationError
from kumiki.fields.rich_text import sanitise
from kumiki.model._common import utcnow
from tests.conftest import make_user


def _policy_message(password, login=None, locale="ja"):
    with pytest.raises(ValidationError) as info:
        auth.check_password_policy(password, login=login)
    d = info.value.details[0]
    return i18n.translate(d.key, locale, **d.params)


# --- password policy ---------------------------------------------------------------------------

def test_password_policy_messages_in_japanese():
    assert _policy_message("short") == "パスワードは10文字以上にしてください。"
    assert "ログイン名" in _policy_message("tanaka-taro", login="tanaka-taro")
    assert "ログイン名" in _policy_message("my-TANAKA-2025", login="tanaka")
    assert "よく使われて" in _policy_message("Password123")
    assert "よく使われて" in _policy_message("1234567890")
    assert "よく使われて" in _policy_message("qwertyuiop")
    assert "よく使われて" in _policy_message("aaaaaaaaaaaa")
    assert _policy_message("1234567890", locale="en").startswith("This password is too common")


def test_password_policy_accepts_ordinary_passwords():
    auth.check_password_policy("correct horse battery", login="admin")
    auth.check_password_policy("x-k1-tanabata", login="k1")  # a 2-letter name inside is no signal


def test_argon2id_with_library_defaults():
    h = auth.hash_password("correct horse battery")
    assert h.startswith("$argon2id$")


def test_create_user_applies_policy_with_login(app):
    from kumiki.extensions import Kumiki
    ext: Kumiki = app.extensions["kumiki"]
    with ext.Session() as session, pytest.raises(ValidationError) as info:
        auth.create_user(session, "suzuki", "鈴木", "suzuki-2024-x")
    assert info.value.details[0].key == "auth.password_has_login"


# --- lockout and throttling --------------------------------------------------------------------

POLICY = auth.LoginPolicy(max_failures=5, lock_minutes=15, window_minutes=15, ip_max_failures=20)


@pytest.fixture
def session(any_app):
    """A database session on every configured backend, with the user "clerk"."""
    make_user(any_app, "clerk", is_admin=False, password="password-1234")
    s = any_app.extensions["kumiki"].Session()
    yield s
    s.close()


def _try(session, password, now, login="clerk", ip="10.0.0.1", otp=None, policy=POLICY):
    result = auth.login(session, login, password, otp, ip=ip, policy=policy, now=now)
    session.commit()
    return result


def test_lock_after_five_failures_and_unlock_after_the_period(session):
    t = utcnow()
    outcomes = [_try(session, "wrong", t + timedelta(seconds=i)).outcome for i in range(5)]
    assert outcomes == ["bad_password"] * 4 + ["locked"]
    # Locked: even the right password is refused, without being checked.
    locked = _try(session, "password-1234", t + timedelta(minutes=5))
    assert locked.outcome == "locked" and locked.user is None
    assert locked.retry_after == 10 * 60 + 4  # 15 minutes from the fifth failure (t + 4 s)
    # Attempts during the lock do not extend it.
    assert _try(session, "password-1234", t + timedelta(minutes=15, seconds=5)).ok


def test_failures_spread_beyond_the_window_do_not_lock(session):
    t = utcnow()
    for i in range(8):
        assert _try(session, "wrong", t + timedelta(minutes=4 * i)).outcome == "bad_password"


def test_success_resets_the_count(session):
    t = utcnow()
    for i in range(4):
        _try(session, "wrong", t + timedelta(seconds=i))
    assert _try(session, "password-1234", t + timedelta(seconds=10)).ok
    for i in range(4):
        assert _try(session, "wrong", t + timedelta(seconds=20 + i)).outcome == "bad_password"


def test_unknown_login_locks_like_a_real_one(session):
    """The lock message must not tell which login names exist."""
    t = utcnow()
    outcomes = [_try(session, "wrong", t + timedelta(seconds=i), login="nobody").outcome for i in range(5)]
    assert outcomes == ["bad_password"] * 4 + ["locked"]


def test_admin_unlock(session):
    t = utcnow()
    for i in range(5):
        _try(session, "wrong", t + timedelta(seconds=i))
    auth.unlock(session, "clerk", now=t + timedelta(seconds=10))
    assert _try(session, "password-1234", t + timedelta(seconds=11)).ok


def test_ip_throttle_across_login_names(session):
    t = utcnow()
    policy = auth.LoginPolicy(ip_max_failures=3)
    for i, name in enumerate(["a", "b", "c"]):
        assert _try(session, "x", t + timedelta(seconds=i), login=name, policy=policy).outcome == "bad_password"
    throttled = _try(session, "password-1234", t + timedelta(seconds=5), policy=policy)
    assert throttled.outcome == "ip_throttled" and 0 < throttled.retry_after <= 15 * 60
    assert _try(session, "password-1234", t + timedelta(seconds=5), ip="10.0.0.2", policy=policy).ok
    assert _try(session, "password-1234", t + timedelta(minutes=16), policy=policy).ok


def test_old_attempts_are_pruned(session):
    from sqlalchemy import func, select
    from kumiki.model.security import LoginAttempt
    t = utcnow()
    _try(session, "wrong", t - timedelta(days=30))
    _try(session, "password-1234", t)
    assert session.scalar(select(func.count()).select_from(LoginAttempt)) == 1


# --- TOTP --------------------------------------------------------------------------------------

def test_totp_window_and_replay(session):
    from kumiki.model import User
    user = session.query(User).filter_by(code="clerk").one()
    secret, uri = auth.totp_begin(user)
    assert uri.startswith("otpauth://totp/") and "issuer=kumiki" in uri
    totp = pyotp.TOTP(secret)
    at = utcnow()
    now = at.replace(tzinfo=timezone.utc).timestamp()

    def check(code):
        return auth.verify_totp(session, user, code, now=at)
    assert not check("000000x")
    assert check(totp.at(now - 30))      # one step back: clock drift
    assert check(totp.at(now))
    assert not check(totp.at(now))       # replay of the same step
    assert not check(totp.at(now - 30))  # an older step after a newer one
    assert not check(totp.at(now + 90))  # beyond the window
    assert check(totp.at(now + 30))
    session.commit()


# --- rich text ---------------------------------------------------------------------------------

@pytest.mark.parametrize("html, kept, dropped", [
    ("<script>alert(1)</script><b>x</b>", "<b>x</b>", "script"),
    ("<style>p{color:red}</style><p>t</p>", "<p>t</p>", "style>"),
    ('<p onclick="x()" onmouseover="y()">t</p>', "<p>t</p>", "on"),
    ('<a href="javascript:alert(1)">a</a>', ">a</a>", "javascript"),
    ('<a href="JaVaScRiPt:alert(1)">a</a>', ">a</a>", "javascript"),
    ('<a href="&#106;avascript:alert(1)">a</a>', ">a</a>", "avascript"),
    ('<a href="data:text/html,x">d</a>', ">d</a>", "data:"),
    ('<img src="data:image/svg+xml;base64,PHN2Zz4=">', "<img>", "data:"),
    ('<img src="x" onerror="alert(1)">', "<img", "onerror"),
    ('<p style="background-image:url(javascript:x);color:red">c</p>', "color:red", "javascript"),
    ('<iframe src="https://evil.example"></iframe>ok', "ok", "iframe"),
    ("<svg><script>x</script></svg>ok", "ok", "svg"),
])
def test_rich_text_is_sanitised(html, kept, dropped):
    out = sanitise(html)
    assert kept in out and dropped not in out.lower()


def test_rich_text_keeps_ordinary_links():
    assert 'href="https://example.jp"' in sanitise('<a href="https://example.jp">市のサイト</a>')


# --- uploads -----------------------------------------------------------------------------------

@pytest.mark.parametrize("head", [
    b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff",
    b"\x7fELF\x02\x01\x01",
    b"#!/bin/sh\nrm -rf /",
    b"  <!DOCTYPE html><html><body>",
    b"\xef\xbb\xbf<html><script>",
    "<html>".encode("utf-16-le").join([b"\xff\xfe", b""]),
    b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"><script/>',
    b"<SCRIPT>alert(1)</SCRIPT>",
])
def test_executable_content_is_recognised(head):
    assert is_executable_content(head)


@pytest.mark.parametrize("head", [
    b"%PDF-1.7", b"PK\x03\x04", b"\x89PNG\r\n", b"\xd0\xcf\x11\xe0",  # pdf, zip/docx, png, xls
    "氏名,年齢\n山田,30\n".encode("cp932"), b"MZ-number,name\n1,x\n",
    b'<?xml version="1.0" encoding="UTF-8"?><Data/>',
])
def test_ordinary_content_passes(head):
    assert not is_executable_content(head)


def test_served_types_and_names():
    assert safe_content_type("text/html") == "application/octet-stream"
    assert safe_content_type("image/svg+xml") == "application/octet-stream"
    assert safe_content_type("application/pdf") == "application/pdf"
    assert _clean_name("C:\\Users\\x\\evil.exe. ") == "evil.exe"
    assert _clean_name("../../etc/passwd") == "passwd"


# --- settings ----------------------------------------------------------------------------------

def test_security_settings_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("KUMIKI_BASE_URL", "https://kumiki.city.example.lg.jp/")
    monkeypatch.setenv("KUMIKI_MAX_UPLOAD_MB", "5")
    monkeypatch.setenv("KUMIKI_UPLOAD_BLOCKED_EXTENSIONS", ".exe, JS")
    monkeypatch.setenv("KUMIKI_LOGIN_MAX_FAILURES", "3")
    cfg = Config.from_env(instance_dir=tmp_path / "i")
    assert cfg.secure_cookies is True and cfg.base_url == "https://kumiki.city.example.lg.jp"
    assert cfg.max_upload_bytes == 5 * 1024 * 1024
    assert cfg.upload_blocked_extensions == ("exe", "js")
    assert cfg.login_max_failures == 3 and cfg.login_lock_minutes == 15
    monkeypatch.setenv("KUMIKI_SECURE_COOKIES", "off")
    assert Config.from_env(instance_dir=tmp_path / "j").secure_cookies is False


def test_plain_http_default_is_not_secure(tmp_path, monkeypatch):
    monkeypatch.delenv("KUMIKI_BASE_URL", raising=False)
    monkeypatch.delenv("KUMIKI_SECURE_COOKIES", raising=False)
    assert Config.from_env(instance_dir=tmp_path / "i").secure_cookies is False


def test_cli_unlock_lifts_a_lock(tmp_path):
    from click.testing import CliRunner
    from sqlalchemy import select

    from kumiki import audit, auth
    from kumiki.cli import main
    from kumiki.config import Config
    from kumiki.db import make_engine, make_sessionmaker
    from kumiki.migrate import upgrade

    config = Config.from_env(instance_dir=tmp_path / "inst", secret_key="s")
    engine = make_engine(config.database_url)
    upgrade(engine)
    Session = make_sessionmaker(engine)
    with Session() as s:
        auth.create_user(s, "clerk", "Clerk", "password-1234")
        s.commit()
        for _ in range(5):
            auth.login(s, "clerk", "wrong-password-x", ip="10.0.0.1")
        s.commit()
        assert auth.login(s, "clerk", "password-1234", ip="10.0.0.1").outcome == "locked"
        s.commit()
    result = CliRunner().invoke(main, ["--instance-dir", str(tmp_path / "inst"), "user", "unlock", "clerk"],
                                env={"KUMIKI_SECRET_KEY": "s"})
    assert result.exit_code == 0, result.output
    with Session() as s:
        assert auth.login(s, "clerk", "password-1234", ip="10.0.0.1").outcome == "ok"
        assert audit.query(s, action="user.unlock")[1] == 1
    engine.dispose()
