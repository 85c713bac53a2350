"""What routes depend on: the runtime, a transaction, the calling clinic, the time."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime
from typing import Annotated
from urllib.parse import parse_qs

import sqlalchemy as sa
from fastapi import Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session

from reminders.db.engine import WriteTurns, cannot_write, session_scope
from reminders.ids import hash_secret
from reminders.models import Clinic
from reminders.runtime import Runtime
from reminders.services import api_keys
from reminders.services.api_keys import Caller


# Dependencies that do no I/O are async: FastAPI runs sync ones in a worker thread,
# and those hops cost more than the work.
async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


class Transactions:
    """Opens units of work for a route; after a commit, wakes the dispatcher so new
    deliveries leave at once.

    Routes that write are `async` and run their (short) unit of work on the event loop
    thread itself, in turns (the single-writer rule, in `db.engine`). SQLite admits one
    writer at a time anyway; handing each write to a worker thread only adds GIL
    hand-offs between that thread and the loop, for every write. Routes that only read
    stay sync and run in worker threads beside the writes, unless their read is a few
    indexed queries of a bounded size (the clinic itself, a page of the adherence list):
    those are `async` too, since in worker threads requests asked at once take turns on
    the GIL, each waiting for all the others, where the loop serves them one by one."""

    def __init__(self, request: Request) -> None:
        self.runtime: Runtime = request.app.state.runtime
        self.wake = getattr(request.app.state, "wake", None)
        self.turns: WriteTurns = request.app.state.write_turns

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A unit of work that writes nothing."""
        with session_scope(self.runtime.engine, write=False) as db:
            yield db

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Session]:
        """A unit of work that may queue deliveries, in its turn: the dispatcher looks
        once it commits."""
        async with self.turns:
            with session_scope(self.runtime.engine) as db:
                yield db
        if self.wake is not None:
            self.wake()


async def transactions(request: Request) -> Transactions:
    return Transactions(request)


TransactionsDep = Annotated[Transactions, Depends(transactions)]
_bearer = HTTPBearer(auto_error=False, description="One of the clinic's API keys.")


class ApiKeys:
    """Finds who holds an API key, remembering answers for at most
    `api_keys.CHECK_EVERY_S`: every request is authenticated, and the lookup would
    otherwise be a query each time; a revoked key stops working once that has passed."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._known: dict[str, tuple[float, Caller]] = {}

    async def caller(self, secret: str) -> Caller | None:
        digest = hash_secret(secret)
        cached = self._known.get(digest)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        caller = await run_in_threadpool(self._lookup, secret)
        if caller is None:
            self._known.pop(digest, None)
        else:
            self._known[digest] = (time.monotonic() + api_keys.CHECK_EVERY_S, caller)
        return caller

    def _lookup(self, secret: str) -> Caller | None:
        with session_scope(self.runtime.engine, write=False) as db:
            caller = api_keys.caller_for_key(db, secret)
        now = self.runtime.clock()
        if caller is not None and api_keys.note_use_due(caller, now):
            try:
                with session_scope(self.runtime.engine) as db:
                    api_keys.note_use(db, caller, now)
            except sa.exc.DBAPIError as exc:
                # Reads still work on a database that takes no writes.
                if not cannot_write(exc):
                    raise
        return caller


async def current_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """Return who holds the API key the request carries; 401 otherwise. A key in the
    query string is refused (400): URLs end up in logs and browser histories."""
    if any(value.startswith(api_keys.PREFIX) for value in request.query_params.values()):
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            "an API key goes in the Authorization header, never in the URL;"
            " revoke this key and use a new one",
        )
    caller = None
    if credentials is not None and credentials.scheme.lower() == "bearer":
        keys: ApiKeys = request.app.state.api_keys
        caller = await keys.caller(credentials.credentials)
    if caller is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "a valid clinic API key is required (Authorization: Bearer <key>)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return caller


CallerDep = Annotated[Caller, Depends(current_caller)]


async def current_clinic(caller: CallerDep) -> Clinic:
    """Return the calling clinic."""
    return caller.clinic


ClinicDep = Annotated[Clinic, Depends(current_clinic)]


async def current_time(rt: RuntimeDep) -> datetime:
    """The request's "now", read once from the runtime's clock."""
    return rt.clock()


NowDep = Annotated[datetime, Depends(current_time)]


async def form_fields(request: Request) -> dict[str, str]:
    """The posted form (application/x-www-form-urlencoded), first value of each field."""
    body = (await request.body()).decode("utf-8", errors="replace")
    return {key: values[0] for key, values in parse_qs(body).items()}


FormDep = Annotated[dict[str, str], Depends(form_fields)]
