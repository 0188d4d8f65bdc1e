"""Zoom's event notifications, as the fake sends them: signed, retried, and as unreliable as
asked.

`fake.webhooks.configure(url=..., secret=...)` points one account's event subscription at an
endpoint (Zoom: one app's "event notification endpoint URL" and "Secret Token"). From then on
the account's live sign-ins (`acc.sign_in(user)`) and directory mutations (`add_user`,
`update_user`, `activate_user`, `deactivate_user`, `delete_user`), and the meetings handed to
`meeting_ended_event(acc, uuid)`, are POSTed there, each as
`{"event", "event_ts", "payload": {"account_id", "object"}}` with `x-zm-request-timestamp` and
`x-zm-signature: v0=hex(HMAC-SHA256(secret, "v0:{ts}:{body}"))`.

Zoom's delivery rules (devsupport.zoom.us "Webhook delays"): a 200/204 within 3 seconds is a
delivery; otherwise the same event is sent again after 5, 20 and 60 more minutes, then dropped.
`retry_scale` shrinks those delays for tests. On purpose unreliable, each a share of events:
`drop_rate` never sent (what the pull must repair), `duplicate_rate` sent twice (half of those
re-serialised, so a body hash alone cannot catch them), `reorder_rate` held back so later events
overtake it. `truth()` tells tests what was emitted, delivered, dropped and given up on.

Live sign-ins also appear in GET /report/activities (newest first, ahead of the generated
history), so a pull after the pushes sees the same events.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import heapq
import hmac
import itertools
import json
import random
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from fakezoom.core import Account, FakeZoom

UTC = dt.UTC
# Zoom's documented retry schedule: 5 minutes, then 20, then 60 after the previous attempt.
ZOOM_RETRY_DELAYS = (300.0, 1200.0, 3600.0)
TIMEOUT_SECONDS = 3.0


@dataclass
class WebhookConfig:
    url: str | None = None
    secret: str = ""
    account: int | str = 0
    drop_rate: float = 0.0
    duplicate_rate: float = 0.0
    reorder_rate: float = 0.0
    reorder_delay: float = 0.3  # seconds a reordered event is held back
    retry_scale: float = 1.0
    threads: int = 4
    seed: int = 0


@dataclass(order=True)
class _Delivery:
    due: float
    seq: int
    body: bytes = field(compare=False)
    event_id: int = field(compare=False)
    attempt: int = field(default=0, compare=False)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256)
    return "v0=" + mac.hexdigest()


class LiveActivity:
    """Sign-ins that happen while the fake runs, per account, as /report/activities lists them."""

    def __init__(self) -> None:
        self.events: dict[str, list[dict[str, Any]]] = {}

    def add(self, account_id: str, event: dict[str, Any]) -> None:
        self.events.setdefault(account_id, []).append(event)

    def between(self, account_id: str, start: dt.date, end: dt.date) -> list[dict[str, Any]]:
        """Events on days [start, end], newest first (stable for equal times)."""
        rows = [e for e in self.events.get(account_id, [])
                if start <= dt.date.fromisoformat(e["time"][:10]) <= end]
        return sorted(rows, key=lambda e: e["time"], reverse=True)


class WebhookSender:
    """The account's event subscription: queues events and delivers them on its own threads."""

    def __init__(self, fake: FakeZoom) -> None:
        self.fake = fake
        self.config = WebhookConfig()
        self.live = LiveActivity()
        self._heap: list[_Delivery] = []
        self._cond = threading.Condition()
        self._seq = itertools.count()
        self._ids = itertools.count(1)
        self._in_flight = 0
        self._threads: list[threading.Thread] = []
        self._stop = False
        self._rng = random.Random(0)
        self.emitted: list[dict[str, Any]] = []
        self.delivered: dict[int, int] = {}  # event id -> 2xx answers
        self.dropped: list[int] = []
        self.given_up: list[int] = []
        self.attempts = 0

    # ---------------------------------------------------------------- set-up
    def configure(self, **settings: Any) -> WebhookConfig:
        with self._cond:
            for k, v in settings.items():
                if not hasattr(self.config, k):
                    raise KeyError(k)
                setattr(self.config, k, v)
            self._rng = random.Random(self.config.seed)
            if self.config.url and not self._threads:
                self._stop = False
                for n in range(max(1, self.config.threads)):
                    thread = threading.Thread(target=self._run, name=f"fakezoom-webhooks-{n}",
                                              daemon=True)
                    thread.start()
                    self._threads.append(thread)
            return self.config

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []

    def _subscribed(self, account: Account) -> bool:
        if not self.config.url:
            return False
        wanted = self.config.account
        return account.id == wanted or (isinstance(wanted, int) and account.index == wanted)

    # ---------------------------------------------------------------- events
    def emit(self, account: Account, event: str, obj: dict[str, Any],
             extra: dict[str, Any] | None = None, *, at: float | None = None) -> None:
        """Queue one event of `account` that happened `at` (default now; a no-op unless the
        account's subscription is configured)."""
        if not self._subscribed(account):
            return
        when = self.fake.clock.now() if at is None else at
        message = {"event": event, "event_ts": int(when * 1000),
                   "payload": {"account_id": account.id, "object": obj, **(extra or {})}}
        body = json.dumps(message, separators=(",", ":")).encode()
        with self._cond:
            event_id = next(self._ids)
            self.emitted.append({"id": event_id, **message})
            cfg, rng = self.config, self._rng
            if rng.random() < cfg.drop_rate:
                self.dropped.append(event_id)
                return
            now = time.monotonic()
            due = now + (cfg.reorder_delay if rng.random() < cfg.reorder_rate else 0.0)
            self._push(_Delivery(due, next(self._seq), body, event_id))
            if rng.random() < cfg.duplicate_rate:
                # Zoom's duplicates are usually the same bytes; half of ours are not, so the
                # receiver's processing (not only a body hash) must make them harmless.
                dup = body if rng.random() < 0.5 else json.dumps(message, indent=1).encode()
                self._push(_Delivery(due + 0.001, next(self._seq), dup, event_id))

    def _push(self, delivery: _Delivery) -> None:
        heapq.heappush(self._heap, delivery)
        self._cond.notify()

    # ---------------------------------------------------------------- delivery
    def _run(self) -> None:
        with httpx.Client(timeout=TIMEOUT_SECONDS) as client:
            while True:
                with self._cond:
                    while not self._stop and (not self._heap
                                              or self._heap[0].due > time.monotonic()):
                        wait = (self._heap[0].due - time.monotonic()) if self._heap else None
                        self._cond.wait(timeout=wait)
                    if self._stop:
                        return
                    delivery = heapq.heappop(self._heap)
                    self._in_flight += 1
                    url, secret = self.config.url, self.config.secret
                ok = False
                try:
                    ok = self._post(client, url, secret, delivery.body)
                finally:
                    with self._cond:
                        self._in_flight -= 1
                        self.attempts += 1
                        if ok:
                            self.delivered[delivery.event_id] = \
                                self.delivered.get(delivery.event_id, 0) + 1
                        elif delivery.attempt < len(ZOOM_RETRY_DELAYS):
                            delay = ZOOM_RETRY_DELAYS[delivery.attempt] * self.config.retry_scale
                            delivery.attempt += 1
                            delivery.due = time.monotonic() + delay
                            self._push(delivery)
                        else:
                            self.given_up.append(delivery.event_id)
                        self._cond.notify_all()

    @staticmethod
    def _post(client: httpx.Client, url: str | None, secret: str, body: bytes) -> bool:
        if not url:
            return False
        ts = str(int(time.time()))  # the request's own time, not the event's
        headers = {"content-type": "application/json", "x-zm-request-timestamp": ts,
                   "x-zm-signature": sign(secret, ts, body), "user-agent": "Zoom Marketplace/1.0a"}
        try:
            response = client.post(url, content=body, headers=headers)
        except httpx.HTTPError:
            return False
        return 200 <= response.status_code < 300

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until nothing is queued or in flight (retries included); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._heap or self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(timeout=min(left, 0.05))
            return True

    def truth(self) -> dict[str, Any]:
        with self._cond:
            return {"emitted": len(self.emitted), "delivered": len(self.delivered),
                    "dropped": list(self.dropped), "given_up": list(self.given_up),
                    "duplicated": sum(1 for n in self.delivered.values() if n > 1),
                    "attempts": self.attempts, "queued": len(self._heap)}


