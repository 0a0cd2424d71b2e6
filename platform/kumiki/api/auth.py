"""Login, logout, two-factor set-up, the current user, personal API tokens and (admin) user management.

Audit spots (wired by the lead): ``g.login_result`` (a :class:`kumiki.auth.LoginResult`) after
every login attempt, logout, password change and TOTP enable/disable.
"""
from __future__ import annotations

import math

from flask import g, request, session as cookie_session
from flask_login import login_user, logout_user
from flask_smorest import Blueprint
from marshmallow import Schema, fields
from sqlalchemy import select

from kumiki import auth as identity
from kumiki import i18n
from kumiki.api.audit import record_in_request
from kumiki.api.common import actor, csrf_token, db, require_admin, state
from kumiki.errors import Conflict, Detail, KumikiError, NotFound, Unauthorized, ValidationError
from kumiki.model import ApiToken, User
from kumiki.model._common import utcnow

PREFIX = ""
blp = Blueprint("auth", __name__, description="ログイン・ユーザー・APIトークン / login, users, API tokens")

i18n.register({
    "auth.locked": ("アカウントがロックされています。{minutes}分後に再度お試しください。",
                    "The account is locked. Try again in {minutes} minutes."),
    "auth.too_many_attempts": ("ログインの試行が多すぎます。{minutes}分後に再度お試しください。",
                               "Too many login attempts. Try again in {minutes} minutes."),
    "auth.otp_required": ("確認コード（認証アプリの6桁の数字）を入力してください。",
                          "Enter the verification code (6 digits from your authenticator app)."),
    "auth.otp_invalid": ("確認コードが違います。", "The verification code is wrong."),
    "auth.wrong_password": ("パスワードが違います。", "The password is wrong."),
    "auth.totp_already_enabled": ("2段階認証は既に有効です。設定し直すには、先に無効にしてください。",
                                  "Two-factor login is already on. Turn it off first to set it up again."),
    "auth.totp_not_set_up": ("2段階認証の設定を先に開始してください。", "Start the two-factor set-up first."),
    "auth.totp_not_enabled": ("2段階認証は有効になっていません。", "Two-factor login is not on."),
})


class TooManyAttempts(KumikiError):
    status = 429
    code = "TOO_MANY_ATTEMPTS"


class AccountLocked(KumikiError):
    status = 429
    code = "ACCOUNT_LOCKED"


class OtpRequired(Unauthorized):
    code = "OTP_REQUIRED"


class OtpInvalid(Unauthorized):
    code = "OTP_INVALID"


def _policy() -> identity.LoginPolicy:
    return identity.LoginPolicy.from_config(state().config)


def _raise_for(result: identity.LoginResult) -> None:
    """Map a failed login (or password re-entry) to its error; Retry-After goes out with 429s."""
    minutes = max(1, math.ceil(result.retry_after / 60))
    if result.outcome in ("ip_throttled", "locked"):
        g.retry_after = result.retry_after
        if result.outcome == "ip_throttled":
            raise TooManyAttempts("auth.too_many_attempts", minutes=minutes)
        raise AccountLocked("auth.locked", minutes=minutes)
    if result.outcome == "otp_required":
        raise OtpRequired("auth.otp_required")
    if result.outcome == "bad_otp":
        raise OtpInvalid("auth.otp_invalid")
    raise Unauthorized("auth.bad_credentials")


def _reauthenticate(password: str, path: str = "password", otp: str | None = None) -> User:
    """The acting user, after checking the password (and code) they typed again; wrong ones count."""
    session = db()
    user = session.merge(actor())
    result = identity.reauthenticate(session, user, password, otp, ip=request.remote_addr or "", policy=_policy())
    if not result.ok:
        session.commit()  # the failure must count
        if result.outcome == "locked":
            _raise_for(result)
        if result.outcome == "bad_otp":
            raise ValidationError([Detail("code", "auth.otp_invalid")])
        raise ValidationError([Detail(path, "auth.wrong_password")])
    return user


class LoginIn(Schema):
    login = fields.String(required=True, metadata={"description": "ログイン名 (user code)"})
    password = fields.String(required=True)
    otp = fields.String(load_default=None, allow_none=True,
                        metadata={"description": "確認コード (TOTP), when two-factor login is on"})


class UserOut(Schema):
    id = fields.Integer()
    code = fields.String()
    name = fields.String()
    email = fields.String(allow_none=True)
    is_admin = fields.Boolean()
    is_active = fields.Boolean()
    locale = fields.String()
    must_change_password = fields.Boolean(metadata={"description": "true until the one-time password is changed"})


class MeOut(UserOut):
    totp_enabled = fields.Boolean(metadata={"description": "two-factor login (TOTP) is on"})
    csrf_token = fields.String(allow_none=True, metadata={
        "description": "send as X-CSRF-Token with every cookie-authenticated write (null with API tokens)"})


class PasswordConfirmIn(Schema):
    password = fields.String(required=True)


class TotpSetupOut(Schema):
    secret = fields.String(metadata={"description": "base32; shown once"})
    otpauth_uri = fields.String(metadata={"description": "otpauth:// URI for a QR code; shown once"})


class TotpCodeIn(Schema):
    code = fields.String(required=True)


class TotpDisableIn(Schema):
    password = fields.String(required=True)
    code = fields.String(required=True)


class UserIn(Schema):
    code = fields.String(required=True)
    name = fields.String(required=True)
    email = fields.String(allow_none=True)
    password = fields.String(required=True)
    is_admin = fields.Boolean(load_default=False)


class PasswordIn(Schema):
    current = fields.String(required=True)
    new = fields.String(required=True)


class TokenIn(Schema):
    name = fields.String(required=True)


