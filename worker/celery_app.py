"""The Celery application: broker and backend from settings, JSON only, safe acknowledgement."""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import (
    after_setup_logger,
    after_setup_task_logger,
    task_postrun,
    task_prerun,
    worker_process_init,
)

from worker import logs
from worker.db import dispose_engines
from worker.queues import TASK_ROUTES, Queue
from worker.settings import get_settings


def create_celery_app() -> Celery:
    settings = get_settings()
    visibility = settings.broker_visibility_timeout
    soft_limit = settings.task_soft_time_limit
    # Beat's only entry: the dispatcher reads due schedules from Postgres and sweeps lost work.
    interval = settings.dispatch_interval_seconds
    app = Celery("activity_insights", include=["worker.tasks"])
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
        # Redelivery of an unacked message waits this long: well above the longest task. It is
        # only the last resort: the run's lease in Postgres lets the sweep re-send a killed
        # worker's run within about two leases (worker/runs/).
        broker_transport_options={"visibility_timeout": visibility},
        result_backend_transport_options={"visibility_timeout": visibility},
        task_soft_time_limit=soft_limit,
        task_time_limit=soft_limit + 300,
        result_expires=7 * 24 * 3600,
        task_send_sent_event=True,
        worker_send_task_events=True,
        task_track_started=True,
        broker_connection_retry_on_startup=True,
        # Celery's consumer, made to reconnect after the broker restarts (see the module).
        worker_consumer="worker.consumer:Consumer",
        timezone="UTC",
        enable_utc=True,
        beat_schedule={
            "dispatch-due-schedules": {
                "task": "scheduling.dispatch_due",
                "schedule": interval,
                # A tick not picked up before the next one is useless: drop it.
                "options": {"queue": str(Queue.SCHEDULING), "expires": interval},
            }
        },
    )
    return app


@worker_process_init.connect
def _fresh_connections_after_fork(**_: Any) -> None:
    # A prefork child must not share the parent's database sockets.
    dispose_engines()


celery_app = create_celery_app()


@after_setup_logger.connect
@after_setup_task_logger.connect
def _our_log_format(logger: Any, **_: Any) -> None:
    settings = get_settings()
    logs.reformat(logger, settings.log_format, settings.log_level)


@task_prerun.connect
def _bind_task_ids(task_id: str, task: Any, args: Any = (), **_: Any) -> None:
    # The ids ride in the message headers (worker.dispatch.send), which Celery copies onto the
    # request; a run task's one argument is its run (or connection test) id.
    request = task.request
    headers = request.headers if isinstance(request.headers, dict) else {}
    logs.bind(task=task.name, task_id=task_id,
              tenant_id=getattr(request, "tenant_id", None) or headers.get("tenant_id"),
              source_id=getattr(request, "source_id", None) or headers.get("source_id"),
              run_id=args[0] if args else None)


@task_postrun.connect
def _unbind_task_ids(**_: Any) -> None:
    logs.bind()
