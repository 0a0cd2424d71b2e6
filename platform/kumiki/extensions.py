"""Per-application singletons kept on ``app.extensions['kumiki']``."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import current_app
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from kumiki.config import Config


@dataclass
class Kumiki:
    config: Config
    engine: Engine
    Session: sessionmaker
    schema_cache: dict = field(default_factory=dict)   # (app_id, version) -> AppSchema
    plugins: Any = None                                # pluggy PluginManager
    huey: Any = None


def state() -> Kumiki:
    return current_app.extensions["kumiki"]
