"""The Zoom REST client: one per (source, process), sharing the process's pooled httpx client.

Every request goes: shared rate limiter -> shared access token -> HTTP -> typed result or error.
Retries (timeouts, dropped connections, 5xx) use exponential backoff with full jitter, capped per
sleep and bounded by a total deadline. A 401 / code 124 invalidates exactly the token that failed
and retries once with a fresh one. A 429 drains the account's bucket so every worker backs off,
then retries; a daily-cap 429 raises at once (the run resumes after midnight UTC).
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote

import httpx

from worker.kit.metrics import record_zoom_response
from worker.settings import get_settings
from worker.zoom import codes
from worker.zoom.endpoints import category_for
from worker.zoom.errors import (
    ZoomAuthError,
    ZoomBadResponse,
    ZoomError,
    ZoomForbidden,
    ZoomNotFound,
    ZoomRateLimited,
    ZoomScopeError,
    ZoomServerError,
    ZoomUnavailable,
)

log = logging.getLogger(__name__)

PAGE_SIZE = 300
# A failed request to Zoom that we wait a little for, then retry: first backoff and cap.
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 30.0
# Without a Retry-After header a per-second 429 needs about one second to clear.
DEFAULT_RETRY_AFTER_SECONDS = 1.0


class TokenLike(Protocol):
    @property
    def access_token(self) -> str: ...


class TokenSource(Protocol):
    """The source's shared token (``worker.tokens.cache.SourceTokens`` in production)."""

    def get_token(self) -> TokenLike: ...

    def invalidate(self, token: TokenLike) -> Any: ...


class Limiter(Protocol):
    """The account's shared rate limiter (``worker.ratelimit.bucket.AccountLimiter``)."""

    def acquire(self, category: str, max_wait: float | None = None) -> None: ...

    def drain(self, category: str, seconds: float) -> None: ...

    def throttled(self, category: str, headers: Mapping[str, str], *,
                  daily: bool = False) -> bool: ...

    def observe(self, category: str, headers: Mapping[str, str]) -> None: ...


class NoLimiter:
    """For tests and one-off scripts: never waits, except after a 429 it was told about."""

    def __init__(self, sleep: Callable[[float], None] = time.sleep) -> None:
        self._until: dict[str, float] = {}
        self._sleep = sleep

    def acquire(self, category: str, max_wait: float | None = None) -> None:  # noqa: ARG002 - the Limiter protocol's parameter, passed by keyword
        wait = self._until.get(category, 0.0) - time.monotonic()
        if wait > 0:
            self._sleep(wait)

    def drain(self, category: str, seconds: float) -> None:
        self._until[category] = time.monotonic() + seconds

    def throttled(self, category: str, headers: Mapping[str, str], *,
                  daily: bool = False) -> bool:
        if not daily:  # a daily cap is not waited out in a call
            wait = parse_retry_after(headers.get("Retry-After"))
            self.drain(category, DEFAULT_RETRY_AFTER_SECONDS if wait is None else wait)
        return False  # no pacing to adapt: every 429 counts

    def observe(self, category: str, headers: Mapping[str, str]) -> None:
        pass


@dataclass
class Page:
    """One page of a list endpoint: its items and the rest of the body (without the items)."""

    items: list[dict[str, Any]]
    raw: dict[str, Any]
    number: int

    @property
    def next_page_token(self) -> str:
        return str(self.raw.get("next_page_token") or "")


def encode_meeting_uuid(meeting_uuid: str) -> str:
    """A meeting UUID as a path segment: Zoom wants UUIDs that start with ``/`` or contain
    ``//`` URL-encoded twice (its docs; a single encoding is decoded into a different path)."""
    once = quote(meeting_uuid, safe="")
    if meeting_uuid.startswith("/") or "//" in meeting_uuid:
        return quote(once, safe="")
    return once


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds from now: Zoom sends seconds or a date (HTTP or ISO form)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    when = retry_after_date(value)
    if when is None:
        return None
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


