"""The one settings object.

Every knob is an environment variable with the ``AI_`` prefix (``.env.example`` documents each).
``DATABASE_URL`` and ``REDIS_URL`` are honoured without the prefix too, because that is what
hosting platforms and our Makefile set.

Any setting can come from a file instead: ``AI_<NAME>_FILE=/run/secrets/x`` reads the value from
that file (trailing newline dropped), which is how Docker/Compose ``secrets:`` hand secrets over
without putting them in the environment of every process. Setting both ``AI_<NAME>`` and
``AI_<NAME>_FILE`` is an error rather than a silent precedence.
"""

from __future__ import annotations

import os
import sys
from functools import lru_cache
from typing import Any, Literal

from cryptography.fernet import Fernet
from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from sqlalchemy.engine import make_url

# Values that appear in docs and examples; a deployment that still uses one is misconfigured.
_PLACEHOLDERS = {"changeme", "change-me", "secret", "password"}
# The levels Python's logging, Celery and uvicorn all accept.
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class SettingsError(RuntimeError):
    """A setting is missing or malformed; the message names the variable."""


def _env_names(name: str, field: FieldInfo) -> list[str]:
    """The variables a field is read from: its aliases, else ``AI_<NAME>``."""
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        return [str(a) for a in alias.choices]
    return [str(alias)] if isinstance(alias, str) else [f"AI_{name.upper()}"]


