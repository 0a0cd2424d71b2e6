"""Alembic environment for the platform's own tables (record tables are managed at run time)."""
from alembic import context
from sqlalchemy import create_engine

import kumiki.model  # noqa: F401  (registers every model on the metadata)
from kumiki.db import Base

config = context.config
target_metadata = Base.metadata


def _include(obj, name, type_, reflected, compare_to):
    # Per-app record tables are created at run time; never let autogenerate touch them.
    if type_ == "table" and name and name.startswith("app_") and name not in ("app_versions", "app_fields"):
        return False
    return True


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        engine = create_engine(config.get_main_option("sqlalchemy.url"))
        with engine.begin() as connection:
            _run(connection)
    else:
        _run(connection)


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, include_object=_include,
                      render_as_batch=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


run()
