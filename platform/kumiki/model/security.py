"""Login attempts: the shared memory of login throttling and lockout (see kumiki.auth).

Kept in the database, not in process memory, so that every gunicorn worker on every machine sees
the same counts. Rows older than a week are pruned on login.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from kumiki.db import Base
from kumiki.model._common import utcnow


class LoginAttempt(Base):
    __tablename__ = "login_attempts"
    __table_args__ = (
        Index("ix_login_attempts_login_at", "login", "at"),
        Index("ix_login_attempts_ip_at", "ip", "at"),
        Index("ix_login_attempts_at", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    login: Mapped[str] = mapped_column(String(128))  # as typed, lower-cased; may name no user
    ip: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    success: Mapped[bool] = mapped_column(Boolean, default=False)
    # ok | bad_password | bad_otp | otp_required | locked | unlock (see kumiki.auth)
    reason: Mapped[str] = mapped_column(String(16))
