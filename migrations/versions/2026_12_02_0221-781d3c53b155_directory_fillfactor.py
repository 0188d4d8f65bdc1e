"""Directory tables keep 30% of each heap page free (fillfactor 70): every aggregation moves
every seen row's `last_seen_at`, and an update with room on its own page (and no indexed column
changed) is HOT, with no new entry in any of the table's indexes (worker.models.directory).
Autogenerate does not compare table storage options, so this is written by hand.

Postgres only (SQLite has no fillfactor). Existing pages keep their fill until rewritten: the
new setting applies to pages filled from now on (and to all after a VACUUM FULL).

Revision ID: 781d3c53b155
Revises: c2094f2ca4c3
Create Date: 2026-12-02 02:21:32.229603+00:00
"""
from collections.abc import Sequence

from alembic import op

revision: str = '781d3c53b155'
down_revision: str | None = 'c2094f2ca4c3'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("zoom_user", "zoom_group", "zoom_role", "zoom_group_member", "zoom_role_member")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} SET (fillfactor = 70)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} RESET (fillfactor)")
