"""The clinic's API keys: create one per integration, revoke one that leaked."""

from __future__ import annotations

from fastapi import APIRouter, status

from reminders.api.deps import ClinicDep, NowDep, TransactionsDep
from reminders.api.paging import Cursor, Limit, PageOut, page_after
from reminders.models import ApiKeyCreate, ApiKeyCreated, ApiKeyPublic
from reminders.services import api_keys

router = APIRouter(prefix="/v1", tags=["api keys"])


@router.get("/api-keys")
def list_keys(
    clinic: ClinicDep, tx: TransactionsDep, cursor: Cursor = None, limit: Limit = 50
) -> PageOut[ApiKeyPublic]:
    """The clinic's keys, revoked ones included, oldest first."""
    with tx.read() as db:
        keys = [ApiKeyPublic.of(k) for k in api_keys.list_keys(db, clinic.id)]
    return page_after(keys, cursor, limit)


@router.post("/api-keys", status_code=status.HTTP_201_CREATED)
async def create_key(
    body: ApiKeyCreate, clinic: ClinicDep, tx: TransactionsDep, now: NowDep
) -> ApiKeyCreated:
    """A new key. The answer holds the key itself, shown only this once."""
    async with tx.write() as db:
        key, secret = api_keys.create_key(db, clinic.id, body.name, now)
        return ApiKeyCreated(**ApiKeyPublic.of(key).model_dump(), key=secret)


@router.delete("/api-keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_key(key_id: str, clinic: ClinicDep, tx: TransactionsDep, now: NowDep) -> None:
    """Revoke a key: within a second no process accepts it. 409 for the clinic's last
    key in use."""
    async with tx.write() as db:
        api_keys.revoke_key(db, clinic.id, key_id, now)
