"""Indexes on finished_at of sync_run and connection_test, for the metrics scrape: `ai_runs` and
`ai_connection_tests` count the unfinished rows and those that finished recently
(worker.kit.metrics), read through these indexes instead of grouping the whole history.

Revision ID: c2094f2ca4c3
Revises: 559c0ad7ed81
Create Date: 2026-12-02 00:52:08.859003+00:00
"""
from collections.abc import Sequence

from alembic import op

revision: str = 'c2094f2ca4c3'
down_revision: str | None = '559c0ad7ed81'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index('ix_connection_test_finished_at', 'connection_test', ['finished_at'],
                    unique=False)
    op.create_index('ix_sync_run_finished_at', 'sync_run', ['finished_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_sync_run_finished_at', table_name='sync_run')
    op.drop_index('ix_connection_test_finished_at', table_name='connection_test')
