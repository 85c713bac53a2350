"""Posted forms into the API's input models: the same checks, whichever door."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import ValidationError

from reminders.errors import Conflict, InvalidInput

# What a form's action may be refused with, for the page to say beside the form.
REFUSALS = (ValidationError, InvalidInput, Conflict)


def given(form: Mapping[str, str], *names: str) -> dict[str, str]:
    """The named fields the form filled in (a blank field is one left out)."""
    return {name: form[name] for name in names if form.get(name, "").strip()}


def field_errors(exc: ValidationError) -> dict[str, str]:
    """A model's complaints by field, as the form names them."""
    return {str(e["loc"][0]) if e["loc"] else "form": e["msg"] for e in exc.errors()}


def refusal(exc: Exception) -> str:
    """One line saying why an action was refused, naming the fields."""
    if isinstance(exc, ValidationError):
        return "; ".join(f"{name}: {message}" for name, message in field_errors(exc).items())
    return str(exc)
