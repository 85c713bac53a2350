"""What a running process holds: settings, the database engine and the protocols."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from reminders.db.engine import create_db_engine
from reminders.i18n import check_catalogs
from reminders.protocols import Protocol, load_protocols
from reminders.settings import Settings


def wall_clock() -> datetime:
    """Return the current instant as an aware UTC datetime: the runtime's clock unless
    a test or a simulation hands it another."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class Runtime:
    """Built once at start-up from settings and passed to whatever needs it.

    `clock` is the one source of "now" for business decisions and row stamps. Only the
    edges read it (each CLI command, the API's `now` dependency, the scheduler's jobs, the
    dispatcher, `simulate`), once per unit of work, and pass `now` down; nothing below
    them reads a clock of its own (`tests/test_clock.py` keeps it so).
    """

    settings: Settings
    engine: sa.Engine
    protocols: dict[str, Protocol]
    secret_key: bytes
    clock: Callable[[], datetime] = wall_clock
    # Filled on first use (`services.protocol_versions`): the version number of each
    # installed protocol file, and older versions read back, by (protocol id, version).
    protocol_versions: dict[str, int] = field(default_factory=dict)
    stored_protocols: dict[tuple[str, int], Protocol] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> Runtime:
        """Return a runtime; raises ProtocolError if a protocol file is bad, RuntimeError
        if a shipped language's catalog is missing."""
        check_catalogs()
        protocols = load_protocols(settings.protocols_path)
        engine = create_db_engine(settings.database_url)
        return cls(settings, engine, protocols, _secret_key(settings))

    def with_clock(self, clock: Callable[[], datetime]) -> Runtime:
        """Return this runtime (same engine and protocols) reading time from `clock`."""
        return replace(self, clock=clock)

    def close(self) -> None:
        """Release database connections."""
        self.engine.dispose()


def _secret_key(settings: Settings) -> bytes:
    """Return the key link tokens are derived from: the setting, or a random key kept in
    var/secret_key (made on first use, readable only by its owner)."""
    if settings.secret_key:
        return settings.secret_key.encode()
    path = Path(settings.var_dir) / "secret_key"
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first
        else:
            with os.fdopen(descriptor, "w") as handle:
                handle.write(secrets.token_hex(32))
    return path.read_text().strip().encode()
