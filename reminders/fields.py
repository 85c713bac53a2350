"""Text rules shared by every input: API models, CLI options and services' plain arguments.

A control character stored in a name ends up in an email header, a log line or a webhook
relayed to SMS, where it can end the line early and start another. So every single-line
field refuses them at the door (422 naming the field, the same on SQLite and PostgreSQL,
which could not even store NUL), and multi-line notes refuse all but line breaks and tabs.

Refused in single-line text: C0 controls (U+0000-U+001F, NUL included), DEL (U+007F),
the C1 controls (U+0080-U+009F, among them NEL, which Python's `splitlines` treats as a
line break) and the Unicode line and paragraph separators U+2028 and U+2029.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Annotated

import idna
from pydantic import AfterValidator, StringConstraints

from reminders.errors import InvalidInput
from reminders.locales import shipped_locale

# The characters single-line text refuses, as the body of a regex character class.
CONTROL_CHARACTERS = "\x00-\x1f\x7f-\x9f\u2028\u2029"
_NOT_SINGLE_LINE = re.compile(f"[{CONTROL_CHARACTERS}]")
# The same less tab (U+0009), line feed (U+000A) and carriage return (U+000D).
_NOT_IN_NOTE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]")
EMAIL_PATTERN = r"^[^@\s<>\",;]+@[^@\s<>\",;]+\.[^@\s<>\",;]+$"


def _refuse(found: re.Match[str] | None) -> None:
    if found is not None:
        raise ValueError(f"control character U+{ord(found.group()):04X} is not allowed")


def single_line(value: str) -> str:
    """Return `value`; raise ValueError if it holds a control or line-breaking character."""
    _refuse(_NOT_SINGLE_LINE.search(value))
    return value


def note(value: str) -> str:
    """Return `value`; raise ValueError if it holds a control character other than a line
    break (CR, LF) or a tab."""
    _refuse(_NOT_IN_NOTE.search(value))
    return value


def ascii_domain(domain: str) -> str:
    """Return the domain as DNS and SMTP servers without SMTPUTF8 take it: international
    labels IDNA-encoded (IDNA 2008 with the UTS 46 mapping, as browsers do).

    Raises ValueError (idna.IDNAError) for a domain that has no such form.
    """
    if domain.isascii():
        return domain
    return idna.encode(domain, uts46=True).decode("ascii")


def email_address(value: str) -> str:
    """Return `value`; raise ValueError unless it is one address whose domain has an
    ASCII form (so every mail server can route it)."""
    single_line(value)
    if not re.fullmatch(EMAIL_PATTERN, value):
        raise ValueError("not an email address")
    try:
        ascii_domain(value.rpartition("@")[2])
    except idna.IDNAError as exc:
        raise ValueError(f"the domain is not a valid international domain name: {exc}") from None
    return value


# The days and instants the service takes: a course's dates are this century's, and
# arithmetic on a date near year 1 or 9999 (planning, time zone offsets) would overflow.
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2099, 12, 31)


def service_day(value: date) -> date:
    """Return `value`; raise ValueError outside FIRST_DAY..LAST_DAY."""
    if not FIRST_DAY <= value <= LAST_DAY:
        raise ValueError(f"must be between {FIRST_DAY} and {LAST_DAY}")
    return value


def service_instant(value: datetime) -> datetime:
    """Return `value` in UTC; raise ValueError without a time zone offset or outside
    FIRST_DAY..LAST_DAY."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("needs a time zone offset")
    if not FIRST_DAY <= value.replace(tzinfo=None).date() <= LAST_DAY:
        raise ValueError(f"must be between {FIRST_DAY} and {LAST_DAY}")
    return value.astimezone(UTC)


Day = Annotated[date, AfterValidator(service_day)]
"""A calendar date this century (start dates, pauses, absences, closed days)."""

Instant = Annotated[datetime, AfterValidator(service_instant)]
"""A moment with its offset, this century; held in UTC."""

SingleLine = Annotated[str, AfterValidator(single_line)]
"""A one-line text field (names, ids, zones, URLs)."""

PatientLocale = Annotated[
    str,
    StringConstraints(max_length=16),
    AfterValidator(single_line),
    AfterValidator(shipped_locale),
]
"""A patient's language, kept as the shipped locale it falls back to ("de-AT" → "de");
a language not shipped is refused with the list of those that are."""

Note = Annotated[str, AfterValidator(note)]
"""Free text that may span lines (reasons)."""

EmailAddress = Annotated[str, StringConstraints(max_length=320), AfterValidator(email_address)]
"""One email address; international domains allowed."""


def checked(field: str, value: str, rule: Callable[[str], str]) -> str:
    """Apply one of the rules above to a service's plain argument; raise InvalidInput
    naming the field, as the API's models do."""
    try:
        return rule(value)
    except ValueError as exc:
        raise InvalidInput(field, str(exc)) from None
