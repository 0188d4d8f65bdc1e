import subprocess
import sys

import pytest

from worker.settings import Settings, SettingsError, load_settings


def test_plain_postgres_url_gets_the_psycopg3_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@h:5432/d")
    monkeypatch.delenv("AI_DATABASE_URL", raising=False)
    assert Settings().database_url == "postgresql+psycopg://u@h:5432/d"


def test_broker_and_backend_default_to_redis_url(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AI_BROKER_URL", "AI_RESULT_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AI_REDIS_URL", "redis://example:6379/4")
    settings = Settings()
    assert settings.broker_url == settings.result_backend == "redis://example:6379/4"


def test_malformed_setting_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AI_DATABASE_URL", "mysql://nope")
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert "AI_DATABASE_URL" in message
    assert "\n" not in message
    assert "AI_AI_" not in message


def test_an_unknown_log_level_is_refused_naming_the_choices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AI_LOG_LEVEL", "verbose")
    with pytest.raises(SettingsError, match=r"AI_LOG_LEVEL.*DEBUG, INFO, WARNING"):
        load_settings()
    monkeypatch.setenv("AI_LOG_LEVEL", "warning")
    assert load_settings().log_level == "WARNING"


def test_bad_encryption_key_is_refused_with_a_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AI_ENCRYPTION_KEY", "not-a-fernet-key")
    with pytest.raises(SettingsError, match=r"AI_ENCRYPTION_KEY.*Fernet"):
        load_settings()


def test_required_placeholder_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AI_ADMIN_API_KEY", "changeme")
    with pytest.raises(SettingsError, match="AI_ADMIN_API_KEY is still the placeholder 'changeme'"):
        Settings().require("admin_api_key")
    monkeypatch.setenv("AI_ADMIN_API_KEY", "")
    with pytest.raises(SettingsError, match="AI_ADMIN_API_KEY is not set"):
        Settings().require("admin_api_key")


def test_cli_reports_bad_settings_without_a_traceback() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "worker.cli", "db", "current"],
        env={"PATH": "/usr/bin:/bin", "AI_DATABASE_URL": "mysql://nope"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "AI_DATABASE_URL" in proc.stderr
    assert "Traceback" not in proc.stderr
