from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import reminders.models  # noqa: F401  (registers the tables)
from reminders import db as database
from reminders.settings import Settings

pytestmark = pytest.mark.both_databases


def test_migrations_create_exactly_the_models_schema(engine: sa.Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, SQLModel.metadata) == []


def test_migrating_twice_is_harmless(settings: Settings, engine: sa.Engine) -> None:
    database.migrate(settings.database_url)
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
