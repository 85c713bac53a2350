from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from reminders.protocols import Protocol, ProtocolError, load_protocol, load_protocols
from tests.conftest import PROTOCOLS_DIR


def test_every_shipped_protocol_loads_with_caps_sources_and_screening() -> None:
    protocols = load_protocols(PROTOCOLS_DIR)
    assert len(protocols) >= 7
    for protocol in protocols.values():
        assert protocol.sources
        assert protocol.contraindications
        assert protocol.tips
        assert 1 <= protocol.max_per_week <= 5
        assert protocol.minutes["default"] >= 5


def test_tap_water_sessions_are_longer_for_feet() -> None:
    protocol = load_protocol(PROTOCOLS_DIR / "tap-water-hyperhidrosis.toml")
    assert protocol.session_minutes("palms") == 20
    assert protocol.session_minutes("soles") == 30
    assert protocol.session_minutes(None) == 20


def test_a_clinic_can_drop_in_its_own_protocol(tmp_path: Path) -> None:
    shutil.copytree(PROTOCOLS_DIR, tmp_path, dirs_exist_ok=True)
    (tmp_path / "north-clinic-weekly.toml").write_text(
        'name = "North weekly"\ncondition = "hyperhidrosis"\nmax_per_week = 2\n'
        'sources = ["clinic protocol"]\nbody_areas = ["palms"]\n[minutes]\ndefault = 15\n'
        '[[phases]]\nname = "weekly"\ncadence = "interval"\ninterval_days = 7\n'
    )
    assert "north-clinic-weekly" in load_protocols(tmp_path)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('name = "x"', "condition"),
        (
            'name="x"\ncondition="c"\nmax_per_week=3\nsources=["s"]\nbody_areas=["palms"]\n[minutes]\ndefault=20\n'
            '[[phases]]\nname="a"\ncadence="weekly"\n',
            "phases.0",
        ),
        (
            'name="x"\ncondition="c"\nmax_per_week=3\nsources=["s"]\nbody_areas=["palms"]\n[minutes]\ndefault=20\n'
            '[[phases]]\nname="a"\ncadence="weekly"\nper_week=9\n',
            "phases.0.per_week",
        ),
        (
            'name="x"\ncondition="c"\nmax_per_week=3\nsources=["s"]\n'
            'contraindications=["left-handed"]\nbody_areas=["palms"]\n[minutes]\ndefault=20\n'
            '[[phases]]\nname="a"\ncadence="interval"\ninterval_days=7\n',
            "unknown contraindication",
        ),
        ("name = [", "not valid TOML"),
    ],
)
def test_bad_protocol_file_error_names_file_and_field(
    tmp_path: Path, body: str, field: str
) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(body)
    with pytest.raises(ProtocolError) as caught:
        load_protocol(path)
    assert str(path) in str(caught.value)
    assert field in str(caught.value)


def test_every_shipped_protocol_names_its_body_areas_and_outcome_scale(
    protocols: dict[str, Protocol],
) -> None:
    for protocol in protocols.values():
        assert protocol.body_areas, protocol.id
        assert protocol.scale is not None, protocol.id
    assert protocols["tap-water-hyperhidrosis"].body_area("Feet") == "soles"
    assert protocols["tap-water-hyperhidrosis"].session_minutes("soles") == 30
    spasticity = protocols["magnesium-sulphate-spasticity"].scale
    assert spasticity is not None and spasticity.rated_by == "clinician"