def _read_secret_file(var: str, path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            value = handle.read()
    except OSError as exc:
        # The path is not secret; the content never appears in a message.
        raise SettingsError(f"{var}: cannot read {path}: {exc.strerror or type(exc).__name__}"
                            ) from None
    return value.rstrip("\r\n")


class _SecretFiles(PydanticBaseSettingsSource):
    """``AI_<NAME>_FILE``: the value of a setting read from a file (compose secrets)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:  # noqa: ARG002 - pydantic-settings' abstract method signature
        return None, field_name, False  # unused: __call__ reads every field at once

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, field in self.settings_cls.model_fields.items():
            names = _env_names(name, field)
            for var in names:
                path = os.environ.get(f"{var}_FILE", "").strip()
                if not path:
                    continue
                if any(os.environ.get(n, "").strip() for n in names):
                    raise SettingsError(f"{var} and {var}_FILE are both set: keep one")
                # Input is keyed like the environment source keys it: alias, else field name.
                key = names[0] if field.validation_alias is not None else name
                values[key] = _read_secret_file(f"{var}_FILE", path)
                break
        return values


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="AI_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    database_url: str = Field(
        default="postgresql+psycopg://postgres@127.0.0.1:5432/activity_insights",
        validation_alias=AliasChoices("AI_DATABASE_URL", "DATABASE_URL"),
    )
    # Put into database_url when that has no password: lets the password alone be a secret
    # file (AI_DATABASE_PASSWORD_FILE, the same file Postgres's POSTGRES_PASSWORD_FILE reads).
    database_password: str = ""
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        validation_alias=AliasChoices("AI_REDIS_URL", "REDIS_URL"),
    )
    # Empty means "same as redis_url": one Redis is the normal deployment.
    broker_url: str = ""
    result_backend: str = ""

    zoom_oauth_url: str = "https://zoom.us/oauth/token"
    zoom_api_url: str = "https://api.zoom.us/v2"
    zoom_timeout_seconds: float = Field(default=30.0, gt=0)
    zoom_max_retries: int = Field(default=5, ge=0)
    zoom_deadline_seconds: float = Field(default=300.0, gt=0)
    # A cached token is treated as expired this long before Zoom's own expiry.
    token_refresh_margin_seconds: int = Field(default=300, ge=0)
    # Share of the Zoom account's rate limits this deployment may use: other apps of the same
    # account draw from the same buckets.
    rate_limit_share: float = Field(default=0.8, gt=0, le=1)

    encryption_key: str = Field(default="", description="Fernet key for stored credentials")
    admin_api_key: str = ""
    flower_user: str = ""
    flower_password: str = ""

    # Zoom answers reports for six months back: at most worker.zoom.reports.MAX_BACKFILL_DAYS
    # (settings sit below zoom in the layers, so the number is repeated; a test ties the two).
    activity_backfill_days: int = Field(default=90, ge=1, le=180)
    activity_lookback_hours: int = Field(default=48, ge=0)
    tenant_max_concurrent_tasks: int = Field(default=4, ge=1)
    # Unacknowledged broker messages are redelivered after this long: above the longest task.
    broker_visibility_timeout: float = Field(default=4 * 3600, gt=0)
    task_soft_time_limit: float = Field(default=3 * 3600, gt=0)
    # Lease of the per-source run locks; renewed while the work goes on.
    lock_lease_seconds: float = Field(default=60, gt=0)
    # A task whose tenant is at its concurrency limit tries again after this long.
    requeue_countdown_seconds: float = Field(default=3, gt=0)
    # Transient failures: backoff base, and how long after a run started they are retried.
    retry_base_seconds: float = Field(default=10, gt=0)
    retry_deadline_seconds: float = Field(default=3600, gt=0)
    # Beat's tick: schedules due, deferred runs resumed, lost work swept (tests make it fast).
    dispatch_interval_seconds: float = Field(default=30, gt=0)
    # Requests one API key may make per minute before the API answers 429.
    api_rate_limit_per_minute: int = Field(default=600, ge=1)
    log_level: str = "INFO"
    # "json": one object a line with tenant, source, run and task ids (for log aggregators);
    # "text": the same records as plain lines, for a terminal.
    log_format: Literal["json", "text"] = "text"
    # Adds a tenant (runs) or source (Zoom requests, token refreshes) label to /metrics: one
    # series per customer, so off unless the operator wants that and can store it.
    metrics_per_tenant: bool = False

    @field_validator("database_url")
    @classmethod
    def _database_url_scheme(cls, value: str) -> str:
        if not value.startswith(("postgresql", "sqlite")):
            raise ValueError("must be a postgresql:// or sqlite:// URL")
        if value.startswith("postgresql://"):
            # psycopg 3 is the driver we ship; plain postgresql:// would pick psycopg2.
            value = "postgresql+psycopg://" + value.removeprefix("postgresql://")
        return value

    @field_validator("redis_url", "broker_url", "result_backend")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis:// URL")
        return value

    @field_validator("encryption_key")
    @classmethod
    def _fernet_key(cls, value: str) -> str:
        if value:
            try:
                Fernet(value.encode())
            except (ValueError, TypeError) as exc:
                raise ValueError(
                    "must be a Fernet key (generate one with "
                    "`python -c 'from cryptography.fernet import Fernet; "
                    "print(Fernet.generate_key().decode())'`)"
                ) from exc
        return value

    @field_validator("log_level")
    @classmethod
    def _known_log_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)} (got {value!r})")
        return level

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _SecretFiles(settings_cls), dotenv_settings,
                file_secret_settings)

    @model_validator(mode="after")
    def _defaults(self) -> Settings:
        if self.database_password and not self.is_sqlite:
            url = make_url(self.database_url)
            if url.password is None:
                self.database_url = url.set(password=self.database_password).render_as_string(
                    hide_password=False)
        if not self.broker_url:
            self.broker_url = self.redis_url
        if not self.result_backend:
            self.result_backend = self.redis_url
        return self

    def require(self, *names: str) -> None:
        """Refuse placeholder or empty values for settings this process cannot run without."""
        for name in names:
            value = str(getattr(self, name)).strip()
            if not value:
                raise SettingsError(f"AI_{name.upper()} is not set (see .env.example)")
            if value.lower() in _PLACEHOLDERS:
                raise SettingsError(f"AI_{name.upper()} is still the placeholder {value!r}: "
                                    "set a real value (see .env.example)")

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def _describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        field = str(err["loc"][0]).upper() if err["loc"] else "?"
        # A field read through an alias is reported by the alias, which has the prefix already.
        name = field if field.startswith("AI_") else f"AI_{field}"
        lines.append(f"{name}: {err['msg']}")
    return "; ".join(lines)


def load_settings() -> Settings:
    """Build settings from the environment, turning validation errors into one readable line."""
    try:
        return Settings()
    except ValidationError as exc:
        raise SettingsError(f"invalid settings: {_describe(exc)}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()


def settings_or_exit() -> Settings:
    """For entry points: one clear line on stderr and exit 2 instead of a traceback."""
    try:
        return get_settings()
    except SettingsError as exc:
        sys.stderr.write(f"activity-insights: {exc}\n")
        raise SystemExit(2) from None
