"""Protocol tips and preparation in every shipped locale, falling back to English."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reminders.locales import SHIPPED
from reminders.protocols import (
    TEXT_LOCALES,
    Protocol,
    ProtocolError,
    load_protocol,
    load_protocols,
)
from tests.conftest import PROTOCOLS_DIR

# A protocol with two tips and one preparation, in English only.
ENGLISH_ONLY = """\
name = "North weekly"
condition = "hyperhidrosis"
max_per_week = 2
sources = ["clinic protocol"]
body_areas = ["palms"]
tips = ["Remove rings.", "Moisturise afterwards."]
preparation = ["Bring a towel."]
[minutes]
default = 15
[[phases]]
name = "weekly"
cadence = "interval"
interval_days = 7
"""


def protocol_file(tmp_path: Path, translations: str = "") -> Path:
    path = tmp_path / "north-weekly.toml"
    head, minutes = ENGLISH_ONLY.split("[minutes]\n")
    path.write_text(f"{head}{translations}\n[minutes]\n{minutes}", encoding="utf-8")
    return path


def test_protocols_are_translated_into_every_shipped_locale_but_english() -> None:
    assert ("en", *TEXT_LOCALES) == SHIPPED


@pytest.mark.parametrize("locale", SHIPPED)
def test_every_shipped_protocol_has_its_tips_and_preparation_in_the_locale(locale: str) -> None:
    for protocol in load_protocols(PROTOCOLS_DIR).values():
        for field, english, local in (
            ("tips", protocol.tips, protocol.tips_in(locale)),
            ("preparation", protocol.preparation, protocol.preparation_in(locale)),
        ):
            where = f"{protocol.id} {locale} {field}"
            assert len(local) == len(english), where
            assert all(item.strip() for item in local), where
            if locale != "en":
                assert all(a != b for a, b in zip(local, english, strict=True)), where
        assert protocol.tips_in(locale), protocol.id


def test_the_shipped_protocols_that_give_preparation_give_it_in_every_locale() -> None:
    protocols = load_protocols(PROTOCOLS_DIR)
    prepared = [p for p in protocols.values() if p.preparation]
    assert prepared, "some shipped protocol is given at the clinic with preparation"
    for protocol in prepared:
        assert sorted(protocol.text) == sorted(TEXT_LOCALES), protocol.id


def test_a_protocol_without_a_locale_falls_back_to_english(tmp_path: Path) -> None:
    path = protocol_file(
        tmp_path, '[text.de]\ntips = ["Legen Sie Ringe ab.", "Cremen Sie die Haut danach ein."]\n'
    )
    protocol = load_protocol(path)
    assert protocol.tips_in("de") == ("Legen Sie Ringe ab.", "Cremen Sie die Haut danach ein.")
    assert protocol.tips_in("fr") == protocol.tips == ("Remove rings.", "Moisturise afterwards.")
    assert protocol.tips_in("en") == protocol.tips
    assert protocol.preparation_in("de") == ("Bring a towel.",), "the de table gives no preparation"
    assert protocol.preparation_in("pt-BR") == ("Bring a towel.",)


def test_a_protocol_without_any_translation_stores_the_same_body_as_before(
    tmp_path: Path,
) -> None:
    protocol = load_protocol(protocol_file(tmp_path))
    assert protocol.tips_in("es") == protocol.tips
    assert "text" not in json.loads(protocol.model_dump_json()), "its version digest is unchanged"


def test_translations_survive_the_stored_protocol_body() -> None:
    for protocol in load_protocols(PROTOCOLS_DIR).values():
        stored = Protocol.model_validate_json(protocol.model_dump_json())
        assert stored == protocol, protocol.id
        assert stored.tips_in("pt-BR") == protocol.tips_in("pt-BR")
        assert stored.preparation_in("fr") == protocol.preparation_in("fr")


@pytest.mark.parametrize(
    ("translations", "named"),
    [
        ('[text.de]\ntips = ["Legen Sie Ringe ab."]\n', "text.de.tips: 1 item(s)"),
        ("[text.es]\ntips = []\n", "text.es.tips: 0 item(s)"),
        (
            '[text.fr]\npreparation = ["Apportez une serviette.", "Venez à l\'heure."]\n',
            "text.fr.preparation: 2 item(s), but the English preparation has 1",
        ),
        (
            '[text.it]\ntips = ["Togliete gli anelli.", "Idratate la pelle."]\n',
            "text.it: not a translated locale",
        ),
        (
            '[text.en]\ntips = ["Remove rings.", "Moisturise."]\n',
            "text.en: not a translated locale",
        ),
        ('[text.de]\nhints = ["Legen Sie Ringe ab."]\n', "text.de.hints"),
        ('[text.pt-BR]\ntips = ["Tire os anéis.", ""]\n', "text.pt-BR.tips.1"),
    ],
)
def test_a_file_with_a_mismatched_or_unknown_translation_is_refused(
    tmp_path: Path, translations: str, named: str
) -> None:
    path = protocol_file(tmp_path, translations)
    with pytest.raises(ProtocolError) as caught:
        load_protocol(path)
    assert str(path) in str(caught.value)
    assert named in str(caught.value)
