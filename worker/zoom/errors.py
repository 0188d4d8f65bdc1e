"""Typed errors of everything that talks to Zoom (REST, OAuth, the token cache).

The tree, in the manner of httpx's ``_exceptions.py``::

    ZoomError                      base: .code .status .admin_message .retryable
    ├── ZoomAuthError              bad client, invalid_grant, revoked token (.reauthorize)
    ├── ZoomScopeError             the token lacks scopes (.missing)
    ├── ZoomNotFound               404: user, meeting, group gone (callers usually skip)
    │   └── ZoomForbidden          Cloudflare HTML 403 for one odd resource: skip it, not auth
    ├── ZoomRateLimited            429 or our own limiter refused to wait (.retry_after, .daily)
    ├── ZoomServerError            5xx after retries
    ├── ZoomBadResponse            body is not JSON or not the documented shape
    ├── ZoomUnavailable            timeouts / connection errors after retries
    └── TokenCacheUnavailable      Redis is down: no token can be shared, so none is fetched

Lower-level exceptions are converted at the boundary (``raise ZoomUnavailable(...) from exc``).
Nothing in ``str()``, ``repr()`` or ``args`` may hold a secret or a full token: messages are
built from Zoom's ``code``/``message``/``reason`` and our own words, never from request headers
or credentials.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "TokenCacheUnavailable",
    "ZoomAuthError",
    "ZoomBadResponse",
    "ZoomError",
    "ZoomForbidden",
    "ZoomNotFound",
    "ZoomRateLimited",
    "ZoomScopeError",
    "ZoomServerError",
    "ZoomUnavailable",
]


class ZoomError(Exception):
    """Base of every Zoom failure.

    ``code`` is Zoom's numeric code (``124``, ``3001``...) or the OAuth error string
    (``invalid_grant``); ``status`` the HTTP status when there was a response. ``admin_message``
    is what a tenant admin reads in a run or connection-test record.
    """

    retryable: bool = False

    def __init__(
        self,
        message: str,
        code: int | str | None = None,
        status: int | None = None,
        *,
        admin_message: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.admin_message = admin_message or message

    def __str__(self) -> str:
        parts = [self.message]
        if self.code is not None:
            parts.append(f"code={self.code}")
        if self.status is not None:
            parts.append(f"status={self.status}")
        return parts[0] if len(parts) == 1 else f"{parts[0]} ({', '.join(parts[1:])})"

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}({self.message!r}, code={self.code!r}, status={self.status!r})"


class ZoomAuthError(ZoomError):
    """Zoom refused the app's credentials or token.

    ``reauthorize`` is true when the refresh token itself was rejected (``invalid_grant`` on
    every refresh token we hold): only an admin pasting a new one can fix it.
    """

    def __init__(
        self,
        message: str,
        code: int | str | None = None,
        status: int | None = None,
        *,
        reauthorize: bool = False,
        admin_message: str | None = None,
    ) -> None:
        super().__init__(message, code, status, admin_message=admin_message)
        self.reauthorize = reauthorize


class ZoomScopeError(ZoomError):
    """The token lacks scopes an endpoint needs (Zoom codes 4700 / 4711)."""

    def __init__(
        self,
        message: str,
        code: int | str | None = None,
        status: int | None = None,
        *,
        missing: Iterable[str] = (),
        admin_message: str | None = None,
    ) -> None:
        self.missing: list[str] = list(missing)
        if admin_message is None:
            needed = ", ".join(self.missing) if self.missing else "the scopes this data needs"
            admin_message = (
                f"The Zoom app is missing scopes: {needed}. Add them to the app in the Zoom "
                "Marketplace, re-authorise it, then test the connection again."
            )
        super().__init__(message, code, status, admin_message=admin_message)


class ZoomNotFound(ZoomError):
    """The resource does not exist (any more): 404 with 1001, 3001, 4130..."""


class ZoomForbidden(ZoomNotFound):
    """An HTML (Cloudflare) 403 for one resource. Not an auth failure: skip the resource."""


class ZoomRateLimited(ZoomError):
    """Zoom answered 429, or waiting for our shared bucket would exceed the caller's bound.

    ``daily`` means the account's daily cap is spent: requests resume at 00:00 UTC, so the run
    should stop and resume later rather than sleep inside a task.
    """

    def __init__(
        self,
        message: str,
        code: int | str | None = 429,
        status: int | None = None,
        *,
        retry_after: float | None = None,
        daily: bool = False,
        admin_message: str | None = None,
    ) -> None:
        if admin_message is None:
            admin_message = (
                "Zoom's daily request limit for this account is used up; the sync resumes "
                "after 00:00 UTC."
                if daily
                else "Zoom's rate limit for this account was reached; the sync will retry."
            )
        super().__init__(message, code, status, admin_message=admin_message)
        self.retry_after = retry_after
        self.daily = daily
        self.retryable = not daily


class ZoomServerError(ZoomError):
    """Zoom kept answering 5xx until our retries or deadline ran out."""

    retryable = True


class ZoomBadResponse(ZoomError):
    """The body was not JSON, or not the shape Zoom documents (e.g. the item list is missing),
    or a paged list broke its contract (``reason``; ``page`` is the page number when paging)."""

    def __init__(
        self,
        message: str,
        code: int | str | None = None,
        status: int | None = None,
        *,
        reason: str | None = None,
        page: int | None = None,
        admin_message: str | None = None,
    ) -> None:
        super().__init__(message, code, status, admin_message=admin_message)
        self.reason = reason or message
        self.page = page


class ZoomUnavailable(ZoomError):
    """Zoom could not be reached (timeouts, connection errors) within our retries/deadline."""

    retryable = True


class TokenCacheUnavailable(ZoomError):
    """Redis (token cache / rate limiter) is unreachable. Retry the task later.

    There is deliberately no per-process fallback: every worker fetching its own token would
    stampede Zoom's token endpoint and, with single-token apps, invalidate each other.
    """

    retryable = True
