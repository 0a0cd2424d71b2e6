from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from kumiki.db import Base, JSONType
from kumiki.model._common import utcnow


class RecordHistory(Base):
    """One row per record write: the full snapshot after the write and the diff against before."""

    __tablename__ = "record_history"
    __table_args__ = (Index("ix_record_history_app_record_rev", "app_id", "record_id", "revision"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app_id: Mapped[int] = mapped_column(Integer)
    record_id: Mapped[int] = mapped_column(Integer)
    revision: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(16))  # create / update / delete
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    snapshot: Mapped[dict | None] = mapped_column(JSONType, nullable=True)
    diff: Mapped[dict | None] = mapped_column(JSONType, nullable=True)
