"""Run the platform's alembic migrations (numbered, append-only) on start-up and in `kumiki init`."""
from __future__ import annotations

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy.engine import Engine

from kumiki.config import PROJECT_ROOT


def alembic_config(url: str | None = None) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    if url:
        cfg.set_main_option("sqlalchemy.url", url)
    return cfg


def upgrade(engine: Engine) -> None:
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "heads")  # independent numbered branches from 0002 on; see migrations/README.md
