"""Shared API plumbing: the per-request DB session, the acting user, JSON errors in the user's language."""
from __future__ import annotations

import hmac
import secrets
from datetime import timedelta

from flask import Flask, current_app, g, jsonify, request, session as cookie_session
from flask_login import current_user
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException

from kumiki import i18n
from kumiki.errors import (Detail, Forbidden, KumikiError, Unauthorized,
                           ValidationError)
from kumiki.extensions import state
from kumiki.model import User

PUBLIC_ENDPOINT_SUFFIXES = ("auth.login", "openapi_json", "health")
CSRF_EXEMPT_SUFFIXES = ("auth.login",)   # no session yet; SameSite=Lax and JSON-only bodies guard it
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
CSRF_HEADER = "X-CSRF-Token"

# Content-Security-Policy. Pages: only our own scripts and styles, no 'unsafe-inline' for either
# (React sets style props through the CSSOM, which CSP does not restrict; Vite emits files), no
# plugins, no framing. API responses are data, never documents: they may load nothing at all.
CSP_PAGES = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
             "font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'self'; "
             "form-action 'self'; frame-ancestors 'none'")
CSP_API = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}

i18n.register({"csrf.failed": ("セッションの確認に失敗しました（CSRFトークンがないか正しくありません）。画面を再読み込みしてください。",
                               "Session check failed (missing or wrong CSRF token). Reload the page.")})


class CsrfFailed(KumikiError):
    status = 403
    code = "CSRF_FAILED"


def db() -> Session:
    """The request's session; committed by the teardown when the request succeeded."""
    if "db" not in g:
        g.db = state().Session()
    return g.db


def locale() -> str:
    if "locale" not in g:
        g.locale = i18n.negotiate(request.headers.get("Accept-Language"))
    return g.locale


def actor() -> User:
    user = g.get("actor")
    if user is None:
        raise Unauthorized("unauthorized")
    return user


def require_admin() -> User:
    user = actor()
    if not user.is_admin:
        raise Forbidden("forbidden")
    return user


def json_body() -> dict:
    data = request.get_json(silent=True)
    if data is None:
        raw = request.get_data(cache=True)
        if raw:
            try:
                import json
                json.loads(raw)
            except ValueError as exc:
                raise KumikiError("invalid_json", detail=str(exc)) from None
        raise KumikiError("invalid_json", detail="body is empty or not an object")
    if not isinstance(data, dict):
        raise KumikiError("invalid_json", detail="top level must be an object")
    return data


def error_response(exc: KumikiError):
    loc = locale()
    errors: dict[str, list[str]] = {}
    for d in exc.details:
        errors.setdefault(d.path or "", []).append(i18n.translate(d.key, loc, **d.params))
    body = {"code": exc.code, "message": i18n.translate(exc.key, loc, **exc.params), "errors": errors}
    return jsonify(body), exc.status


def csrf_token() -> str:
    """The session's CSRF token, created on first use (login issues a fresh session)."""
    token = cookie_session.get("csrf")
    if not token:
        token = cookie_session["csrf"] = secrets.token_urlsafe(32)
    return token


def _check_csrf() -> None:
    """Cookie-authenticated writes must echo the session's token in X-CSRF-Token.

    Bearer-token requests carry no ambient credentials and are exempt.
    """
    if g.get("auth_method") != "session" or request.method in SAFE_METHODS:
        return
    if (request.endpoint or "").endswith(CSRF_EXEMPT_SUFFIXES):
        return
    expected = cookie_session.get("csrf") or ""
    sent = request.headers.get(CSRF_HEADER) or ""
    if not expected or not hmac.compare_digest(expected.encode(), sent.encode()):
        raise CsrfFailed("csrf.failed")


def _configure_sessions(app: Flask, config) -> bool:
    """Session cookie settings from Config; returns whether the site is served over https."""
    secure = config.secure_cookies if config.secure_cookies is not None else \
        config.base_url.lower().startswith("https://")
    app.config.update(
        SESSION_COOKIE_SECURE=secure,
        # __Host-: the browser refuses it unless Secure, Path=/ and no Domain (no subdomain tossing).
        SESSION_COOKIE_NAME="__Host-kumiki_session" if secure else "kumiki_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(minutes=config.session_idle_minutes),
        SESSION_REFRESH_EACH_REQUEST=True,   # the lifetime is an idle timeout
    )
    app.config.update(config.extra)  # tests may still override
    if config.trusted_proxies:
        from werkzeug.middleware.proxy_fix import ProxyFix
        n = config.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n)
    return secure


def _security_headers(response, secure: bool):
    api = request.path.startswith("/api/")
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers.setdefault("Content-Security-Policy", CSP_API if api else CSP_PAGES)
    if secure:
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    if api:  # personal data must not sit in any cache
        response.headers["Cache-Control"] = "no-store"
    retry_after = g.get("retry_after")
    if retry_after:
        response.headers["Retry-After"] = str(retry_after)
    return response


def _authenticate_request() -> None:
    from kumiki.auth import user_for_token

    header = request.headers.get("Authorization", "")
    secret = None
    if header.lower().startswith("bearer "):
        secret = header[7:].strip()
    app_secret = request.headers.get("X-Kumiki-App-Token") or (
        secret if secret and secret.startswith("kma_") else None)
    if app_secret:
        _authenticate_app_token(app_secret)
        return
    secret = secret or request.headers.get("X-Kumiki-API-Token")
    if secret:
        user = user_for_token(db(), secret)
        if user is None:
            raise Unauthorized("auth.token_invalid")
        g.actor = user
        g.auth_method = "token"
        return
    if current_user and getattr(current_user, "is_authenticated", False):
        g.actor = current_user
        g.auth_method = "session"


