"""The Celery application: broker and backend from settings, JSON only, safe acknowledgement."""

from __future__ import annotations

from celery import Celery

from worker.queues import TASK_ROUTES, Queue
from worker.settings import get_settings


def create_celery_app() -> Celery:
    settings = get_settings()
    app = Celery("activity_insights")
    app.conf.update(
        broker_url=settings.broker_url,
        result_backend=settings.result_backend,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_routes={name: {"queue": str(queue)} for name, queue in TASK_ROUTES.items()},
        task_default_queue=str(Queue.AGGREGATION),
        # A task is acknowledged after it ran, so a killed worker's task is redelivered.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # Redelivery of an unacked message waits this long: well above the longest task.
        broker_transport_options={"visibility_timeout": 4 * 3600},
        result_backend_transport_options={"visibility_timeout": 4 * 3600},
        task_soft_time_limit=3 * 3600,
        task_time_limit=3 * 3600 + 300,
        result_expires=7 * 24 * 3600,
        task_send_sent_event=True,
        worker_send_task_events=True,
        task_track_started=True,
        broker_connection_retry_on_startup=True,
        timezone="UTC",
        enable_utc=True,
    )
    return app


celery_app = create_celery_app()
