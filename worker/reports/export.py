"""The access review as CSV and JSON, written row by row (memory flat in the accounts)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal, TextIO

from sqlmodel import Session

from worker.reports.findings import ReviewParams, Tally, build_review, daily_active_accounts
from worker.reports.findings import iter_accounts as _rows
from worker.reports.schemas import AccountReview, ReviewSummary

ReportFormat = Literal["csv", "json", "html"]

# The CSV's columns, in order (README "Access review" documents each).
CSV_COLUMNS = (
    "account_id", "source_id", "zoom_id", "email", "display_name", "status", "type", "role_id",
    "role", "privileged", "groups", "identity_id", "identity_external_id", "identity_status",
    "identity_terminated_at", "created_at", "last_sign_in_at", "last_activity_at",
    "days_active_90", "sign_ins_90", "sign_ins_vs_average", "findings",
)
_CHUNK = 64 * 1024
# Spreadsheets run a cell that starts with one of these as a formula; Zoom names are user input.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _text(value: str | None) -> str:
    if not value:
        return ""
    return "'" + value if value.startswith(_FORMULA_START) else value


def _when(value: Any) -> str:
    return value.isoformat().replace("+00:00", "Z") if value is not None else ""


def csv_record(row: AccountReview) -> list[Any]:
    return [
        row.account_id, row.source_id, _text(row.zoom_id), _text(row.email),
        _text(row.display_name), row.status, "" if row.type is None else row.type,
        _text(row.role_id), _text(row.role), str(row.privileged).lower(),
        _text(";".join(row.groups)), row.identity_id or "", _text(row.identity_external_id),
        row.identity_status or "", _when(row.identity_terminated_at), _when(row.created_at),
        _when(row.last_sign_in_at), _when(row.last_activity_at), row.days_active, row.sign_ins,
        "" if row.sign_ins_vs_average is None else row.sign_ins_vs_average,
        ";".join(row.findings),
    ]


def csv_chunks(
    rows: Iterable[AccountReview], progress: Callable[[int], None] | None = None
) -> Iterator[str]:
    """The header and the rows as CSV text, in chunks of about 64 KiB."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    done = 0
    for row in rows:
        writer.writerow(csv_record(row))
        done += 1
        if buffer.tell() >= _CHUNK:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            if progress:
                progress(done)
    yield buffer.getvalue()
    if progress:
        progress(done)


def json_chunks(
    summary: ReviewSummary, rows: Iterable[AccountReview],
    progress: Callable[[int], None] | None = None,
) -> Iterator[str]:
    """``{"summary": ..., "accounts": [...]}``, one account at a time."""
    yield '{"summary": ' + summary.model_dump_json() + ', "accounts": ['
    done = 0
    for row in rows:
        yield ("," if done else "") + "\n" + row.model_dump_json()
        done += 1
        if progress and done % 1000 == 0:
            progress(done)
    yield "\n]}\n"
    if progress:
        progress(done)


def write_report(
    session: Session, params: ReviewParams, fmt: ReportFormat, out: TextIO,
    progress: Callable[[int], None] | None = None,
) -> ReviewSummary:
    """Write the review of ``params`` to ``out`` as CSV, JSON or the HTML page; returns its
    summary. CSV and HTML read the rows once; JSON, whose summary comes first, twice."""
    if fmt == "html":
        from worker.reports import page

        html, summary = page.render(session, build_review(session, params), progress)
        out.write(html)
        return summary
    review = build_review(session, params)
    daily = daily_active_accounts(session, params)
    tally = Tally()

    def counted(rows: Iterable[AccountReview]) -> Iterator[AccountReview]:
        for row in rows:
            tally.add(row)
            yield row

    if fmt == "csv":
        for chunk in csv_chunks(counted(_rows(session, review)), progress):
            out.write(chunk)
        return tally.summary(review, daily)
    for row in _rows(session, review):
        tally.add(row)
    summary = tally.summary(review, daily)
    for chunk in json_chunks(summary, _rows(session, review), progress):
        out.write(chunk)
    return summary
