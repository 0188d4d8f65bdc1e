"""Aggregation: Zoom's directory (users of every status, groups, roles, memberships) into Postgres.

Pages are upserted and committed in batches of a few (`Pull.page_written`), so a killed worker
loses at most a batch and a re-run rewrites the same rows. Rows carry `last_seen_at`; only after
a *complete, successful* pull are rows not seen since this attempt began marked deleted. A failed
or partial pull deletes nothing; a user who reappears gets `deleted_at` cleared. One aggregation
per source at a time.

Each table's stored keys and hashes are read once per pull (`Pull.known`); an unchanged row
is then only touched (`kit.upsert.sync`), and an unchanged user item is not even parsed
(`zi.user_digest`). The write re-checks what it was read as, so a webhook that rewrites a row
meanwhile leaves it to the full write, as if the pull had read after the event.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import quote

import redis
from sqlalchemy import Table, update
from sqlmodel import Session, SQLModel, col, select

from worker import clients
from worker.activity import planner, readiness
from worker.aggregation import privileges
from worker.db import session_scope
from worker.kit import sql
from worker.kit.prefetch import prefetching
from worker.kit.redis import get_redis
from worker.kit.upsert import COPY_THRESHOLD, Known, read_known, sync
from worker.models import (
    RunKind,
    RunStatus,
    Source,
    SyncRun,
    ZoomGroup,
    ZoomGroupMember,
    ZoomRole,
    ZoomRoleMember,
    ZoomUser,
    utcnow,
)
from worker.runs import lifecycle as runs
from worker.runs.followups import send_after_commit
from worker.runs.hold import Admit, Check, Hold, hold, no_check
from worker.zoom import codes
from worker.zoom import items as zi
from worker.zoom.errors import ZoomBadResponse, ZoomNotFound, ZoomScopeError

log = logging.getLogger(__name__)

USER_STATUSES = ("active", "inactive", "pending")
# custom_attributes are only in the answer when asked for (spec, `users` include_fields).
USER_LIST_PARAMS = {"include_fields": "custom_attributes"}


# Pages written per transaction (or seconds between commits, whichever comes first).
COMMIT_EVERY_PAGES = 8
COMMIT_EVERY_SECONDS = 2.0


class PageLike(Protocol):
    items: list[dict[str, Any]]


class ZoomApi(Protocol):
    def get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]: ...

    def iter_pages(
        self, path: str, params: dict[str, Any] | None, items_key: str
    ) -> Iterator[Any]: ...


@dataclass
class Tally:
    seen: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    pages: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class Pull:
    """State of one attempt: its start (the deletion cut-off) and its counts."""

    run_id: uuid.UUID
    tenant_id: uuid.UUID
    source_id: uuid.UUID
    since: datetime
    check: Callable[[], None]
    tallies: dict[str, Tally] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)
    warnings: zi.ItemWarnings = field(default_factory=zi.ItemWarnings)

    # Tallies as of the last commit: what progress reports (never more than is stored).
    committed: dict[str, dict[str, int]] = field(default_factory=dict)
    committed_skipped: int = 0
    uncommitted: int = 0
    committed_at: float = field(default_factory=time.monotonic)
    # What each directory table held for this source when this pull first wrote to it.
    read: dict[str, Known] = field(default_factory=dict)

    def tally(self, name: str) -> Tally:
        return self.tallies.setdefault(name, Tally())

    def page_written(self, session: Session) -> None:
        """Commit once a batch of pages is written: a killed worker loses at most the batch
        (a re-run rewrites it), and a commit per page made its flush a visible share of a
        pull (bench/RESULTS.md)."""
        self.uncommitted += 1
        if self.uncommitted >= sql.pages_per_commit(session, COMMIT_EVERY_PAGES) or \
                time.monotonic() - self.committed_at >= COMMIT_EVERY_SECONDS:
            self.commit(session)

    def commit(self, session: Session) -> None:
        # A batch of pages: the run's end flushes it (`sql.without_flush_wait`). Waiting for
        # each batch's fsync was ~0.2 s of a 30,000-user pull's wall here.
        sql.without_flush_wait(session)
        session.commit()
        self.committed = {n: t.as_dict() for n, t in self.tallies.items()}
        self.committed_skipped = self.warnings.count
        self.uncommitted, self.committed_at = 0, time.monotonic()

    def known(self, session: Session, table: Table, conflict: tuple[str, ...],
              compare: tuple[str, ...]) -> Known:
        """The table's live rows of this source (keys and compared values), read once per
        pull, before its first page of the table (the issue's "reads the key set once")."""
        known = self.read.get(table.name)
        if known is None:
            known = self.read[table.name] = read_known(
                session, table, conflict=conflict, compare=compare,
                where={"source_id": self.source_id, "deleted_at": None})
        return known

    def forget(self, *tables: type[SQLModel]) -> None:
        """A table's pages are all written: its read is not needed any more (memory)."""
        for model in tables:
            self.read.pop(_table(model).name, None)

    def rows(
        self, kind: str, items: list[dict[str, Any]],
        parse: Callable[[dict[str, Any], zi.Fields], dict[str, Any]],
    ) -> list[dict[str, Any]]:
        """Rows of the usable items; the others are skipped and noted on the run."""
        return [row for _, row in zi.parse_items(kind, items, parse, self.warnings)]


def _store(
    session: Session,
    pull: Pull,
    model: type[SQLModel],
    rows: list[dict[str, Any]],
    key: tuple[str, ...],
    tally: Tally,
    expand: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> None:
    """Upsert one page and count new / updated / unchanged against what is stored
    (`kit.upsert.sync`, steered by the table as this pull first read it): a stored row is
    rewritten only when its content changed or it had been marked deleted; an unchanged one
    only gets `last_seen_at` moved, by a narrow statement that sends its key and hash."""
    if not rows:
        return
    # Every row of the page has these; unchanged rows never carry them to the database.
    fixed = {"tenant_id": pull.tenant_id, "source_id": pull.source_id,
             "first_seen_at": utcnow(), "deleted_at": None}
    fixed["last_seen_at"] = fixed["first_seen_at"]
    table = _table(model)
    conflict = ("source_id", *key)
    # Memberships carry no hash: their few content columns are compared directly.
    compared = (("content_hash",) if "content_hash" in table.c else
                tuple(c for c in rows[0] if c not in conflict))
    compare = (*compared, "deleted_at")
    written = sync(session, table, rows, fixed=fixed, conflict=conflict,
                   insert_only=("first_seen_at",), compare=compare, touch=("last_seen_at",),
                   known=pull.known(session, table, conflict, compare), expand=expand,
                   # Read at each write: tests force the COPY path on the fake's small pages.
                   copy_threshold=COPY_THRESHOLD)
    tally.inserted += written.inserted or 0
    tally.updated += written.updated or 0
    tally.unchanged += written.unchanged or 0
    tally.seen += written.rows
    tally.pages += 1


def _table(model: type[SQLModel]) -> Table:
    table: Table = model.__table__  # type: ignore[attr-defined]
    return table


def pull_users(session: Session, client: ZoomApi, pull: Pull) -> None:
    tally = pull.tally("users")
    statuses = (client.iter_pages("/users", {**USER_LIST_PARAMS, "status": status}, "users")
                for status in USER_STATUSES)
    # The next page is fetched (in a thread) while one is written, across the statuses too.
    known = pull.known(session, _table(ZoomUser), ("source_id", "zoom_id"),
                       ("content_hash", "deleted_at"))
    with prefetching(itertools.chain.from_iterable(statuses)) as pages:
        for page in pages:
            pull.check()
            rows, expand = _user_rows(pull, page.items, known)
            _store(session, pull, ZoomUser, rows, ("zoom_id",), tally, expand)
            pull.page_written(session)
    pull.commit(session)
    pull.forget(ZoomUser)


class _Unparsed(dict[str, Any]):
    """A user row of only its key and hash (`zi.user_digest`): its item is parsed only if the
    row must be written whole after all."""


def _user_rows(pull: Pull, items: list[dict[str, Any]], known: Known
               ) -> tuple[list[dict[str, Any]], Callable[[dict[str, Any]], dict[str, Any]] | None]:
    """A page's user rows, and how to make a whole row of one that is not. Once this source
    has users stored, an item that `zi.user_digest` can key and hash without the parse goes
    as that key and hash (most of them, on most days, unchanged: `last_seen_at` is all that
    moves); `sync` asks for its whole row only if it changed. The parse notes every item it
    would note something about (they are all parsed)."""
    if not len(known):
        return pull.rows("user", items, zi.parse_user), None
    rows: list[dict[str, Any]] = []
    unparsed: dict[str, dict[str, Any]] = {}
    for item in items:
        seen = zi.user_digest(item)
        if seen is None:
            rows.extend(pull.rows("user", [item], zi.parse_user))
            continue
        unparsed[seen[0]] = item
        rows.append(_Unparsed(zoom_id=seen[0], content_hash=seen[1]))

    def expand(row: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(row, _Unparsed):
            return row
        (whole,) = pull.rows("user", [unparsed[row["zoom_id"]]], zi.parse_user)
        return whole

    return rows, expand


def _whole_list(body: dict[str, Any], key: str, path: str) -> list[dict[str, Any]]:
    """The item list of an unpaged answer (/groups, /roles); absent means none."""
    items = body.get(key)
    if items is None:
        return []
    if not isinstance(items, list):
        raise ZoomBadResponse(f"GET {path}: '{key}' is not a list",
                              admin_message=f"Zoom's answer to GET {path} was unusable: '{key}' "
                              "is not a list. The run failed; start it again.")
    return [i for i in items if isinstance(i, dict)]


def _member_pages(client: ZoomApi, kind: str, ids: list[str],
                  gone: list[str] | None = None) -> Iterator[tuple[str, Any]]:
    """(group or role id, page) of each one's members in turn: one iterator, so the read-ahead
    fetches the next one's first page while the last page of this one is written. With
    ``gone``, a group deleted between the list and its members call is noted there and
    skipped."""
    for zoom_id in ids:
        pages = client.iter_pages(f"/{kind}/{quote(zoom_id, safe='')}/members", {}, "members")
        try:
            for page in pages:
                yield zoom_id, page
        except ZoomNotFound:
            if gone is None:
                raise
            gone.append(zoom_id)


def pull_groups(session: Session, client: ZoomApi, pull: Pull) -> None:
    body = client.get("/groups", {"page_size": 300})
    rows = pull.rows("group", _whole_list(body, "groups", "/groups"), zi.parse_group)
    _store(session, pull, ZoomGroup, rows, ("zoom_id",), pull.tally("groups"))
    pull.commit(session)
    members = pull.tally("group_members")
    # Deleted between the list and its members call: its memberships were not pulled, so they
    # are left as they are (the next aggregation marks them deleted with the group).
    gone: list[str] = []
    with prefetching(_member_pages(client, "groups", [g["zoom_id"] for g in rows],
                                   gone)) as pages:
        for group_id, page in pages:
            pull.check()
            page_rows = [{"group_zoom_id": group_id, **row} for row
                         in zi.member_rows("group_member", page.items, pull.warnings)]
            _store(session, pull, ZoomGroupMember, page_rows,
                   ("group_zoom_id", "user_zoom_id"), members)
            pull.page_written(session)
    if gone:
        pull.notes["groups_gone"] = gone
    pull.commit(session)
    pull.forget(ZoomGroup, ZoomGroupMember)


def pull_roles(session: Session, client: ZoomApi, pull: Pull) -> None:
    try:
        body = client.get("/roles")
    except ZoomScopeError as exc:
        pull.notes["missing_optional_scopes"] = exc.missing or [codes.scope_hint("/roles", ())]
        pull.notes["roles_from_users_only"] = True
        _roles_from_users(session, pull)
        pull.forget(ZoomRole, ZoomRoleMember)
        return
    rows = pull.rows("role", _whole_list(body, "roles", "/roles"), zi.parse_role)
    _store(session, pull, ZoomRole, rows, ("zoom_id",), pull.tally("roles"))
    pull.commit(session)
    members = pull.tally("role_members")
    with prefetching(_member_pages(client, "roles", [r["zoom_id"] for r in rows])) as pages:
        for role_id, page in pages:
            pull.check()
            page_rows = [{"role_zoom_id": role_id, **row}
                         for row in zi.member_rows("role_member", page.items, pull.warnings)]
            _store(session, pull, ZoomRoleMember, page_rows,
                   ("role_zoom_id", "user_zoom_id"), members)
            pull.page_written(session)
    pull.commit(session)
    pull.forget(ZoomRole, ZoomRoleMember)


def _roles_from_users(session: Session, pull: Pull) -> None:
    """Without role:read:admin, every user's role_id still names their role."""
    users = session.exec(
        select(ZoomUser.zoom_id, ZoomUser.email, ZoomUser.role_id).where(
            ZoomUser.source_id == pull.source_id,
            col(ZoomUser.last_seen_at) >= pull.since,
            col(ZoomUser.role_id).is_not(None),
        )
    ).all()
    role_ids = sorted({str(r) for _, _, r in users})
    named = dict(
        session.exec(
            select(ZoomRole.zoom_id, ZoomRole.name).where(ZoomRole.source_id == pull.source_id)
        ).all()
    )
    rows = [
        {"zoom_id": rid, "name": named.get(rid, ""), "from_users_only": True,
         "content_hash": zi.content_hash({"id": rid, "from_users_only": True})}
        for rid in role_ids
    ]
    _store(session, pull, ZoomRole, rows, ("zoom_id",), pull.tally("roles"))
    members = [{"role_zoom_id": str(r), "user_zoom_id": z, "email": e} for z, e, r in users]
    for start in range(0, len(members), 1000):
        _store(session, pull, ZoomRoleMember, members[start : start + 1000],
               ("role_zoom_id", "user_zoom_id"), pull.tally("role_members"))
    pull.commit(session)


def mark_deleted(session: Session, pull: Pull) -> None:
    """Only after a complete pull: whatever this attempt did not see is gone from Zoom."""
    now = utcnow()
    names: list[tuple[str, Any]] = [
        ("users", ZoomUser), ("groups", ZoomGroup), ("group_members", ZoomGroupMember),
        ("roles", ZoomRole), ("role_members", ZoomRoleMember),
    ]
    gone = pull.notes.get("groups_gone", [])
    for name, model in names:
        stmt = (
            update(model)
            .where(
                model.source_id == pull.source_id,
                model.deleted_at.is_(None),
                model.last_seen_at < pull.since,
            )
            .values(deleted_at=now)
        )
        if name == "group_members" and gone:
            stmt = stmt.where(model.group_zoom_id.not_in(gone))
        result = session.execute(stmt)
        pull.tally(name).deleted += max(result.rowcount or 0, 0)  # type: ignore[attr-defined]


# Progress goes to the run record at least this often, so `status`, the API and Flower show
# how far a running (or failed) aggregation got.
PROGRESS_EVERY_PAGES = 3
PROGRESS_EVERY_SECONDS = 2.0


def _counts(run: SyncRun, pull: Pull) -> None:
    _record(run, {n: t.as_dict() for n, t in pull.tallies.items()}, pull.warnings.count)


def _record(run: SyncRun, counts: dict[str, dict[str, int]], skipped: int) -> None:
    users = counts.get("users", Tally().as_dict())
    run.seen, run.inserted, run.updated = users["seen"], users["inserted"], users["updated"]
    run.unchanged, run.deleted = users["unchanged"], users["deleted"]
    run.skipped = skipped  # items Zoom sent that could not be stored
    run.pages = sum(t["pages"] for t in counts.values())
    run.details = {**run.details, "counts": counts}


def write_progress(pull: Pull) -> None:
    """The counts as of the last commit of pages on the run record, in a transaction of their
    own (so the record never counts more than is stored)."""
    with session_scope() as session:
        # After the pages' commits in the WAL: if this record is kept, so are they.
        sql.without_flush_wait(session)
        run = session.get(SyncRun, pull.run_id, with_for_update=True)
        if run is not None and run.status == RunStatus.RUNNING:
            _record(run, pull.committed, pull.committed_skipped)


def reporting(pull: Pull, check: Callable[[], None]) -> Callable[[], None]:
    """`check` between pages, and every few pages (or seconds) the progress, when a commit
    since the last one has something new to say (the record shows committed counts only)."""
    last: dict[str, Any] = {"pages": 0, "at": time.monotonic(), "committed": pull.committed}

    def check_and_report() -> None:
        check()
        pages = sum(t.pages for t in pull.tallies.values())
        due = pages - last["pages"] >= PROGRESS_EVERY_PAGES or (
            pages > last["pages"] and time.monotonic() - last["at"] >= PROGRESS_EVERY_SECONDS)
        if due and pull.committed is not last["committed"]:
            write_progress(pull)
            last.update(pages=pages, at=time.monotonic(), committed=pull.committed)

    return check_and_report


def _default_client(source_id: uuid.UUID) -> ZoomApi:
    return clients.client_for_source(source_id)


AGGREGATION = Hold(what="aggregation", skip_duplicates=True,
                   lock_key=lambda run: f"ai:lock:aggregate:{run.source_id}")


def run_aggregation(
    run_id: uuid.UUID,
    *,
    client: ZoomApi | None = None,
    redis_client: redis.Redis | None = None,
    enqueue: bool = True,
    admit: Admit | None = None,
) -> SyncRun:
    """Aggregate one source (one per source at a time: a second one ends `skipped`). Records
    the outcome on the run (and re-raises on failure)."""

    def body(session: Session, run: SyncRun, check: Check) -> None:
        aggregate(session, run, client or _default_client(run.source_id), check)

    return hold(run_id, AGGREGATION, body, redis_client=redis_client, enqueue=enqueue,
                admit=admit)


def aggregate(session: Session, run: SyncRun, client: ZoomApi, check: Check = no_check) -> None:
    """Pull the source's directory page by page (each page committed on ``session``), mark
    what this pull did not see deleted, finish the run and queue its correlation."""
    pull = Pull(run_id=run.id, tenant_id=run.tenant_id, source_id=run.source_id,
                since=utcnow(), check=check)
    pull.check = reporting(pull, check)
    try:
        pull_users(session, client, pull)
        pull_groups(session, client, pull)
        pull_roles(session, client, pull)
        privileges.pull_role_privileges(session, client, pull)
        check()
    except BaseException:
        # How far it got (what is committed), on the record of a failed or handed-back run.
        with contextlib.suppress(Exception):
            write_progress(pull)
        raise
    mark_deleted(session, pull)
    # Fresh, and held: the progress so far was written by `write_progress`'s transactions.
    session.refresh(run, with_for_update=True)
    _counts(run, pull)
    runs.finish(
        run,
        RunStatus.SUCCEEDED,
        counts={name: t.as_dict() for name, t in pull.tallies.items()},
        missing_optional_scopes=pull.notes.get("missing_optional_scopes", []),
        roles_from_users_only=bool(pull.notes.get("roles_from_users_only")),
        groups_gone=pull.notes.get("groups_gone", []),
        **pull.warnings.details(),
    )
    source = session.get_one(Source, run.source_id)
    readiness.mark_governed_if_ready(session, source)
    # The directory is in: participant reports held for it (and the sign-ins) may go.
    for held in planner.release_held(session, get_redis(), utcnow()):
        send_after_commit(session, held)
    correlation = runs.new_run(source, RunKind.CORRELATION, run.trigger,
                               details={"after_aggregation": str(run.id)})
    session.add(correlation)
    send_after_commit(session, correlation)
    log.info("aggregation %s of %s succeeded: %s", run.id, runs.where(source),
             {n: t.as_dict() for n, t in pull.tallies.items()})
