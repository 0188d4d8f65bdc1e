"""Zoom identifiers and free text as TEXT: Zoom's OpenAPI document sets no maximum length on
them (a 100-character user id, a 300-character employee_unique_id or a meeting UUID over 128
characters are valid), and the old VARCHAR limits failed whole runs or cut meeting UUIDs.

Widening VARCHAR(n) to TEXT on Postgres rewrites no row and keeps every index. The downgrade
narrows back and fails, rather than truncating identifiers, where longer values were stored.

Revision ID: c22d094d8e7b
Revises: 5bdbfb6d13cf
Create Date: 2026-12-01 21:04:32.564428+00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'c22d094d8e7b'
down_revision: str | None = '5bdbfb6d13cf'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, column, former VARCHAR length, nullable)
COLUMNS: list[tuple[str, str, int, bool]] = [
    ('account_correlation', 'user_zoom_id', 64, False),
    ('activity_event', 'email', 320, False),
    ('activity_event', 'type', 32, False),
    ('activity_event', 'ip_address', 64, True),
    ('activity_event', 'client_type', 64, True),
    ('activity_event', 'version', 100, True),
    ('host_usage', 'user_zoom_id', 64, False),
    ('host_usage', 'email', 320, False),
    ('host_usage', 'last_client_version', 100, True),
    ('meeting', 'uuid', 128, False),
    ('meeting', 'meeting_id', 32, False),
    ('meeting', 'host_zoom_id', 64, False),
    ('meeting', 'host_email', 320, False),
    ('meeting', 'topic', 500, False),
    ('meeting_participant', 'meeting_uuid', 128, False),
    ('meeting_participant', 'participant_id', 64, True),
    ('meeting_participant', 'user_id', 64, True),
    ('meeting_participant', 'name', 400, False),
    ('meeting_participant', 'user_email', 320, False),
    ('meeting_participant', 'status', 32, True),
    ('operation_log', 'operator', 320, False),
    ('operation_log', 'category_type', 100, False),
    ('operation_log', 'action', 200, False),
    ('operation_log', 'operation_detail', 4000, False),
    ('source', 'zoom_account_id', 64, True),
    ('user_daily_summary', 'email', 320, False),
    ('zoom_group', 'zoom_id', 64, False),
    ('zoom_group', 'name', 400, False),
    ('zoom_group_member', 'group_zoom_id', 64, False),
    ('zoom_group_member', 'user_zoom_id', 64, False),
    ('zoom_group_member', 'email', 320, False),
    ('zoom_role', 'zoom_id', 64, False),
    ('zoom_role', 'name', 400, False),
    ('zoom_role', 'description', 2000, True),
    ('zoom_role_member', 'role_zoom_id', 64, False),
    ('zoom_role_member', 'user_zoom_id', 64, False),
    ('zoom_role_member', 'email', 320, False),
    ('zoom_user', 'zoom_id', 64, False),
    ('zoom_user', 'email', 320, False),
    ('zoom_user', 'first_name', 200, False),
    ('zoom_user', 'last_name', 200, False),
    ('zoom_user', 'display_name', 400, False),
    ('zoom_user', 'status', 16, False),
    ('zoom_user', 'role_id', 64, True),
    ('zoom_user', 'dept', 200, True),
    ('zoom_user', 'employee_unique_id', 200, True),
    ('zoom_user', 'timezone', 64, True),
    ('zoom_user', 'last_client_version', 100, True),
]


def _alter(widen: bool) -> None:
    # One batch per table: SQLite (the demo) rebuilds a table once for all its columns.
    for table in dict.fromkeys(t for t, *_ in COLUMNS):
        with op.batch_alter_table(table) as batch:
            for _, column, length, nullable in (c for c in COLUMNS if c[0] == table):
                old, new = sa.VARCHAR(length=length), sa.Text()
                batch.alter_column(column, existing_type=old if widen else new,
                                   type_=new if widen else old, existing_nullable=nullable)


def upgrade() -> None:
    _alter(widen=True)


def downgrade() -> None:
    _alter(widen=False)
