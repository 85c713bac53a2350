"""The one shape of every list the API answers: `{"items": [...], "next_cursor": ...}`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel

from reminders.errors import InvalidInput
from reminders.services.reading import MAX_PAGE

T = TypeVar("T")


class PageOut(BaseModel, Generic[T]):
    """A page of a list; pass `next_cursor` as `cursor` for the next (null at the end)."""

    items: list[T]
    next_cursor: str | None


Cursor = Annotated[
    str | None,
    Query(max_length=64, pattern=r"^[0-9A-Za-z_.:\-]+$", description="From the previous page."),
]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="Items per page.")]


def _id(item: Any) -> str:
    return str(item.id)


def page_after(
    items: Sequence[T], cursor: str | None, limit: int, key: Callable[[T], str] = _id
) -> PageOut[T]:
    """Return the page of `items` (already in order, and short: a patient's absences, a
    clinic's keys) after the item whose key is `cursor`."""
    start = 0
    if cursor is not None:
        keys = [key(item) for item in items]
        if cursor not in keys:
            raise InvalidInput("cursor", "not a cursor this list gave out, or its item is gone")
        start = keys.index(cursor) + 1
    page = list(items[start : start + limit])
    more = start + limit < len(items)
    return PageOut(items=page, next_cursor=key(page[-1]) if more and page else None)
