"""Schema migrations (alembic, with no alembic.ini) and the check that a database has
the schema this code needs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from reminders.db.engine import create_db_engine

# alembic is imported where migrations run: it takes a seventh of a second to import, and
# every process imports this package (a bulk import's writer process is waited for).
if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"


def alembic_config(url: str) -> Config:
    """Return an alembic configuration for `url`, with no alembic.ini needed."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["database_url"] = url
    return config


def migrate(url: str, revision: str = "head") -> tuple[str | None, str | None]:
    """Bring the database at `url` to the newest schema, or to `revision`; return its
    revision before and after (None: no schema). Safe to run again."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    engine = create_db_engine(url)
    sqlite = engine.dialect.name == "sqlite"
    try:
        with engine.connect() as connection:
            if sqlite:
                # Migrations rebuild SQLite tables (copy, drop, rename): with foreign keys
                # on, dropping a table others refer to fails. They are checked after.
                connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
                connection.commit()
            with connection.begin():
                before = MigrationContext.configure(connection).get_current_revision()
                config = alembic_config(url)
                config.attributes["connection"] = connection
                command.upgrade(config, revision)
                after = MigrationContext.configure(connection).get_current_revision()
                broken = (
                    connection.exec_driver_sql("PRAGMA foreign_key_check").all() if sqlite else []
                )
                if broken:
                    raise RuntimeError(f"the migration left {len(broken)} broken reference(s)")
    finally:
        engine.dispose()
    return before, after


def schema_mismatch(engine: sa.Engine) -> str | None:
    """Return why the database behind `engine` does not have the schema this code needs
    (never migrated, or at another revision), or None when it has."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    config = alembic_config(engine.url.render_as_string(hide_password=False))
    heads = set(ScriptDirectory.from_config(config).get_heads())
    with engine.connect() as connection:
        current = set(MigrationContext.configure(connection).get_current_heads())
    if current == heads:
        return None
    if not current:
        return "the database has no schema yet: run `reminders migrate`"
    return (
        f"the database is at schema revision {', '.join(sorted(current))}, this version "
        f"needs {', '.join(sorted(heads))}: run `reminders migrate`"
    )
