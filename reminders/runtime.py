"""What a running process holds: settings, the database engine and the protocols."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from reminders.db import create_db_engine
from reminders.protocols import Protocol, load_protocols
from reminders.settings import Settings


@dataclass(frozen=True)
class Runtime:
    """Built once at start-up from settings and passed to whatever needs it."""

    settings: Settings
    engine: sa.Engine
    protocols: dict[str, Protocol]

    @classmethod
    def from_settings(cls, settings: Settings) -> Runtime:
        """Return a runtime; raises ProtocolError if a protocol file is bad."""
        protocols = load_protocols(settings.protocols_path)
        return cls(settings, create_db_engine(settings.database_url), protocols)

    def close(self) -> None:
        """Release database connections."""
        self.engine.dispose()
