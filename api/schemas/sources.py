"""Sources: one Zoom OAuth app of a tenant. Credentials go in, never come out."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
)

from api.schemas.common import Name, Schema, Str64, Str100, Str200, Str320, Text
from worker.models import GrantType, ZoomPlan
from worker.scheduling.cron import InvalidSchedule, check_cron
from worker.sources.service import missing_credentials

# Which credential fields each grant type needs (account_id is Zoom's account id for S2S apps).
CREDENTIAL_FIELDS = ("client_id", "client_secret", "account_id", "refresh_token")


def _cron(value: str) -> str:
    try:
        return check_cron(value)
    except InvalidSchedule as exc:
        raise ValueError(str(exc)) from None


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except Exception:  # ZoneInfoNotFoundError, ValueError for paths, OSError on odd names
        raise ValueError("is not an IANA time zone name, e.g. 'Europe/Paris'") from None
    return value


def _secret(value: SecretStr) -> SecretStr:
    plain = value.get_secret_value()
    if "\x00" in plain or plain != plain.strip():
        raise ValueError("must not contain NUL or surrounding whitespace")
    try:
        plain.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid UTF-8 text") from None
    return value


Cron = Annotated[Str100, AfterValidator(_cron)]
TimeZone = Annotated[Str64, AfterValidator(_timezone)]
SecretField = Annotated[SecretStr, Field(min_length=1, max_length=4000), AfterValidator(_secret)]
PlainCredential = Annotated[Str200, Field(min_length=1)]


class SourceCredentials(Schema):
    """Write-only. ``account_credentials`` (Server-to-Server OAuth) needs account_id, client_id
    and client_secret; ``refresh_token`` (admin-managed app) needs client_id, client_secret and
    refresh_token."""

    client_id: PlainCredential | None = None
    client_secret: SecretField | None = None
    account_id: PlainCredential | None = None
    refresh_token: SecretField | None = None

    def plain(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for name in CREDENTIAL_FIELDS:
            value = getattr(self, name)
            if value is None:
                continue
            out[name] = value.get_secret_value() if isinstance(value, SecretStr) else value
        return out


class CorrelationConfig(Schema):
    """How Zoom accounts are matched to identities: email first, then employee_unique_id."""

    email: bool = True
    employee_unique_id: bool = True


class _SourceFields(Schema):
    description: Text = ""
    owner: Str320 = ""
    governance_group: Str200 | None = None
    authoritative: bool = False
    plan: ZoomPlan = ZoomPlan.PRO
    rate_share: float | None = Field(
        default=None, gt=0, le=1, description="Share of the account's Zoom limits; null = default"
    )
    aggregation_enabled: bool = True
    activity_enabled: bool = True
    governance_source_id: uuid.UUID | None = Field(
        default=None,
        description="For an activity-only source: the source whose accounts its events match",
    )
    correlation_config: CorrelationConfig = Field(default_factory=CorrelationConfig)
    aggregation_cron: Cron = Field(default="", description="Empty: daily, spread by source")
    activity_cron: Cron = Field(default="", description="Empty: daily, spread by source")
    timezone: TimeZone = "UTC"


class SourceCreate(_SourceFields):
    name: Name
    grant_type: GrantType
    credentials: SourceCredentials

    @field_validator("credentials")
    @classmethod
    def _credentials_match_grant(
        cls, value: SourceCredentials, info: ValidationInfo
    ) -> SourceCredentials:
        grant_type = info.data.get("grant_type")
        if grant_type is None:  # already reported as a grant_type error
            return value
        missing = missing_credentials(grant_type, value.plain())
        if missing:
            raise ValueError(
                f"credentials for grant type {grant_type.value} need: {', '.join(missing)}"
            )
        return value


class SourceUpdate(Schema):
    """Fields to change; omitted fields keep their value. New credentials are merged with the
    stored ones (send only what rotates) and bump ``credentials_version``."""

    name: Name | None = None
    description: Text | None = None
    owner: Str320 | None = None
    governance_group: Str200 | None = None
    authoritative: bool | None = None
    grant_type: GrantType | None = None
    credentials: SourceCredentials | None = None
    plan: ZoomPlan | None = None
    rate_share: float | None = Field(default=None, gt=0, le=1)
    aggregation_enabled: bool | None = None
    activity_enabled: bool | None = None
    governance_source_id: uuid.UUID | None = None
    correlation_config: CorrelationConfig | None = None
    aggregation_cron: Cron | None = None
    activity_cron: Cron | None = None
    timezone: TimeZone | None = None


class CredentialsPresence(BaseModel):
    """Which credential fields are stored; their values are never returned."""

    client_id: bool
    client_secret: bool
    account_id: bool
    refresh_token: bool


class SourcePublic(BaseModel):
    id: uuid.UUID
    name: str
    description: str
    owner: str
    governance_group: str | None
    authoritative: bool
    grant_type: str
    zoom_account_id: str | None
    credentials: CredentialsPresence
    credentials_version: int
    credentials_updated_at: datetime | None
    status: str
    status_message: str
    plan: str
    rate_share: float | None
    aggregation_enabled: bool
    activity_enabled: bool
    governance_source_id: uuid.UUID | None
    correlation_config: dict[str, bool]
    aggregation_cron: str
    activity_cron: str
    timezone: str
    next_aggregation_at: datetime | None
    next_activity_at: datetime | None
    last_test_at: datetime | None
    last_test_ok_at: datetime | None
    created_at: datetime
    updated_at: datetime
    links: dict[str, str]


class Accepted(BaseModel):
    """A queued connection test or run: poll ``links.self`` until its status is final."""

    id: uuid.UUID
    kind: Literal["connection_test", "aggregation", "correlation", "activity"]
    status: str
    links: dict[str, str]
