"""Zoom's list items as rows: one parse function per object kind, every field read with ``.get``
and converted in one place.

What Zoom's OpenAPI document (shared/zoom/ZoomMeetingAPISpec.json) allows is what we must take:
it requires almost nothing (a `/users` item needs only ``email`` and ``type``; pending users have
no ``id``), sets no maximum length on identifiers and free text (only ``first_name``/``last_name``
64 and ``dept`` 128), and lets timestamps carry any offset. So:

- identifiers are kept exactly as sent (never truncated, never stripped); one that cannot be a
  key at all (not a string or integer, a NUL, a lone surrogate, longer than `ID_MAX_BYTES`, which
  keeps it inside a Postgres b-tree index entry) makes its item `Unusable`;
- display text is cleaned (NUL and lone surrogates become U+FFFD, which Postgres cannot store
  otherwise) and cut at `TEXT_MAX_CHARS` with `TRUNCATED` appended, so a cut value says so;
- integers must fit the column (32 bits); timestamps are aware UTC (`parse_time`);
- a field that cannot be stored (other than the item's key) is left out and noted; an item
  whose key cannot be stored is `Unusable`: skipped and counted by the caller (`ItemWarnings`
  on the run's ``details["item_warnings"]``), never the run's end.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

# Postgres refuses b-tree index entries above ~2700 bytes; our unique keys hold up to two Zoom
# identifiers, so each stays well under half of it.
ID_MAX_BYTES = 1000
# An identifier of at most this many characters fits ID_MAX_BYTES whatever it holds (UTF-8
# takes at most 4 bytes a character).
_SHORT_IDENT = ID_MAX_BYTES // 4
# Display text beyond this is cut (and says so): nothing a person reads is this long.
TEXT_MAX_CHARS = 10_000
TRUNCATED = " …[truncated]"
INT_MIN, INT_MAX = -(2**31), 2**31 - 1
# How many examples of skipped or cut items a run keeps (the count is always whole).
MAX_EXAMPLES = 5

# Sign-in log event types: the spec's enum for /report/activities `type` is "Sign in" and
# "Sign out"; older answers and other tools spell them "signin" / "sign_in". Stored canonical.
SIGN_IN = "Sign in"
SIGN_OUT = "Sign out"
SIGN_IN_TYPES = ("sign in", "signin", "sign_in")
SIGN_OUT_TYPES = ("sign out", "signout", "sign_out")


class Unusable(ValueError):
    """This item cannot be stored; the message names the field and why."""


@dataclass
class ItemWarnings:
    """Items skipped or cut during one run: counts by kind and the first few examples, for the
    run's ``details["item_warnings"]``."""

    skipped: dict[str, int] = field(default_factory=dict)
    truncated: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)

    def _example(self, text: str) -> None:
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(text[:300])

    def skip(self, kind: str, reason: str, item: dict[str, Any] | None = None) -> None:
        self.skipped[kind] = self.skipped.get(kind, 0) + 1
        self._example(f"{kind} skipped: {reason}{_describe(item)}")

    def cut(self, kind: str, name: str) -> None:
        self.truncated[kind] = self.truncated.get(kind, 0) + 1
        self._example(f"{kind} field {name} truncated to {TEXT_MAX_CHARS} characters")

    def drop(self, kind: str, name: str, reason: str, item: dict[str, Any] | None) -> None:
        self.dropped[kind] = self.dropped.get(kind, 0) + 1
        self._example(f"{kind} field {name} not stored: {reason}{_describe(item)}")

    @property
    def count(self) -> int:
        return sum(self.skipped.values())

    def add(self, other: ItemWarnings) -> None:
        """Take in what `other` noted (a page parsed apart), as if noted here after these."""
        for mine, theirs in ((self.skipped, other.skipped), (self.truncated, other.truncated),
                             (self.dropped, other.dropped)):
            for kind, n in theirs.items():
                mine[kind] = mine.get(kind, 0) + n
        for text in other.examples:
            self._example(text)

    def as_dict(self) -> dict[str, Any]:
        return {"skipped": sum(self.skipped.values()), "skipped_by_kind": dict(self.skipped),
                "truncated": sum(self.truncated.values()),
                "truncated_by_kind": dict(self.truncated),
                "dropped_fields": sum(self.dropped.values()),
                "dropped_by_kind": dict(self.dropped), "examples": list(self.examples)}

    def details(self) -> dict[str, Any]:
        """What a run's ``details`` gets: nothing when every item was stored whole."""
        if not self.skipped and not self.truncated and not self.dropped:
            return {}
        return {"item_warnings": self.as_dict()}


