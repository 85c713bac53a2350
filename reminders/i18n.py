"""Patients' languages: the gettext catalogs (managed with Babel by `scripts/i18n`), the
templates in each language, and each locale's way of writing dates and times. Which
languages ship, and how a requested one falls back, is `reminders.locales`.

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

from reminders.locales import DEFAULT, SHIPPED, resolve

CATALOGS = Path(__file__).parent / "locale"
DOMAIN = "messages"


def _babel_name(locale: str) -> str:
    return locale.replace("-", "_")


def check_catalogs() -> None:
    """Raise RuntimeError if a shipped locale has no compiled catalog: its patients
    would silently read English."""
    missing = [
        locale
        for locale in SHIPPED
        if not (CATALOGS / _babel_name(locale) / "LC_MESSAGES" / f"{DOMAIN}.mo").is_file()
    ]
    if missing:
        raise RuntimeError(f"no compiled catalog for {', '.join(missing)}: run scripts/i18n")


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
