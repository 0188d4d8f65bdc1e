"""zoom_role privileges and admin_privileges: a role's privileges from GET /roles/{roleId}, and
whether they make it an admin role (the findings read the flag instead of guessing by name)

Revision ID: 559c0ad7ed81
Revises: c22d094d8e7b
Create Date: 2026-12-02 00:45:39.796702+00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '559c0ad7ed81'
down_revision: str | None = 'c22d094d8e7b'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('zoom_role', sa.Column('privileges', sa.JSON(), nullable=True))
    # Stored roles have no privileges known yet: not admin until the next aggregation reads them
    # (the built-in Owner and Admin roles are privileged by id regardless).
    op.add_column('zoom_role', sa.Column('admin_privileges', sa.Boolean(), nullable=False,
                                         server_default=sa.false()))


def downgrade() -> None:
    op.drop_column('zoom_role', 'admin_privileges')
    op.drop_column('zoom_role', 'privileges')