def _describe(item: dict[str, Any] | None) -> str:
    if not item:
        return ""
    for key in ("id", "uuid", "email", "user_email", "time", "date"):
        value = item.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool) and value != "":
            return f" ({key}={str(value)[:80]!r})"
    return ""


def parse_items(
    kind: str,
    items: list[dict[str, Any]],
    parse: Callable[[dict[str, Any], Fields], dict[str, Any]],
    warnings: ItemWarnings,
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(item, row) of each usable item; the others counted on ``warnings``, with why."""
    out = []
    for item in items:
        try:
            out.append((item, parse(item, Fields(kind, item, warnings))))
        except Unusable as exc:
            warnings.skip(kind, str(exc), item)
    return out


# -- typed conversions (one place) -------------------------------------------------------


# What Postgres TEXT cannot hold: NUL and (unpaired) surrogates.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


# One encoder for every content hash (`json.dumps` with options builds one per call); its text
# is ASCII, every other character escaped in lower-case hex.
_HASH_JSON = json.JSONEncoder(sort_keys=True, default=str)
# What `_clean` replaces looks like this in that text: NUL, or a surrogate (an unpaired one, or
# half of a valid pair: those items, and a literal backslash-u, just take the general path).
_ESCAPED_UNSTORABLE = re.compile(r"\\u(?:0000|d[89a-f])")


def _clean(text: str) -> str:
    """Postgres TEXT holds neither NUL nor unpaired surrogates (what JSON's ``\\ud800`` gives).
    A regular expression, not a loop over characters: every text field of every item passes
    here (it was the largest share of the worker's CPU per sign-in, bench/RESULTS.md)."""
    return _UNSTORABLE.sub("\ufffd", text)


def parse_time(value: Any) -> datetime | None:
    """Zoom's ISO-8601 timestamps (``Z``, any offset, or none: UTC) as aware UTC; None when
    absent or not a timestamp. The one parser of Zoom times in the worker."""
    if not value or not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # year 1 with a positive offset, year 9999 with a negative one
        return None


def content_hash(item: dict[str, Any]) -> str:
    """Hash of an item as Zoom sent it: tells "updated" from "unchanged" cheaply. Stored on
    every directory row, so the formula (`json.dumps(item, sort_keys=True, default=str)`'s
    text) cannot change without making every stored row look changed once."""
    return hashlib.sha256(_HASH_JSON.encode(item).encode()).hexdigest()


def key_hash(*parts: Any) -> str:
    """A natural key of parts as one fixed-size string (surrogate-safe)."""
    joined = "\x1f".join("" if p is None else str(p) for p in parts)
    return hashlib.sha256(joined.encode("utf-8", "surrogatepass")).hexdigest()


def _ident_problem(value: Any, clean: bool = False) -> str | None:
    """Why `value` cannot be a stored identifier (None: it can). ``clean``: the item is known
    to hold nothing `_clean` replaces (`Fields.hashed`)."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return f"is a {type(value).__name__}, not an identifier"
    text = str(value)
    if not clean and _clean(text) != text:
        return "holds characters no database can store"
    if len(text.encode()) > ID_MAX_BYTES:
        return f"is {len(text.encode())} bytes, over {ID_MAX_BYTES}"
    return None


@dataclass
class Fields:
    """Typed reads of one item's fields; text that had to be cut is noted on ``warnings``."""

    kind: str
    item: dict[str, Any]
    warnings: ItemWarnings
    # Set by `hashed`: no string of the item holds what `_clean` replaces, so the reads below
    # skip it (the same values, fewer calls: every field of every user passes here).
    clean: bool = False

    def hashed(self) -> str:
        """The item's `content_hash`, and from the same text whether it is `clean`: call it
        before the other reads."""
        encoded = _HASH_JSON.encode(self.item)
        self.clean = _ESCAPED_UNSTORABLE.search(encoded) is None
        return hashlib.sha256(encoded.encode()).hexdigest()

    def ident(self, name: str, *, required: bool = False, key: bool = False) -> str | None:
        """An identifier, exactly as sent (integers as their decimal form). One that cannot be
        stored makes the item unusable when it is the item's key (or required); otherwise only
        the field is left out, and noted."""
        value = self.item.get(name)
        if value is None or value == "":
            if required:
                raise Unusable(f"no {name}")
            return None
        if self.clean and type(value) is str and len(value) <= _SHORT_IDENT:
            return value  # what `_ident_problem` would let through
        problem = _ident_problem(value, self.clean)
        if problem is None:
            return str(value)
        if required or key:
            raise Unusable(f"{name} {problem}")
        self.warnings.drop(self.kind, name, problem, self.item)
        return None

    def email(self, name: str = "email", *, key: bool = False) -> str:
        """An e-mail address, lower-cased (how every table matches them); "" when absent."""
        value = self.ident(name, key=key)
        return "" if value is None else value.lower()

    def text(self, name: str, *, default: str = "") -> str:
        value = self.item.get(name)
        if value is None:
            return default
        if type(value) is not str:
            value = json.dumps(value, sort_keys=True) if isinstance(value, dict | list) \
                else str(value)
        text = value if self.clean else _clean(value)
        if len(text) > TEXT_MAX_CHARS:
            self.warnings.cut(self.kind, name)
            text = text[: TEXT_MAX_CHARS - len(TRUNCATED)] + TRUNCATED
        return text

    def optional_text(self, name: str) -> str | None:
        return self.text(name) or None

    def integer(self, name: str, *, default: int | None = None) -> int | None:
        """An integer that fits its column; one that is not (or does not fit) is left out
        (``default``) and noted: no integer field is the key of an item."""
        value = self.item.get(name)
        if value is None or value == "":
            return default
        number: int | None = None
        if isinstance(value, bool):
            number = int(value)
        elif isinstance(value, int):
            number = value
        elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
            number = int(value)
        elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
            number = int(value.strip())
        if number is None:
            self.warnings.drop(self.kind, name, "is not an integer", self.item)
            return default
        if not INT_MIN <= number <= INT_MAX:
            self.warnings.drop(self.kind, name, f"{number} does not fit a 32-bit column",
                               self.item)
            return default
        return number

    def count(self, name: str) -> int:
        number = self.integer(name, default=0)
        return 0 if number is None else number

    def time(self, name: str, *, required: bool = False) -> datetime | None:
        when = parse_time(self.item.get(name))
        if when is None and required:
            raise Unusable(f"{name} is missing or not a timestamp")
        return when

    def ids(self, name: str) -> list[str]:
        """A list of identifiers (group_ids): the usable ones, in order."""
        value = self.item.get(name)
        if not isinstance(value, list):
            return []
        out = []
        for entry in value:
            if entry != "" and _ident_problem(entry, self.clean) is None:
                out.append(str(entry))
        return out

    def objects(self, name: str) -> list[dict[str, Any]]:
        """A list of small objects (custom_attributes), as JSON-safe dicts."""
        value = self.item.get(name)
        if isinstance(value, dict):
            value = [value]
        if not isinstance(value, list):
            return []
        return [{str(k): v for k, v in entry.items()} for entry in value
                if isinstance(entry, dict)]


# -- one parse function per kind ---------------------------------------------------------


EMAIL_KEY = "email:"


def user_key(fields: Fields) -> str:
    """A user's key: Zoom's id, or for a user without one (pending users: the spec requires only
    ``email`` and ``type``) ``email:`` and the lower-cased address."""
    zoom_id = fields.ident("id", key=True)
    if zoom_id is not None:
        return zoom_id
    email = fields.email(key=True)
    if not email:
        raise Unusable("neither id nor email")
    return EMAIL_KEY + email


def user_ref(key: str) -> str:
    """What a ``{userId}`` path parameter takes for a `user_key`: "the user ID or email address"
    (spec, e.g. ``reportMeetings``)."""
    return key.removeprefix(EMAIL_KEY)


def parse_user(_item: dict[str, Any], f: Fields) -> dict[str, Any]:
    """A `/users` item (spec ``GET /users``, operationId ``users``)."""
    digest = f.hashed()
    first, last = f.text("first_name"), f.text("last_name")
    return {
        "zoom_id": user_key(f),
        "email": f.ident("email") or "",
        "first_name": first,
        "last_name": last,
        "display_name": f.text("display_name") or f"{first} {last}".strip(),
        "type": f.integer("type"),
        "status": f.text("status"),
        "role_id": f.ident("role_id"),
        "dept": f.optional_text("dept"),
        "employee_unique_id": f.ident("employee_unique_id"),
        "group_ids": f.ids("group_ids"),
        "timezone": f.optional_text("timezone"),
        "verified": f.integer("verified"),
        "last_client_version": f.optional_text("last_client_version"),
        "zoom_created_at": f.time("created_at"),
        "last_login_time": f.time("last_login_time"),
        "custom_attributes": f.objects("custom_attributes"),
        "content_hash": digest,
    }


# What `parse_user` reads as identifiers and as integers: whatever the text, these fields'
# values can be left out (and noted) when of the wrong type or size.
_USER_IDENTS = ("id", "email", "role_id", "employee_unique_id")
_USER_INTEGERS = ("type", "verified")


def user_digest(item: dict[str, Any]) -> tuple[str, str] | None:
    """(`user_key`, `content_hash`) of a `/users` item that `parse_user` would store noting
    nothing (no field cleaned, cut or left out), told without the parse; None when it cannot
    be told so cheaply (parse the item). An item stored with this key and hash needs no parse
    to be seen unchanged: its row is what `parse_user` gave the same item before, and the
    parse would add nothing to the run's warnings (tests/worker/zoom/test_items_directory.py
    tries every field `parse_user` reads with every kind of unusable value)."""
    encoded = _HASH_JSON.encode(item)
    # Within TEXT_MAX_CHARS no text field can be cut (each is at most as long as its part
    # of this text); without escapes `_clean` would replace, nothing is cleaned.
    if len(encoded) > TEXT_MAX_CHARS or _ESCAPED_UNSTORABLE.search(encoded):
        return None
    get = item.get
    for name in _USER_IDENTS:
        value = get(name)
        kind = type(value)
        if not (value is None or (kind is str and (len(value) <= _SHORT_IDENT
                                                   or len(value.encode()) <= ID_MAX_BYTES))
                or (kind is int and len(str(value)) <= ID_MAX_BYTES)):
            return None
    for name in _USER_INTEGERS:
        value = get(name)
        if not (value is None or value == "" or (type(value) is int
                                                 and INT_MIN <= value <= INT_MAX)):
            return None
    zoom_id = get("id")
    if zoom_id is not None and zoom_id != "":
        key = str(zoom_id)
    else:
        email = get("email")
        if email is None or email == "":
            return None  # unusable: parsed, to be counted
        key = EMAIL_KEY + str(email).lower()
    return key, hashlib.sha256(encoded.encode()).hexdigest()


def parse_group(_item: dict[str, Any], f: Fields) -> dict[str, Any]:
    """A `/groups` item (operationId ``groups``): no field is required by the spec."""
    digest = f.hashed()
    return {"zoom_id": f.ident("id", required=True), "name": f.text("name"),
            "total_members": f.integer("total_members"), "content_hash": digest}


def parse_role(_item: dict[str, Any], f: Fields) -> dict[str, Any]:
    """A `/roles` item (operationId ``roles``)."""
    digest = f.hashed()
    return {"zoom_id": f.ident("id", required=True), "name": f.text("name"),
            "description": f.optional_text("description"),
            "total_members": f.integer("total_members"), "from_users_only": False,
            "content_hash": digest}


def parse_member(_item: dict[str, Any], f: Fields) -> dict[str, Any]:
    """A group or role member (operationIds ``groupMembers``, ``roleMembers``): keyed like a
    user, so a member without ``id`` still matches their user row."""
    return {"user_zoom_id": user_key(f), "email": f.ident("email") or ""}


def _storable(value: str) -> bool:
    """Whether Postgres TEXT can hold `value` as it is (no NUL, no surrogate). ASCII holds no
    surrogate: then only a NUL needs looking for, without the regular expression."""
    if value.isascii():
        return "\x00" not in value
    return _UNSTORABLE.search(value) is None


def member_rows(kind: str, items: list[dict[str, Any]], warnings: ItemWarnings
                ) -> list[dict[str, Any]]:
    """`parse_member`'s rows of the usable items, the others counted on ``warnings``, as
    `parse_items` does. Every member of every group and role passes here, on every pull: the
    usual item (a short text ``id``, an ``email`` short text or absent, nothing to clean) is
    read in one step; any other takes `Fields` and `parse_member` (the same rows and warnings,
    tests/worker/zoom/test_items_directory.py)."""
    out = []
    for item in items:
        get = item.get
        zoom_id, email = get("id"), get("email")
        if (type(zoom_id) is str and zoom_id and len(zoom_id) <= _SHORT_IDENT
                and _storable(zoom_id)):
            if email is None or email == "":
                out.append({"user_zoom_id": zoom_id, "email": ""})
                continue
            if type(email) is str and len(email) <= _SHORT_IDENT and _storable(email):
                out.append({"user_zoom_id": zoom_id, "email": email})
                continue
        out.extend(row for _, row in parse_items(kind, [item], parse_member, warnings))
    return out


def sign_in_type(raw: str) -> str:
    """The canonical spelling of a sign-in log event type (other values kept as sent)."""
    folded = raw.strip().lower()
    if folded in SIGN_IN_TYPES:
        return SIGN_IN
    if folded in SIGN_OUT_TYPES:
        return SIGN_OUT
    return raw


def parse_signin(_item: dict[str, Any], f: Fields) -> dict[str, Any]:
    """A `/report/activities` item (operationId ``reportSignInSignOutActivities``): no id, so
    its whole content is its key; without a time it cannot be placed."""
    return {"email": f.email(), "time": f.time("time", required=True),
            "type": sign_in_type(f.text("type")), "ip_address": f.optional_text("ip_address"),
            "client_type": f.optional_text("client_type"),
            "version": f.optional_text("version")}


def signin_key(source_id: Any, item: dict[str, Any]) -> str:
    """A sign-in's stored ``event_key``: a hash of the source and the item's fields as sent.
    Rows already stored carry it, so the formula cannot change without rewriting them."""
    return key_hash(source_id, str(item.get("email") or "").lower(), item.get("time"),
                    item.get("type"), item.get("ip_address"), item.get("client_type"),
                    item.get("version"))


# Sign-in types as Zoom spells them, looked up before `sign_in_type` folds anything else.
_SIGN_IN_TYPE = {SIGN_IN: SIGN_IN, SIGN_OUT: SIGN_OUT}


def _utc_time(value: str) -> datetime | None:
    """`parse_time` of a string, Zoom's usual ``...Z`` read in one call (Python 3.11 reads the
    ``Z`` as `parse_time`'s ``+00:00``)."""
    if value[-1:] == "Z":
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    return parse_time(value)


def signin_rows(items: list[dict[str, Any]], warnings: ItemWarnings,
                base: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(item, row) of the usable sign-ins of a page, each row ``base`` (whose ``source_id``
    keys it), its ``event_key`` and `parse_signin`'s columns; the others counted on
    ``warnings``, as `parse_items` does.

    Every field of every sign-in passes here, so the usual item (each field text or absent,
    nothing to clean or cut, a time `parse_time` reads) is read in one step: one check of the
    text the key hashes serves the cleaning of every field. Any other item takes `Fields`,
    `parse_signin` and `signin_key`: the rows and keys are the same either way
    (tests/worker/zoom/test_items.py), the usual item costs a third of the calls."""
    prefix = f"{base['source_id']}\x1f"
    sha256, canonical = hashlib.sha256, _SIGN_IN_TYPE.get
    out = []
    for item in items:
        get = item.get
        email, when, kind = get("email"), get("time"), get("type")
        ip, client, version = get("ip_address"), get("client_type"), get("version")
        if ((email is None or type(email) is str) and type(when) is str
                and (kind is None or type(kind) is str) and (ip is None or type(ip) is str)
                and (client is None or type(client) is str)
                and (version is None or type(version) is str)):
            email = (email or "").lower()
            kind = kind or ""
            joined = "\x1f".join((email, when, kind, ip or "", client or "", version or ""))
            at = _utc_time(when)
            if (at is not None and len(email) <= _SHORT_IDENT
                    and len(joined) <= TEXT_MAX_CHARS and _storable(joined)):
                out.append((item, {
                    **base, "event_key": sha256((prefix + joined).encode()).hexdigest(),
                    "email": email, "time": at, "type": canonical(kind) or sign_in_type(kind),
                    "ip_address": ip or None, "client_type": client or None,
                    "version": version or None}))
                continue
        try:
            row = parse_signin(item, Fields("sign_in", item, warnings))
        except Unusable as exc:
            warnings.skip("sign_in", str(exc), item)
            continue
        out.append((item, {**base, "event_key": signin_key(base["source_id"], item), **row}))
    return out


def parse_host_usage(_item: dict[str, Any], f: Fields) -> dict[str, Any]:
    """A `/report/users` item (operationId ``reportUsers``)."""
    return {"user_zoom_id": user_key(f), "email": f.ident("email") or "",
            "meetings": f.count("meetings"),
            "participants": f.count("participants"),
            "meeting_minutes": f.count("meeting_minutes"),
            "last_client_version": f.optional_text("last_client_version")}


def parse_meeting(_item: dict[str, Any], f: Fields) -> dict[str, Any]:
    """A `/report/users/{userId}/meetings` item (operationId ``reportMeetings``): the UUID is
    the key and the path of the participants call, so it is never cut."""
    return {"uuid": f.ident("uuid", required=True), "meeting_id": f.ident("id") or "",
            "host_email": f.email("user_email"), "topic": f.text("topic"),
            "type": f.integer("type"), "start_time": f.time("start_time"),
            "end_time": f.time("end_time"), "duration": f.integer("duration"),
            "total_minutes": f.integer("total_minutes"),
            "participants_count": f.integer("participants_count")}


def parse_participant(_item: dict[str, Any], f: Fields) -> dict[str, Any]:
    """A `/report/meetings/{meetingId}/participants` item (``reportMeetingParticipants``). An
    item naming nobody (no id, user id, name or e-mail) is nobody's attendance: skipped."""
    row = {"participant_id": f.ident("id"), "user_id": f.ident("user_id"),
           "name": f.text("name"), "user_email": f.email("user_email"),
           "join_time": f.time("join_time"), "leave_time": f.time("leave_time"),
           "duration": f.integer("duration"), "status": f.optional_text("status")}
    if not (row["participant_id"] or row["user_id"] or row["name"] or row["user_email"]):
        raise Unusable("names no participant")
    return row


def parse_daily(item: dict[str, Any], f: Fields) -> dict[str, Any]:
    """A `/report/daily` ``dates`` item (operationId ``reportDaily``)."""
    raw = item.get("date")
    try:
        day = date.fromisoformat(str(raw)[:10])
    except ValueError:
        raise Unusable("date is missing or not a date") from None
    return {"day": day, "new_users": f.count("new_users"), "meetings": f.count("meetings"),
            "participants": f.count("participants"),
            "meeting_minutes": f.count("meeting_minutes")}


def parse_operation_log(_item: dict[str, Any], f: Fields) -> dict[str, Any]:
    """A `/report/operationlogs` item (operationId ``reportOperationLogs``)."""
    return {"time": f.time("time", required=True), "operator": f.text("operator"),
            "category_type": f.text("category_type"), "action": f.text("action"),
            "operation_detail": f.text("operation_detail")}
