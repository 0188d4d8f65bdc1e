"""Signing webhook requests the way Zoom documents it, for tests and the benchmark.

Written from Zoom's rule, not from `worker.webhooks.signature`, so a test that signs with this
and expects our endpoint to accept checks the endpoint against the rule, not against itself.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any


def signed_headers(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    mac = hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return {"x-zm-request-timestamp": ts, "x-zm-signature": f"v0={mac}",
            "content-type": "application/json"}


def event_body(event: str, obj: dict[str, Any], *, account_id: str = "acct-123",
               event_ts: int | None = None) -> bytes:
    return json.dumps({
        "event": event,
        "event_ts": int(time.time() * 1000) if event_ts is None else event_ts,
        "payload": {"account_id": account_id, "object": obj},
    }).encode()


def sign_in_object(email: str, date_time: str, *, user_id: str = "u-1",
                   client_type: str = "Mac", version: str = "6.1.1.41705") -> dict[str, Any]:
    return {"id": user_id, "email": email, "date_time": date_time, "client_type": client_type,
            "version": version, "login_type": 0}
