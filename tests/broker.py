"""Reading what was enqueued: the messages waiting in a queue of kombu's Redis transport."""

from __future__ import annotations

import base64
import json
from typing import Any


def broker_messages(redis_client: Any, queue: str) -> list[dict[str, Any]]:
    """Messages waiting in a queue of kombu's Redis transport (a list of JSON envelopes whose
    body is base64 JSON ``[args, kwargs, embed]``), oldest first."""
    out = []
    for raw in reversed(redis_client.lrange(queue, 0, -1)):
        envelope = json.loads(raw)
        body = json.loads(base64.b64decode(envelope["body"]))
        out.append({"raw": raw.decode(), "headers": envelope["headers"], "args": body[0],
                    "kwargs": body[1]})
    return out
