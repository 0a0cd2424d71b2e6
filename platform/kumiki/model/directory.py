"""The directory: organizations (a tree), groups (roles) and users' memberships of both.

``Organization.path`` is the materialised path of ids from the root to the organization itself
(``/1/4/9/``), so the descendants of an organization are ``path LIKE '/1/4/%'`` and its ancestors
are the ids in its own path. :mod:`kumiki.directory` keeps it right on create and move.
"""
from __future__ import annotations

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from kumiki.db import Base


class Organization(Base):
    __tablename__ = "organizations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(128), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("organizations.id"), nullable=True, index=True)
    path: Mapped[str] = mapped_column(String(1024), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)

    def ids(self) -> list[int]:
        """Ids from the root down to this organization."""
        return [int(p) for p in self.path.strip("/").split("/") if p]


class Group(Base):
    __tablename__ = "groups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(128), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text, default="")


class UserOrganization(Base):
    """A user's membership of an organization; at most one per user is the primary one (主所属)."""

    __tablename__ = "user_organizations"
    __table_args__ = (
        Index("uq_user_organizations_primary", "user_id", unique=True,
              sqlite_where=text("is_primary"), postgresql_where=text("is_primary")),
    )

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"),
                                                 primary_key=True, index=True)
    is_primary: Mapped[bool] = mapped_column(Boolean, default=False)


class UserGroup(Base):
    __tablename__ = "user_groups"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True,
                                          index=True)
