"""One parser per Zoom object kind: what the spec allows is taken, what cannot be stored is
skipped with a reason, identifiers are never changed."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from worker.zoom import items as zi
from worker.zoom.codes import missing_scopes, scope_family, scope_hint
from worker.zoom.reports import (
    MAX_BACKFILL_DAYS,
    clamp_windows,
    earliest_report_date,
    earliest_report_month,
)


def parse(kind: str, parse_fn, items):  # type: ignore[no-untyped-def]
    warnings = zi.ItemWarnings()
    rows = [row for _, row in zi.parse_items(kind, items, parse_fn, warnings)]
    return rows, warnings


def test_a_pending_user_without_id_is_keyed_by_email() -> None:
    rows, warnings = parse("user", zi.parse_user, [{"email": "New@X.io", "type": 1}])
    assert rows[0]["zoom_id"] == "email:new@x.io"
    assert rows[0]["email"] == "New@X.io"
    assert zi.user_ref(rows[0]["zoom_id"]) == "new@x.io"
    assert warnings.count == 0


def test_identifiers_round_trip_exactly_and_long_ones_are_never_cut() -> None:
    long_id = "A" * 100
    uuid = "/" + "ab+/=//" * 40
    users, _ = parse("user", zi.parse_user, [{"id": long_id, "email": "a@x.io", "type": 1,
                                              "employee_unique_id": "e" * 300}])
    assert users[0]["zoom_id"] == long_id
    assert users[0]["employee_unique_id"] == "e" * 300
    meetings, _ = parse("meeting", zi.parse_meeting, [{"uuid": uuid, "id": 2**40}])
    assert meetings[0]["uuid"] == uuid
    assert meetings[0]["meeting_id"] == str(2**40)


def test_unstorable_items_are_skipped_with_a_reason_and_the_rest_kept() -> None:
    items = [
        {"id": "ok", "email": "a@x.io", "type": 1},
        {"type": 1},  # neither id nor email
        {"id": "x" * (zi.ID_MAX_BYTES + 1), "email": "b@x.io", "type": 1},
        {"id": "nul\x00", "email": "c@x.io", "type": 1},
        {"id": {"nested": 1}, "email": "e@x.io", "type": 1},
        # Fields that are not the key: left out, the user kept.
        {"id": "big", "email": "d@x.io", "type": 2**40, "employee_unique_id": "\x00"},
    ]
    rows, warnings = parse("user", zi.parse_user, items)
    assert [r["zoom_id"] for r in rows] == ["ok", "big"]
    assert rows[1]["type"] is None
    assert rows[1]["employee_unique_id"] is None
    found = warnings.as_dict()
    assert found["skipped"] == 4
    assert warnings.skipped == {"user": 4}
    assert found["dropped_fields"] == 2
    assert any("neither id nor email" in e for e in warnings.examples)
    assert len(warnings.examples) == zi.MAX_EXAMPLES


def test_display_text_is_cleaned_and_a_cut_says_so() -> None:
    rows, warnings = parse("meeting", zi.parse_meeting, [
        {"uuid": "u1", "topic": "t" * (zi.TEXT_MAX_CHARS + 5)},
        {"uuid": "u2", "topic": "a\x00b\ud800c"},
    ])
    assert rows[0]["topic"].endswith(zi.TRUNCATED)
    assert len(rows[0]["topic"]) == zi.TEXT_MAX_CHARS
    assert rows[1]["topic"] == "a\ufffdb\ufffdc"
    assert warnings.truncated == {"meeting": 1}
    assert warnings.count == 0
    assert warnings.details()["item_warnings"]["truncated"] == 1


def test_empty_participants_are_skipped() -> None:
    rows, warnings = parse("participant", zi.parse_participant,
                           [{}, {"duration": 5}, {"name": "Guest"}])
    assert [r["name"] for r in rows] == ["Guest"]
    assert warnings.count == 2


@pytest.mark.parametrize(("raw", "expected"), [
    ("2024-03-01T10:00:00Z", datetime(2024, 3, 1, 10, tzinfo=UTC)),
    ("2024-03-01T15:30:00+05:30", datetime(2024, 3, 1, 10, tzinfo=UTC)),
    ("2024-03-01T10:00:00", datetime(2024, 3, 1, 10, tzinfo=UTC)),
    ("0001-01-01T00:00:00+01:00", None),
    ("yesterday", None), (12, None), (None, None),
])
def test_parse_time_takes_any_offset(raw: object, expected: datetime | None) -> None:
    assert zi.parse_time(raw) == expected


def test_sign_in_types_are_canonical_and_a_sign_in_without_time_is_unusable() -> None:
    rows, warnings = parse("sign_in", zi.parse_signin, [
        {"email": "A@x.io", "time": "2024-03-01T10:00:00Z", "type": "signin"},
        {"email": "b@x.io", "type": "Sign out"},
    ])
    assert rows == [{"email": "a@x.io", "time": datetime(2024, 3, 1, 10, tzinfo=UTC),
                     "type": zi.SIGN_IN, "ip_address": None, "client_type": None,
                     "version": None}]
    assert warnings.count == 1


def test_key_hash_survives_lone_surrogates() -> None:
    assert len(zi.key_hash("a\ud800", None, 3)) == 64


def test_granular_apps_are_told_granular_names() -> None:
    granular = ["user:read:list_users:admin", "group:read:list_groups:admin"]
    assert scope_family(granular) == "granular"
    assert scope_family(["user:read:admin"]) == "classic"
    assert scope_hint("/report/meetings/x/participants", granular) == \
        "report:read:list_meeting_participants:admin"
    assert scope_hint("/report/meetings/x/participants", ["user:read:admin"]) == \
        "report:read:admin"
    assert "report:read:admin" not in missing_scopes(granular, ("/report/activities",))


def test_report_horizon_and_backfill_setting_agree_on_every_day_of_a_year() -> None:
    day = date(2025, 1, 1)
    while day.year == 2025:
        floor = earliest_report_date(day)
        assert (day - floor).days >= MAX_BACKFILL_DAYS
        month = earliest_report_month(day)
        assert month.day == 1
        assert month >= floor
        for start, end in clamp_windows(date(2024, 1, 1), day, day, whole_months=True):
            assert start >= floor
            assert start.month == end.month
        day = date.fromordinal(day.toordinal() + 1)


def test_the_backfill_setting_allows_exactly_the_days_zoom_keeps() -> None:
    from annotated_types import Le

    from worker.settings import Settings

    field = Settings.model_fields["activity_backfill_days"]
    assert MAX_BACKFILL_DAYS == 180
    assert [m.le for m in field.metadata if isinstance(m, Le)] == [MAX_BACKFILL_DAYS]


_SOURCE = "6f1c2d9e-0000-4000-8000-000000000001"


@pytest.mark.parametrize("item", [
    {"email": "A@x.io", "time": "2024-03-01T10:00:00Z", "type": "Sign in",
     "ip_address": "10.0.0.1", "client_type": "Browser", "version": "5.17.1"},
    {"email": "b@x.io", "time": "2024-03-01T10:00:00z", "type": "signin"},
    {"email": "c@x.io", "time": " 2024-03-01T10:00:00Z ", "type": "Sign out", "version": ""},
    {"email": "d@x.io", "time": "2024-03-01T15:30:00+05:30", "type": "SIGN_OUT"},
    {"email": "e@x.io", "time": "2024-03-01T10:00:00", "ip_address": None},
    {"email": "É@x.io", "time": "2024-03-01T10:00:00.250Z", "client_type": "Zoom Rooms ✓"},
    {"email": "f@x.io", "time": "2024-03-01T10:00:00Z", "client_type": "bad\ud800"},
    {"email": "g@x.io", "time": "2024-03-01T10:00:00Z", "version": "nul\x00"},
    {"email": "h\x00@x.io", "time": "2024-03-01T10:00:00Z"},
    {"email": "i@x.io", "time": "2024-03-01T10:00:00Z", "version": 5},
    {"email": "j@x.io", "time": "2024-03-01T10:00:00Z", "type": {"kind": "Sign in"}},
    {"email": "k@x.io", "time": "2024-03-01T10:00:00Z", "ip_address": "x" * 20_000},
    {"email": "l" * 300 + "@x.io", "time": "2024-03-01T10:00:00Z"},
    {"email": "é" * 600 + "@x.io", "time": "2024-03-01T10:00:00Z"},
    {"email": 42, "time": "2024-03-01T10:00:00Z"},
    {"email": True, "time": "2024-03-01T10:00:00Z"},
    {"email": "", "time": "2024-03-01T10:00:00Z"},
    {"time": "2024-03-01T10:00:00Z", "type": ""},
    {"email": "m@x.io", "time": "2024-13-01T10:00:00Z"},
    {"email": "n@x.io", "time": "0001-01-01T00:00:00+01:00"},
    {"email": "o@x.io", "time": 1709287200},
    {"email": "p@x.io"},
], ids=lambda item: repr(item)[:40])
def test_the_one_step_sign_in_rows_and_keys_are_those_of_the_field_by_field_parser(
        item: dict) -> None:
    import uuid

    base = {"tenant_id": uuid.UUID(int=7), "source_id": uuid.UUID(_SOURCE)}
    fast_warnings, slow_warnings = zi.ItemWarnings(), zi.ItemWarnings()
    fast = zi.signin_rows([item], fast_warnings, base)
    slow = [(i, {**base, "event_key": zi.signin_key(base["source_id"], i), **row})
            for i, row in zi.parse_items("sign_in", [item], zi.parse_signin, slow_warnings)]
    assert fast == slow
    assert fast_warnings.as_dict() == slow_warnings.as_dict()


def test_the_sign_in_key_is_the_hash_rows_already_stored_carry() -> None:
    # Stored events keep their key: a re-pulled event must hash to it again (idempotency).
    import hashlib

    item = {"email": "A@X.io", "time": "2024-03-01T10:00:00Z", "type": "Sign in",
            "ip_address": "10.0.0.1", "client_type": None, "version": "5.17.1"}
    expected = hashlib.sha256(
        f"{_SOURCE}\x1fa@x.io\x1f2024-03-01T10:00:00Z\x1fSign in\x1f10.0.0.1\x1f\x1f5.17.1"
        .encode()).hexdigest()
    assert zi.signin_key(_SOURCE, item) == expected
    rows = zi.signin_rows([item], zi.ItemWarnings(), {"source_id": _SOURCE})
    assert rows[0][1]["event_key"] == expected


def test_warnings_noted_apart_and_added_equal_warnings_noted_in_one() -> None:
    """A page parsed in the fetching thread notes on its own warnings; adding them in page
    order gives what one shared record would have held (counts, then the first examples)."""
    pages = [[("user", "a"), ("user", "b")], [("host", "c")], [("user", "d")] * 6]
    one, merged = zi.ItemWarnings(), zi.ItemWarnings()
    for page in pages:
        apart = zi.ItemWarnings()
        for kind, reason in page:
            one.skip(kind, reason)
            apart.skip(kind, reason)
            one.cut(kind, "topic")
            apart.cut(kind, "topic")
        merged.add(apart)
    assert merged.as_dict() == one.as_dict()
    assert merged.count == 9
    assert len(merged.examples) == zi.MAX_EXAMPLES
