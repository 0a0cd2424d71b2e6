from __future__ import annotations

from sqlalchemy import Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kumiki.db import Base, JSONType


class PluginSetting(Base):
    """A plugin switched on for one app, with settings validated by the plugin's JSON Schema."""

    __tablename__ = "plugin_settings"
    __table_args__ = (UniqueConstraint("app_id", "plugin"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    plugin: Mapped[str] = mapped_column(String(128))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    settings: Mapped[dict] = mapped_column(JSONType, default=dict)