class TokenOut(Schema):
    id = fields.Integer()
    name = fields.String()
    prefix = fields.String()
    created_at = fields.DateTime()
    last_used_at = fields.DateTime(allow_none=True)
    revoked_at = fields.DateTime(allow_none=True)


class TokenCreated(TokenOut):
    token = fields.String(metadata={"description": "shown once; store it now"})


def _attrs(obj, schema: Schema) -> dict:
    """Raw attribute values for a response schema (which serialises them once)."""
    return {name: getattr(obj, name, None) for name in schema.fields}


def _me(user: User, with_csrf: bool) -> dict:
    out = _attrs(user, MeOut())
    out["csrf_token"] = csrf_token() if with_csrf else None
    return out


@blp.route("/auth/login", methods=["POST"], endpoint="login")
@blp.arguments(LoginIn)
@blp.response(200, MeOut)
def login(body):
    """Password login (plus `otp` when two-factor login is on); answers with `csrf_token`.

    401 OTP_REQUIRED asks for the code; 429 ACCOUNT_LOCKED / TOO_MANY_ATTEMPTS carry Retry-After.
    """
    session = db()
    result = identity.login(session, body["login"], body["password"], body.get("otp"),
                            ip=request.remote_addr or "", policy=_policy())
    g.login_result = result
    # The attempt and its audit entry commit together, whatever the outcome.
    record_in_request("login" if result.ok else "login_failed", user=result.user or result.login,
                      detail={"outcome": result.outcome})
    session.commit()
    if not result.ok:
        _raise_for(result)
    cookie_session.clear()  # a fresh session on every login (no fixation)
    login_user(result.user)
    cookie_session.permanent = True  # PERMANENT_SESSION_LIFETIME applies (idle timeout)
    return _me(result.user, with_csrf=True)


@blp.route("/auth/logout", methods=["POST"])
@blp.response(204)
def logout():
    if g.get("actor") is not None:
        record_in_request("logout")
        db().commit()
    logout_user()
    cookie_session.clear()
    return None


@blp.route("/me")
@blp.response(200, MeOut)
def me():
    return _me(actor(), with_csrf=g.get("auth_method") == "session")


@blp.route("/me/password", methods=["POST"])
@blp.arguments(PasswordIn)
@blp.response(204)
def change_password(body):
    session = db()
    user = _reauthenticate(body["current"], "current")
    identity.check_password_policy(body["new"], "new", login=user.code)
    user.password_hash = identity.hash_password(body["new"])
    user.must_change_password = False
    record_in_request("password.change")
    session.commit()
    return None


@blp.route("/me/totp/setup", methods=["POST"])
@blp.arguments(PasswordConfirmIn)
@blp.response(200, TotpSetupOut)
def totp_setup(body):
    """Start two-factor set-up: a new secret, shown once; it is in force after /me/totp/enable."""
    session = db()
    user = _reauthenticate(body["password"])
    if user.totp_enabled:
        raise Conflict("auth.totp_already_enabled")
    secret, uri = identity.totp_begin(user)
    session.commit()
    return {"secret": secret, "otpauth_uri": uri}


@blp.route("/me/totp/enable", methods=["POST"])
@blp.arguments(TotpCodeIn)
@blp.response(200, MeOut)
def totp_enable(body):
    """Turn two-factor login on with a code from the authenticator app (proves the set-up worked)."""
    session = db()
    user = session.merge(actor())
    if user.totp_enabled:
        raise Conflict("auth.totp_already_enabled")
    if not user.totp_secret:
        raise Conflict("auth.totp_not_set_up")
    if not identity.totp_enable(session, user, body["code"]):
        raise ValidationError([Detail("code", "auth.otp_invalid")])
    record_in_request("totp.enable")
    session.commit()
    return _me(user, with_csrf=g.get("auth_method") == "session")


@blp.route("/me/totp/disable", methods=["POST"])
@blp.arguments(TotpDisableIn)
@blp.response(204)
def totp_disable(body):
    session = db()
    if not actor().totp_enabled:
        raise Conflict("auth.totp_not_enabled")
    user = _reauthenticate(body["password"], otp=body["code"])
    identity.totp_disable(user)
    record_in_request("totp.disable")
    session.commit()
    return None


@blp.route("/me/tokens")
@blp.response(200, TokenOut(many=True))
def list_tokens():
    return db().scalars(select(ApiToken).where(ApiToken.user_id == actor().id).order_by(ApiToken.id)).all()


@blp.route("/me/tokens", methods=["POST"])
@blp.arguments(TokenIn)
@blp.response(201, TokenCreated)
def create_token(body):
    session = db()
    token, secret = identity.issue_token(session, actor(), body["name"])
    session.commit()
    out = _attrs(token, TokenOut())  # (dumping here too made the response serialise dates twice: 500)
    out["token"] = secret
    return out


@blp.route("/me/tokens/<int:token_id>", methods=["DELETE"])
@blp.response(204)
def revoke_token(token_id):
    session = db()
    token = session.get(ApiToken, token_id)
    if token is None or token.user_id != actor().id:
        raise NotFound("not_found")
    token.revoked_at = token.revoked_at or utcnow()
    session.commit()
    return None


@blp.route("/users")
@blp.response(200, UserOut(many=True))
def list_users():
    actor()
    return db().scalars(select(User).order_by(User.id)).all()


@blp.route("/users", methods=["POST"])
@blp.arguments(UserIn)
@blp.response(201, UserOut)
def create_user(body):
    require_admin()
    session = db()
    user = identity.create_user(session, body["code"], body["name"], body["password"],
                                is_admin=body.get("is_admin", False), email=body.get("email"))
    session.commit()
    return user
