"""The exceptions services raise; API, CLI and pages translate them into answers.

RemindersError
 +-- NotFound      404: missing, or another clinic's (never say which)
 +-- InvalidInput  422: `field` names the input, the message says why
 +-- Conflict      409: valid, but the current state does not allow it
 |    +-- CourseEnded  the course is over: the patient should contact the clinic
 +-- Gone          410: erased; what is left of it is not shown
"""

from __future__ import annotations


class RemindersError(Exception):
    """Base of every error a service raises on purpose."""


class NotFound(RemindersError):
    """The thing does not exist, or belongs to another clinic (never say which)."""

    def __init__(self, what: str, ident: str) -> None:
        super().__init__(f"{what} {ident!r} not found")
        self.what = what
        self.ident = ident


class InvalidInput(RemindersError):
    """An input is wrong; `field` names it, the message says why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class Conflict(RemindersError):
    """The request is valid but clashes with the current state."""


class CourseEnded(Conflict):
    """A session for a course that has ended: the patient's page says to contact the
    clinic, not to try another day."""

    def __init__(self) -> None:
        super().__init__("the course has ended; the patient should contact their clinic")


class Gone(RemindersError):
    """The thing existed but was erased; what is left of it is not shown."""