# --- the objects Zoom's events carry --------------------------------------------------------


def user_object(rec: dict[str, Any]) -> dict[str, Any]:
    return {k: rec[k] for k in ("id", "first_name", "last_name", "display_name", "email", "type")
            if k in rec}


def sign_in_event(account: Account, user: str, *, kind: str = "Sign in",
                  client_type: str = "Mac", version: str = "6.1.1.41705",
                  ip_address: str | None = None, when: float | None = None) -> dict[str, Any]:
    """A live sign-in (or out) of `user`: stored for /report/activities, then pushed."""
    fake = account.fake
    with fake.lock:
        rec = account.user(user)
        ts = int(fake.clock.now() if when is None else when)
        time_iso = dt.datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        n = len(fake.webhooks.live.events.get(account.id, []))
        event = {"email": rec["email"], "time": time_iso, "type": kind,
                 "ip_address": ip_address or f"192.0.2.{n % 254 + 1}",
                 "client_type": client_type, "version": version}
        fake.webhooks.live.add(account.id, event)
        # Zoom's event spells the client in lower case where the report capitalises it.
        fake.webhooks.emit(account, "user.signed_in" if kind == "Sign in" else "user.signed_out",
                           {"id": rec["id"], "email": rec["email"], "date_time": time_iso,
                            "client_type": client_type.lower(), "version": version,
                            "login_type": 0}, at=ts)
        return event


def meeting_ended_event(account: Account, meeting: str) -> dict[str, Any]:
    """Push `meeting.ended` for one of the account's meetings (its uuid): the object Zoom's
    event carries (uuid, id, host_id, topic, type, start_time, end_time, duration, timezone),
    sent now, whenever the meeting ended."""
    fake = account.fake
    with fake.lock:
        found = account.data.find_meeting(meeting)
        if found is None:
            raise KeyError(meeting)
        data = account.data
        report = data.meeting_report(found)
        host = data.record(found.host) if data.live(found.host) else data._base(found.host)
        obj = {"uuid": report["uuid"], "id": report["id"], "host_id": host["id"],
               "topic": report["topic"],
               "type": report["type"], "start_time": report["start_time"],
               "end_time": report["end_time"], "duration": report["duration"],
               "timezone": "UTC"}
        fake.webhooks.emit(account, "meeting.ended", obj)
        return obj
