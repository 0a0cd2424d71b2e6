"""App-scoped API tokens: each bound to one app, with its own scopes, stored hashed, revocable.

A request made with an app token acts as nobody in particular: its app rights are exactly the
token's scopes (on that app only), and record and field rules apply to it as to someone who
matches only the EVERYONE entity. Records it writes show 作成者/更新者 "apptoken:<id>".
"""
from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from kumiki import i18n
from kumiki.access import AppRights
from kumiki.errors import Detail, NotFound, ValidationError
from kumiki.model import AppToken
from kumiki.model._common import utcnow

PREFIX = "kma_"
SCOPES = ("view", "add", "edit", "delete")

i18n.register({
    "apptoken.bad_scopes": ("scopes には view / add / edit / delete から1つ以上を指定してください。",
                            "scopes must list one or more of view, add, edit, delete."),
    "apptoken.not_found": ("APIトークンが見つかりません。", "API token not found."),
    "apptoken.wrong_app": ("このAPIトークンは別のアプリ用です。", "This API token belongs to another app."),
})


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def issue(session: Session, app_id: int, name: str, scopes: list[str], user_id: int | None) -> tuple[AppToken, str]:
    if not scopes or not isinstance(scopes, list) or any(s not in SCOPES for s in scopes):
        raise ValidationError([Detail("scopes", "apptoken.bad_scopes")])
    secret = PREFIX + secrets.token_urlsafe(32)
    token = AppToken(app_id=app_id, name=(name or "API")[:255], prefix=secret[:12], token_hash=_digest(secret),
                     scopes=sorted(set(scopes), key=SCOPES.index), created_by=user_id)
    session.add(token)
    session.flush()
    return token, secret


def find(session: Session, secret: str) -> AppToken | None:
    if not secret or not secret.startswith(PREFIX):
        return None
    token = session.scalar(select(AppToken).where(AppToken.token_hash == _digest(secret)))
    if token is None or token.revoked_at is not None:
        return None
    return token


def revoke(session: Session, app_id: int, token_id: int) -> None:
    token = session.get(AppToken, token_id)
    if token is None or token.app_id != app_id:
        raise NotFound("apptoken.not_found")
    token.revoked_at = token.revoked_at or utcnow()


def rights(token: AppToken) -> AppRights:
    s = set(token.scopes or [])
    return AppRights(view="view" in s, add="add" in s, edit="edit" in s, delete="delete" in s)


def actor_code(token: AppToken) -> str:
    return f"apptoken:{token.id}"
