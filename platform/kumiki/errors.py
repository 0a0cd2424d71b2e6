"""Errors that reach users: a code, a message key and per-path details.

Every API error becomes JSON ``{code, message, errors}`` where ``errors`` maps a located path
(``records[3].氏名``, ``fields[2].options``) to a list of messages. Messages are rendered in the
request's language by :mod:`kumiki.i18n`.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Detail:
    path: str
    key: str
    params: dict = field(default_factory=dict)


class KumikiError(Exception):
    status = 400
    code = "BAD_REQUEST"

    def __init__(self, key: str = "bad_request", details: list[Detail] | None = None, **params):
        super().__init__(key)
        self.key = key
        self.params = params
        self.details: list[Detail] = details or []

    def prefixed(self, prefix: str) -> "KumikiError":
        """Return the same error with every detail path placed under ``prefix``."""
        for d in self.details:
            d.path = f"{prefix}.{d.path}" if d.path and not d.path.startswith("[") else f"{prefix}{d.path}"
        return self


class ValidationError(KumikiError):
    status = 400
    code = "VALIDATION_ERROR"

    def __init__(self, details: list[Detail], key: str = "validation_failed", **params):
        super().__init__(key, details, **params)


class NotFound(KumikiError):
    status = 404
    code = "NOT_FOUND"


class Conflict(KumikiError):
    status = 409
    code = "CONFLICT"


class Unauthorized(KumikiError):
    status = 401
    code = "UNAUTHORIZED"


class Forbidden(KumikiError):
    status = 403
    code = "FORBIDDEN"


class PayloadTooLarge(KumikiError):
    status = 413
    code = "PAYLOAD_TOO_LARGE"


class FieldValueError(Exception):
    """Raised by a field type when a value is invalid; RecordService adds the path."""

    def __init__(self, key: str, **params):
        super().__init__(key)
        self.key = key
        self.params = params
