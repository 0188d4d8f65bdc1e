"""The fallback `make test` uses on a machine where Postgres and Redis are installed but stopped:
throwaway servers from the installed binaries, removed afterwards."""

import redis
from sqlalchemy import create_engine, pool, text

from tests.services import Services, _answers, _throwaway_postgres, _throwaway_redis


def test_throwaway_postgres_and_redis_start_answer_and_are_removed() -> None:
    services = Services(postgres_url="", redis_url="")
    try:
        pg_url = _throwaway_postgres(services)
        redis_url = _throwaway_redis(services)
        engine = create_engine(pg_url, poolclass=pool.NullPool)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
        engine.dispose()
        client = redis.Redis.from_url(redis_url)
        assert client.ping()
        client.close()
    finally:
        services.close()
    pg_port = int(pg_url.rsplit(":", 1)[1].split("/")[0])
    redis_port = int(redis_url.rsplit(":", 1)[1])
    assert not _answers("127.0.0.1", pg_port)
    assert not _answers("127.0.0.1", redis_port)
