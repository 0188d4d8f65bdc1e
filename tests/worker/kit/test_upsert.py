"""The bulk upsert gives the same rows on every path: Postgres COPY, Postgres and SQLite INSERT."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlmodel import Session, SQLModel, create_engine, func, select

from tests.factories import make_source, make_tenant
from tests.worker.helpers import straight_copies
from worker.kit.upsert import upsert
from worker.models import ActivityEvent, ZoomRole, ZoomUser


def _rows(source_id, tenant_id, n: int, name: str = "A") -> list[dict]:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        {
            "tenant_id": tenant_id,
            "source_id": source_id,
            "zoom_id": f"u{i}",
            "email": f"u{i}@example.com",
            "first_name": name,
            "group_ids": ["g1", f"g{i}"],
            "first_seen_at": now,
            "last_seen_at": now + timedelta(seconds=i),
        }
        for i in range(n)
    ]


@pytest.mark.parametrize("threshold", [1, 10_000], ids=["copy", "insert"])
def test_postgres_upsert_inserts_then_updates_without_duplicates(
    session: Session, threshold: int
) -> None:
    tenant = make_tenant(session)
    source = make_source(session, tenant)
    rows = _rows(source.id, tenant.id, 700)
    first = upsert(session, ZoomUser, rows, conflict=("source_id", "zoom_id"),
                   copy_threshold=threshold)
    assert (first.rows, first.inserted) == (700, 700)
    later = [dict(r, first_name="B", first_seen_at=datetime(2030, 1, 1, tzinfo=UTC))
             for r in rows]
    more = _rows(source.id, tenant.id, 710)[700:]
    again = upsert(session, ZoomUser, later + more, conflict=("source_id", "zoom_id"),
                   insert_only=("first_seen_at",), copy_threshold=threshold)
    assert (again.rows, again.inserted, again.existing) == (710, 10, 700)
    count = session.exec(select(func.count()).select_from(ZoomUser)
                         .where(ZoomUser.source_id == source.id)).one()
    assert count == 710
    user = session.exec(select(ZoomUser).where(ZoomUser.source_id == source.id,
                                               ZoomUser.zoom_id == "u5")).one()
    assert user.first_name == "B"
    assert user.group_ids == ["g1", "g5"]
    assert user.first_seen_at.year == 2026


def test_duplicate_keys_within_one_page_keep_the_last_row(session: Session) -> None:
    tenant = make_tenant(session)
    source = make_source(session, tenant)
    rows = _rows(source.id, tenant.id, 3)
    rows.append(dict(rows[0], first_name="Z"))
    upsert(session, ZoomUser, rows, conflict=("source_id", "zoom_id"))
    names = session.exec(select(ZoomUser.first_name).where(
        ZoomUser.source_id == source.id, ZoomUser.zoom_id == "u0")).all()
    assert names == ["Z"]


def test_sqlite_upsert_gives_the_same_rows(tmp_path) -> None:
    import worker.models  # noqa: F401

    engine = create_engine(f"sqlite:///{tmp_path}/t.db")
    SQLModel.metadata.create_all(engine)
    with Session(engine) as session:
        tenant = make_tenant(session)
        source = make_source(session, tenant)
        rows = _rows(source.id, tenant.id, 1200)
        upsert(session, ZoomUser, rows, conflict=("source_id", "zoom_id"))
        upsert(session, ZoomUser, [dict(r, first_name="B") for r in rows],
               conflict=("source_id", "zoom_id"), insert_only=("first_seen_at",))
        session.commit()
        assert session.exec(select(func.count()).select_from(ZoomUser)).one() == 1200
        assert set(session.exec(select(ZoomUser.first_name)).all()) == {"B"}
    engine.dispose()


def _events(source_id, tenant_id, n: int) -> list[dict]:
    when = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        {"tenant_id": tenant_id, "source_id": source_id, "event_key": f"{i:064d}",
         "email": f"u{i}@example.com", "time": when + timedelta(minutes=i), "type": "Sign in"}
        for i in range(n)
    ]


@pytest.mark.parametrize("threshold", [1, 10_000], ids=["copy", "insert"])
def test_re_ingesting_immutable_rows_counts_them_as_existing_on_postgres(
    session: Session, threshold: int
) -> None:
    tenant = make_tenant(session)
    source = make_source(session, tenant)
    first = upsert(session, ActivityEvent, _events(source.id, tenant.id, 40),
                   conflict=("source_id", "event_key"), immutable=True,
                   copy_threshold=threshold)
    again = upsert(session, ActivityEvent, _events(source.id, tenant.id, 50),
                   conflict=("source_id", "event_key"), immutable=True,
                   copy_threshold=threshold)
    assert (first.inserted, again.inserted, again.existing) == (40, 10, 40)


def _stored_events(session: Session, source_id) -> list[tuple]:
    return [tuple(r) for r in session.exec(
        select(ActivityEvent.tenant_id, ActivityEvent.event_key, ActivityEvent.email,
               ActivityEvent.time, ActivityEvent.type, ActivityEvent.ip_address)
        .where(ActivityEvent.source_id == source_id).order_by(ActivityEvent.event_key)).all()]


@pytest.mark.parametrize("odd", ["none", "tenant as text", "time as text", "int type", "one row"])
def test_a_copied_page_stores_the_same_rows_in_binary_or_as_text(
    session: Session, odd: str
) -> None:
    """A page of exactly typed values goes as binary COPY; one holding anything else (an id as
    text, a timestamp as text, ...) as text: the rows stored are the same."""
    tenant = make_tenant(session)
    expected_source, odd_source = make_source(session, tenant), make_source(session, tenant)
    n = 1 if odd == "one row" else 150
    for source, oddity in ((expected_source, "none"), (odd_source, odd)):
        rows = [dict(r, ip_address=None if i % 3 else f"10.0.0.{i}")
                for i, r in enumerate(_events(source.id, tenant.id, n))]
        if oddity == "tenant as text":
            rows[7]["tenant_id"] = str(tenant.id)
        elif oddity == "time as text":
            rows[7]["time"] = rows[7]["time"].isoformat()
        elif oddity == "int type":
            rows[7]["type"] = 5
        written = upsert(session, ActivityEvent, rows, conflict=("source_id", "event_key"),
                         immutable=True, copy_threshold=1)
        assert (written.rows, written.inserted) == (n, n)
    stored = _stored_events(session, odd_source.id)
    if odd == "int type":
        stored = [(*r[:4], "Sign in", *r[5:]) if r[4] == "5" else r for r in stored]
    assert stored == _stored_events(session, expected_source.id)
    assert len(stored) == n


def _stored_users(session: Session, source_id) -> list[tuple]:
    """The users' rows, their JSON columns as the text stored (the same text on every path)."""
    return [tuple(r) for r in session.connection().execute(text(
        "SELECT zoom_id, tenant_id, first_name, CAST(group_ids AS TEXT), "
        "CAST(custom_attributes AS TEXT), last_seen_at FROM zoom_user "
        "WHERE source_id = :s ORDER BY zoom_id"), {"s": source_id}).all()]


