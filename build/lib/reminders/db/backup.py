"""SQLite's online backup: a consistent copy while the service writes, and restore."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from reminders.db.engine import SQLITE_BUSY_TIMEOUT_MS
from reminders.db.schema import alembic_config

Progress = Callable[[int, int], None]


def sqlite_file(url: str) -> Path:
    """Return the file of an SQLite database URL; raise ValueError for any other."""
    path = sa.engine.make_url(url).database
    if not url.startswith("sqlite") or not path or path == ":memory:":
        raise ValueError("only an SQLite database file can be copied this way")
    return Path(path)


def _open_existing(path: Path) -> sqlite3.Connection:
    # Opened read-write (SQLite's backup reads through the WAL) but never created.
    return sqlite3.connect(
        f"{path.resolve().as_uri()}?mode=rw", uri=True, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000
    )


def _copy(source: sqlite3.Connection, target: Path, progress: Progress | None) -> None:
    """Copy with SQLite's online backup into `target`, in steps: writers wait only for
    a step."""

    def step(_status: int, remaining: int, total: int) -> None:
        if progress is not None:
            progress(total - remaining, total)

    with contextlib.closing(sqlite3.connect(target)) as copy:
        source.backup(copy, pages=1024, progress=step)


def backup_sqlite(url: str, target: Path, progress: Progress | None = None) -> int:
    """Copy the SQLite database at `url` to the new file `target` with SQLite's online
    backup, a consistent copy while the service keeps writing; return its size in bytes.
    `progress(pages_copied, pages)` is called after each step.

    Raises ValueError for a database that is not an SQLite file, FileNotFoundError if
    there is none yet, FileExistsError if `target` exists (a backup never overwrites
    one); a copy that fails half-way is removed."""
    path = sqlite_file(url)
    if not path.is_file():
        raise FileNotFoundError(path)
    if not target.parent.is_dir():
        raise NotADirectoryError(f"no folder {target.parent} to copy into")
    with contextlib.closing(_open_existing(path)) as source:
        descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(descriptor)
        try:
            _copy(source, target, progress)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
    return target.stat().st_size


def erased_patients(path: Path) -> list[tuple[str, str | None, str]]:
    """Return the patients erased in the SQLite database file `path`: (id, by whom,
    when), read without changing the file."""
    uri = f"{path.resolve().as_uri()}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
        query = "SELECT id, erased_by, erased_at FROM patient WHERE erased_at IS NOT NULL"
        try:
            return [(str(i), by, str(at)) for i, by, at in db.execute(query)]
        except sqlite3.OperationalError:  # a schema from before erasure existed
            return []


def check_backup(backup: Path) -> str:
    """Return the schema revision of a backup file; raise ValueError saying what is
    wrong with it (not SQLite, damaged, not a reminders database, or from a newer
    version than this code)."""
    from alembic.script import ScriptDirectory

    if not backup.is_file():
        raise ValueError(f"{backup} is not a file")
    try:
        with contextlib.closing(_open_existing(backup)) as copy:
            (verdict,) = copy.execute("PRAGMA quick_check").fetchone()
            rows = copy.execute("SELECT version_num FROM alembic_version").fetchall()
    except sqlite3.DatabaseError as exc:
        raise ValueError(f"{backup} is not a reminders database: {exc}") from None
    if verdict != "ok":
        raise ValueError(f"{backup} is damaged: {verdict}")
    if len(rows) != 1:
        raise ValueError(f"{backup} has no schema revision")
    revision = str(rows[0][0])
    scripts = ScriptDirectory.from_config(alembic_config("sqlite://"))
    if revision not in {s.revision for s in scripts.walk_revisions()}:
        raise ValueError(f"{backup} is at schema revision {revision}, unknown to this version")
    return revision


def restore_sqlite(url: str, backup: Path, progress: Progress | None = None) -> Path | None:
    """Make the database at `url` a copy of `backup` (check it with `check_backup`
    first), after saving the current database beside it; return where it was saved (None
    when there was none). Run `migrate` after it, with the service stopped throughout."""
    path = sqlite_file(url)
    saved = None
    if path.is_file():
        saved = path.with_name(f"{path.name}.before-restore-{datetime.now(UTC):%Y%m%dT%H%M%SZ}")
        backup_sqlite(url, saved)
    with contextlib.closing(_open_existing(backup)) as source:
        # Through SQLite, not a file copy: the database's own -wal and -shm stay right.
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.touch(mode=0o600, exist_ok=True)
        _copy(source, path, progress)
    return saved