def retry_after_date(value: str) -> datetime | None:
    """A ``Retry-After`` that is a date (HTTP form, or ISO as Zoom also sends) as aware UTC;
    None when it is neither."""
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


_SCOPES_RE = re.compile(r"scopes?\s*:?\s*\[([^\]]*)\]", re.IGNORECASE)
_ONE_SCOPE_RE = re.compile(r"does not contain\s+([\w:.-]+:[\w:.-]+)\s+scope", re.IGNORECASE)


def parse_missing_scopes(message: str) -> list[str]:
    """``"... does not contain scopes:[a, b]"`` -> ``["a", "b"]``; the older 4700 wording
    ``"... does not contain a:b scope."`` -> ``["a:b"]``; empty when no scope is named."""
    match = _SCOPES_RE.search(message or "")
    if match:
        return [s for s in re.split(r"[,\s]+", match.group(1)) if s]
    single = _ONE_SCOPE_RE.search(message or "")
    return [single.group(1)] if single else []


def _is_daily(response: httpx.Response, message: str) -> bool:
    kind = response.headers.get("X-RateLimit-Type", "")
    if "daily" in kind.lower():
        return True
    text = message.lower()
    return "daily" in text or "00:00:00" in text


def _error_body(response: httpx.Response) -> tuple[int | str | None, str]:
    """Zoom's ``{code, message}`` (or OAuth's ``{error, reason}``), tolerant of any body."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None, ""
    if not isinstance(body, dict):
        return None, ""
    code = body.get("code", body.get("error"))
    message = body.get("message") or body.get("reason") or ""
    return (code if isinstance(code, int | str) else None), str(message)[:500]


def _is_html(response: httpx.Response) -> bool:
    ctype = response.headers.get("content-type", "").lower()
    return "html" in ctype or response.content.lstrip()[:1] == b"<"


class ZoomClient:
    """Calls one source's Zoom account. Construct through ``worker.clients.client_for_source``."""

    def __init__(
        self,
        source_key: str,
        tokens: TokenSource,
        limiter: Limiter,
        http: httpx.Client,
        api_url: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        deadline_seconds: float | None = None,
        max_pages: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if timeout is None or max_retries is None or deadline_seconds is None:
            settings = get_settings()
            timeout = settings.zoom_timeout_seconds if timeout is None else timeout
            max_retries = settings.zoom_max_retries if max_retries is None else max_retries
            if deadline_seconds is None:
                deadline_seconds = settings.zoom_deadline_seconds
        self.source_key = source_key
        self.tokens = tokens
        self.limiter = limiter
        self.http = http
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self.deadline_seconds = deadline_seconds
        self.max_pages = MAX_PAGES if max_pages is None else max_pages
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"ZoomClient(source={self.source_key!r}, api_url={self.api_url!r})"

    # -- single requests -------------------------------------------------------------------

    def get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """GET ``path`` (relative to the API base, e.g. ``/users``) and return the JSON object."""
        if not path.startswith("/"):
            path = "/" + path
        category = str(category_for(path))
        url = self.api_url + path
        deadline = time.monotonic() + self.deadline_seconds
        failures = 0  # transient failures (network, 5xx) and per-second 429s so far
        auth_retried = False
        last: ZoomError | None = None

        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._give_up(last, path)
            waited = time.monotonic()
            self.limiter.acquire(category, max_wait=remaining)
            waited = time.monotonic() - waited
            token = self.tokens.get_token()
            try:
                response = self.http.get(
                    url,
                    params=params,
                    headers={"Authorization": f"Bearer {token.access_token}",
                             "Accept": "application/json"},
                    timeout=min(self.timeout, max(remaining, 0.1)),
                )
            except httpx.TransportError as exc:  # timeouts, refused/dropped connections
                last = ZoomUnavailable(
                    f"GET {path}: {type(exc).__name__} talking to Zoom",
                    admin_message="Zoom could not be reached; the sync will retry.",
                )
                failures += 1
                self._backoff(failures, deadline, last, path)
                continue

            status = response.status_code
            record_zoom_response(self.source_key, category, status, waited)
            if status < 400:
                self.limiter.observe(category, response.headers)
                return self._json(response, path)

            code, message = _error_body(response)
            if status == 429:
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                daily = _is_daily(response, message)
                # The shared limiter learns from the 429 for every worker on the account
                # (Retry-After, a slower rate, Zoom's limit headers); a 429 counts towards
                # giving up only once the rate cannot be slowed any further.
                adapting = self.limiter.throttled(category, response.headers, daily=daily)
                if daily:
                    raise ZoomRateLimited(
                        f"GET {path}: daily rate limit reached: {message}".rstrip(": "),
                        code, status, retry_after=retry_after, daily=True,
                    )
                last = ZoomRateLimited(
                    f"GET {path}: rate limited", code, status, retry_after=retry_after
                )
                failures += 0 if adapting else 1
                wait = retry_after if retry_after is not None else DEFAULT_RETRY_AFTER_SECONDS
                log.warning("zoom 429 source=%s path=%s category=%s retry_after=%.2f",
                            self.source_key, path, category, wait)
                if failures > self.max_retries or time.monotonic() + wait > deadline:
                    raise last
                continue

            if code in codes.SCOPE_CODES and status in (400, 401, 403):
                # Zoom names the missing scopes in its own family; when it does not, name the
                # endpoint's scope in the family the app's token uses.
                missing = parse_missing_scopes(message) or [
                    codes.scope_hint(path, getattr(token, "scopes", None) or ())]
                raise ZoomScopeError(
                    f"GET {path}: {message or 'token lacks scopes'}", code, status,
                    missing=[m for m in missing if m],
                )
            if status == 401 or code in codes.INVALID_TOKEN_CODES:
                if not auth_retried:
                    auth_retried = True
                    log.info("zoom token rejected source=%s path=%s code=%s: refreshing once",
                             self.source_key, path, code)
                    self.tokens.invalidate(token)
                    continue
                raise ZoomAuthError(
                    f"GET {path}: access token rejected twice: {message}".rstrip(": "),
                    code, status, admin_message=codes.REST_MESSAGES[codes.INVALID_TOKEN],
                )
            if status == 403 and (_is_html(response) or code is None):
                raise ZoomForbidden(
                    f"GET {path}: HTML 403 from Zoom's edge (not an auth failure)", None, status,
                    admin_message="Zoom refused this one item; it was skipped.",
                )
            if status == 404:
                raise ZoomNotFound(f"GET {path}: {message or 'not found'}", code, status,
                                   admin_message=codes.rest_message(code))
            if status >= 500:
                last = ZoomServerError(
                    f"GET {path}: Zoom server error {status}", code, status,
                    admin_message="Zoom answered with server errors; the sync will retry.",
                )
                failures += 1
                self._backoff(failures, deadline, last, path)
                continue
            known = codes.rest_message(code)
            raise ZoomError(
                f"GET {path}: {message or 'request refused'}", code, status,
                admin_message=f"{known} (GET {path}: {message})" if known else None,
            )

    def _json(self, response: httpx.Response, path: str) -> dict[str, Any]:
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise self._bad_response(path, "the response is malformed JSON (truncated?)",
                                     status=response.status_code) from None
        if not isinstance(body, dict):
            raise self._bad_response(
                path, f"expected a JSON object, got {type(body).__name__}",
                status=response.status_code,
            )
        return body

    def _bad_response(
        self, path: str, reason: str, *, page: int | None = None, status: int | None = None
    ) -> ZoomBadResponse:
        """A named, permanent failure: which endpoint, which page, which source, and why. The
        run that gets it ends `failed`, so the words say so (pages already stored are kept)."""
        where = f"GET {path}" + (f" page {page}" if page is not None else "")
        return ZoomBadResponse(
            f"{where}: {reason} [source {self.source_key}]", None, status,
            reason=reason, page=page,
            admin_message=f"Zoom's answer to {where} was unusable: {reason}. The run failed "
            "(pages stored before it are kept); start it again, and report it if it repeats.",
        )

    def _backoff(self, failures: int, deadline: float, last: ZoomError, path: str) -> None:
        if failures > self.max_retries:
            raise last
        # Full jitter: workers that failed together do not retry together.
        delay = random.uniform(0, min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** failures))
        if time.monotonic() + delay >= deadline:
            raise last
        log.info("zoom retry source=%s path=%s attempt=%d after %s in %.2fs",
                 self.source_key, path, failures, type(last).__name__, delay)
        self._sleep(delay)

    def _give_up(self, last: ZoomError | None, path: str) -> ZoomError:
        return last or ZoomUnavailable(f"GET {path}: deadline passed before a request was sent")

    # -- pagination ------------------------------------------------------------------------

    def iter_pages(
        self, path: str, params: dict[str, Any] | None, items_key: str
    ) -> Iterator[Page]:
        """Pages of a list endpoint, following ``next_page_token``; holds one page at a time.

        Always ends: a server whose tokens never stop is caught by `PageGuard` (repeated token,
        empty page with a token, more items or pages than ``total_records`` allows, a hard
        cap), and the call fails with a named `ZoomBadResponse` rather than paging for hours.
        """
        query = dict(params or {})
        query.setdefault("page_size", PAGE_SIZE)
        guard = PageGuard(int(query["page_size"]), self.max_pages)
        number = 0
        while True:
            try:
                body = self.get(path, query)
            except ZoomBadResponse as exc:
                if exc.page is not None:
                    raise
                # Name the page: which one broke matters to whoever reads the run.
                raise self._bad_response(path, exc.reason, page=number + 1,
                                         status=exc.status) from None
            items = body.pop(items_key, None)
            if items is None:
                items = []
            number += 1
            if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                raise self._bad_response(path, f"'{items_key}' is not a list of objects",
                                         page=number)
            page = Page(items=items, raw=body, number=number)
            next_token = page.next_page_token
            problem = guard.check(page, next_token)
            if problem:
                raise self._bad_response(path, problem, page=number)
            yield page
            if not next_token:
                return
            query["next_page_token"] = next_token


