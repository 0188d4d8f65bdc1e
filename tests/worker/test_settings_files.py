"""``AI_<NAME>_FILE``: settings read from files (compose secrets), and the database password
kept apart from the URL."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from worker.settings import SettingsError, load_settings


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for key in list(os.environ):
        if key.startswith("AI_") or key in {"DATABASE_URL", "REDIS_URL"}:
            monkeypatch.delenv(key)
    monkeypatch.chdir(Path(__file__).parent)  # no .env file here
    return monkeypatch


def test_secrets_come_from_files(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    key = Fernet.generate_key().decode()
    (tmp_path / "encryption_key").write_text(key + "\n")  # as `echo > file` writes it
    (tmp_path / "admin").write_text("an-admin-key-from-a-file")
    (tmp_path / "url").write_text("redis://cache.internal:6380/2\n")
    clean_env.setenv("AI_ENCRYPTION_KEY_FILE", str(tmp_path / "encryption_key"))
    clean_env.setenv("AI_ADMIN_API_KEY_FILE", str(tmp_path / "admin"))
    # A field with aliases (AI_REDIS_URL / REDIS_URL) reads its file too.
    clean_env.setenv("AI_REDIS_URL_FILE", str(tmp_path / "url"))
    settings = load_settings()
    assert settings.encryption_key == key
    assert settings.admin_api_key == "an-admin-key-from-a-file"
    assert settings.redis_url == "redis://cache.internal:6380/2"
    settings.require("encryption_key", "admin_api_key")


def test_a_file_is_validated_like_the_variable(clean_env: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    (tmp_path / "key").write_text("not-a-fernet-key")
    clean_env.setenv("AI_ENCRYPTION_KEY_FILE", str(tmp_path / "key"))
    with pytest.raises(SettingsError, match=r"AI_ENCRYPTION_KEY: .*Fernet") as info:
        load_settings()
    assert "not-a-fernet-key" not in str(info.value)


def test_both_the_variable_and_its_file_is_an_error(clean_env: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    (tmp_path / "admin").write_text("from-file")
    clean_env.setenv("AI_ADMIN_API_KEY", "from-env")
    clean_env.setenv("AI_ADMIN_API_KEY_FILE", str(tmp_path / "admin"))
    with pytest.raises(SettingsError, match="AI_ADMIN_API_KEY and AI_ADMIN_API_KEY_FILE"):
        load_settings()


def test_an_unreadable_file_names_the_variable_and_path(clean_env: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    clean_env.setenv("AI_FLOWER_PASSWORD_FILE", str(missing))
    with pytest.raises(SettingsError, match=f"AI_FLOWER_PASSWORD_FILE: cannot read {missing}"):
        load_settings()


def test_the_database_password_file_completes_the_url(clean_env: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    (tmp_path / "pg").write_text("p@ss:w/rd%\n")
    clean_env.setenv("AI_DATABASE_URL", "postgresql+psycopg://app@postgres:5432/ai")
    clean_env.setenv("AI_DATABASE_PASSWORD_FILE", str(tmp_path / "pg"))
    settings = load_settings()
    from sqlalchemy.engine import make_url

    url = make_url(settings.database_url)
    assert (url.username, url.password, url.host, url.database) == \
        ("app", "p@ss:w/rd%", "postgres", "ai")
    # A URL that has its own password keeps it.
    clean_env.setenv("AI_DATABASE_URL", "postgresql+psycopg://app:own@postgres:5432/ai")
    assert make_url(load_settings().database_url).password == "own"
