"""Waiting for work with something to look at: a spinner for a connection test, progress bars
fed by the run records (the worker writes counts as it goes) for aggregation and activity.

Every poll opens a fresh session so it sees what the worker has committed since.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from worker.cli.errors import CliError
from worker.cli.ops import FINAL_RUN, FINAL_TEST, children
from worker.db import session_scope
from worker.models import ConnectionTest, RunStatus, Source, SourceStatus, SyncRun, TestStatus
from worker.sources.service import never_started
from worker.tokens.credentials import is_rotation_unknown

POLL_SECONDS = 0.3


class WaitTimeout(CliError):
    pass


def _deadline(timeout: float) -> Callable[[], bool]:
    end = time.monotonic() + timeout
    return lambda: time.monotonic() > end


def wait_connection_test(
    test_id: uuid.UUID, console: Console, timeout: float = 120.0
) -> ConnectionTest:
    expired = _deadline(timeout)
    with console.status("testing the connection to Zoom…", spinner="dots") as spinner:
        while True:
            with session_scope() as session:
                test = session.get(ConnectionTest, test_id)
                if test is None:
                    raise CliError(f"connection test {test_id} disappeared (source deleted?)")
                if test.status in FINAL_TEST:
                    return test
                if test.status == TestStatus.RUNNING:
                    spinner.update("asking Zoom for a token and probing the API…")
            if expired():
                raise WaitTimeout(
                    f"connection test {test_id} still {test.status} after {timeout:.0f}s: "
                    "is a worker consuming the connection_tests queue? "
                    "(`activity-insights worker`)",
                    1,
                )
            time.sleep(POLL_SECONDS)


def render_connection_test(test: ConnectionTest, source: Source, console: Console) -> None:
    ok = test.status == TestStatus.SUCCEEDED
    mark = "[green]✓ connection OK[/]" if ok else "[red]✗ connection failed[/]"
    console.print(f"{mark}  source [bold]{source.name}[/] ({source.grant_type})")
    table = Table.grid(padding=(0, 2))
    table.add_column(style="dim")
    table.add_column()
    if test.token_ms is not None:
        table.add_row("token", f"{test.token_ms} ms")
    if test.call_ms is not None:
        table.add_row("API call", f"{test.call_ms} ms")
    if test.granted_scopes:
        table.add_row("granted scopes", ", ".join(sorted(test.granted_scopes)))
    if test.missing_scopes:
        table.add_row("missing scopes", "[red]" + ", ".join(sorted(test.missing_scopes)) + "[/]")
    if test.missing_optional_scopes:
        table.add_row(
            "missing optional", "[yellow]" + ", ".join(sorted(test.missing_optional_scopes)) + "[/]"
        )
    if test.zoom_error_code:
        table.add_row("Zoom code", str(test.zoom_error_code))
    if test.message:
        table.add_row("message", test.message)
    console.print(table)
    fix = what_to_fix(test, source)
    if fix:
        console.print(f"[bold]what to fix:[/] {fix}")


def what_to_fix(test: ConnectionTest, source: Source) -> str:
    """The next step for the admin; the worker's message says what happened, this says where."""
    if never_started(test):
        return (
            "start the broker (AI_BROKER_URL) and a worker, then `activity-insights "
            f"test-connection {source.id} --wait`"
        )
    if test.status == TestStatus.SUCCEEDED:
        if test.missing_optional_scopes:
            return (
                "optional scopes are missing, so some data (e.g. roles) is skipped: add them in "
                "the Zoom app's Scopes page if you want it"
            )
        return ""
    if test.missing_scopes:
        return (
            "add " + ", ".join(sorted(test.missing_scopes)) + " in the Zoom app's Scopes page "
            f"(marketplace.zoom.us), re-activate the app, then `activity-insights test-connection "
            f"{source.id} --wait`"
        )
    if source.status == SourceStatus.REAUTHORIZE and is_rotation_unknown(source.status_message):
        return (
            "nothing to paste yet: the connection test settles whether Zoom replaced the "
            f"refresh token (`activity-insights test-connection {source.id} --wait`); only if it "
            "fails, re-authorise the app in Zoom and `activity-insights source update "
            f"{source.id} --refresh-token`"
        )
    if source.status == SourceStatus.REAUTHORIZE:
        return (
            "the refresh token was revoked or rotated elsewhere: re-authorise the app in Zoom, "
            f"then `activity-insights source update {source.id} --refresh-token` (prompts for it)"
        )
    code = (test.zoom_error_code or "").lower()
    if code in {"invalid_client", "124", "invalid_grant", "4700", "auth"}:
        return (
            "check the client id / secret (and account id for Server-to-Server apps) in the Zoom "
            "app's App Credentials page, then `activity-insights source update "
            f"{source.id} --client-id ... --client-secret` (prompts for the secret)"
        )
    return "see the message above; run the test again once it is fixed"


@dataclass
class _Bars:
    progress: Progress
    overall: TaskID
    streams: dict[str, TaskID]


def _run_counts(run: SyncRun) -> list[str]:
    return [f"pages {run.pages}", f"seen {run.seen}", f"new {run.inserted}",
            f"updated {run.updated}", f"unchanged {run.unchanged}", f"deleted {run.deleted}",
            f"skipped {run.skipped}"]


def _run_line(run: SyncRun) -> str:
    return "  ".join(_run_counts(run))


def packed(head: str, items: list[str], width: int) -> list[str]:
    """``head`` then ``items`` two spaces apart, in lines of at most ``width``, never breaking
    an item ("seen 42" stays whole); continuation lines are indented."""
    lines, line = [], head
    for item in items:
        if line and len(line) + 2 + len(item) > width:
            lines.append(line)
            line = "   " + item
        else:
            line = f"{line}  {item}" if line else item
    return [*lines, line]


