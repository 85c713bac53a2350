"""The bulk import's writer: a process that runs prepared INSERTs while the importer
prepares the next ones."""

from __future__ import annotations

import gc
import multiprocessing
import pickle
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager

import sqlalchemy as sa

from reminders.db.engine import create_db_engine, session_scope
from reminders.db.rows import PreparedInsert, run_insert


class InsertWriter:
    """A process of its own that runs batches of prepared inserts in the order sent,
    each batch in one transaction, while the caller prepares the next ones.

    A process, not a thread: SQLite releases the GIL only while it steps, and a writer
    thread takes it back for every row, so the two would barely overlap. Once a batch
    fails, the writer refuses every batch after it, so what is written is always the
    batches sent before the failure. Use it as a context manager; leaving waits for the
    batches sent.
    """

    def __init__(self, database_url: str) -> None:
        self._pool = ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_writer,
            initargs=(database_url,),
        )
        # A fresh interpreter takes a while to import; start it now.
        self._pool.submit(int)

    def submit(self, inserts: list[PreparedInsert]) -> Future[None]:
        """Send a batch; the future raises what writing it raised."""
        # Pickled here, so that the writer unpickles with the collector paused.
        return self._pool.submit(_write_batch, pickle.dumps(inserts, pickle.HIGHEST_PROTOCOL))

    def close(self) -> None:
        """Wait for the batches sent, then stop the writer."""
        self._pool.shutdown(wait=True)

    def __enter__(self) -> InsertWriter:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class EarlierBatchFailed(Exception):
    """A batch not written because one sent before it failed."""


# The writer process's own engine, made when it starts, and whether a batch failed.
_writer_engine: sa.Engine | None = None
_writer_failed = False


def _start_writer(database_url: str) -> None:
    global _writer_engine
    _writer_engine = create_db_engine(database_url)


def _write_batch(pickled: bytes) -> None:
    global _writer_failed
    assert _writer_engine is not None, "runs in a process started by _start_writer"
    if _writer_failed:
        raise EarlierBatchFailed("not written: a batch sent before it failed")
    try:
        with collector_paused(), session_scope(_writer_engine) as db:
            for insert in pickle.loads(pickled):
                run_insert(db, insert)
    except BaseException:
        _writer_failed = True
        raise


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a bulk import runs.

    A batch makes hundreds of thousands of tuples and dicts that reference counting
    frees; the collector would scan them over and over while they live. It runs again
    after.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
