"""Identity minimum: argon2 passwords, session login, personal API tokens.

Every request that reaches the API has an acting user (``flask.g.actor``); nothing is anonymous.
"""
from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from kumiki import i18n
from kumiki.errors import Detail, ValidationError
from kumiki.model import ApiToken, User
from kumiki.model._common import utcnow

_hasher = PasswordHasher()
TOKEN_PREFIX = "kmk_"
MIN_PASSWORD_LENGTH = 10

i18n.register({
    "auth.bad_credentials": ("ログイン名またはパスワードが違います。", "Wrong login name or password."),
    "auth.password_too_short": ("パスワードは{min}文字以上にしてください。", "Use at least {min} characters."),
    "auth.user_exists": ("ログイン名「{code}」は既に使われています。", "The login name \"{code}\" is already taken."),
    "auth.bad_code": ("ログイン名には英数字と . _ - @ だけが使えます。", "Login names may use letters, digits and . _ - @ only."),
    "auth.token_invalid": ("APIトークンが無効です。", "The API token is not valid."),
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


def check_password_policy(password: str, path: str = "password") -> None:
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise ValidationError([Detail(path, "auth.password_too_short", {"min": MIN_PASSWORD_LENGTH})])


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
        check_password_policy(password)
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