@pytest.mark.parametrize("path", ["binary", "text", "values", "straight", "open"])
def test_pages_with_json_columns_store_the_same_text_on_every_path(
    session: Session, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A JSON column goes in a binary COPY as the same text the text COPY and the VALUES send:
    odd values too (unicode, nesting, a string, a number, a backslash), and one object every
    row shares (a model default filled once for the page, bound once on the staged path)."""
    import worker.kit.upsert as kit
    from worker.kit.upsert import Appending

    formats: list[str] = []
    copy_from = kit._copy_from

    def spied(cur: Any, table: str, columns: str, binary: Any) -> Any:
        formats.append("binary" if binary else "text")
        return copy_from(cur, table, columns, binary)

    tenant = make_tenant(session)
    shared: list[Any] = [{"key": "k", "name": "n", "value": "v"}]
    odd: list[Any] = [["g\u00e9", "\u4e2d"], {"a": [1, {"b": None}]}, "text", 7, [], "\\"]

    def page(source_id) -> list[dict]:
        rows = _rows(source_id, tenant.id, 150)
        for i, row in enumerate(rows):
            row["group_ids"] = odd[i % len(odd)]
            row["custom_attributes"] = shared
        return rows

    expected_source, source = make_source(session, tenant), make_source(session, tenant)
    upsert(session, ZoomUser, page(expected_source.id), conflict=("source_id", "zoom_id"),
           copy_threshold=10_000)
    rows = page(source.id)
    monkeypatch.setattr(kit, "_copy_from", spied)
    if path == "text":
        rows[7]["tenant_id"] = str(tenant.id)  # a text COPY for the whole page
    conflict = ("source_id", "zoom_id")
    if path == "open":
        appending = Appending(session, ZoomUser, conflict=conflict)
        appending.write(rows[:100])
        appending.write(rows[100:])
        written = appending.end()
    else:
        written = upsert(session, ZoomUser, rows, conflict=conflict,
                         copy_threshold=10_000 if path == "values" else 1,
                         expect_new=path == "straight")
    assert (written.rows, written.inserted) == (150, 150)
    assert formats == {"values": [], "text": ["text"]}.get(path, ["binary"])
    stored = _stored_users(session, source.id)
    assert stored == _stored_users(session, expected_source.id)
    assert {r[3] for r in stored} >= {'["g\\u00e9", "\\u4e2d"]', '"text"', "7"}


@pytest.mark.parametrize("path", ["binary", "text", "values", "straight", "one row"])
def test_none_in_a_json_column_is_json_null_on_every_path(session: Session, path: str) -> None:
    """SQLAlchemy's JSON stores Python None as JSON null (the VALUES path); the COPY paths
    sent SQL NULL until 2026-12-04. A role's `privileges` (nullable: not known yet) tells."""
    tenant = make_tenant(session)
    source = make_source(session, tenant)
    n = 1 if path == "one row" else 150
    rows = [{"tenant_id": tenant.id, "source_id": source.id, "zoom_id": f"r{i}",
             "privileges": None if i % 2 == 0 else ["User:Read"]} for i in range(n)]
    if path == "text":
        rows[-1]["tenant_id"] = str(tenant.id)
    written = upsert(session, ZoomRole, rows, conflict=("source_id", "zoom_id"),
                     copy_threshold=10_000 if path == "values" else 1,
                     expect_new=path == "straight")
    assert written.rows == n
    stored = session.connection().execute(text(
        "SELECT count(*) FILTER (WHERE privileges IS NULL), "
        "count(*) FILTER (WHERE CAST(privileges AS TEXT) = 'null') "
        "FROM zoom_role WHERE source_id = :s"), {"s": source.id}).one()
    assert tuple(stored) == (0, (n + 1) // 2)


def test_rows_expected_new_go_straight_into_the_table_and_equal_the_staged_path(
    session: Session, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from worker.kit import upsert as kit_upsert

    def no_staging(*_args: object) -> str:
        raise AssertionError("the staging table was used")

    tenant = make_tenant(session)
    straight, staged = make_source(session, tenant), make_source(session, tenant)
    monkeypatch.setattr(kit_upsert, "_staging", no_staging)
    written = upsert(session, ActivityEvent, _events(straight.id, tenant.id, 150),
                     conflict=("source_id", "event_key"), immutable=True, copy_threshold=1,
                     expect_new=True)
    assert (written.rows, written.inserted, written.existing) == (150, 150, 0)
    monkeypatch.undo()
    upsert(session, ActivityEvent, _events(staged.id, tenant.id, 150),
           conflict=("source_id", "event_key"), immutable=True, copy_threshold=1)
    assert _stored_events(session, straight.id) == _stored_events(session, staged.id)


def test_a_page_expected_new_that_holds_a_stored_row_is_written_the_usual_way(
    session: Session,
) -> None:
    """A row Zoom repeats on the next page: the straight COPY is undone to its savepoint, the
    page goes through ON CONFLICT, and what the transaction wrote before stays."""
    tenant = make_tenant(session)
    source = make_source(session, tenant)
    events = _events(source.id, tenant.id, 300)
    first = upsert(session, ActivityEvent, events[:150], conflict=("source_id", "event_key"),
                   immutable=True, copy_threshold=1, expect_new=True)
    # The repeated row is the last one: the COPY has inserted the others when it fails.
    again = upsert(session, ActivityEvent, [*events[150:], events[149]],
                   conflict=("source_id", "event_key"), immutable=True, copy_threshold=1,
                   expect_new=True)
    assert (first.inserted, again.rows, again.inserted, again.existing) == (150, 151, 150, 1)
    session.commit()
    assert len(_stored_events(session, source.id)) == 300
    assert session.exec(select(func.count()).select_from(ActivityEvent).where(
        ActivityEvent.source_id == source.id)).one() == 300


def test_a_naive_timestamp_or_a_bool_for_an_integer_is_never_sent_in_binary() -> None:
    from psycopg.postgres import types

    from worker.kit.upsert import _binary_types

    tz, int4 = types.get("timestamptz").oid, types.get("int4").oid  # type: ignore[union-attr]
    aware = datetime(2026, 1, 1, tzinfo=UTC)
    assert _binary_types([tz, int4], [(aware, None), (1, 2)]) == [tz, int4]
    assert _binary_types([tz, int4], [(aware, aware.replace(tzinfo=None)), (1, 2)]) is None
    assert _binary_types([tz, int4], [(aware, aware), (1, True)]) is None


def test_sqlite_counts_new_immutable_rows_and_admits_it_cannot_split_updates(tmp_path) -> None:
    import worker.models  # noqa: F401

    engine = create_engine(f"sqlite:///{tmp_path}/t.db")
    SQLModel.metadata.create_all(engine)
    with Session(engine) as session:
        tenant = make_tenant(session)
        source = make_source(session, tenant)
        upsert(session, ActivityEvent, _events(source.id, tenant.id, 5),
               conflict=("source_id", "event_key"), immutable=True)
        again = upsert(session, ActivityEvent, _events(source.id, tenant.id, 7),
                       conflict=("source_id", "event_key"), immutable=True)
        assert (again.rows, again.inserted) == (7, 2)
        users = upsert(session, ZoomUser, _rows(source.id, tenant.id, 3),
                       conflict=("source_id", "zoom_id"))
        assert (users.rows, users.inserted) == (3, None)


def _classify(session: Session, rows: list[dict], threshold: int = 100):
    return upsert(session, ZoomUser, rows, conflict=("source_id", "zoom_id"),
                  insert_only=("first_seen_at",), compare=("email", "deleted_at"),
                  touch=("last_seen_at",), copy_threshold=threshold)


def _check_classify(session: Session, source_id, tenant_id, threshold: int) -> None:
    rows = _rows(source_id, tenant_id, 300)
    first = _classify(session, rows, threshold)
    assert (first.inserted, first.updated, first.unchanged) == (300, 0, 0)
    later = datetime(2027, 1, 1, tzinfo=UTC)
    page = [dict(r, last_seen_at=later, first_name="ignored") for r in rows]
    page[0]["email"] = "moved@example.com"  # a compared column changed: rewritten whole
    page += _rows(source_id, tenant_id, 305)[300:]
    again = _classify(session, page, threshold)
    assert (again.rows, again.inserted, again.updated, again.unchanged) == (305, 5, 1, 299)
    stored = {u.zoom_id: u for u in session.exec(
        select(ZoomUser).where(ZoomUser.source_id == source_id)).all()}
    assert stored["u0"].first_name == "ignored"
    assert stored["u0"].email == "moved@example.com"
    # Unchanged: only the touched column moved.
    assert stored["u7"].first_name == "A"
    assert stored["u7"].last_seen_at == later
    assert stored["u7"].first_seen_at.year == 2026


@pytest.mark.parametrize("threshold", [1, 10_000], ids=["copy", "insert"])
def test_classify_mode_counts_and_rewrites_only_changed_rows_on_postgres(
    session: Session, threshold: int
) -> None:
    tenant = make_tenant(session)
    source = make_source(session, tenant)
    _check_classify(session, source.id, tenant.id, threshold)
    # Several pages in one transaction share the session's staging table.
    _check_classify(session, make_source(session, tenant).id, tenant.id, threshold)


def test_classify_mode_gives_the_same_rows_and_counts_on_sqlite(tmp_path) -> None:
    import worker.models  # noqa: F401

    engine = create_engine(f"sqlite:///{tmp_path}/t.db")
    SQLModel.metadata.create_all(engine)
    with Session(engine) as session:
        tenant = make_tenant(session)
        source = make_source(session, tenant)
        _check_classify(session, source.id, tenant.id, 1)
    engine.dispose()


# -- sync: classify mode steered by one read of the stored rows ----------------------------

_KEY = ("source_id", "zoom_id")
_COMPARE = ("content_hash", "deleted_at")


def _page(n: int, first: int = 0, mark: str = "h") -> list[dict]:
    """Rows as a pull has them: the item's own columns (the rest are `fixed`)."""
    return [{"zoom_id": f"u{i}", "email": f"u{i}@example.com", "first_name": "A",
             "content_hash": f"{mark}{i}"} for i in range(first, first + n)]


def _fixed(source, when: datetime) -> dict:
    return {"tenant_id": source.tenant_id, "source_id": source.id, "first_seen_at": when,
            "last_seen_at": when, "deleted_at": None}


def _known(session: Session, source):
    from worker.kit.upsert import read_known

    return read_known(session, ZoomUser, conflict=_KEY, compare=_COMPARE,
                      where={"source_id": source.id, "deleted_at": None})


def _sync(session: Session, source, rows: list[dict], when: datetime, known, threshold: int):
    from worker.kit.upsert import sync

    return sync(session, ZoomUser, rows, fixed=_fixed(source, when), conflict=_KEY,
                insert_only=("first_seen_at",), compare=_COMPARE, touch=("last_seen_at",),
                known=known, copy_threshold=threshold)


def _stored(session: Session, source) -> dict[str, tuple]:
    session.expire_all()
    return {u.zoom_id: (u.email, u.first_name, u.content_hash, u.first_seen_at, u.last_seen_at,
                        u.deleted_at)
            for u in session.exec(select(ZoomUser).where(ZoomUser.source_id == source.id))}


@pytest.mark.parametrize("threshold", [1, 10_000], ids=["copy", "insert"])
def test_sync_ends_in_the_rows_and_counts_of_the_one_statement_upsert(
    session: Session, threshold: int
) -> None:
    from sqlalchemy import update

    tenant = make_tenant(session)
    by_upsert, by_sync = make_source(session, tenant), make_source(session, tenant)
    t1, t2 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    first = _page(300)
    second = [dict(r) for r in _page(310)]
    second[3].update(first_name="B", content_hash="changed")  # changed at Zoom
    second[4]["first_name"] = "ignored"  # same hash: unchanged, content kept
    results = {}
    for source in (by_upsert, by_sync):
        known = None if source is by_upsert else _known(session, source)
        initial = _sync(session, source, first, t1, known, threshold)
        assert (initial.inserted, initial.updated, initial.unchanged) == (300, 0, 0)
        session.execute(update(ZoomUser).where(ZoomUser.source_id == source.id,
                                               ZoomUser.zoom_id == "u5")
                        .values(deleted_at=t1))  # marked deleted by a complete pull
        known = None if source is by_upsert else _known(session, source)
        results[source.id] = _sync(session, source, second, t2, known, threshold)
    assert results[by_upsert.id] == results[by_sync.id]
    assert (results[by_sync.id].inserted, results[by_sync.id].updated,
            results[by_sync.id].unchanged) == (10, 2, 298)
    assert _stored(session, by_upsert) == _stored(session, by_sync)
    stored = _stored(session, by_sync)
    assert stored["u3"][1:3] == ("B", "changed")
    assert stored["u4"][1] == "A"
    assert stored["u4"][4] == t2
    assert stored["u5"][5] is None  # live again


@pytest.mark.parametrize("threshold", [1, 10_000], ids=["copy", "insert"])
def test_a_row_rewritten_after_the_read_gets_the_full_write_not_the_touch(
    session: Session, threshold: int
) -> None:
    """What a webhook does between the pull's read and its write: the row takes the event's
    fields, an empty hash (and a later `last_seen_at`); the pull must rewrite it whole."""
    from sqlalchemy import update

    source = make_source(session, make_tenant(session))
    t1, t2 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 3, tzinfo=UTC)
    _sync(session, source, _page(300), t1, None, threshold)
    known = _known(session, source)
    session.execute(update(ZoomUser).where(ZoomUser.source_id == source.id,
                                           ZoomUser.zoom_id == "u7")
                    .values(first_name="Webhook", content_hash="",
                            last_seen_at=datetime(2026, 1, 2, tzinfo=UTC)))
    again = _sync(session, source, _page(300), t2, known, threshold)
    assert (again.inserted, again.updated, again.unchanged) == (0, 1, 299)
    stored = _stored(session, source)
    assert stored["u7"][1:3] == ("A", "h7")
    assert {row[4] for row in stored.values()} == {t2}


@pytest.mark.parametrize("threshold", [1, 10_000], ids=["copy", "insert"])
def test_a_stale_read_still_counts_and_touches_a_row_found_equal(
    session: Session, threshold: int
) -> None:
    source = make_source(session, make_tenant(session))
    t1, t2 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    known = _known(session, source)  # read before anything was stored: all rows look new
    _sync(session, source, _page(300), t1, None, threshold)
    again = _sync(session, source, _page(300), t2, known, threshold)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 300)
    assert {row[4] for row in _stored(session, source).values()} == {t2}


def test_touch_unchanged_takes_keys_any_text_can_be(session: Session) -> None:
    from worker.kit.upsert import touch_unchanged

    source = make_source(session, make_tenant(session))
    t1, t2 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    odd = ['quote"d', "back\\slash", "{braces,comma}", "", "NULL", "space d"]
    rows = [{"zoom_id": z, "email": "", "first_name": "", "content_hash": f"h{i}"}
            for i, z in enumerate(odd)]
    _sync(session, source, rows, t1, None, 10_000)
    plain = [r for r in rows if '"' not in r["zoom_id"] and "\\" not in r["zoom_id"]]
    for page in (rows, plain):  # with elements to escape (the driver's lists), and without
        left = touch_unchanged(session, ZoomUser, [*page, {**page[0], "zoom_id": "absent"}],
                               fixed=_fixed(source, t2), conflict=_KEY, compare=_COMPARE,
                               touch=("last_seen_at",))
        assert [r["zoom_id"] for r in left] == ["absent"]
    assert {z: row[4] for z, row in _stored(session, source).items()} == dict.fromkeys(odd, t2)


def test_a_no_change_pull_touches_every_row_in_place(session: Session) -> None:
    """Every touch of a no-change pull is a HOT update (no new index entry), even with all
    the rows of each heap page touched in one transaction: the directory tables' fillfactor
    leaves room for each row's new version (at 70, 3 in 7 found it)."""
    source = make_source(session, make_tenant(session))
    t1, t2 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    rows = _page(2000)
    for start in range(0, len(rows), 300):
        _sync(session, source, rows[start:start + 300], t1, _known(session, source), 100)

    def updates() -> tuple[int, int]:
        got = session.connection().execute(text(
            "SELECT pg_stat_get_xact_tuples_updated(CAST('zoom_user' AS regclass)), "
            "pg_stat_get_xact_tuples_hot_updated(CAST('zoom_user' AS regclass))")).one()
        return int(got[0]), int(got[1])

    before = updates()
    known = _known(session, source)
    for start in range(0, len(rows), 300):
        written = _sync(session, source, rows[start:start + 300], t2, known, 100)
        assert written.unchanged == len(rows[start:start + 300])
    after = updates()
    assert (after[0] - before[0], after[1] - before[1]) == (2000, 2000)


def test_a_first_pull_goes_straight_in_and_one_with_soft_deleted_rows_falls_back(
    session: Session, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Nothing live stored when read: `sync` COPYs the pages into the table itself (no staging
    table) and counts them new. Rows marked deleted are not in the read: such a page meets
    its stored twins, is undone to its savepoint and takes the upsert, counting them updated
    (live again), as the one-statement upsert does."""
    from sqlalchemy import update

    from worker.kit import upsert as kit_upsert

    staged: list[str] = []
    real_staging = kit_upsert._staging

    def spied(*args: Any) -> str:
        name = real_staging(*args)
        staged.append(name)
        return name

    monkeypatch.setattr(kit_upsert, "_staging", spied)
    tenant = make_tenant(session)
    source = make_source(session, tenant)
    t1, t2 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    first = _sync(session, source, _page(300), t1, _known(session, source), 1)
    assert (first.inserted, first.updated, first.unchanged) == (300, 0, 0)
    assert staged == []
    session.execute(update(ZoomUser).where(ZoomUser.source_id == source.id)
                    .values(deleted_at=t1))  # every account gone at the next complete pull
    attempts = straight_copies(monkeypatch)
    known = _known(session, source)
    back = _sync(session, source, _page(310)[:200], t2, known, 1)
    rest = _sync(session, source, _page(310)[200:], t2, known, 1)
    assert (back.inserted + rest.inserted, back.updated + rest.updated,
            back.unchanged + rest.unchanged) == (10, 300, 0)
    assert staged  # the page fell back to the staged upsert
    # ...and the next page went to it without trying the straight COPY again.
    assert attempts == ["copy", "fallback"]
    stored = _stored(session, source)
    assert len(stored) == 310
    assert all(row[5] is None for row in stored.values())  # live again
    assert stored["u0"][3] == t1  # first_seen_at kept


def _appending(session: Session):
    from worker.kit.upsert import Appending

    return Appending(session, ActivityEvent, conflict=("source_id", "event_key"), immutable=True)


def test_pages_through_one_open_copy_store_what_the_staged_path_stores(session: Session) -> None:
    tenant = make_tenant(session)
    straight, staged = make_source(session, tenant), make_source(session, tenant)
    events = _events(straight.id, tenant.id, 450)
    appending = _appending(session)
    for start in range(0, 450, 150):
        appending.write(events[start:start + 150])
        assert appending.open
    written = appending.end()
    assert not appending.open
    assert (written.rows, written.inserted) == (450, 450)
    assert appending.end() == type(written)(0, 0)  # counted once
    upsert(session, ActivityEvent, _events(staged.id, tenant.id, 450),
           conflict=("source_id", "event_key"), immutable=True)
    assert _stored_events(session, straight.id) == _stored_events(session, staged.id)


@pytest.mark.parametrize("where", ["stored before", "on an earlier page"])
def test_a_row_stored_already_undoes_the_open_copy_and_its_pages_take_the_upsert(
    session: Session, where: str
) -> None:
    tenant = make_tenant(session)
    source = make_source(session, tenant)
    events = _events(source.id, tenant.id, 400)
    if where == "stored before":
        upsert(session, ActivityEvent, events[:1], conflict=("source_id", "event_key"),
               immutable=True)
        pages = [events[:200], events[200:]]
        want = (400, 399)
    else:  # Zoom repeating the last item of a page at the top of the next
        pages = [events[:200], [events[199], *events[200:]]]
        want = (400, 400)
    appending = _appending(session)
    for page in pages:
        appending.write(page)
    written = appending.end()
    assert (written.rows, written.inserted) == want
    session.commit()
    assert session.exec(select(func.count()).select_from(ActivityEvent).where(
        ActivityEvent.source_id == source.id)).one() == 400


def test_a_page_the_open_binary_copy_cannot_carry_takes_the_upsert_with_the_pages_before(
    session: Session,
) -> None:
    """A naive timestamp (text COPY would let the server place it) after binary pages: those
    pages and it are written by `upsert`; the next page opens a COPY again; one count."""
    tenant = make_tenant(session)
    source = make_source(session, tenant)
    events = _events(source.id, tenant.id, 300)
    naive = [dict(e, time=e["time"].replace(tzinfo=None)) for e in events[100:200]]
    appending = _appending(session)
    appending.write(events[:100])
    appending.write(naive)
    assert not appending.open
    appending.write(events[200:])
    assert appending.open
    written = appending.end()
    assert (written.rows, written.inserted) == (300, 300)
    assert len(_stored_events(session, source.id)) == 300


def test_an_aborted_copy_leaves_a_session_that_rolls_back(session: Session) -> None:
    tenant = make_tenant(session)
    source = make_source(session, tenant)
    session.commit()
    appending = _appending(session)
    appending.write(_events(source.id, tenant.id, 50))
    appending.abort()
    assert not appending.open
    session.rollback()
    assert _stored_events(session, source.id) == []


def test_a_statement_or_a_commit_while_the_copy_is_open_ends_it_first_and_loses_no_count(
    session: Session,
) -> None:
    """Nothing else can run on a connection in COPY: the session's next statement, or its
    commit, closes the COPY first (else it would wait forever); `end` still counts it all."""
    tenant = make_tenant(session)
    source = make_source(session, tenant)
    events = _events(source.id, tenant.id, 300)
    appending = _appending(session)
    appending.write(events[:100])
    assert len(_stored_events(session, source.id)) == 100  # a SELECT: the COPY ended first
    assert not appending.open
    appending.write(events[100:200])
    session.commit()
    assert not appending.open
    appending.write(events[200:])
    written = appending.end()
    assert (written.rows, written.inserted) == (300, 300)
    assert len(_stored_events(session, source.id)) == 300
