from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from kumiki.db import Base, JSONType
from kumiki.model._common import utcnow


class Comment(Base):
    """A comment on a record (コメント), with @mentions and one level of replies."""

    __tablename__ = "comments"
    __table_args__ = (Index("ix_comments_app_record", "app_id", "record_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    record_id: Mapped[int] = mapped_column(Integer)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("comments.id"), nullable=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    user_code: Mapped[str] = mapped_column(String(128))
    text: Mapped[str] = mapped_column(Text)
    mentions: Mapped[list] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