class _Plain:
    """Progress for a pipe or a log (no terminal): a spinner and bars would be redrawn into the
    file, so each change is printed once, as lines that fit the width (80 when piped)."""

    def __init__(self, console: Console) -> None:
        self.console, self.last = console, ""

    def show(self, lines: list[str]) -> None:
        text = "\n".join(lines)
        if text != self.last:
            self.last = text
            for line in lines:
                self.console.print(line, no_wrap=True, overflow="ignore", markup=False,
                                   highlight=False)


def wait_run(run_id: uuid.UUID, console: Console, timeout: float = 1800.0) -> SyncRun:
    """Wait for an aggregation or correlation run, showing its counts as the worker writes them."""
    expired = _deadline(timeout)
    progress = Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        TextColumn("{task.fields[line]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    plain = None if console.is_terminal else _Plain(console)
    with nullcontext() if plain else progress:
        task = progress.add_task("queued", total=None, line="")
        while True:
            with session_scope() as session:
                run = session.get(SyncRun, run_id)
                if run is None:
                    raise CliError(f"run {run_id} disappeared (source deleted?)")
                if plain:
                    plain.show(packed(f"{run.kind} {run.status}", _run_counts(run),
                                      console.width))
                else:
                    progress.update(task, description=f"{run.kind} {run.status}",
                                    line=_run_line(run))
                if run.status in FINAL_RUN:
                    progress.update(task, total=1, completed=1)
                    return run
            if expired():
                raise _still(run_id, run.status, timeout)
            time.sleep(POLL_SECONDS)


def _still(run_id: uuid.UUID, status: str, timeout: float) -> WaitTimeout:
    return WaitTimeout(
        f"run {run_id} still {status} after {timeout:.0f}s: is a worker consuming its queue? "
        "(`activity-insights worker`)",
        1,
    )


def _unfinished(run_id: uuid.UUID, timeout: float) -> WaitTimeout:
    return WaitTimeout(
        f"activity sync {run_id} not finished after {timeout:.0f}s; it continues in the "
        "background (`activity-insights status`)",
        1,
    )


def _activity_lines(plan: SyncRun, chunks: list[SyncRun], width: int) -> list[str]:
    done = [c for c in chunks if c.status in FINAL_RUN]
    head = f"all chunks {len(done)}/{len(chunks)}" if chunks else f"plan {plan.status}"
    lines = packed(head, [f"records {sum(c.seen for c in chunks)}",
                          f"pages {sum(c.pages for c in chunks)}"], width)
    by_stream: dict[str, list[SyncRun]] = {}
    for c in chunks:
        by_stream.setdefault(c.stream or "?", []).append(c)
    for stream, runs in sorted(by_stream.items()):
        finished = [r for r in runs if r.status in FINAL_RUN]
        failed = sum(1 for r in finished if r.status != RunStatus.SUCCEEDED)
        lines += packed(f"  {stream} {len(finished)}/{len(runs)}",
                        [f"records {sum(r.seen for r in runs)}",
                         *([f"{failed} not ok"] if failed else [])], width)
    return lines


def wait_activity(
    run_id: uuid.UUID, console: Console, timeout: float = 3600.0
) -> tuple[SyncRun, list[SyncRun]]:
    """Wait for an activity sync: one bar over all chunks, one per stream, fed by chunk runs."""
    expired = _deadline(timeout)
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description:<14}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[line]}"),
        TimeElapsedColumn(),
        console=console,
    )
    plain = None if console.is_terminal else _Plain(console)
    with nullcontext() if plain else progress:
        bars = _Bars(progress, progress.add_task("planning", total=None, line=""), {})
        while True:
            with session_scope() as session:
                plan = session.get(SyncRun, run_id)
                if plan is None:
                    raise CliError(f"run {run_id} disappeared (source deleted?)")
                chunks = children(session, run_id)
            if plain:
                plain.show(_activity_lines(plan, chunks, console.width))
            else:
                _update_bars(bars, plan, chunks)
            if plan.status in FINAL_RUN and all(c.status in FINAL_RUN for c in chunks):
                return plan, chunks
            if expired():
                raise _unfinished(run_id, timeout)
            time.sleep(POLL_SECONDS)


def _update_bars(bars: _Bars, plan: SyncRun, chunks: list[SyncRun]) -> None:
    done = [c for c in chunks if c.status in FINAL_RUN]
    # Chunks count what they read (`seen`); their upserts do not tell new from re-read rows.
    seen = sum(c.seen for c in chunks)
    bars.progress.update(
        bars.overall,
        description="all chunks" if chunks else f"plan {plan.status}",
        total=len(chunks) or None,
        completed=len(done),
        line=f"records {seen}  pages {sum(c.pages for c in chunks)}",
    )
    by_stream: dict[str, list[SyncRun]] = {}
    for c in chunks:
        by_stream.setdefault(c.stream or "?", []).append(c)
    for stream, runs in sorted(by_stream.items()):
        if stream not in bars.streams:
            bars.streams[stream] = bars.progress.add_task(stream, total=len(runs), line="")
        failed = sum(
            1 for r in runs if r.status in FINAL_RUN and r.status != RunStatus.SUCCEEDED
        )
        bars.progress.update(
            bars.streams[stream],
            total=len(runs),
            completed=sum(1 for r in runs if r.status in FINAL_RUN),
            line=f"records {sum(r.seen for r in runs)}"
            + (f"  [red]{failed} not ok[/]" if failed else ""),
        )
