"""What routes depend on: the runtime, a transaction, the calling clinic, the time."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session

from reminders.db import session_scope
from reminders.models import Clinic, utcnow
from reminders.runtime import Runtime
from reminders.services.clinics import clinic_for_api_key


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


class Transactions:
    """Opens units of work for a route; after a commit, wakes the dispatcher so new
    deliveries leave at once."""

    def __init__(self, request: Request) -> None:
        self.runtime: Runtime = request.app.state.runtime
        self.wake = getattr(request.app.state, "wake", None)

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A unit of work that writes nothing."""
        with session_scope(self.runtime.engine) as db:
            yield db

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A unit of work that may queue deliveries: the dispatcher looks once it commits."""
        with session_scope(self.runtime.engine) as db:
            yield db
        if self.wake is not None:
            self.wake()


TransactionsDep = Annotated[Transactions, Depends(Transactions)]
_bearer = HTTPBearer(auto_error=False, description="The clinic's API key.")


def current_clinic(
    rt: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Clinic:
    """Return the clinic whose API key the request carries; 401 otherwise."""
    clinic = None
    if credentials is not None and credentials.scheme.lower() == "bearer":
        with session_scope(rt.engine) as db:
            clinic = clinic_for_api_key(db, credentials.credentials)
    if clinic is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "a valid clinic API key is required (Authorization: Bearer <key>)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return clinic


ClinicDep = Annotated[Clinic, Depends(current_clinic)]


def current_time() -> datetime:
    return utcnow()


NowDep = Annotated[datetime, Depends(current_time)]