# Extra pages tolerated beyond what ``total_records`` / ``page_size`` allows (a list that grew
# while it was paged); and the last guard, per call, whatever the server says (300 items a page:
# 3 million items, more than any one Zoom list or one month's report we page).
PAGE_MARGIN = 2
MAX_PAGES = 10_000


class PageGuard:
    """Decides, page by page, whether a paged list can still be honest. Rules from Zoom's
    pagination contract (zoom-api.md "Pagination"; every list schema in the OpenAPI document
    carries ``next_page_token``, ``page_size`` and, where known, ``total_records``)."""

    def __init__(self, page_size: int, max_pages: int = MAX_PAGES) -> None:
        self.page_size = max(1, page_size)
        self.max_pages = max_pages
        self.tokens: set[str] = set()
        self.items = 0
        self.pages = 0

    def check(self, page: Page, next_token: str) -> str | None:
        """Why this page breaks the contract, or None."""
        self.pages += 1
        self.items += len(page.items)
        total = page.raw.get("total_records")
        if isinstance(total, int) and not isinstance(total, bool) and total >= 0:
            if self.items > total:
                return (f"{self.items} items after {self.pages} pages, more than the "
                        f"total_records={total} Zoom promised")
            size = page.raw.get("page_size")
            size = size if isinstance(size, int) and not isinstance(size, bool) and size > 0 \
                else self.page_size
            allowed = -(-total // min(size, self.page_size)) + PAGE_MARGIN
            if next_token and self.pages >= allowed:
                return (f"{self.pages} pages and still a next_page_token, more than "
                        f"total_records={total} at page_size={size} allows")
        if not next_token:
            return None
        if not page.items:
            return f"an empty page with a next_page_token (after {self.pages} pages)"
        if next_token in self.tokens:
            return f"Zoom repeated a next_page_token (after {self.pages} pages)"
        if self.pages >= self.max_pages:
            return f"still paging after {self.pages} pages, the cap per call"
        self.tokens.add(next_token)
        return None
