"""Types shared by the schemas: safe strings, bounded ints, pages, links."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from api.errors import BadRequest

T = TypeVar("T")

# Postgres BIGINT: a larger id in a path or filter would be a database error, not a 404.
MAX_BIGINT = 2**63 - 1


def _storable(value: str) -> str:
    # Postgres text holds neither NUL nor lone surrogates; refusing them here turns a driver
    # error into a 422.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid UTF-8 text") from None
    return value


def _aware(value: datetime) -> datetime:
    """Timestamps without an offset are read as UTC; everything is stored in UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Stripped strings bounded by their column's length, without NUL.
Str64 = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=64), AfterValidator(_storable)
]
Str100 = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=100), AfterValidator(_storable)
]
Str200 = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=200), AfterValidator(_storable)
]
Str320 = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=320), AfterValidator(_storable)
]
Str400 = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=400), AfterValidator(_storable)
]
Str2000 = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=2000), AfterValidator(_storable)
]
Text = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=20000), AfterValidator(_storable)
]
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=200, min_length=1),
    AfterValidator(_storable),
]


UtcDatetime = Annotated[datetime, AfterValidator(_aware)]
BigId = Annotated[int, Field(ge=1, le=MAX_BIGINT)]
Limit = Annotated[int, Field(ge=1, le=500, description="Items per page (1-500)")]


class Schema(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        default=None, description="Pass as ?cursor= to get the next page; null on the last"
    )


def encode_cursor(*values: Any) -> str:
    raw = json.dumps([v.isoformat() if isinstance(v, datetime) else v for v in values])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, *kinds: type) -> tuple[Any, ...] | None:
    """Decode a cursor made by ``encode_cursor`` whose values have the given types, or 400."""
    if cursor is None or cursor == "":
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        if not isinstance(values, list) or len(values) != len(kinds):
            raise ValueError("shape")
        out: list[Any] = []
        for kind, value in zip(kinds, values, strict=True):
            if kind is datetime:
                if not isinstance(value, str):
                    raise ValueError("datetime")
                out.append(_aware(datetime.fromisoformat(value)))
            elif kind is int:
                if not isinstance(value, int) or isinstance(value, bool):
                    raise ValueError("int")
                if not 0 <= value <= MAX_BIGINT:
                    raise ValueError("range")
                out.append(value)
            elif kind is str:
                if not isinstance(value, str):
                    raise ValueError("str")
                out.append(value)
            else:
                if not isinstance(value, str):
                    raise ValueError("str")
                out.append(kind(value))
        return tuple(out)
    except (ValueError, TypeError, AttributeError, UnicodeError, binascii.Error):
        raise BadRequest(
            "cursor is not one this API issued", field="cursor", location="query"
        ) from None
