"""Column types and mixins shared by the tables."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Integer
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator
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


class UTCDateTime(TypeDecorator[datetime]):
    """``timestamptz`` on Postgres; on SQLite (the demo) values come back naive, so this type
    hands every value back as aware UTC. Without it any comparison with ``utcnow()`` breaks on
    SQLite only, far from where the value was read."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:  # noqa: ARG002 - SQLAlchemy's TypeDecorator signature
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:  # noqa: ARG002 - SQLAlchemy's TypeDecorator signature
        return as_utc(value)


def TimestampField(*, nullable: bool = True, index: bool = False, **kw: Any) -> Any:
    if "default_factory" not in kw:
        kw.setdefault("default", None)
    return Field(
        sa_type=UTCDateTime(),
        nullable=nullable,
        index=index,
        **kw,
    )


def JsonField(default_factory: Any = dict) -> Any:
    return Field(default_factory=default_factory, sa_type=JSON)


class TenantScoped:
    """Marker for tables whose rows belong to one tenant (see ``worker.db.tenant_query``)."""

    tenant_id: uuid.UUID
