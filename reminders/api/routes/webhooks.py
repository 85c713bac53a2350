"""Webhook endpoints and the delivery log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from starlette.concurrency import run_in_threadpool

from reminders.api.deps import CallerDep, ClinicDep, NowDep, RuntimeDep, TransactionsDep
from reminders.api.paging import Cursor, Limit, PageOut, page_after
from reminders.models import DeliveryPublic, WebhookEndpointCreate, WebhookEndpointPublic
from reminders.services import reading, webhooks

router = APIRouter(prefix="/v1", tags=["webhooks"])


@router.post("/webhook-endpoints", status_code=status.HTTP_201_CREATED)
async def create_endpoint(
    body: WebhookEndpointCreate,
    caller: CallerDep,
    rt: RuntimeDep,
    tx: TransactionsDep,
    now: NowDep,
) -> WebhookEndpointPublic:
    """Register a receiver. The answer holds its signing secret, shown only this once."""
    # Resolving the host can take seconds; in a thread it holds up no other request.
    await run_in_threadpool(webhooks.check_endpoint_url, rt.settings, body.url)
    async with tx.write() as db:
        endpoint = webhooks.add_endpoint(
            db, rt.settings, caller.clinic.id, body.url, now, ",".join(body.events),
            url_checked=True, actor=caller.actor(),
        )  # fmt: skip
        return WebhookEndpointPublic.of(endpoint, with_secret=True)


@router.get("/webhook-endpoints")
def list_endpoints(
    clinic: ClinicDep, tx: TransactionsDep, cursor: Cursor = None, limit: Limit = 50
) -> PageOut[WebhookEndpointPublic]:
    """The clinic's receivers (without secrets)."""
    with tx.read() as db:
        items = [WebhookEndpointPublic.of(e) for e in reading.list_endpoints(db, clinic.id)]
    return page_after(items, cursor, limit)


@router.delete("/webhook-endpoints/{endpoint_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_endpoint(
    endpoint_id: str, caller: CallerDep, tx: TransactionsDep, now: NowDep
) -> Response:
    """Remove a receiver; what was still waiting to go to it is cancelled."""
    async with tx.write() as db:
        webhooks.delete_endpoint(db, caller.clinic.id, endpoint_id, now, actor=caller.actor())
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/webhook-endpoints/{endpoint_id}/rotate-secret")
async def rotate_secret(
    endpoint_id: str, caller: CallerDep, tx: TransactionsDep, now: NowDep
) -> WebhookEndpointPublic:
    """A new secret (shown once); the old one also signs for 24 hours."""
    async with tx.write() as db:
        endpoint = webhooks.rotate_secret(
            db, caller.clinic.id, endpoint_id, now, actor=caller.actor()
        )
        return WebhookEndpointPublic.of(endpoint, with_secret=True)


@router.get("/deliveries", tags=["deliveries"])
def list_deliveries(
    clinic: ClinicDep,
    tx: TransactionsDep,
    state: Annotated[str | None, Query(max_length=16)] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> PageOut[DeliveryPublic]:
    """What was sent, failed, given up or expired, and why; newest first."""
    with tx.read() as db:
        page = reading.list_deliveries(db, clinic.id, state, cursor, limit)
        return PageOut(
            items=[DeliveryPublic.model_validate(d, from_attributes=True) for d in page.items],
            next_cursor=page.next_cursor,
        )


@router.get("/deliveries/{delivery_id}", tags=["deliveries"])
def get_delivery(delivery_id: str, clinic: ClinicDep, tx: TransactionsDep) -> DeliveryPublic:
    """One delivery and what became of it."""
    with tx.read() as db:
        delivery = reading.get_delivery(db, clinic.id, delivery_id)
        return DeliveryPublic.model_validate(delivery, from_attributes=True)
