"""Directory items (users, groups, roles): the shortcuts of their parsing give what the general
path gives, and the content hash keeps the formula stored rows were hashed with."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import pytest

from worker.zoom import items as zi

USER = {
    "id": "IoO1yoUOzpS3UPQ8000000", "first_name": "Ada", "last_name": "Sammet",
    "display_name": "Ada Sammet", "email": "Ada.Sammet@example.com", "type": 2,
    "pmi": 3949720419, "timezone": "UTC", "verified": 1, "dept": "HR",
    "created_at": "2024-04-25T02:48:05Z", "language": "en-US", "status": "active",
    "role_id": "0", "employee_unique_id": "E000000000", "group_ids": ["u5P-Jq5w1Hj8dKwPgc3Qrs"],
    "last_login_time": "2026-12-01T14:33:57Z", "last_client_version": "6.0.2.39343 (mac)",
    "custom_attributes": [{"key": "cbf_cost_center", "name": "Cost center", "value": "CC-000"}],
}

# Every kind of value a field may hold that some field cannot store as sent.
HOSTILE: list[Any] = [
    None, "", True, False, 0, 7, -1, 2**31, -(2**31) - 1, 1.5, 2.0, "12", "-3", "x" * 300,
    "é" * 300, "é" * 600, "x" * 1001, "x" * (zi.TEXT_MAX_CHARS + 1), "a\x00b", "\ud800",
    "😀", "back\\u0000slash", [], ["a", 1, None], {}, {"k": "v"}, [{"k": "\x00"}],
    "2026-01-01T00:00:00Z",
]


class Recording(dict[str, Any]):
    """An item that remembers which fields were read."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.read: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return super().__getitem__(key)


def fields_read_by_parse_user() -> set[str]:
    item = Recording(USER)
    zi.parse_user(item, zi.Fields("user", item, zi.ItemWarnings()))
    return item.read


def parse(parse_fn: Any, kind: str, items: list[dict[str, Any]]
          ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    warnings = zi.ItemWarnings()
    rows = [row for _, row in zi.parse_items(kind, items, parse_fn, warnings)]
    return rows, warnings.as_dict()


def variants() -> list[dict[str, Any]]:
    names = fields_read_by_parse_user() | set(USER)
    out = [dict(USER)]
    for name in sorted(names):
        for value in HOSTILE:
            out.append({**USER, name: value})
            out.append({k: v for k, v in {**USER, name: value}.items() if k != "id"})
    return out


def test_the_content_hash_is_the_formula_stored_rows_were_hashed_with() -> None:
    for item in [USER, {"b": "é\x00", "a": [1, {"z": None, "y": 2.5}]}, {"id": "\ud800"}]:
        expected = hashlib.sha256(
            json.dumps(item, sort_keys=True, default=str).encode()).hexdigest()
        assert zi.content_hash(item) == expected


@pytest.mark.parametrize(("kind", "parse_fn"), [("user", zi.parse_user),
                                               ("group", zi.parse_group),
                                               ("role", zi.parse_role)])
def test_reading_a_clean_item_without_cleaning_gives_the_general_paths_rows(
        monkeypatch: pytest.MonkeyPatch, kind: str, parse_fn: Any) -> None:
    items = variants()
    fast = parse(parse_fn, kind, items)
    # An expression that matches every text: no item counts as clean, every field is cleaned.
    monkeypatch.setattr(zi, "_ESCAPED_UNSTORABLE", re.compile(""))
    general = parse(parse_fn, kind, items)
    assert fast == general
    assert len(fast[0]) > len(items) // 4  # not a comparison of skipped items only


def test_an_item_user_digest_answers_for_is_parsed_to_its_key_and_hash_noting_nothing() -> None:
    answered = 0
    for item in variants():
        digest = zi.user_digest(item)
        if digest is None:
            continue
        answered += 1
        rows, warnings = parse(zi.parse_user, "user", [item])
        assert warnings["skipped"] == warnings["truncated"] == warnings["dropped_fields"] == 0, \
            item
        assert [(r["zoom_id"], r["content_hash"]) for r in rows] == [digest]
    assert zi.user_digest(USER) is not None
    assert answered > len(variants()) // 3


def test_user_digest_keys_a_user_without_id_by_email_as_the_parse_does() -> None:
    item = {k: v for k, v in USER.items() if k != "id"}
    digest = zi.user_digest(item)
    assert digest is not None
    assert digest[0] == "email:ada.sammet@example.com" == zi.user_key(
        zi.Fields("user", item, zi.ItemWarnings()))
    assert zi.user_digest({"type": 1}) is None  # unusable: left to the parse, which counts it


MEMBER = {"id": "IoO1yoUOzpS3UPQ8000000", "email": "Ada.Sammet@example.com",
          "first_name": "Ada", "last_name": "Sammet", "type": 2}


@pytest.mark.parametrize("kind", ["group_member", "role_member"])
def test_member_rows_give_the_parses_rows_and_warnings_for_every_variant(kind: str) -> None:
    items: list[dict[str, Any]] = [dict(MEMBER)]
    for name in ("id", "email"):
        for value in HOSTILE:
            items.append({**MEMBER, name: value})
            items.append({k: v for k, v in {**MEMBER, name: value}.items() if k != "id"})
    warnings = zi.ItemWarnings()
    rows = zi.member_rows(kind, items, warnings)
    assert (rows, warnings.as_dict()) == parse(zi.parse_member, kind, items)
    # The hostile ones were there.
    assert warnings.skipped
    assert warnings.dropped
    assert rows[0] == {"user_zoom_id": MEMBER["id"], "email": MEMBER["email"]}
