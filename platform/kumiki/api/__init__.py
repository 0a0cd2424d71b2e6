"""REST API /api/v1 (flask-smorest); OpenAPI 3.1 at /api/openapi.json."""
from __future__ import annotations

from flask import Flask
from flask_login import LoginManager
from flask_smorest import Api

from kumiki import __version__


class KumikiApi(Api):
    def _register_error_handlers(self):
        # kumiki.api.common installs the JSON error handlers ({code, message, errors}, localised).
        pass


def init_api(app: Flask) -> KumikiApi:
    from kumiki.api import common

    app.config.update(
        API_TITLE="kumiki",
        API_VERSION=__version__,
        OPENAPI_VERSION="3.1.0",
        OPENAPI_URL_PREFIX="/api",
        OPENAPI_JSON_PATH="openapi.json",
    )
    login = LoginManager()
    login.init_app(app)

    @login.user_loader
    def _load(user_id: str):
        from kumiki.model import User
        user = common.db().get(User, int(user_id)) if user_id.isdigit() else None
        return user if user is not None and user.is_active else None

    common.install(app)
    api = KumikiApi(app)
    from kumiki.api import aggregate, apps, audit, auth, directory, files, jobs, plugins, records
    for module in (auth, apps, records, files, jobs, plugins, directory, audit, aggregate):
        api.register_blueprint(module.blp, url_prefix=f"/api/v1{module.PREFIX}")
    app.extensions["kumiki_api"] = api
    return api
