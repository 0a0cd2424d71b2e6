"""Identity: argon2 passwords and their policy, login throttling and lockout, TOTP two-factor
login, personal API tokens.

Every request that reaches the API has an acting user (``flask.g.actor``); nothing is anonymous.
"""
from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from kumiki import i18n
from kumiki.errors import Detail, ValidationError
from kumiki.model import ApiToken, User
from kumiki.model._common import utcnow
from kumiki.model.security import LoginAttempt

# argon2-cffi's defaults (argon2id, RFC 9106 "low memory" profile: t=3, m=64 MiB, p=4) on purpose:
# the library raises them over time and ``authenticate`` re-hashes old hashes on the next login.
_hasher = PasswordHasher()
TOKEN_PREFIX = "kmk_"
MIN_PASSWORD_LENGTH = 10

# The most common passwords of 10+ characters (leaked-password lists, Japanese ones included).
# Short on purpose: the length rule already rules out the rest of the top of those lists.
COMMON_PASSWORDS = frozenset({
    "1234567890", "0123456789", "9876543210", "1234512345", "1122334455", "0987654321",
    "12345678910", "123456789a", "a123456789", "1q2w3e4r5t", "1qaz2wsx3edc", "qwertyuiop",
    "qwerty1234", "qwerty12345", "asdfghjkl;", "zxcvbnm123", "password12", "password123",
    "password1234", "password!!", "p@ssw0rd123", "passw0rd123", "iloveyou12", "abcdefghij",
    "abc1234567", "abcd123456", "administrator", "welcome123", "letmein123", "changeme123",
    "kintone1234", "kumiki12345", "qazwsxedcrfv",
})

i18n.register({
    "auth.bad_credentials": ("ログイン名またはパスワードが違います。", "Wrong login name or password."),
    "auth.password_too_short": ("パスワードは{min}文字以上にしてください。", "Use at least {min} characters."),
    "auth.user_exists": ("ログイン名「{code}」は既に使われています。", "The login name \"{code}\" is already taken."),
    "auth.bad_code": ("ログイン名には英数字と . _ - @ だけが使えます。", "Login names may use letters, digits and . _ - @ only."),
    "auth.token_invalid": ("APIトークンが無効です。", "The API token is not valid."),
    "auth.password_has_login": ("パスワードにログイン名を含めないでください。",
                                "The password must not contain the login name."),
    "auth.password_common": ("よく使われていて推測されやすいパスワードです。別のパスワードにしてください。",
                             "This password is too common and easy to guess; choose another one."),
})


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(user: User, password: str) -> bool:
    if not user.password_hash:
        return False
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
    return True


def check_password_policy(password: str, path: str = "password", *, login: str | None = None) -> None:
    """At least 10 characters, not the login name (nor containing it), not a well-known password."""
    password = password or ""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError([Detail(path, "auth.password_too_short", {"min": MIN_PASSWORD_LENGTH})])
    folded = password.casefold()
    code = (login or "").strip().casefold()
    # Containment only for names of 3+ characters: "a" or "k1" inside a password says nothing.
    if code and (folded == code or (len(code) >= 3 and code in folded)):
        raise ValidationError([Detail(path, "auth.password_has_login")])
    if folded in COMMON_PASSWORDS or len(set(folded)) <= 2:
        raise ValidationError([Detail(path, "auth.password_common")])


def generate_password() -> str:
    return secrets.token_urlsafe(12)


def create_user(session: Session, code: str, name: str, password: str | None = None, *,
                is_admin: bool = False, email: str | None = None, must_change_password: bool = False) -> User:
    code = (code or "").strip()
    if not code or len(code) > 128 or not all(c.isascii() and (c.isalnum() or c in "._-@") for c in code):
        raise ValidationError([Detail("code", "auth.bad_code")])
    if session.scalar(select(User.id).where(User.code == code)) is not None:
        raise ValidationError([Detail("code", "auth.user_exists", {"code": code})])
    if password is not None:
        check_password_policy(password, login=code)
    user = User(code=code, name=name or code, email=email, is_admin=is_admin,
                password_hash=hash_password(password) if password else None,
                must_change_password=must_change_password)
    session.add(user)
    session.flush()
    return user


def authenticate(session: Session, code: str, password: str) -> User | None:
    user = session.scalar(select(User).where(User.code == code))
    if user is None or not user.is_active:
        _hasher.hash(password or "x")  # equalise timing with the existing-user path
        return None
    if user.password_hash and _hasher.check_needs_rehash(user.password_hash) and verify_password(user, password):
        user.password_hash = hash_password(password)
        return user
    return user if verify_password(user, password) else None


# --- login throttling and lockout ------------------------------------------------------------
#
# Every login attempt is a row in login_attempts (shared by all workers). A login name is locked
# for lock_minutes once max_failures wrong passwords/codes fall within window_minutes; the lock
# depends on the name as typed, not on whether such a user exists, so lock messages reveal nothing
# about which names exist. A client address with ip_max_failures failures within the window is
# refused outright (429), which stops spraying many names from one place.

