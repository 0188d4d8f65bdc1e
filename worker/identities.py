"""Identities from the tenant's identity system: the CSV parser and the bulk upsert.

The API (``POST /v1/identities`` and ``/v1/identities/csv``) and the CLI (``identities import``)
both use these; they word the errors at their own edge (a 413/422 problem, a one-line error).
A file is parsed whole before anything is written, so a bad row loses nothing and writes
nothing.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from sqlmodel import Session

from worker.kit.text import Name, Str320, Str400, Str2000, UtcDatetime
from worker.kit.upsert import upsert
from worker.models import Identity, utcnow

# Per request, JSON or CSV. With the 8 MiB body cap this covers typical HR exports in a few
# calls while keeping one request's transaction short.
MAX_ROWS = 10_000
_BATCH = 1_000  # rows per INSERT statement: 11 parameters each, well under Postgres' 65,535
# What a re-import may change of a stored identity.
_CONTENT = ("email", "email_normalized", "display_name", "attributes", "status", "terminated_at")
_CSV_COLUMNS = ("external_id", "email", "display_name", "status", "terminated_at")
# Columns whose empty cell means "not given" (the schema's default), not an empty string.
_CSV_OPTIONAL = ("status", "terminated_at")

AttributeValue = Annotated[
    Str2000 | bool | Annotated[int, Field(ge=-(2**53), le=2**53)]
    | Annotated[float, Field(allow_inf_nan=False)] | None,
    Field(union_mode="smart"),
]


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


IdentityStatus = Annotated[
    Literal["active", "inactive", "terminated"], BeforeValidator(_lower),
    Field(description="As the identity system says (case-insensitive)"),
]


class IdentityIn(BaseModel):
    """One identity from the tenant's identity system; upserted by external_id."""

    model_config = ConfigDict(extra="forbid")

    external_id: Name
    email: Str320 = ""
    display_name: Str400 = ""
    status: IdentityStatus = "active"
    terminated_at: UtcDatetime | None = Field(
        default=None, description="When the person left (or leaves); past = a leaver"
    )
    attributes: dict[Annotated[str, Field(max_length=200)], AttributeValue] = Field(
        default_factory=dict, max_length=100
    )


class IdentitiesRejected(ValueError):
    """The file cannot be imported; ``too_large`` when it has more rows than allowed."""

    def __init__(self, message: str, too_large: bool = False) -> None:
        super().__init__(message)
        self.too_large = too_large


@dataclass(frozen=True)
class UpsertResult:
    received: int  # rows given (duplicates of an external_id count)
    inserted: int
    updated: int


def upsert_identities(
    session: Session,
    tenant_id: uuid.UUID,
    rows: Sequence[IdentityIn],
    progress: Callable[[int], None] | None = None,
) -> UpsertResult:
    """Insert or update by (tenant, external_id); the last row wins for a repeated id.
    ``progress`` is told how many distinct identities each written batch held."""
    latest: dict[str, IdentityIn] = {}
    for row in rows:
        latest[row.external_id] = row  # one statement cannot update the same row twice
    now = utcnow()
    inserted = updated = 0
    items = list(latest.values())
    for start in range(0, len(items), _BATCH):
        batch = items[start:start + _BATCH]
        values = [
            {
                "id": uuid.uuid4(),
                "tenant_id": tenant_id,
                "external_id": r.external_id,
                "email": r.email,
                "email_normalized": r.email.lower(),
                "display_name": r.display_name,
                "attributes": r.attributes,
                "status": r.status,
                "terminated_at": r.terminated_at,
                "created_at": now,
                "updated_at": now,
            }
            for r in batch
        ]
        # Every stored identity of the file is "updated" (its updated_at moves); the classify
        # mode counts the new ones from the write itself, with no read of the stored ids.
        written = upsert(session, Identity, values, conflict=("tenant_id", "external_id"),
                         insert_only=("id", "created_at"), compare=_CONTENT,
                         touch=("updated_at",))
        inserted += written.inserted or 0
        updated += written.existing or 0
        if progress is not None:
            progress(len(batch))
    session.commit()
    return UpsertResult(received=len(rows), inserted=inserted, updated=updated)


def parse_csv(data: bytes, max_rows: int | None = MAX_ROWS) -> list[IdentityIn]:
    """CSV with a header row: external_id (required), email, display_name, status (active,
    inactive or terminated; empty = active), terminated_at (ISO 8601; empty = none); any other
    column becomes an attribute. ``max_rows`` None: no limit (the CLI, which is not one
    request)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise IdentitiesRejected("the file is not UTF-8 text") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows: list[IdentityIn] = []
    try:
        header = reader.fieldnames or []
        if "external_id" not in header:
            raise IdentitiesRejected("the header row must name an external_id column")
        for number, record in enumerate(reader, start=2):
            if max_rows is not None and len(rows) >= max_rows:
                raise IdentitiesRejected(f"at most {max_rows} rows per file", too_large=True)
            rows.append(_csv_row(number, record))
    except csv.Error as exc:
        raise IdentitiesRejected(f"not a readable CSV file: {exc}") from None
    return rows


def _csv_row(number: int, record: dict[str | Any, Any]) -> IdentityIn:
    extra = record.pop(None, None)  # values beyond the header's columns
    if extra:
        raise IdentitiesRejected(f"row {number}: more values than header columns")
    fields: dict[str, Any] = {k: record.get(k) or "" for k in _CSV_COLUMNS}
    for k in _CSV_OPTIONAL:
        if not fields[k].strip():
            del fields[k]
    fields["attributes"] = {
        k: v for k, v in record.items() if k not in _CSV_COLUMNS and k and v not in (None, "")
    }
    try:
        return IdentityIn.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise IdentitiesRejected(f"row {number}: {where}: {first['msg']}") from None
