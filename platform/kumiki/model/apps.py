from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kumiki.db import Base, JSONType
from kumiki.model._common import utcnow


class App(Base):
    __tablename__ = "apps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text, default="")
    draft: Mapped[dict] = mapped_column(JSONType)          # the definition being edited (preview)
    draft_revision: Mapped[int] = mapped_column(Integer, default=1)
    deployed_version: Mapped[int] = mapped_column(Integer, default=0)  # 0 = never deployed
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    next_field_id: Mapped[int] = mapped_column(Integer, default=1)


class AppVersion(Base):
    """A deployed, immutable version of an app definition."""

    __tablename__ = "app_versions"
    __table_args__ = (UniqueConstraint("app_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    definition: Mapped[dict] = mapped_column(JSONType)
    report: Mapped[dict] = mapped_column(JSONType, default=dict)  # schema-change report
    deployed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    deployed_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class AppField(Base):
    """Physical registry: which column holds which field, so codes can change without DDL.

    ``status`` is 'active' or 'retired' (deleted from the definition, data kept until purge).
    ``backup_columns`` lists columns left behind by type conversions.
    """

    __tablename__ = "app_fields"
    __table_args__ = (UniqueConstraint("app_id", "field_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    field_id: Mapped[int] = mapped_column(Integer)
    parent_field_id: Mapped[int | None] = mapped_column(Integer, nullable=True)  # subtable owner
    code: Mapped[str] = mapped_column(String(128))
    type: Mapped[str] = mapped_column(String(32))
    column_name: Mapped[str | None] = mapped_column(String(64), nullable=True)
    table_name: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="active")
    backup_columns: Mapped[list] = mapped_column(JSONType, default=list)
    unique_index: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # Plain index, kept while a view filters or sorts on the field (see docs/decisions/0007).
    index_name: Mapped[str | None] = mapped_column(String(128), nullable=True)
