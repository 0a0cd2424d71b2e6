"""WSGI entry point for external servers: ``gunicorn kumiki.wsgi:app`` (settings from KUMIKI_*)."""
from kumiki.app import create_app, freeze_startup_objects

app = create_app()
freeze_startup_objects()
