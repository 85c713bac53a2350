"""Posted forms into the API's input models: the same checks, whichever door."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import ValidationError


def given(form: Mapping[str, str], *names: str) -> dict[str, str]:
    """The named fields the form filled in (a blank field is one left out)."""
    return {name: form[name] for name in names if form.get(name, "").strip()}


def field_errors(exc: ValidationError) -> dict[str, str]:
    """A model's complaints by field, as the form names them."""
    return {str(e["loc"][0]) if e["loc"] else "form": e["msg"] for e in exc.errors()}
