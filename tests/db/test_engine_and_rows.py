from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

from reminders.db.bulk import EarlierBatchFailed, InsertWriter
from reminders.db.engine import create_db_engine, session_scope
from reminders.db.rows import insert_rows, prepare_row_insert, read_columns, table_of, update_rows
from reminders.db.schema import migrate
from reminders.models import Clinic
from reminders.settings import Settings
from tests.conftest import SETUP

pytestmark = pytest.mark.both_databases


def test_migrations_create_exactly_the_models_schema(engine: sa.Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, SQLModel.metadata) == []


def test_migrating_twice_is_harmless(settings: Settings, engine: sa.Engine) -> None:
    migrate(settings.database_url)
    with engine.connect() as connection:
        version = connection.execute(sa.text("SELECT version_num FROM alembic_version")).all()
    assert len(version) == 1


def test_sqlite_runs_in_wal_with_foreign_keys_and_a_busy_timeout(engine: sa.Engine) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite pragmas; PostgreSQL has none of these")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar_one() >= 1000


def _clinic_row(clinic_id: str) -> dict[str, object]:
    return {
        "id": clinic_id,
        "name": f"Clinic {clinic_id}",
        "alert_email": None,
        "webhook_include_names": False,
        "timezone": None,
        "open_weekdays": "mon,tue,wed,thu,fri",
        "digest": "daily",
        "created_at": SETUP,
    }


def _clinic_ids(engine: sa.Engine) -> list[str]:
    with engine.connect() as connection:
        return sorted(connection.execute(sa.select(Clinic.id)).scalars())  # type: ignore[call-overload]


def test_update_rows_changes_only_the_columns_given(engine: sa.Engine) -> None:
    with session_scope(engine) as db:
        insert_rows(db, Clinic, [_clinic_row("a"), _clinic_row("b")])
    with session_scope(engine) as db:
        update_rows(db, Clinic, [{"id": "a", "alert_email": "desk@clinic.example.org"}])
    with session_scope(engine) as db:
        first, second = db.get(Clinic, "a"), db.get(Clinic, "b")
        assert first is not None and second is not None
        assert (first.name, first.alert_email) == ("Clinic a", "desk@clinic.example.org")
        assert second.alert_email == _clinic_row("b")["alert_email"]


def test_core_statements_see_rows_the_orm_added_in_the_same_unit_of_work(
    engine: sa.Engine,
) -> None:
    table = table_of(Clinic)
    with session_scope(engine) as db:
        db.add(Clinic(id="a", name="Clinic a", created_at=SETUP))
        found = read_columns(db, sa.select(table.c.name).where(table.c.id == "a")).scalar()
        assert found == "Clinic a"


def test_insert_writer_writes_batches_in_order_each_in_one_transaction(
    settings: Settings, engine: sa.Engine
) -> None:
    with InsertWriter(settings.database_url) as writer:
        sent = [
            writer.submit([prepare_row_insert(engine.dialect, Clinic, rows)])
            for rows in ([_clinic_row("a"), _clinic_row("b")], [_clinic_row("c")])
        ]
        for future in sent:
            future.result()
    assert _clinic_ids(engine) == ["a", "b", "c"]


def test_insert_writer_refuses_every_batch_after_a_failed_one(
    settings: Settings, engine: sa.Engine
) -> None:
    batches = [
        [_clinic_row("a")],
        [_clinic_row("b"), _clinic_row("a")],  # "a" again: the whole batch fails
        [_clinic_row("c")],
    ]
    with InsertWriter(settings.database_url) as writer:
        sent = [
            writer.submit([prepare_row_insert(engine.dialect, Clinic, rows)]) for rows in batches
        ]
        sent[0].result()
        with pytest.raises(sa.exc.IntegrityError):
            sent[1].result()
        with pytest.raises(EarlierBatchFailed):
            sent[2].result()
    assert _clinic_ids(engine) == ["a"]


def test_upgrading_keeps_one_clinic_key_working_and_tells_duplicate_external_ids_apart(
    empty_database_url: str,
) -> None:
    migrate(empty_database_url, "0005")
    engine = create_db_engine(empty_database_url)
    now = SETUP
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO clinic (id, name, api_key_hash, webhook_include_names,"
                " open_weekdays, created_at) VALUES ('c1', 'North', 'hash-1', false,"
                " 'mon,tue,wed,thu,fri', :now)"
            ),
            {"now": now.replace(tzinfo=None)},
        )
        for patient_id in ("p1", "p2"):
            connection.execute(
                sa.text(
                    "INSERT INTO patient (id, clinic_id, name, timezone, reminder_time,"
                    " channel, locale, external_id, created_at) VALUES (:id, 'c1', 'Ann',"
                    " 'UTC', '18:00', 'email', 'en', 'EHR-1', :now)"
                ),
                {"id": patient_id, "now": now.replace(tzinfo=None)},
            )
    migrate(empty_database_url)
    with engine.connect() as connection:
        keys = connection.execute(sa.text("SELECT clinic_id, name, key_hash FROM api_key")).all()
        external = connection.execute(
            sa.text("SELECT id, external_id FROM patient ORDER BY id")
        ).all()
    engine.dispose()
    assert [tuple(k) for k in keys] == [("c1", "first", "hash-1")]
    assert [tuple(e) for e in external] == [("p1", "EHR-1"), ("p2", "EHR-1 (duplicate p2)")]


def test_upgrading_tells_each_stored_delivery_whom_it_is_for(empty_database_url: str) -> None:
    migrate(empty_database_url, "0007")
    engine = create_db_engine(empty_database_url)
    now = SETUP.replace(tzinfo=None)
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO clinic (id, name, webhook_include_names, open_weekdays,"
                " created_at) VALUES ('c1', 'North', false, 'mon,tue,wed,thu,fri', :now)"
            ),
            {"now": now},
        )
        for kind in ("reminder", "clinic_alert", "escalation", "session.confirmed"):
            connection.execute(
                sa.text(
                    "INSERT INTO delivery (id, clinic_id, kind, channel, target, state,"
                    " due_at, next_attempt_at, attempts, payload, created_at) VALUES"
                    " (:kind, 'c1', :kind, 'email', 'c1', 'sent', :now, :now, 1, '{}', :now)"
                ),
                {"kind": kind, "now": now},
            )
    migrate(empty_database_url)
    with engine.connect() as connection:
        found = connection.execute(sa.text("SELECT kind, audience FROM delivery")).all()
    engine.dispose()
    assert dict(tuple(row) for row in found) == {
        "reminder": "patient",
        "clinic_alert": "clinic",
        "escalation": "clinic",
        "session.confirmed": "integration",
    }
