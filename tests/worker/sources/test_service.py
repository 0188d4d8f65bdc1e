"""Creating sources, rotating their credentials and starting their work, on real Postgres and a
real Redis broker: the functions the API and the CLI share."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlmodel import Session, select

from tests.broker import broker_messages
from tests.factories import make_source, make_tenant
from worker import dispatch
from worker.kit.crypto import decrypt_json
from worker.models import (
    ConnectionTest,
    GrantType,
    RunKind,
    RunStatus,
    RunTrigger,
    SourceStatus,
    SyncRun,
)
from worker.models import TestStatus as TS
from worker.sources.service import (
    CredentialsMissing,
    QueueUnavailable,
    SourceDisabled,
    name_taken,
    new_source,
    rotate_credentials,
    start_connection_test,
    start_run,
)

S2S = {"account_id": "acc-1", "client_id": "cid-1", "client_secret": "secret-1"}


def test_a_new_source_stores_only_its_grants_credentials_encrypted_and_waits_for_a_test(
    session: Session,
) -> None:
    tenant = make_tenant(session)
    source = new_source(tenant.id, name="zoom", grant_type=GrantType.ACCOUNT_CREDENTIALS,
                        credentials={**S2S, "client_id": " cid-1 ", "refresh_token": "stray"},
                        plan="business", timezone="Europe/Paris")
    session.add(source)
    session.commit()
    assert decrypt_json(source.credentials_ciphertext) == S2S
    assert "secret-1" not in source.credentials_ciphertext
    assert source.zoom_account_id == "acc-1"
    assert source.credentials_version == 1
    assert source.status == SourceStatus.NEW
    assert source.status_message == "run a connection test to start syncing"
    assert source.plan == "business"
    assert source.timezone == "Europe/Paris"
    # Not scheduled until a connection test passes.
    assert source.next_aggregation_at is None
    assert source.next_activity_at is None


def test_a_new_source_names_every_missing_or_blank_credential(session: Session) -> None:
    tenant = make_tenant(session)
    with pytest.raises(CredentialsMissing) as caught:
        new_source(tenant.id, name="zoom", grant_type=GrantType.REFRESH_TOKEN,
                   credentials={"client_id": "c", "client_secret": "  "})
    assert caught.value.missing == ["client_secret", "refresh_token"]
    assert caught.value.field == "credentials"
    assert isinstance(caught.value, ValueError)


def test_names_are_unique_per_tenant_only(session: Session) -> None:
    acme, globex = make_tenant(session), make_tenant(session)
    source = make_source(session, acme, name="zoom")
    assert name_taken(session, acme.id, "zoom")
    assert not name_taken(session, acme.id, "zoom", exclude=source.id)
    assert not name_taken(session, globex.id, "zoom")


def test_rotated_credentials_are_merged_bump_the_version_and_reset_a_failing_source(
    session: Session,
) -> None:
    source = make_source(session, make_tenant(session), credentials=S2S,
                         status=SourceStatus.FAILING)
    assert rotate_credentials(source, credentials={"client_secret": "secret-2"})
    assert decrypt_json(source.credentials_ciphertext) == {**S2S, "client_secret": "secret-2"}
    assert source.credentials_version == 2
    assert source.status == SourceStatus.NEW
    assert not rotate_credentials(source, credentials={"client_secret": "secret-2"})
    assert source.credentials_version == 2
    with pytest.raises(CredentialsMissing, match="refresh_token"):
        rotate_credentials(source, grant_type=GrantType.REFRESH_TOKEN)


def test_a_connection_test_is_committed_then_enqueued_with_ids_only(
    session: Session, redis_client: Any
) -> None:
    source = make_source(session, make_tenant(session), credentials=S2S)
    test = start_connection_test(session, source)
    assert test.status == TS.QUEUED
    assert test.source_id == source.id
    [message] = broker_messages(redis_client, "connection_tests")
    assert message["headers"]["task"] == "zoom.test_connection"
    assert message["args"] == [str(test.id)]
    assert message["headers"]["tenant_id"] == str(source.tenant_id)
    assert "secret-1" not in message["raw"]


def test_a_run_keeps_its_trigger_and_window_and_goes_to_its_kinds_queue(
    session: Session, redis_client: Any
) -> None:
    source = make_source(session, make_tenant(session))
    window = (dt.datetime(2026, 5, 1, tzinfo=dt.UTC), dt.datetime(2026, 5, 8, tzinfo=dt.UTC))
    run = start_run(session, source, RunKind.ACTIVITY, RunTrigger.CLI, window)
    stored = session.get_one(SyncRun, run.id)
    assert (stored.kind, stored.trigger, stored.status) == ("activity", "cli", "queued")
    assert (stored.window_start, stored.window_end) == window
    [message] = broker_messages(redis_client, "activity")
    assert message["headers"]["task"] == "zoom.sync_activity"
    assert message["args"] == [str(run.id)]


@pytest.mark.usefixtures("redis_client")
def test_when_the_broker_refuses_the_row_is_marked_and_queue_unavailable_raised(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The refusal is simulated at dispatch: this tests our error path, not the broker.
    def refuse(*_args: Any, **_kwargs: Any) -> str:
        raise ConnectionError("broker down")

    monkeypatch.setattr(dispatch, "enqueue_connection_test", refuse)
    monkeypatch.setattr(dispatch, "enqueue_run", refuse)
    source = make_source(session, make_tenant(session))
    with pytest.raises(QueueUnavailable) as caught:
        start_connection_test(session, source)
    assert isinstance(caught.value.cause, ConnectionError)
    test = session.exec(select(ConnectionTest)).one()
    assert test.status == TS.FAILED
    assert test.finished_at is not None
    assert "unreachable" in test.message
    with pytest.raises(QueueUnavailable):
        start_run(session, source, RunKind.AGGREGATION, RunTrigger.API)
    run = session.exec(select(SyncRun)).one()
    assert run.status == RunStatus.RETRYABLE
    assert run.error_code == "broker_unavailable"


def test_no_work_starts_on_a_disabled_source(session: Session, redis_client: Any) -> None:
    source = make_source(session, make_tenant(session), status=SourceStatus.DISABLED)
    with pytest.raises(SourceDisabled):
        start_connection_test(session, source)
    with pytest.raises(SourceDisabled):
        start_run(session, source, RunKind.AGGREGATION, RunTrigger.API)
    assert session.exec(select(ConnectionTest)).all() == []
    assert session.exec(select(SyncRun)).all() == []
    assert broker_messages(redis_client, "connection_tests") == []
