"""Settings from the environment (KUMIKI_*), with embedded defaults.

The default is the embedded setup: SQLite and an on-disk job queue under ./instance/.
"""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


@dataclass
class Config:
    instance_dir: Path
    database_url: str
    redis_url: str | None = None
    secret_key: str = ""
    files_dir: Path | None = None
    timezone: str = "Asia/Tokyo"
    max_upload_bytes: int = 100 * 1024 * 1024
    bulk_limit: int = 1000
    testing: bool = False
    # Security (see kumiki.auth and kumiki.api.common). Cookies are Secure by default when the
    # public address is https; plain http://localhost (``make run``) keeps working.
    base_url: str = "http://localhost:8000"
    secure_cookies: bool | None = None          # None: derived from base_url
    session_idle_minutes: int = 480             # a session ends after 8 hours without requests
    login_max_failures: int = 5                 # per login name, within login_window_minutes
    login_lock_minutes: int = 15
    login_window_minutes: int = 15
    login_ip_max_failures: int = 20             # per client address, within login_window_minutes
    trusted_proxies: int = 0                    # reverse proxies in front (X-Forwarded-For/-Proto)
    upload_blocked_extensions: tuple[str, ...] = ()  # empty: kumiki.api.files.DEFAULT_BLOCKED
    # Extra Flask config keys (tests use it).
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_env(cls, **overrides) -> "Config":
        instance_dir = Path(overrides.pop("instance_dir", None) or _env("KUMIKI_INSTANCE_DIR", "instance")).resolve()
        database_url = overrides.pop("database_url", None) or _env(
            "KUMIKI_DATABASE_URL", f"sqlite:///{instance_dir / 'kumiki.db'}"
        )
        cfg = cls(
            instance_dir=instance_dir,
            database_url=database_url,
            redis_url=overrides.pop("redis_url", None) or _env("KUMIKI_REDIS_URL"),
            secret_key=overrides.pop("secret_key", None) or _env("KUMIKI_SECRET_KEY", ""),
            files_dir=Path(_env("KUMIKI_FILES_DIR", str(instance_dir / "files"))),
            timezone=_env("KUMIKI_TIMEZONE", "Asia/Tokyo"),
            **{**_security_from_env(), **overrides},
        )
        if cfg.secure_cookies is None:
            cfg.secure_cookies = cfg.base_url.lower().startswith("https://")
        cfg.instance_dir.mkdir(parents=True, exist_ok=True)
        cfg.files_dir.mkdir(parents=True, exist_ok=True)
        if not cfg.secret_key:
            cfg.secret_key = _load_or_create_secret(cfg.instance_dir / "secret_key")
        return cfg

    @property
    def jobs_db_path(self) -> Path:
        return self.instance_dir / "jobs.db"


def _security_from_env() -> dict:
    out: dict = {}
    ints = {"KUMIKI_LOGIN_MAX_FAILURES": "login_max_failures", "KUMIKI_LOGIN_LOCK_MINUTES": "login_lock_minutes",
            "KUMIKI_LOGIN_WINDOW_MINUTES": "login_window_minutes",
            "KUMIKI_LOGIN_IP_MAX_FAILURES": "login_ip_max_failures",
            "KUMIKI_SESSION_IDLE_MINUTES": "session_idle_minutes", "KUMIKI_TRUSTED_PROXIES": "trusted_proxies"}
    for name, attr in ints.items():
        if _env(name) is not None:
            out[attr] = int(_env(name))
    if _env("KUMIKI_MAX_UPLOAD_MB") is not None:
        out["max_upload_bytes"] = int(float(_env("KUMIKI_MAX_UPLOAD_MB")) * 1024 * 1024)
    if _env("KUMIKI_BASE_URL") is not None:
        out["base_url"] = _env("KUMIKI_BASE_URL").rstrip("/")
    if _env("KUMIKI_SECURE_COOKIES") is not None:
        out["secure_cookies"] = _env("KUMIKI_SECURE_COOKIES").lower() in ("1", "true", "yes", "on")
    if _env("KUMIKI_UPLOAD_BLOCKED_EXTENSIONS") is not None:
        out["upload_blocked_extensions"] = tuple(
            e.strip().lower().lstrip(".") for e in _env("KUMIKI_UPLOAD_BLOCKED_EXTENSIONS").split(",") if e.strip())
    return out


def _load_or_create_secret(path: Path) -> str:
    if path.exists():
        return path.read_text().strip()
    key = secrets.token_urlsafe(48)
    path.write_text(key)
    path.chmod(0o600)
    return key