_FAILURES = ("bad_password", "bad_otp")               # count towards a name's lock
_RESETS = ("ok", "unlock")                            # end a run of failures
_IP_FAILURES = ("bad_password", "bad_otp", "locked")  # count towards an address's throttle
_KEEP = timedelta(days=7)


def clock() -> datetime:
    """Now, as naive UTC. Tests replace it to move time."""
    return utcnow()


@dataclass(frozen=True)
class LoginPolicy:
    max_failures: int = 5
    lock_minutes: int = 15
    window_minutes: int = 15
    ip_max_failures: int = 20

    @classmethod
    def from_config(cls, config) -> "LoginPolicy":
        return cls(config.login_max_failures, config.login_lock_minutes, config.login_window_minutes,
                   config.login_ip_max_failures)


@dataclass
class LoginResult:
    """What a login attempt came to; the API maps it to a response and the audit log records it."""

    outcome: str                 # ok | bad_password | bad_otp | otp_required | locked | ip_throttled
    login: str
    ip: str
    user: User | None = None     # set once the password was right
    retry_after: int = 0         # seconds, for locked and ip_throttled

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


def _login_key(login: str) -> str:
    return (login or "").strip().lower()[:128]


def _record(session: Session, key: str, ip: str, now: datetime, reason: str) -> None:
    session.add(LoginAttempt(login=key, ip=ip, at=now, success=reason in _RESETS, reason=reason))
    session.flush()


def _seconds(delta: timedelta) -> int:
    return max(1, math.ceil(delta.total_seconds()))


def ip_retry_after(session: Session, ip: str, policy: LoginPolicy, now: datetime | None = None) -> int:
    """Seconds until this address may try again (0: it may try now)."""
    now = now or clock()
    window = timedelta(minutes=policy.window_minutes)
    times = session.scalars(
        select(LoginAttempt.at).where(LoginAttempt.ip == ip, LoginAttempt.reason.in_(_IP_FAILURES),
                                      LoginAttempt.at > now - window)
        .order_by(LoginAttempt.at.desc()).limit(policy.ip_max_failures)).all()
    if len(times) < policy.ip_max_failures:
        return 0
    return _seconds(times[-1] + window - now)


def locked_until(session: Session, login: str, policy: LoginPolicy, now: datetime | None = None) -> datetime | None:
    """When the lock on this login name ends, or None when it is not locked."""
    now = now or clock()
    window = timedelta(minutes=policy.window_minutes)
    lock = timedelta(minutes=policy.lock_minutes)
    rows = session.execute(
        select(LoginAttempt.at, LoginAttempt.reason)
        .where(LoginAttempt.login == _login_key(login), LoginAttempt.reason.in_(_FAILURES + _RESETS),
               LoginAttempt.at > now - window - lock)
        .order_by(LoginAttempt.at, LoginAttempt.id)).all()
    failures: list[datetime] = []
    until: datetime | None = None
    for at, reason in rows:  # replay the recent history: a handful of rows at most
        if reason in _RESETS:
            failures, until = [], None
        elif until is None or at >= until:
            failures = [t for t in failures if t > at - window] + [at]
            if len(failures) >= policy.max_failures:
                failures, until = [], at + lock
    return until if until is not None and until > now else None


def unlock(session: Session, login: str, now: datetime | None = None) -> None:
    """Lift a lock on a login name (an administrator's action)."""
    _record(session, _login_key(login), "-", now or clock(), "unlock")


def login(session: Session, login: str, password: str, otp: str | None = None, *, ip: str,
          policy: LoginPolicy = LoginPolicy(), now: datetime | None = None) -> LoginResult:
    """Check a login (password, then the TOTP code when the user has two-factor login on).

    Records the attempt; the caller commits whatever the outcome, so failures count.
    """
    now = now or clock()
    key, ip = _login_key(login), (ip or "-")[:64]
    session.execute(delete(LoginAttempt).where(LoginAttempt.at < now - _KEEP))
    wait = ip_retry_after(session, ip, policy, now)
    if wait:  # not recorded: under attack the table stays bounded
        return LoginResult("ip_throttled", key, ip, retry_after=wait)
    until = locked_until(session, key, policy, now)
    if until is not None:  # the password is not even checked while locked
        _record(session, key, ip, now, "locked")
        return LoginResult("locked", key, ip, retry_after=_seconds(until - now))
    user = authenticate(session, login, password)
    if user is not None and user.totp_enabled:
        if not (otp or "").strip():
            _record(session, key, ip, now, "otp_required")  # the normal first step: not a failure
            return LoginResult("otp_required", key, ip, user=user)
        if not verify_totp(session, user, otp, now):
            return _failed(session, key, ip, now, "bad_otp", policy, user)
    if user is None:
        return _failed(session, key, ip, now, "bad_password", policy)
    _record(session, key, ip, now, "ok")
    user.last_login_at = now
    return LoginResult("ok", key, ip, user=user)


