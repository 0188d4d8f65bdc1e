"""Queue names. Connection tests have their own queue so a test never waits behind a backfill."""

from enum import StrEnum


class Queue(StrEnum):
    CONNECTION_TESTS = "connection_tests"
    AGGREGATION = "aggregation"
    ACTIVITY = "activity"
    SCHEDULING = "scheduling"
    # Zoom's pushed events: a few milliseconds each, never behind a backfill.
    WEBHOOKS = "webhooks"


# Task name -> queue. Celery routes by this table; the API and beat enqueue by name only.
TASK_ROUTES = {
    "zoom.test_connection": Queue.CONNECTION_TESTS,
    "zoom.aggregate": Queue.AGGREGATION,
    "zoom.correlate": Queue.AGGREGATION,
    "zoom.sync_activity": Queue.ACTIVITY,
    "zoom.sync_activity_chunk": Queue.ACTIVITY,
    "scheduling.dispatch_due": Queue.SCHEDULING,
    "zoom.webhook_events": Queue.WEBHOOKS,
    # A Heavy Zoom call, like the activity chunks.
    "zoom.webhook_meeting_participants": Queue.ACTIVITY,
}
