"""Every domain's tasks, imported so a worker registers them all (`celery -A worker.tasks`)."""

from worker.activity.tasks import sync_activity, sync_activity_chunk
from worker.aggregation.tasks import aggregate
from worker.celery_app import celery_app
from worker.connection_tests.tasks import connection_test_task
from worker.correlation.tasks import correlate
from worker.scheduling.tasks import dispatch_due_task
from worker.webhooks.tasks import webhook_events, webhook_meeting_participants

__all__ = [
    "aggregate",
    "celery_app",
    "connection_test_task",
    "correlate",
    "dispatch_due_task",
    "sync_activity",
    "sync_activity_chunk",
    "webhook_events",
    "webhook_meeting_participants",
]
