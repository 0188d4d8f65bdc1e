"""source insights_ready_at: when a source's insights first had their inputs for the window

Revision ID: 5bdbfb6d13cf
Revises: 9846506d740f
Create Date: 2026-12-01 21:37:50.106909+00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '5bdbfb6d13cf'
down_revision: str | None = '9846506d740f'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('source', sa.Column('insights_ready_at', sa.DateTime(timezone=True),
                                      nullable=True))


def downgrade() -> None:
    op.drop_column('source', 'insights_ready_at')
