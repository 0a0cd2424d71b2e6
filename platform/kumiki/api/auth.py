"""Login, logout, the current user, personal API tokens and (admin) user management."""
from __future__ import annotations

from flask_login import login_user, logout_user
from flask_smorest import Blueprint
from marshmallow import Schema, fields
from sqlalchemy import select

from kumiki import auth as identity
from kumiki.api.common import actor, db, require_admin
from kumiki.errors import Detail, NotFound, Unauthorized, ValidationError
from kumiki.model import ApiToken, User
from kumiki.model._common import utcnow

PREFIX = ""
blp = Blueprint("auth", __name__, description="ログイン・ユーザー・APIトークン / login, users, API tokens")


class LoginIn(Schema):
    login = fields.String(required=True, metadata={"description": "ログイン名 (user code)"})
    password = fields.String(required=True)


class UserOut(Schema):
    id = fields.Integer()
    code = fields.String()
    name = fields.String()
    email = fields.String(allow_none=True)
    is_admin = fields.Boolean()
    is_active = fields.Boolean()
    locale = fields.String()
    must_change_password = fields.Boolean(metadata={"description": "true until the one-time password is changed"})


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


@blp.route("/auth/login", methods=["POST"], endpoint="login")
@blp.arguments(LoginIn)
@blp.response(200, UserOut)
def login(body):
    session = db()
    user = identity.authenticate(session, body["login"], body["password"])
    if user is None:
        raise Unauthorized("auth.bad_credentials")
    login_user(user)
    session.commit()
    return user


@blp.route("/auth/logout", methods=["POST"])
@blp.response(204)
def logout():
    logout_user()
    return None


@blp.route("/me")
@blp.response(200, UserOut)
def me():
    return actor()


@blp.route("/me/password", methods=["POST"])
@blp.arguments(PasswordIn)
@blp.response(204)
def change_password(body):
    session = db()
    user = actor()
    if not identity.verify_password(user, body["current"]):
        raise ValidationError([Detail("current", "auth.bad_credentials")])
    identity.check_password_policy(body["new"], "new")
    user = session.merge(user)
    user.password_hash = identity.hash_password(body["new"])
    user.must_change_password = False
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
    out = TokenOut().dump(token)
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
