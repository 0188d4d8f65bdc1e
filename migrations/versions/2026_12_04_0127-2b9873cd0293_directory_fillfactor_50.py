"""Directory tables keep half of each heap page free (fillfactor 50, was 70): every aggregation
moves every seen row's `last_seen_at`, and only with room for a whole new version of each row
on its page are all of them HOT. At 70 a pull found room for about 3 rows in 7 (the updates of
a page's rows share one transaction, so none of their old versions can be pruned meanwhile):
45% of a no-change pull's updates were HOT; at 50, all of them, and the pull's Postgres CPU
halved (bench/RESULTS.md, issue 15). Size: a first pull's heap takes 1.4x the pages, but
by the third daily pull the tables are smaller than at 70 (30,000 users: 6,097 heap pages
against 6,732, 8,797 with indexes against 9,956), as non-HOT updates spread rows over new pages
and add index entries. Autogenerate does not compare table storage options, so this is written
by hand (`tests/test_migrations.py` checks them).

Postgres only (SQLite has no fillfactor). Existing pages keep their fill until rewritten: the
new setting applies to pages filled from now on (and to all after a VACUUM FULL).

Revision ID: 2b9873cd0293
Revises: 1f5e7876a956
Create Date: 2026-12-04 01:27:42.050866+00:00
"""
from collections.abc import Sequence

from alembic import op

revision: str = '2b9873cd0293'
down_revision: str | None = '1f5e7876a956'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("zoom_user", "zoom_group", "zoom_role", "zoom_group_member", "zoom_role_member")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} SET (fillfactor = 50)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} SET (fillfactor = 70)")
