"""Types shared by the schemas: safe strings, bounded ints, pages, links."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from api.errors import BadRequest

# The text types live with the worker (its input parsers use them too); the schemas import
# them from here.
from worker.kit.text import Name as Name
from worker.kit.text import Str64 as Str64
from worker.kit.text import Str100 as Str100
from worker.kit.text import Str200 as Str200
from worker.kit.text import Str320 as Str320
from worker.kit.text import Str400 as Str400
from worker.kit.text import Str2000 as Str2000
from worker.kit.text import Text as Text
from worker.kit.text import UtcDatetime as UtcDatetime
from worker.kit.text import aware as _aware

T = TypeVar("T")
S = TypeVar("S", bound=BaseModel)

# Postgres BIGINT: a larger id in a path or filter would be a database error, not a 404.
MAX_BIGINT = 2**63 - 1


BigId = Annotated[int, Field(ge=1, le=MAX_BIGINT)]
Limit = Annotated[int, Field(ge=1, le=500, description="Items per page (1-500)")]


class Schema(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _With:
    """A row's attributes, and a few more that the row does not carry."""

    __slots__ = ("_extra", "_row")

    def __init__(self, row: Any, extra: dict[str, Any]) -> None:
        self._row, self._extra = row, extra

    def __getattr__(self, name: str) -> Any:
        if name in self._extra:
            return self._extra[name]
        return getattr(self._row, name)


def public(schema: type[S], row: Any, **extra: Any) -> S:
    """``row`` (a model row) through ``schema``, read by attribute (``from_attributes``), with
    ``extra`` for the fields it does not have: links, a correlation's identity, a renamed
    column. The one way the API turns rows into responses."""
    return schema.model_validate(_With(row, extra) if extra else row, from_attributes=True)


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
