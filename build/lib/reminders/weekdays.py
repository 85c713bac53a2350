"""Weekday names as patients, clinics and protocols give them ("mon" … "sun"), stored as
one comma-separated text ("mon,wed,fri", in week order). Pure."""

from __future__ import annotations

from collections.abc import Iterable

from reminders.errors import InvalidInput

WEEKDAY_NAMES: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def parse_weekdays(names: Iterable[str], field: str) -> frozenset[int]:
    """Return the weekdays named (0 = Monday); raise InvalidInput naming `field` for an
    unknown name or none at all."""
    given = [name.strip().lower() for name in names if name.strip()]
    unknown = [name for name in given if name not in WEEKDAY_NAMES]
    if unknown:
        raise InvalidInput(field, f"unknown weekday(s): {', '.join(unknown)} (use mon … sun)")
    if not given:
        raise InvalidInput(field, "at least one weekday must be allowed")
    return frozenset(WEEKDAY_NAMES.index(name) for name in given)


def stored_weekdays(days: frozenset[int]) -> str:
    """Return the weekdays as stored: 'mon,wed,fri', in week order."""
    return ",".join(name for i, name in enumerate(WEEKDAY_NAMES) if i in days)


def weekdays_of(stored: str) -> frozenset[int]:
    """Return the weekdays of a stored text."""
    return frozenset(WEEKDAY_NAMES.index(name) for name in stored.split(",") if name)


def weekday_names(stored: str) -> list[str]:
    """Return the names in a stored text, in week order."""
    return [name for name in stored.split(",") if name]


def weekday_name(day: int) -> str:
    """Return the name of a weekday (0 = Monday)."""
    return WEEKDAY_NAMES[day]
