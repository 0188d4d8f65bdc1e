"""SQLModel tables. Importing this package registers every table on ``SQLModel.metadata``.

Every customer row carries ``tenant_id``; every Zoom row is unique per ``(source_id, zoom_id)``
because Zoom's ids are only unique within one Zoom account.
"""

from worker.models.activity import (
    ActivityEvent,
    DailyUsage,
    HostUsage,
    Meeting,
    MeetingParticipant,
    OperationLog,
    UserDailySummary,
)
from worker.models.base import TenantScoped, utcnow
from worker.models.directory import (
    ZoomGroup,
    ZoomGroupMember,
    ZoomRole,
    ZoomRoleMember,
    ZoomUser,
)
from worker.models.enums import (
    GrantType,
    RunKind,
    RunStatus,
    RunTrigger,
    SourceStatus,
    Stream,
    TestStatus,
    ZoomPlan,
)
from worker.models.identity import AccountCorrelation, Identity
from worker.models.runs import ConnectionTest, StreamCursor, SyncRun
from worker.models.tenancy import ApiKey, Source, Tenant
from worker.models.webhooks import WebhookEvent, WebhookStatus

__all__ = [
    "AccountCorrelation",
    "ActivityEvent",
    "ApiKey",
    "ConnectionTest",
    "DailyUsage",
    "GrantType",
    "HostUsage",
    "Identity",
    "Meeting",
    "MeetingParticipant",
    "OperationLog",
    "RunKind",
    "RunStatus",
    "RunTrigger",
    "Source",
    "SourceStatus",
    "Stream",
    "StreamCursor",
    "SyncRun",
    "Tenant",
    "TenantScoped",
    "TestStatus",
    "UserDailySummary",
    "WebhookEvent",
    "WebhookStatus",
    "ZoomGroup",
    "ZoomGroupMember",
    "ZoomPlan",
    "ZoomRole",
    "ZoomRoleMember",
    "ZoomUser",
    "utcnow",
]
