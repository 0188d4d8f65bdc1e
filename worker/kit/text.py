"""Input types shared by the API's schemas and the worker's input parsers (the identities CSV):
stripped strings bounded by their column's length, never holding what Postgres refuses, and
timestamps read as UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, StringConstraints


def storable(value: str) -> str:
    # Postgres text holds neither NUL nor lone surrogates; refusing them here turns a driver
    # error into a 422.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid UTF-8 text") from None
    return value


def aware(value: datetime) -> datetime:
    """Timestamps without an offset are read as UTC; everything is stored in UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(aware)]

# Stripped strings bounded by their column's length, without NUL.
Str64 = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=64), AfterValidator(storable)
]
Str100 = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=100), AfterValidator(storable)
]
Str200 = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=200), AfterValidator(storable)
]
Str320 = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=320), AfterValidator(storable)
]
Str400 = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=400), AfterValidator(storable)
]
Str2000 = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=2000), AfterValidator(storable)
]
Text = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=20000), AfterValidator(storable)
]
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=200, min_length=1),
    AfterValidator(storable),
]
