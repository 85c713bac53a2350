"""Alembic environment: the connection (or URL) comes from the caller's Config."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import reminders.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from reminders.db.engine import create_db_engine

config = context.config
target_metadata = SQLModel.metadata


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite cannot ALTER most things in place
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    engine = create_db_engine(config.attributes["database_url"])
    with engine.begin() as conn:
        _run(conn)
    engine.dispose()
