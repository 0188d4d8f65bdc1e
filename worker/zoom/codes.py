"""Zoom's error codes and scope names, in one place, with what a tenant admin should read.

Sources: zoom-api.md "Errors" (REST codes 124, 300, 1001, 3001, 4700/4711, 12702), "OAuth"
(OAuth codes 4700-4717: 4702/4704 invalid client, 4711 refresh token invalid, 4717 app disabled;
``invalid_client``, ``invalid_grant``) and "Scopes" (classic and granular names; 4700 "does not
contain scopes", 4711 "does not contain scopes:[a, b]"); the scope names of each endpoint come
from Zoom's OpenAPI document (each operation's "Scopes:" line, classic) and zoom-api.md
(granular). Note 4711 means two things: on the REST API a missing scope, from OAuth a refresh
token that is no longer valid.
"""

from __future__ import annotations

from collections.abc import Iterable

from worker.zoom.endpoints import CLASSIC, GRANULAR, has_scope_for, scopes_for

# -- REST API codes ----------------------------------------------------------------------
INVALID_TOKEN = 124
BAD_REQUEST = 300  # invalid/expired page token, report date out of range, validation
USER_NOT_FOUND = 1001
MEETING_NOT_FOUND = 3001
SCOPE_MISSING = 4700  # "Invalid access token, does not contain scopes"
SCOPES_MISSING = 4711  # "... does not contain scopes:[a, b]"
MEETING_TOO_OLD = 12702

INVALID_TOKEN_CODES = frozenset({INVALID_TOKEN})
SCOPE_CODES = frozenset({SCOPE_MISSING, SCOPES_MISSING})
# A meeting whose participants cannot be had any more: skip it, do not fail the run.
GONE_MEETING_CODES = frozenset({MEETING_NOT_FOUND, MEETING_TOO_OLD})

REST_MESSAGES: dict[int, str] = {
    INVALID_TOKEN: "Zoom rejected the app's access token. Check that the app is activated and "
    "not revoked, then test the connection again.",
    BAD_REQUEST: "Zoom refused the request as invalid (an expired page token, or a report date "
    "outside the last six months). The run failed; start it again.",
    USER_NOT_FOUND: "The Zoom user no longer exists; it was skipped.",
    MEETING_NOT_FOUND: "The meeting no longer exists at Zoom; it was skipped.",
    SCOPE_MISSING: "The Zoom app lacks a scope this data needs.",
    SCOPES_MISSING: "The Zoom app lacks a scope this data needs.",
    MEETING_TOO_OLD: "The meeting is older than Zoom keeps participants (one year); it was "
    "skipped.",
}

# -- OAuth codes -------------------------------------------------------------------------
OAUTH_INVALID_CLIENT = frozenset({"invalid_client", "4702", "4704"})
OAUTH_REFRESH_INVALID = frozenset({"invalid_grant", "4711"})
OAUTH_APP_DISABLED = frozenset({"4717"})

# The one message for a refresh token Zoom no longer accepts (token cache, worker runs and the
# connection test alike; the README documents it).
REAUTHORIZE_MESSAGE = (
    "refresh token rejected by Zoom (revoked or superseded): paste a new refresh token in the "
    "source and test again"
)
INVALID_CLIENT_MESSAGE = (
    "client secret rejected by Zoom: check the client ID and secret in the source"
)
APP_DISABLED_MESSAGE = "the Zoom app is disabled: re-activate it in the Zoom App Marketplace"


def rest_message(code: int | str | None) -> str | None:
    """The admin message of a REST code, or None for codes without one of their own."""
    try:
        return REST_MESSAGES.get(int(str(code)))
    except ValueError:
        return None


def oauth_message(code: int | str | None, *, reauthorize: bool = False) -> str | None:
    """The admin message of an OAuth refusal, or None when the code says nothing specific."""
    text = "" if code is None else str(code)
    if reauthorize or text in OAUTH_REFRESH_INVALID:
        return REAUTHORIZE_MESSAGE
    if text in OAUTH_INVALID_CLIENT:
        return INVALID_CLIENT_MESSAGE
    if text in OAUTH_APP_DISABLED:
        return APP_DISABLED_MESSAGE
    return None


def meeting_gone(code: int | str | None) -> bool:
    return str(code) in {str(c) for c in GONE_MEETING_CODES}


# -- scopes ------------------------------------------------------------------------------

def scope_family(granted: Iterable[str]) -> str:
    """Which family an app's scopes are in: granular names have four or more parts
    (``user:read:list_users:admin``); classic ones three at most (``user:read:admin``)."""
    return GRANULAR if any(len(s.split(":")) >= 4 for s in granted) else CLASSIC


def scope_names_for(path: str, family: str) -> tuple[str, ...]:
    """The scope names of ``path`` in one family (worker.zoom.endpoints)."""
    return scopes_for(path, family)


def scope_hint(path: str, granted: Iterable[str] | None) -> str:
    """The scope to add for ``path``, named in the family the app uses (a granular app is never
    told to add ``report:read:admin``)."""
    family = scope_family(granted or ())
    names = scope_names_for(path, family) or scope_names_for(path, CLASSIC)
    return names[0] if names else ""


def missing_scopes(granted: Iterable[str], paths: Iterable[str]) -> list[str]:
    """For each path none of whose scopes is granted, the one to add (in the app's family)."""
    granted = list(granted)
    out: list[str] = []
    for path in paths:
        if not has_scope_for(path, granted):
            name = scope_hint(path, granted)
            if name and name not in out:
                out.append(name)
    return out


def scope_message(missing: list[str]) -> str:
    names = ", ".join(missing)
    one = len(missing) == 1
    return (
        f"{'scope' if one else 'scopes'} {names} missing: add {'it' if one else 'them'} in the "
        "Zoom app's Scopes page and re-activate the app"
    )
