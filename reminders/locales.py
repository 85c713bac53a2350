"""Which languages patients can read their messages in, and how a requested locale falls
back to one of them. Pure: the catalogs themselves are `reminders.i18n`'s.
"""

from __future__ import annotations

import re

SHIPPED = ("en", "de", "es", "fr", "pt-BR")
DEFAULT = "en"
# A BCP 47 language tag as people write them: "pt-BR", "de_AT", "fr".
_TAG = re.compile(r"[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*")
# A language whose patients read one shipped variant: Portuguese is shipped as Brazil's.
_BY_LANGUAGE = {shipped.partition("-")[0]: shipped for shipped in SHIPPED}


def resolve(requested: str) -> str | None:
    """Return the shipped locale a patient asking for `requested` reads ("de-AT" → "de",
    "pt-PT" → "pt-BR", "PT_br" → "pt-BR"), or None if their language is not shipped."""
    tag = requested.strip().replace("_", "-")
    language, _, region = tag.partition("-")
    exact = f"{language.lower()}-{region.upper()}" if region else language.lower()
    if exact in SHIPPED:
        return exact
    return _BY_LANGUAGE.get(language.lower())


def shipped_locale(requested: str) -> str:
    """Return the shipped locale for `requested`; raise ValueError naming the shipped ones
    if the language is not among them (an API answers 422 with it)."""
    found = resolve(requested) if _TAG.fullmatch(requested) else None
    if found is None:
        raise ValueError(
            f"{requested!r} is not a supported locale; supported: {', '.join(SHIPPED)}"
            " (a regional variant such as de-AT reads its language's messages)"
        )
    return found


def from_accept_language(header: str | None) -> str:
    """The shipped locale a browser's Accept-Language prefers (for a page that knows no
    patient, such as an expired link's), else English."""
    weighted = []
    for position, item in enumerate((header or "").split(",")):
        tag, _, params = item.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        found = resolve(tag) if tag and tag != "*" else None
        if found and quality > 0:
            weighted.append((-quality, position, found))
    return min(weighted)[2] if weighted else DEFAULT


def N_(message: str) -> str:
    """Mark `message` for extraction into the catalogs; it is translated where it is shown."""
    return message
