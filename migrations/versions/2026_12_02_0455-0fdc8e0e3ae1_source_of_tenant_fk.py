"""activity_event and user_daily_summary: one foreign key (tenant_id, source_id) -> source
(tenant_id, id) instead of one to the tenant and one to the source.

Each inserted row paid two foreign-key checks; now one, which also refuses a row whose tenant
is not its source's. A tenant's rows still go with it (tenant -> source -> rows cascade). The
single-column tenant_id indexes stay: the tenant-wide reads (insights, reports, the activity
list without a source) use them.

On Postgres the new key is added NOT VALID and then validated, so the check of the stored rows
holds no lock that blocks writes. SQLite (the demo) rebuilds the two tables and the source
table; its old keys have no name, so a naming convention names them for the drop.

Revision ID: 0fdc8e0e3ae1
Revises: 781d3c53b155
Create Date: 2026-12-02 04:55:01.149677+00:00
"""
from collections.abc import Sequence

from alembic import op

revision: str = '0fdc8e0e3ae1'
down_revision: str | None = '781d3c53b155'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("activity_event", "user_daily_summary")
# How SQLite's batch mode names the unnamed keys of the initial schema, to drop them.
_SQLITE_NAMES = {"fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"}


def _new(table: str) -> str:
    return f"fk_{table}_source_tenant"


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    with op.batch_alter_table("source") as batch:
        batch.create_unique_constraint("uq_source_tenant_id", ["tenant_id", "id"])
    for table in TABLES:
        if postgres:
            op.drop_constraint(f"{table}_source_id_fkey", table, type_="foreignkey")
            op.drop_constraint(f"{table}_tenant_id_fkey", table, type_="foreignkey")
            op.create_foreign_key(_new(table), table, "source", ["tenant_id", "source_id"],
                                  ["tenant_id", "id"], ondelete="CASCADE",
                                  postgresql_not_valid=True)
            op.execute(f"ALTER TABLE {table} VALIDATE CONSTRAINT {_new(table)}")
            continue
        with op.batch_alter_table(table, naming_convention=_SQLITE_NAMES) as batch:
            batch.drop_constraint(f"fk_{table}_source_id_source", type_="foreignkey")
            batch.drop_constraint(f"fk_{table}_tenant_id_tenant", type_="foreignkey")
            batch.create_foreign_key(_new(table), "source", ["tenant_id", "source_id"],
                                     ["tenant_id", "id"], ondelete="CASCADE")


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(_new(table), type_="foreignkey")
            for column, parent in (("tenant_id", "tenant"), ("source_id", "source")):
                # The names the initial schema's keys had (SQLite's: the convention above).
                name = (f"{table}_{column}_fkey" if postgres
                        else f"fk_{table}_{column}_{parent}")
                batch.create_foreign_key(name, parent, [column], ["id"], ondelete="CASCADE")
    with op.batch_alter_table("source") as batch:
        batch.drop_constraint("uq_source_tenant_id", type_="unique")
