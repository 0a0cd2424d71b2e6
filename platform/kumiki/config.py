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
            **overrides,
        )
        cfg.instance_dir.mkdir(parents=True, exist_ok=True)
        cfg.files_dir.mkdir(parents=True, exist_ok=True)
        if not cfg.secret_key:
            cfg.secret_key = _load_or_create_secret(cfg.instance_dir / "secret_key")
        return cfg

    @property
    def jobs_db_path(self) -> Path:
        return self.instance_dir / "jobs.db"


def _load_or_create_secret(path: Path) -> str:
    if path.exists():
        return path.read_text().strip()
    key = secrets.token_urlsafe(48)
    path.write_text(key)
    path.chmod(0o600)
    return key
