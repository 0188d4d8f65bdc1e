"""String enums stored as plain strings (portable to SQLite, no Postgres ENUM migrations)."""

from enum import StrEnum


class GrantType(StrEnum):
    ACCOUNT_CREDENTIALS = "account_credentials"  # Server-to-Server OAuth app
    REFRESH_TOKEN = "refresh_token"  # admin-managed General app; refresh tokens rotate


class ZoomPlan(StrEnum):
    FREE = "free"
    PRO = "pro"
    BUSINESS = "business"


class SourceStatus(StrEnum):
    NEW = "new"  # never tested
    ACTIVE = "active"  # last connection test passed; scheduled
    FAILING = "failing"  # last test failed (credentials, scopes): not scheduled
    # Refresh token rejected (an admin must paste a new one), or a rotation's outcome unknown
    # (its answer was lost; a queued connection test finds out). status_message says which.
    REAUTHORIZE = "reauthorize"
    DISABLED = "disabled"  # switched off by an admin


class TestStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class RunKind(StrEnum):
    AGGREGATION = "aggregation"
    CORRELATION = "correlation"
    ACTIVITY = "activity"


class RunTrigger(StrEnum):
    SCHEDULE = "schedule"
    API = "api"
    AFTER_TEST = "after_test"
    CLI = "cli"


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # permanent: needs an admin (credentials, scope)
    RETRYABLE = "retryable"  # transient failure after retries; the next run picks it up
    DEFERRED = "deferred"  # rate cap reached; resumes from its checkpoint later
    SKIPPED = "skipped"  # a duplicate of a run already in progress


class Stream(StrEnum):
    SIGNINS = "signins"  # /report/activities
    HOST_USAGE = "host_usage"  # /report/users
    MEETINGS = "meetings"  # /report/users/{id}/meetings + participants
    DAILY_USAGE = "daily_usage"  # /report/daily
    OPERATION_LOGS = "operation_logs"  # /report/operationlogs
