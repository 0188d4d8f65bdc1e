"""The TEXT-columns migration keeps the rows stored before it, and then takes what Zoom sends."""

from __future__ import annotations

import uuid

from sqlalchemy import create_engine, pool, text

from worker import migrate

BEFORE = "d1c3db4f1215"
REVISION = "c22d094d8e7b"


def test_rows_survive_the_widening_and_long_identifiers_fit_after(scratch_db: str) -> None:
    migrate.upgrade(scratch_db, BEFORE)
    engine = create_engine(scratch_db, poolclass=pool.NullPool)
    tenant, source = uuid.uuid4(), uuid.uuid4()
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO tenant (id, name, created_at) "
                              "VALUES (:t, 'acme', now())"), {"t": tenant})
            conn.execute(text(
                "INSERT INTO source (id, tenant_id, name, description, owner, authoritative, "
                "grant_type, credentials_ciphertext, credentials_version, status, status_message,"
                " plan, aggregation_enabled, activity_enabled, correlation_config, "
                "aggregation_cron, activity_cron, timezone, created_at, updated_at) VALUES "
                "(:s, :t, 'zoom', '', '', true, 'account_credentials', '', 1, 'active', '', "
                "'pro', true, true, '{}', '', '', 'UTC', now(), now())"),
                {"s": source, "t": tenant})
            conn.execute(text(
                "INSERT INTO zoom_user (tenant_id, source_id, zoom_id, email, first_name, "
                "last_name, display_name, status, group_ids, custom_attributes, content_hash, "
                "first_seen_at, last_seen_at) VALUES (:t, :s, 'u-old', 'old@x.io', 'Old', "
                "'User', 'Old User', 'active', '[]', '[]', 'h', now(), now())"),
                {"s": source, "t": tenant})
            conn.execute(text(
                "INSERT INTO meeting (tenant_id, source_id, uuid, meeting_id, host_zoom_id, "
                "host_email, topic, participants_status) VALUES (:t, :s, 'abc//d==', '123', "
                "'u-old', 'old@x.io', 'Standup', 'fetched')"), {"s": source, "t": tenant})

        migrate.upgrade(scratch_db)
        assert migrate.current(scratch_db) == migrate.head()
        long_uuid = "/" + "Ab+/=" * 40  # 201 characters: cut at 128 before
        with engine.begin() as conn:
            users = conn.execute(text("SELECT zoom_id, email, display_name FROM zoom_user")).all()
            assert users == [("u-old", "old@x.io", "Old User")]
            assert conn.execute(text("SELECT uuid, topic FROM meeting")).all() == [
                ("abc//d==", "Standup")]
            conn.execute(text(
                "INSERT INTO meeting (tenant_id, source_id, uuid, meeting_id, host_zoom_id, "
                "host_email, topic, participants_status) VALUES (:t, :s, :u, '1', :h, '', '',"
                " 'pending')"), {"s": source, "t": tenant, "u": long_uuid, "h": "h" * 300})
            stored = conn.execute(text("SELECT uuid FROM meeting WHERE meeting_id = '1'")).scalar()
            assert stored == long_uuid
            types = dict(conn.execute(text(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_name = 'zoom_user'")).all())
            assert types["zoom_id"] == types["employee_unique_id"] == "text"
            # Our own fixed-size keys stay as they were.
            assert types["content_hash"] == "character varying"
    finally:
        engine.dispose()
