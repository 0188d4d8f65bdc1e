"""Connection tests against fakezoom: the recorded result, the source's state, its schedules,
and the runs the first success starts."""

from __future__ import annotations

from sqlmodel import select

from tests.factories import add_app_source
from tests.worker.helpers import new_test, source_row
from worker.clients import forget_source_tokens
from worker.connection_tests.service import run_connection_test
from worker.db import session_scope
from worker.kit.crypto import decrypt_json, encrypt_json
from worker.models import (
    ConnectionTest,
    RunKind,
    RunTrigger,
    Source,
    SourceStatus,
    SyncRun,
    enums,
)


def runs_of(source_id) -> list[SyncRun]:
    with session_scope() as session:
        return list(session.exec(select(SyncRun).where(SyncRun.source_id == source_id)))


def test_a_good_test_activates_schedules_and_starts_aggregation_and_activity(zoom) -> None:
    account = zoom.fake.account(1)
    source_id = add_app_source(account, account.general_app)  # refresh-token grant
    test = run_connection_test(new_test(source_id), enqueue=False)

    assert test.status == enums.TestStatus.SUCCEEDED
    assert test.token_ms is not None
    assert test.call_ms is not None
    assert "report:read:admin" in test.granted_scopes
    assert test.missing_scopes == []
    assert test.missing_optional_scopes == []
    source = source_row(source_id)
    assert source.status == SourceStatus.ACTIVE
    assert source.zoom_account_id == account.id  # learnt from GET /users/me
    assert source.next_aggregation_at is not None
    assert source.next_activity_at is not None
    started = {(r.kind, r.trigger) for r in runs_of(source_id)}
    assert started == {(RunKind.AGGREGATION, RunTrigger.AFTER_TEST),
                       (RunKind.ACTIVITY, RunTrigger.AFTER_TEST)}

    # Only the first success starts runs.
    run_connection_test(new_test(source_id), enqueue=False)
    assert len(runs_of(source_id)) == 2


def test_the_missing_optional_roles_scope_is_reported_but_passes(zoom) -> None:
    account = zoom.fake.account(0)
    source_id = add_app_source(account, account.s2s_app)
    test = run_connection_test(new_test(source_id), enqueue=False)
    assert test.status == enums.TestStatus.SUCCEEDED
    assert test.missing_optional_scopes == ["role:read:admin"]


def test_a_missing_required_scope_fails_and_stops_scheduling(zoom) -> None:
    account = zoom.fake.account(0)
    app = account.add_app("s2s", scopes=["user:read:admin", "group:read:admin"])
    source_id = add_app_source(account, app)
    test = run_connection_test(new_test(source_id), enqueue=False)
    assert test.status == enums.TestStatus.FAILED
    assert test.missing_scopes == ["report:read:admin"]
    assert test.message == ("scope report:read:admin missing: add it in the Zoom app's Scopes "
                            "page and re-activate the app")
    source = source_row(source_id)
    assert source.status == SourceStatus.FAILING
    assert source.next_aggregation_at is None
    assert source.next_activity_at is None
    assert runs_of(source_id) == []


def test_bad_credentials_fail_then_fixed_credentials_resume_scheduling(zoom) -> None:
    account = zoom.fake.account(0)
    app = account.s2s_app
    source_id = add_app_source(account, app)
    with session_scope() as session:
        source = session.get_one(Source, source_id)
        creds = decrypt_json(source.credentials_ciphertext)
        source.credentials_ciphertext = encrypt_json({**creds, "client_secret": "wrong"})
        source.credentials_version += 1

    test = run_connection_test(new_test(source_id), enqueue=False)
    assert test.status == enums.TestStatus.FAILED
    assert test.message == ("client secret rejected by Zoom: check the client ID and secret "
                            "in the source")
    assert test.zoom_error_code
    assert "wrong" not in test.message
    source = source_row(source_id)
    assert source.status == SourceStatus.FAILING
    assert source.next_activity_at is None

    with session_scope() as session:
        source = session.get_one(Source, source_id)
        source.credentials_ciphertext = encrypt_json(creds)
        source.credentials_version += 1
    forget_source_tokens(source_id)  # what the API does when credentials change
    test = run_connection_test(new_test(source_id), enqueue=False)
    assert test.status == enums.TestStatus.SUCCEEDED
    source = source_row(source_id)
    assert source.status == SourceStatus.ACTIVE
    assert source.next_activity_at is not None


def test_a_revoked_refresh_token_asks_for_reauthorisation(zoom) -> None:
    account = zoom.fake.account(1)
    app = account.general_app
    source_id = add_app_source(account, app)
    zoom.fake.revoke_tokens(app, refresh=True)
    test = run_connection_test(new_test(source_id), enqueue=False)
    assert test.status == enums.TestStatus.FAILED
    assert "refresh token" in test.message
    source = source_row(source_id)
    assert source.status == SourceStatus.REAUTHORIZE
    assert source.next_aggregation_at is None
    assert source.next_activity_at is None
    with session_scope() as session:
        assert session.get_one(ConnectionTest, test.id).zoom_error_code == "invalid_grant"
