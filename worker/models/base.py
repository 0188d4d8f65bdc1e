"""Column types and mixins shared by the tables."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Integer
from sqlmodel import Field

# SQLite only auto-increments INTEGER PRIMARY KEY; Postgres gets a real BIGINT identity.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def TimestampField(*, nullable: bool = True, index: bool = False, **kw: Any) -> Any:
    if "default_factory" not in kw:
        kw.setdefault("default", None)
    return Field(
        sa_type=DateTime(timezone=True),
        nullable=nullable,
        index=index,
        **kw,
    )


def JsonField(default_factory: Any = dict) -> Any:
    return Field(default_factory=default_factory, sa_type=JSON)


class TenantScoped:
    """Marker for tables whose rows belong to one tenant (see ``worker.db.tenant_query``)."""

    tenant_id: uuid.UUID
