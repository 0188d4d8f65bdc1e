"""Real Postgres and real Redis for every test that needs them.

The run gets its own Postgres database (created here, migrated once, dropped at the end) and its
own Redis database number, so a developer's data never leaks in. Settings are exported as
environment variables before any application module reads them, so worker subprocesses started
by tests see the same services.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, pool, text
from sqlalchemy.engine import Engine, make_url
from sqlmodel import SQLModel

from tests.services import Services, ServiceUnavailable, discover

# Fixtures by subject, available to every test (none is imported by a test module). The API
# helpers' asserts (a tenant or source the API refused to create) keep pytest's detailed report.
pytest.register_assert_rewrite("tests.api.helpers")
pytest_plugins = [
    "tests.fixtures.api",
    "tests.fixtures.browser",
    "tests.fixtures.cli",
    "tests.fixtures.clock",
    "tests.fixtures.db",
    "tests.fixtures.fakezoom",
    "tests.fixtures.zoom",
]

# Redis databases the suite may use (0 is the usual application default). Each run leases one
# so that two runs at once (two developers' terminals, a helper and CI) never flush each other.
# (14 and 15 are the benchmark's and its smoke test's.)
TEST_REDIS_DBS = range(1, 14)
LEASE_SECONDS = 3 * 3600
ADMIN_KEY = "ai_admin_" + secrets.token_hex(16)

_services: Services | None = None
_test_db_url: str | None = None


def pytest_configure() -> None:
    global _services, _test_db_url
    try:
        _services = discover()
    except ServiceUnavailable as exc:
        raise pytest.UsageError(str(exc)) from None
    server = make_url(_services.postgres_url)
    name = f"ai_test_{os.getpid()}_{secrets.token_hex(3)}"
    _test_db_url = server.set(database=name).render_as_string(hide_password=False)
    redis_url = f"{_services.redis_url}/{_lease_redis_db(_services.redis_url)}"
    os.environ.update(
        {
            "AI_DATABASE_URL": _test_db_url,
            "AI_REDIS_URL": redis_url,
            "AI_BROKER_URL": redis_url,
            "AI_RESULT_BACKEND": redis_url,
            "AI_ENCRYPTION_KEY": Fernet.generate_key().decode(),
            "AI_ADMIN_API_KEY": ADMIN_KEY,
            "AI_FLOWER_USER": "ops",
            "AI_FLOWER_PASSWORD": secrets.token_hex(8),
        }
    )
    from worker.settings import get_settings

    get_settings.cache_clear()


_lease: tuple[str, str] | None = None


def _lease_redis_db(base_url: str) -> int:
    global _lease
    import redis

    forced = os.environ.get("AI_TEST_REDIS_DB")
    if forced:
        return int(forced)
    client = redis.Redis.from_url(f"{base_url}/0")
    try:
        for number in TEST_REDIS_DBS:
            key = f"ai-test-redis-db-lease:{number}"
            if client.set(key, str(os.getpid()), nx=True, ex=LEASE_SECONDS):
                _lease = (key, str(os.getpid()))
                return number
    finally:
        client.close()
    raise pytest.UsageError("every test Redis database (1-15) is leased by another test run")


def _release_redis_db() -> None:
    global _lease
    if _lease is None or _services is None:
        return
    import redis

    client = redis.Redis.from_url(f"{_services.redis_url}/0")
    key, owner = _lease
    if client.get(key) == owner.encode():
        client.delete(key)
    client.close()
    _lease = None


def pytest_unconfigure() -> None:
    global _services
    if _services is None:
        return
    _release_redis_db()
    from worker.db import dispose_engines

    dispose_engines(close=True)
    if _test_db_url and not os.environ.get("AI_KEEP_TEST_DB"):
        admin = create_engine(_services.postgres_url, poolclass=pool.NullPool,
                              isolation_level="AUTOCOMMIT")
        name = make_url(_test_db_url).database
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    _services.close()
    _services = None


@pytest.fixture(scope="session")
def database_url() -> str:
    """A fresh database for this run, migrated to head."""
    assert _services is not None
    assert _test_db_url is not None
    admin = create_engine(_services.postgres_url, poolclass=pool.NullPool,
                          isolation_level="AUTOCOMMIT")
    name = make_url(_test_db_url).database
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    from worker import migrate

    migrate.upgrade(_test_db_url)
    return _test_db_url


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    """The server (maintenance database) URL, for tests that create databases of their own."""
    assert _services is not None
    return _services.postgres_url


@pytest.fixture(scope="session")
def engine(database_url: str) -> Engine:
    from worker.db import get_engine

    return get_engine(database_url)


def truncate_all(engine: Engine) -> None:
    import worker.models  # noqa: F401

    names = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture
def clean_db(engine: Engine) -> Iterator[Engine]:
    """For tests whose code (or whose subprocesses) commit: every table is emptied afterwards."""
    truncate_all(engine)
    yield engine
    truncate_all(engine)


@pytest.fixture(scope="session")
def redis_url() -> str:
    return os.environ["AI_REDIS_URL"]


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[object]:
    """A real Redis connection on the test database, flushed before and after the test."""
    import redis

    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture(scope="session")
def admin_key() -> str:
    return ADMIN_KEY
