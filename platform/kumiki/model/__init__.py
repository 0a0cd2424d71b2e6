"""SQLAlchemy models of the platform's own tables (record tables are per app, see storage/)."""
from kumiki.db import Base
from kumiki.model.identity import ApiToken, User
from kumiki.model.apps import App, AppField, AppVersion
from kumiki.model.history import RecordHistory
from kumiki.model.files import StoredFile
from kumiki.model.jobs import Job
from kumiki.model.plugins import PluginSetting
from kumiki.model import audit, directory, security  # noqa: F401,E402  (their tables)
from kumiki.model.access import AppToken  # noqa: E402
from kumiki.model.comments import Comment  # noqa: E402

__all__ = ["Base", "User", "ApiToken", "App", "AppField", "AppVersion", "RecordHistory",
           "StoredFile", "Job", "PluginSetting", "AppToken", "Comment"]
