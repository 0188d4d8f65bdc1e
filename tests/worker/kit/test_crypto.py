import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text
from sqlmodel import Session

from tests.factories import make_source, make_tenant
from worker.kit.crypto import CredentialsUnreadable, decrypt_json, encrypt_json, redact


def test_credentials_round_trip() -> None:
    data = {"client_id": "abc", "client_secret": "s3cr3t", "refresh_token": "rt-1"}
    assert decrypt_json(encrypt_json(data)) == data


def test_wrong_key_is_a_clear_error_without_ciphertext() -> None:
    token = encrypt_json({"client_secret": "x"})
    with pytest.raises(CredentialsUnreadable) as info:
        decrypt_json(token, key=Fernet.generate_key().decode())
    assert token not in str(info.value)


def test_stored_column_never_holds_the_secret_in_clear(session: Session) -> None:
    tenant = make_tenant(session)
    secret = "super-secret-client-secret-123"
    source = make_source(
        session, tenant, credentials={"client_id": "c", "client_secret": secret, "account_id": "a"}
    )
    session.flush()
    raw = session.execute(
        text("SELECT credentials_ciphertext FROM source WHERE id = :id"), {"id": source.id}
    ).scalar_one()
    assert secret not in raw
    assert decrypt_json(raw)["client_secret"] == secret
    dump = session.execute(text("SELECT row_to_json(s)::text FROM source s")).scalar_one()
    assert secret not in dump


def test_redact_keeps_only_a_prefix() -> None:
    assert redact("eyJhbGciOiJIUzUxMiJ9.payload") == "eyJh…"
    assert redact(None) == "<none>"