def _authenticate_app_token(secret: str) -> None:
    """An app token works only on its own app's records (kumiki.access.tokens)."""
    from kumiki.access import tokens

    token = tokens.find(db(), secret)
    if token is None:
        raise Unauthorized("auth.token_invalid")
    app_id = (request.view_args or {}).get("app_id")
    if app_id is not None and app_id != token.app_id:
        raise Forbidden("apptoken.wrong_app")
    g.app_token = token
    g.auth_method = f"apptoken:{token.id}"


_HTTP_KEYS = {401: ("UNAUTHORIZED", "unauthorized"), 403: ("FORBIDDEN", "forbidden"),
              404: ("NOT_FOUND", "not_found"), 405: ("METHOD_NOT_ALLOWED", "method_not_allowed"),
              413: ("PAYLOAD_TOO_LARGE", "payload_too_large")}


def http_error(exc: HTTPException):
    status = exc.code or 500
    if status in (400, 422):
        # webargs/marshmallow validation: {"json": {"field": ["msg"]}} -> located details.
        messages = (getattr(exc, "data", None) or {}).get("messages") or {}
        details = []
        for _loc, fields in messages.items():
            _flatten(fields, "", details)
        err = ValidationError(details or [Detail("", "bad_request")])
        return error_response(err)
    code, key = _HTTP_KEYS.get(status, ("ERROR", "bad_request"))
    err = KumikiError(key)
    err.status, err.code = status, code
    return error_response(err)


def _flatten(node, path: str, out: list[Detail]) -> None:
    if isinstance(node, dict):
        for k, v in node.items():
            _flatten(v, f"{path}.{k}" if path else str(k), out)
    elif isinstance(node, list) and node and all(isinstance(m, str) for m in node):
        for m in node:
            out.append(Detail(path, "schema.invalid", {"detail": m}))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _flatten(v, f"{path}[{i}]", out)
    else:
        out.append(Detail(path, "schema.invalid", {"detail": str(node)}))


i18n.register({"schema.invalid": ("値が正しくありません（{detail}）。", "Invalid value ({detail}).")})


def install(app: Flask) -> None:
    from kumiki.errors import KumikiError as _KE

    secure = _configure_sessions(app, app.extensions["kumiki"].config)

    @app.before_request
    def _before():
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            from kumiki.db import set_write_intent
            g.write_intent_token = set_write_intent(True)
        if request.path.startswith("/api/"):
            _authenticate_request()
            endpoint = request.endpoint or ""
            if g.get("actor") is None and g.get("app_token") is None \
                    and not endpoint.endswith(PUBLIC_ENDPOINT_SUFFIXES):
                raise Unauthorized("unauthorized")
            _check_csrf()

    @app.teardown_request
    def _teardown(exc):
        token = g.pop("write_intent_token", None)
        if token is not None:
            from kumiki.db import _WRITE_INTENT
            _WRITE_INTENT.reset(token)
        session = g.pop("db", None)
        if session is None:
            return
        # Writes commit explicitly in their endpoint (so a failed commit is an error response);
        # what is left here is bookkeeping such as a token's last use.
        try:
            if exc is None:
                session.commit()
            else:
                session.rollback()
        except Exception:  # pragma: no cover - bookkeeping must never break a response
            session.rollback()
        finally:
            session.close()

    @app.after_request
    def _after(response):
        return _security_headers(response, secure)

    def _kumiki_error(exc):
        response = _rollback_then(error_response(exc))
        if exc.status == 403 and not g.get("denial_audited") and (g.get("actor") or g.get("app_token")):
            _audit_denial(exc)
        return response

    app.register_error_handler(_KE, _kumiki_error)
    app.register_error_handler(HTTPException, lambda e: _rollback_then(http_error(e)))

    @app.errorhandler(Exception)
    def _internal(exc):  # pragma: no cover - the last line of defence
        app.logger.exception("unhandled error")
        err = KumikiError("internal_error")
        err.status, err.code = 500, "INTERNAL_ERROR"
        return _rollback_then(error_response(err))


def _audit_denial(exc) -> None:
    """Every refusal is audited (who tried what); a failure to audit must not hide the 403."""
    from kumiki.api.audit import log_now

    try:
        log_now("access.denied", user=g.get("actor") or (g.get("auth_method") or None),
                app_id=(request.view_args or {}).get("app_id"), record_id=(request.view_args or {}).get("record_id"),
                detail={"method": request.method, "path": request.path, "reason": exc.key})
    except Exception:  # pragma: no cover - logged by the audit module's own error path
        current_app.logger.exception("could not audit a refusal")


def _rollback_then(resp):
    session = g.get("db")
    if session is not None:
        session.rollback()
    return resp


def record_service():
    """A RecordService for the acting user of this request."""
    from kumiki.records import RecordService

    st = state()
    on_change = None
    if st.plugins is not None:
        from kumiki.plugins import dispatch_record_changed
        pm = st.plugins
        on_change = lambda event: dispatch_record_changed(pm, event)  # noqa: E731
    via = g.get("auth_method")
    if via == "token" and g.get("token_id"):
        via = f"token:{g.token_id}"
    meta = {"ip": request.remote_addr, "user_agent": request.headers.get("User-Agent"), "via": via}
    app_token = g.get("app_token")
    return RecordService(db(), None if app_token is not None else actor(), timezone=st.config.timezone,
                         locale=locale(), schema_cache=st.schema_cache, on_change=on_change,
                         secret_key=st.config.secret_key, bulk_limit=st.config.bulk_limit,
                         app_token=app_token, audit_meta=meta)
