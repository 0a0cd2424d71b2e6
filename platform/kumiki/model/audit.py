"""The audit log: an append-only, hash-chained table, and the one-row head that serialises appends.

Rows are never updated or deleted (database triggers refuse it, see migration 0004); who did
what is kept even when users or apps are renamed or deleted, so there are no foreign keys and the
user's code is copied into each row. ``detail`` holds query text, counts and field codes, never
record values: the log must not become a second copy of personal data.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from kumiki.db import Base, JSONType

GENESIS_HASH = "0" * 64


class AuditLog(Base):
    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_at", "at"),
        Index("ix_audit_log_user_code", "user_code"),
        Index("ix_audit_log_user_id", "user_id"),
        Index("ix_audit_log_app_record", "app_id", "record_id"),
        Index("ix_audit_log_action", "action"),
    )

    # The sequence number, taken from AuditHead under its lock (not autoincrement): the hash
    # covers the id, so the id must be known before the row is written.
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(DateTime)          # naive UTC
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    user_code: Mapped[str | None] = mapped_column(String(128), nullable=True)
    action: Mapped[str] = mapped_column(String(64))
    app_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    record_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    detail: Mapped[dict | None] = mapped_column(JSONType, nullable=True)
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(String(256), nullable=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """Exactly one row (id 1): the last entry's id and hash. Appends lock it; verify checks the
    log's tail against it, so deleting the newest entries is detected too."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_id: Mapped[int] = mapped_column(Integer)
    last_hash: Mapped[str] = mapped_column(String(64))
