from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from kumiki.db import Base
from kumiki.model._common import utcnow


class StoredFile(Base):
    """An uploaded file. Temporary until a record write attaches it (app_id/record_id set)."""

    __tablename__ = "files"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_path: Mapped[str] = mapped_column(String(255))
    uploaded_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    uploaded_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    app_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    record_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    field_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
