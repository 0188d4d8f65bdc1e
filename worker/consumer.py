"""The worker's broker consumer: Celery's, made to survive the broker's restart.

When the broker connection is lost, Celery 5.7 first `collect()`s the connection, which detaches
its transport (`transport.client = None`), then closes it
(`Consumer.on_connection_error_after_connected`). kombu's Redis channel needs `transport.client`
for every command: the close tries to put the unacknowledged messages back, and a run that was
under way when the connection went acknowledges its message on that old channel when it ends
(`task_acks_late`). Both raised `AttributeError`, which Celery takes for an unrecoverable error:
the worker shut down instead of reconnecting. So the transport keeps its client: the old channel's
commands then fail as connection errors while Redis is away (Celery ignores and logs those) and
reach the new server once it is back. A Redis that restarts empty has lost the messages; the beat
sweep sends their runs again from Postgres (`worker/runs/`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery.worker.consumer import Consumer as CeleryConsumer


class Consumer(CeleryConsumer):  # type: ignore[misc]  # Celery is untyped
    def on_connection_error_after_connected(self, exc: BaseException) -> None:
        connection = self.connection
        if connection is not None:
            connection.close = _keeping_client(connection, connection.transport, connection.close)
        super().on_connection_error_after_connected(exc)


def _keeping_client(connection: Any, transport: Any, close: Callable[[], Any]) -> Callable[[], Any]:
    def close_attached() -> Any:
        transport.client = connection  # collect() detached it just before this close
        return close()
    return close_attached
