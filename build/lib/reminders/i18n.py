"""Patients' languages: which ones ship, how a requested locale falls back to one of them,
the gettext catalogs (managed with Babel by `scripts/i18n`) and the locale's way of
writing dates and times.

Staff-facing text (clinic alerts, the API, the CLI) stays in English: only what a
patient reads is translated.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, time
from gettext import NullTranslations
from pathlib import Path

from babel import Locale
from babel.dates import format_date, format_skeleton, format_time
from babel.support import Translations
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

SHIPPED = ("en", "de", "es", "fr", "pt-BR")
DEFAULT = "en"
CATALOGS = Path(__file__).parent / "locale"
DOMAIN = "messages"
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
    found = resolve(requested)
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


def _babel_name(locale: str) -> str:
    return locale.replace("-", "_")


@functools.lru_cache(maxsize=len(SHIPPED) + 1)
def translator(locale: str) -> NullTranslations:
    """The catalog of `locale` (resolved; English for a language not shipped). English is
    the catalogs' source language, so its catalog is the messages themselves."""
    shipped = resolve(locale) or DEFAULT
    return Translations.load(str(CATALOGS), [_babel_name(shipped)], DOMAIN)


@functools.lru_cache(maxsize=len(SHIPPED) + 1)
def templates(locale: str) -> Environment:
    """The package's templates with `{% trans %}` in `locale`. One environment per locale
    rather than catalogs swapped in per render: renders run in several threads at once.
    Templates ship with the package and change only with a release, so they are not
    looked up on disk again at every render."""
    environment = Environment(
        loader=PackageLoader("reminders", "templates"),
        auto_reload=False,
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        extensions=["jinja2.ext.i18n"],
    )
    # Old-style gettext: {% trans %} calls the catalog once, where the new style wraps
    # each call in another; messages are rendered by the thousand a minute. Autoescaping
    # still escapes the variables a {% trans %} block fills in.
    environment.install_gettext_translations(translator(locale), newstyle=False)  # type: ignore[attr-defined]
    return environment


# The English messages are written in British English, and its dates ("Monday 7
# December") and 24-hour times cannot be misread on either side of the Atlantic, which
# American ones ("12/7") can.
_FORMATS_OF = {"en": "en_GB"}


@functools.lru_cache(maxsize=len(SHIPPED) + 1)
def _babel_locale(locale: str) -> Locale:
    shipped = resolve(locale) or DEFAULT
    return Locale.parse(_FORMATS_OF.get(shipped, _babel_name(shipped)))


# A batch of messages mostly names the same few days: Babel takes microseconds a date.
@functools.lru_cache(maxsize=4096)
def _day(locale: str, value: date) -> str:
    return format_date(value, format="full", locale=_babel_locale(locale))


@functools.lru_cache(maxsize=4096)
def _short_day(locale: str, value: date) -> str:
    return format_skeleton("MMMEd", value, locale=_babel_locale(locale))


@dataclass(frozen=True, slots=True)
class Formats:
    """How a locale writes the days and times patients read."""

    locale: str

    @property
    def _babel(self) -> Locale:
        return _babel_locale(self.locale)

    def day(self, value: date) -> str:
        """The date in full: "Monday, 7 December 2026", "segunda-feira, 7 de dezembro de
        2026"."""
        return _day(self.locale, value)

    def short_day(self, value: date) -> str:
        """The same, short, for an SMS: "Mon 7 Dec", "seg., 7 de dez."."""
        return _short_day(self.locale, value)

    def time(self, value: time) -> str:
        """The time of day: "19:00"."""
        return format_time(value, format="short", locale=self._babel)
