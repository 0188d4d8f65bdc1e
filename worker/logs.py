"""Logging for every process: one JSON object a line (or plain text), with the ids of the work.

Each record carries the tenant, source, run and task it belongs to when there is one (set by
`bind` from the task's message headers, see `worker.dispatch.send`), so an operator can follow
one tenant through a log aggregator without parsing messages. Nothing here reads message bodies:
ids only, never a credential. httpx logs every request at INFO; that is noise below DEBUG.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

CONTEXT_FIELDS = ("tenant_id", "source_id", "run_id", "task_id", "task")
_context: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "ai_log_context", default=MappingProxyType({}))
# Libraries whose INFO lines are one per request or per connection.
CHATTY = ("httpx", "httpcore")


def current_context() -> dict[str, str]:
    return dict(_context.get())


@contextmanager
def bound(**ids: Any) -> Iterator[None]:
    """Records logged inside the block carry these ids (None values are left out)."""
    token = _context.set({**_context.get(), **{k: str(v) for k, v in ids.items()
                                                if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def bind(**ids: Any) -> None:
    """Set ids for the rest of this context (a task's whole run, in a prefork child)."""
    _context.set({k: str(v) for k, v in ids.items() if v is not None})


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, the bound ids, and the
    exception (type, message and traceback as one string) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_context.get())
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = str(value)
        if record.exc_info and record.exc_info[0] is not None:
            exc_type, exc, tb = record.exc_info
            entry["error"] = f"{exc_type.__name__}: {exc}"
            entry["traceback"] = "".join(traceback.format_exception(exc_type, exc, tb))
        return json.dumps(entry, ensure_ascii=False, default=str)


class ContextFilter(logging.Filter):
    """For the plain-text format: append the bound ids to the message."""

    def filter(self, record: logging.LogRecord) -> bool:
        ids = _context.get()
        if ids and not getattr(record, "_ai_ids", False):
            record.msg = f"{record.msg} [{' '.join(f'{k}={v}' for k, v in ids.items())}]"
            record._ai_ids = True
        return True


def configure(level: str = "INFO", fmt: str = "json", root: logging.Logger | None = None
              ) -> None:
    """Point the root logger (or `root`) at stderr in `fmt` ("json" or "text") at `level`."""
    root = root or logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.addFilter(ContextFilter())
    root.handlers = [handler]
    root.setLevel(level)
    quiet_chatty_libraries(level)


def quiet_chatty_libraries(level: str) -> None:
    for name in CHATTY:
        logging.getLogger(name).setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)


def reformat(logger: logging.Logger, fmt: str, level: str) -> None:
    """Give the handlers Celery installed our format (Celery's logging signals call this)."""
    for handler in logger.handlers:
        if fmt == "json":
            handler.setFormatter(JsonFormatter())
        elif not any(isinstance(f, ContextFilter) for f in handler.filters):
            handler.addFilter(ContextFilter())
    quiet_chatty_libraries(level)
