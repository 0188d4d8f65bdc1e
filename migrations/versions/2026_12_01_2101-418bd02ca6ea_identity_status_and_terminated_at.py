"""identity status and terminated_at

What the identity system says of a person: leavers (inactive, terminated, or terminated_at
passed) who still hold an active Zoom account are an access-review finding. Existing rows
are "active" (the server default) with no termination date.

Revision ID: 418bd02ca6ea
Revises: 5e1a7c0b9d42
Create Date: 2026-12-01 21:01:51.749246+00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '418bd02ca6ea'
down_revision: str | None = '5e1a7c0b9d42'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('identity', sa.Column('status', sa.String(length=16), server_default=sa.text("'active'"), nullable=False))
    op.add_column('identity', sa.Column('terminated_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column('identity', 'terminated_at')
    op.drop_column('identity', 'status')
