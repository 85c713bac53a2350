"""The shipped catalogs: complete, current, compiled, carried by every install; and how a
requested locale falls back to a shipped one."""

from __future__ import annotations

import gettext
import io
import shutil
import subprocess
import sys
import zipfile
from datetime import date, time
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from reminders.i18n import CATALOGS, Formats, translator
from reminders.locales import SHIPPED, from_accept_language, resolve

ROOT = Path(__file__).resolve().parent.parent


def _made(folder: Path) -> Path:
    folder.mkdir(parents=True)
    return folder


def catalog(locale: str) -> object:
    with open(CATALOGS / locale.replace("-", "_") / "LC_MESSAGES" / "messages.po", "rb") as file:
        return read_po(file, locale=locale.replace("-", "_"))


def messages_in_code() -> set[str]:
    """What `scripts/i18n extract` collects now, from the code and the templates (Babel's
    keywords and N_, as the script gives them)."""
    with open(ROOT / "babel.cfg") as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)  # type: ignore[no-untyped-call]
    keywords = {**DEFAULT_KEYWORDS, "N_": None}
    found = extract_from_dir(str(ROOT), method_map, options_map, keywords=keywords)
    return {message if isinstance(message, str) else message[0] for *_, message, _c, _x in found}


def test_the_catalog_template_holds_what_the_code_says() -> None:
    with open(CATALOGS / "messages.pot", "rb") as template:
        extracted = {m.id if isinstance(m.id, str) else m.id[0] for m in read_po(template) if m.id}
    assert extracted == messages_in_code(), "run scripts/i18n"


@pytest.mark.parametrize("locale", SHIPPED)
def test_every_shipped_catalog_translates_every_message_without_fuzzy_entries(
    locale: str,
) -> None:
    po = catalog(locale)
    translated = {}
    for message in po:  # type: ignore[attr-defined]
        if not message.id:
            continue
        ident = message.id if isinstance(message.id, str) else message.id[0]
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        assert not message.fuzzy, (locale, ident)
        assert all(strings), (locale, ident)
        if isinstance(message.id, tuple):
            assert len(strings) == po.num_plurals, (locale, ident)  # type: ignore[attr-defined]
        assert not list(message.check(po)), (locale, ident)  # placeholders kept
        translated[ident] = strings
    missing = messages_in_code() - set(translated)
    assert not missing, f"{locale} lacks {sorted(missing)}: run scripts/i18n"


@pytest.mark.parametrize("locale", SHIPPED)
def test_the_compiled_catalog_is_the_current_one(locale: str) -> None:
    folder = CATALOGS / locale.replace("-", "_") / "LC_MESSAGES"
    fresh = io.BytesIO()
    write_mo(fresh, catalog(locale))  # type: ignore[arg-type]
    fresh.seek(0)
    with open(folder / "messages.mo", "rb") as shipped:
        assert (
            gettext.GNUTranslations(shipped)._catalog  # type: ignore[attr-defined]
            == gettext.GNUTranslations(fresh)._catalog  # type: ignore[attr-defined]
        ), "run scripts/i18n compile"


def test_plurals_follow_the_catalogs_rules() -> None:
    french = translator("fr").ngettext("%(minutes)d minute", "%(minutes)d minutes", 0)
    assert french % {"minutes": 0} == "0 minute", "French counts 0 as one"
    for locale, one, many in [
        ("en", "1 session done", "2 sessions done"),
        ("de", "1 Behandlung", "2 Behandlungen"),
        ("pt-BR", "1 sessão", "2 sessões"),
    ]:
        t = translator(locale)
        singular = "Your treatment course is complete: %(count)s session done."
        plural = "Your treatment course is complete: %(count)s sessions done."
        assert one in t.ngettext(singular, plural, 1) % {"count": 1}
        assert many in t.ngettext(singular, plural, 2) % {"count": 2}


@pytest.mark.parametrize(
    ("requested", "shipped"),
    [
        ("en", "en"), ("en-US", "en"), ("en_GB", "en"), ("de-AT", "de"), ("DE", "de"),
        ("es-MX", "es"), ("fr-CA", "fr"), ("pt", "pt-BR"), ("pt-PT", "pt-BR"),
        ("pt-br", "pt-BR"), ("it", None), ("zz-ZZ", None),
    ],
)  # fmt: skip
def test_a_locale_falls_back_by_language(requested: str, shipped: str | None) -> None:
    assert resolve(requested) == shipped


def test_a_page_without_a_patient_speaks_the_browsers_language() -> None:
    assert from_accept_language("it-IT,it;q=0.9,de-AT;q=0.8,en;q=0.5") == "de"
    assert from_accept_language("pt-PT;q=0.2, fr;q=0.7") == "fr"
    assert from_accept_language("it") == "en"
    assert from_accept_language(None) == "en"


def test_dates_and_times_are_written_as_each_locale_writes_them() -> None:
    monday = date(2026, 12, 7)
    assert Formats("pt-BR").day(monday) == "segunda-feira, 7 de dezembro de 2026"
    assert Formats("de").day(monday) == "Montag, 7. Dezember 2026"
    assert Formats("fr").day(monday) == "lundi 7 décembre 2026"
    assert Formats("en").day(monday) == "Monday, 7 December 2026"
    assert Formats("en").time(time(18, 30)) == "18:30"


def test_a_wheel_carries_the_compiled_catalogs_and_the_templates(tmp_path: Path) -> None:
    # Built from a copy: a build leaves build/ and egg-info behind in the tree it reads.
    source = tmp_path / "source"
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name if source.exists() else _made(source) / name)
    shutil.copytree(ROOT / "reminders", source / "reminders", ignore=shutil.ignore_patterns(
        "__pycache__"))  # fmt: skip
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
         "-w", str(tmp_path), str(source)],
        check=True, capture_output=True,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("reminders-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for locale in SHIPPED:
        assert f"reminders/locale/{locale.replace('-', '_')}/LC_MESSAGES/messages.mo" in names
    assert "reminders/templates/pages/session.html" in names
    assert "reminders/templates/patient.txt" in names
