"""Serves the committed front-end build (frontend_dist/) with an SPA fallback.

Until the web UI lands, a small Japanese page points to the API and its OpenAPI description.
"""
from __future__ import annotations

from flask import Blueprint, Flask, send_from_directory

from kumiki.config import PROJECT_ROOT

DIST = PROJECT_ROOT / "frontend_dist"

PLACEHOLDER = """<!doctype html><html lang="ja"><meta charset="utf-8"><title>kumiki</title>
<body>
<h1>kumiki（組木）</h1>
<p>kumiki は起動しています。画面（Web UI）は今後のリリースで追加されます。今は REST API を使えます。</p>
<ul><li><a href="/api/openapi.json">API の説明（OpenAPI 3.1）</a></li>
<li>API トークン: <code>kumiki user token admin --name script</code></li></ul>
<p lang="en">kumiki is running. The web UI comes in a later release; the REST API is described at
<a href="/api/openapi.json">/api/openapi.json</a>.</p></body></html>"""

bp = Blueprint("web", __name__)


@bp.route("/", defaults={"path": ""})
@bp.route("/<path:path>")
def index(path: str):
    if path.startswith("api/"):
        from werkzeug.exceptions import NotFound
        raise NotFound()
    if path and (DIST / path).is_file():
        response = send_from_directory(DIST, path, max_age=31536000 if path.startswith("assets/") else 0)
        return response
    if (DIST / "index.html").is_file():
        return send_from_directory(DIST, "index.html", max_age=0)
    return PLACEHOLDER, 200, {"Content-Type": "text/html; charset=utf-8"}


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