def reauthenticate(session: Session, user: User, password: str, otp: str | None = None, *, ip: str,
                   policy: LoginPolicy = LoginPolicy(), now: datetime | None = None) -> LoginResult:
    """Password (and, when given, TOTP code) re-entry for sensitive changes.

    Wrong entries count towards the same lock as logins, so a stolen session cannot guess on.
    """
    now = now or clock()
    key, ip = _login_key(user.code), (ip or "-")[:64]
    until = locked_until(session, key, policy, now)
    if until is not None:
        return LoginResult("locked", key, ip, user=user, retry_after=_seconds(until - now))
    if not verify_password(user, password):
        return _failed(session, key, ip, now, "bad_password", policy, user)
    if otp is not None and not verify_totp(session, user, otp, now):
        return _failed(session, key, ip, now, "bad_otp", policy, user)
    return LoginResult("ok", key, ip, user=user)


def _failed(session, key, ip, now, reason, policy, user=None) -> LoginResult:
    _record(session, key, ip, now, reason)
    until = locked_until(session, key, policy, now)
    if until is not None:  # this failure locked the name: say so at once
        return LoginResult("locked", key, ip, user=user, retry_after=_seconds(until - now))
    return LoginResult(reason, key, ip, user=user)


# --- TOTP two-factor login (RFC 6238: 6 digits, 30-second steps) -----------------------------

TOTP_ISSUER = "kumiki"


def _unix(now: datetime) -> float:
    return now.replace(tzinfo=timezone.utc).timestamp()


def totp_begin(user: User, issuer: str = TOTP_ISSUER) -> tuple[str, str]:
    """A new secret (not yet in force) and its otpauth:// URI for an authenticator app."""
    secret = pyotp.random_base32()
    user.totp_secret, user.totp_enabled, user.totp_last_step = secret, False, None
    return secret, pyotp.TOTP(secret).provisioning_uri(name=user.code, issuer_name=issuer)


def verify_totp(session: Session, user: User, code: str | None, now: datetime | None = None) -> bool:
    """Accept the code of the current step or one step either side, each step once only."""
    code = "".join((code or "").split())
    if not user.totp_secret or len(code) != 6 or not code.isdigit():
        return False
    totp = pyotp.TOTP(user.totp_secret)
    current = int(_unix(now or clock()) // totp.interval)
    for step in (current - 1, current, current + 1):
        if user.totp_last_step is not None and step <= user.totp_last_step:
            continue  # used already (replay), or older than a used one
        if hmac.compare_digest(totp.generate_otp(step), code):
            # Conditional update: of two concurrent uses of one code, only one wins.
            done = session.execute(
                update(User).where(User.id == user.id, or_(User.totp_last_step.is_(None), User.totp_last_step < step))
                .values(totp_last_step=step).execution_options(synchronize_session=False))
            if done.rowcount != 1:
                return False
            set_committed_value(user, "totp_last_step", step)
            return True
    return False


def totp_enable(session: Session, user: User, code: str, now: datetime | None = None) -> bool:
    if not user.totp_secret or not verify_totp(session, user, code, now):
        return False
    user.totp_enabled = True
    return True


def totp_disable(user: User) -> None:
    user.totp_secret, user.totp_enabled, user.totp_last_step = None, False, None


def _token_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def issue_token(session: Session, user: User, name: str) -> tuple[ApiToken, str]:
    """Create a token; the plaintext is returned once and never stored."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user_id=user.id, name=name or "API", prefix=secret[:12], token_hash=_token_digest(secret))
    session.add(token)
    session.flush()
    return token, secret


def user_for_token(session: Session, secret: str) -> User | None:
    if not secret or not secret.startswith(TOKEN_PREFIX):
        return None
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == _token_digest(secret)))
    if token is None or token.revoked_at is not None:
        return None
    user = session.get(User, token.user_id)
    if user is None or not user.is_active:
        return None
    now = utcnow()
    # Record use at most once a minute, in its own short transaction: a write on every request
    # would serialise reads on SQLite, and bookkeeping must never fail the request itself.
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        _touch_token(session, token.id, now)
    return user


def _touch_token(session: Session, token_id: int, now) -> None:
    from sqlalchemy import update
    from sqlalchemy.exc import OperationalError

    from kumiki.db import _WRITE_INTENT, write_intent
    stmt = update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=now)
    if _WRITE_INTENT.get():
        session.execute(stmt)  # already a write transaction: no second writer to wait for
        return
    engine = session.get_bind()
    try:
        with write_intent(), engine.connect() as conn:
            raw = conn.connection.dbapi_connection if conn.dialect.name == "sqlite" else None
            if raw is not None:
                raw.execute("PRAGMA busy_timeout=50")  # never stall a read for bookkeeping
            try:
                with conn.begin():
                    conn.execute(stmt)
            finally:
                if raw is not None:
                    raw.execute("PRAGMA busy_timeout=30000")
    except OperationalError:
        pass  # busy: recorded next time
