"""The one shape of every list the API answers: `{"items": [...], "next_cursor": ...}`."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel

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
    """Return the page of `items`, sorted by `key` (a string), that follows the key
    `cursor`: pages stay right when items come and go between requests. For lists a
    service reads whole anyway (a patient's absences, a clinic's API keys)."""
    keys = [key(item) for item in items]
    start = bisect.bisect_right(keys, cursor) if cursor is not None else 0
    page = list(items[start : start + limit])
    more = start + limit < len(items)
    return PageOut(items=page, next_cursor=keys[start + limit - 1] if more else None)
