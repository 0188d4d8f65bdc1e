"""Migrations are the only way the schema changes: they must match the models and run both ways."""


import pytest
from alembic import command
from alembic.util.exc import CommandError
from sqlalchemy import create_engine, inspect, pool, text
from sqlmodel import SQLModel

from worker import migrate


def _tables(url: str) -> set[str]:
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_to_head_and_downgrade_to_base_on_postgres(scratch_db: str) -> None:
    import worker.models  # noqa: F401

    migrate.upgrade(scratch_db)
    assert _tables(scratch_db) == set(SQLModel.metadata.tables)
    assert migrate.current(scratch_db) == migrate.head()
    migrate.downgrade(scratch_db, "base")
    assert _tables(scratch_db) == set()
    migrate.upgrade(scratch_db)  # and back up again: downgrade left nothing behind
    assert migrate.current(scratch_db) == migrate.head()


def test_models_and_migrations_agree_on_postgres(database_url: str) -> None:
    try:
        command.check(migrate.alembic_config(database_url))
    except CommandError as exc:  # pragma: no cover - the message is the diff
        pytest.fail(f"models differ from migrations: {exc}")


def test_sqlite_upgrades_and_agrees_with_models(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'demo.sqlite3'}"
    migrate.upgrade(url)
    import worker.models  # noqa: F401

    assert _tables(url) == set(SQLModel.metadata.tables)
    command.check(migrate.alembic_config(url))


def test_table_storage_options_of_the_models_are_migrated(database_url: str) -> None:
    # Autogenerate (and so `command.check` above) does not compare storage options: the
    # fillfactor the directory tables keep for their updates is checked here.
    import worker.models  # noqa: F401

    wanted = {name: table.dialect_options["postgresql"]["with"]
              for name, table in SQLModel.metadata.tables.items()
              if table.dialect_options["postgresql"]["with"]}
    assert "zoom_user" in wanted
    engine = create_engine(database_url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            stored = dict(conn.execute(text(
                "SELECT relname, reloptions FROM pg_class WHERE relkind = 'r' "
                "AND relnamespace = 'public'::regnamespace")).all())
    finally:
        engine.dispose()
    for name, options in wanted.items():
        assert sorted(stored[name] or []) == sorted(f"{k}={v}" for k, v in options.items()), name
    assert not {n for n, o in stored.items() if o and n not in wanted}
