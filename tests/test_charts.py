from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import date, timedelta

import pytest

from reminders.charts import (
    PLOT,
    AdherenceLabels,
    OutcomePoint,
    WeekBar,
    adherence_chart,
    outcome_chart,
)

NS = {"svg": "http://www.w3.org/2000/svg"}
LABELS = AdherenceLabels(confirmed="done", skipped="skipped", missed="missed", no_data="nothing")
EVIL = "</svg><script>alert(1)</script>"
DAY = date(2026, 1, 5)


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def bars_of(root: ET.Element) -> list[ET.Element]:
    return root.findall("svg:g[@class='bar']", NS)


def rect(bar: ET.Element, series: str) -> ET.Element:
    found = bar.find(f"svg:rect[@class='{series}']", NS)
    assert found is not None
    return found


def height(element: ET.Element) -> float:
    return float(element.attrib["height"])


def week_texts(root: ET.Element) -> list[str]:
    return [t.text or "" for t in root.findall("svg:text[@class='week']", NS)]


def chart(weeks: list[WeekBar], *, title: str = "Adherence", prefix: str = "adh") -> str:
    return adherence_chart(weeks, title=title, labels=LABELS, id_prefix=prefix)


def hdss(points: list[OutcomePoint], *, prefix: str = "hdss", note: str = "") -> str:
    return outcome_chart(
        points, title="HDSS", scale_min=1, scale_max=4, no_data="none", axis_note=note,
        id_prefix=prefix,
    )  # fmt: skip


def dots(root: ET.Element) -> list[tuple[float, float]]:
    return [
        (float(c.attrib["cx"]), float(c.attrib["cy"]))
        for c in root.findall("svg:circle[@class='point']", NS)
    ]


def test_root_is_an_accessible_responsive_image_named_by_title_and_desc() -> None:
    root = parse(chart([WeekBar("2026-W49", 3, 1, 1)]))
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.attrib["role"] == "img"
    assert root.attrib["width"] == "100%"
    assert "height" not in root.attrib
    assert root.attrib["aria-labelledby"] == "adh-title adh-desc"
    assert root.find("svg:title[@id='adh-title']", NS) is not None
    desc = root.find("svg:desc[@id='adh-desc']", NS)
    assert desc is not None
    assert desc.text == "2026-W49: done 3, skipped 1, missed 1"


def test_bar_heights_are_proportional_to_counts() -> None:
    root = parse(chart([WeekBar("2026-W49", 6, 2, 1), WeekBar("2026-W50", 3, 0, 4)]))
    first, second = bars_of(root)
    unit = height(rect(first, "missed"))
    assert height(rect(first, "confirmed")) == pytest.approx(6 * unit, abs=0.02)
    assert height(rect(first, "skipped")) == pytest.approx(2 * unit, abs=0.02)
    assert height(rect(second, "confirmed")) == pytest.approx(3 * unit, abs=0.02)
    assert height(rect(second, "missed")) == pytest.approx(4 * unit, abs=0.02)
    assert second.find("svg:rect[@class='skipped']", NS) is None


def test_bars_stack_confirmed_then_skipped_then_missed_from_the_baseline() -> None:
    (bar,) = bars_of(parse(chart([WeekBar("2026-W49", 3, 2, 1)])))
    confirmed, skipped, missed = (rect(bar, s) for s in ("confirmed", "skipped", "missed"))
    assert float(confirmed.attrib["y"]) + height(confirmed) == pytest.approx(PLOT.bottom)
    assert float(skipped.attrib["y"]) + height(skipped) == pytest.approx(
        float(confirmed.attrib["y"]), abs=0.02
    )
    assert float(missed.attrib["y"]) + height(missed) == pytest.approx(
        float(skipped.attrib["y"]), abs=0.02
    )


def test_each_bar_has_a_title_with_its_exact_numbers() -> None:
    (bar,) = bars_of(parse(chart([WeekBar("2026-W49", 3, 2, 1)])))
    assert bar.findtext("svg:title", namespaces=NS) == "2026-W49: done 3, skipped 2, missed 1"


def test_missed_bars_are_hatched_not_only_coloured() -> None:
    (bar,) = bars_of(parse(chart([WeekBar("2026-W49", 0, 0, 2)])))
    assert rect(bar, "missed").attrib["fill"] == "url(#adh-missed-hatch)"


def test_week_labels_are_short_and_thinned_past_twelve_weeks() -> None:
    few = [WeekBar(f"2026-W{n:02d}", 1, 0, 0) for n in range(1, 5)]
    assert week_texts(parse(chart(few))) == ["W01", "W02", "W03", "W04"]
    many = [WeekBar(f"2026-W{n:02d}", 1, 0, 0) for n in range(1, 31)]
    root = parse(chart(many))
    assert len(bars_of(root)) == 30
    assert week_texts(root) == [f"W{n:02d}" for n in range(1, 31, 3)]


def test_y_axis_ticks_are_integers_reaching_the_tallest_bar() -> None:
    root = parse(chart([WeekBar("2026-W49", 7, 2, 1)]))
    ticks = [int(t.text or "") for t in root.findall("svg:text[@class='tick']", NS)]
    assert ticks[0] == 0
    assert ticks[-1] >= 10
    assert 3 <= len(ticks) <= 6


def test_caller_strings_are_escaped_and_round_trip() -> None:
    labels = AdherenceLabels(confirmed=EVIL, skipped="s", missed="m", no_data=EVIL)
    svg = adherence_chart([WeekBar(EVIL, 1, 0, 0)], title=EVIL, labels=labels, id_prefix="adh")
    root = parse(svg)
    assert not [e for e in root.iter() if e.tag.endswith("script")]
    assert "<script" not in svg
    assert root.findtext("svg:title", namespaces=NS) == EVIL
    legend = [t.text for t in root.iterfind("svg:g[@class='legend']/svg:text", NS)]
    assert EVIL in legend
    assert (bars_of(root)[0].findtext("svg:title", namespaces=NS) or "").startswith(EVIL)
    empty = parse(adherence_chart([], title=EVIL, labels=labels, id_prefix="adh"))
    assert empty.findtext("svg:desc", namespaces=NS) == EVIL


def test_characters_xml_forbids_are_dropped_so_the_svg_still_parses() -> None:
    root = parse(chart([WeekBar("2026-W49", 1, 0, 0)], title="Adh\x00erence\x1b"))
    assert root.findtext("svg:title", namespaces=NS) == "Adherence"


def test_no_weeks_gives_the_no_data_chart() -> None:
    root = parse(chart([]))
    assert not bars_of(root)
    assert root.findtext("svg:desc", namespaces=NS) == "nothing"
    assert root.findtext("svg:text[@class='no-data']", namespaces=NS) == "nothing"


def test_id_prefix_keeps_ids_unique_across_charts_on_one_page() -> None:
    weeks = [WeekBar("2026-W49", 1, 0, 1)]
    points = [OutcomePoint(DAY, 2)]
    page = [parse(chart(weeks, prefix="a")), parse(chart(weeks, prefix="b")), parse(hdss(points))]
    ids = [e.attrib["id"] for root in page for e in root.iter() if "id" in e.attrib]
    assert len(ids) == len(set(ids)) == 8


def test_id_prefix_must_be_a_plain_name() -> None:
    with pytest.raises(ValueError, match="id_prefix"):
        chart([], prefix='x" onload="alert(1)')


def test_output_is_deterministic() -> None:
    weeks = [WeekBar("2026-W50", 1, 2, 0), WeekBar("2026-W49", 3, 0, 1)]
    assert chart(weeks) == chart(list(reversed(weeks)))
    points = [OutcomePoint(DAY, 3), OutcomePoint(DAY + timedelta(days=9), 1.5)]
    assert hdss(points) == hdss(list(reversed(points)))


def test_outcome_x_is_proportional_to_days_between_reports() -> None:
    days = [0, 1, 10]
    root = parse(hdss([OutcomePoint(DAY + timedelta(days=d), 2) for d in days]))
    xs = [x for x, _ in dots(root)]
    expected = [PLOT.left + d / 10 * PLOT.width for d in days]
    assert xs == pytest.approx(expected, abs=0.01)


def test_higher_values_are_drawn_higher_up() -> None:
    points = [OutcomePoint(DAY + timedelta(days=d), v) for d, v in enumerate([1, 4, 2.5])]
    (_, lowest), (_, highest), (_, middle) = dots(parse(hdss(points)))
    assert lowest == pytest.approx(PLOT.bottom)
    assert highest == pytest.approx(PLOT.top)
    assert highest < middle < lowest


def test_outcome_dots_have_titles_and_the_desc_summarises_first_and_last() -> None:
    points = [OutcomePoint(DAY, 3), OutcomePoint(DAY + timedelta(days=7), 2.5)]
    root = parse(hdss(points, note="lower is better"))
    titles = [c.findtext("svg:title", namespaces=NS) for c in root.iter(f"{{{NS['svg']}}}circle")]
    assert titles == ["2026-01-05: 3", "2026-01-12: 2.5"]
    desc = root.findtext("svg:desc", namespaces=NS)
    assert desc == "2026-01-05: 3 - 2026-01-12: 2.5 (1-4). lower is better"
    assert "lower is better" in [t.text for t in root.findall("svg:text", NS)]


def test_one_report_is_a_single_dot_without_a_line() -> None:
    root = parse(hdss([OutcomePoint(DAY, 2)]))
    ((x, y),) = dots(root)
    assert x == pytest.approx(PLOT.left + PLOT.width / 2)
    assert y == pytest.approx(PLOT.y_of(2, 1, 4), abs=0.01)
    assert root.find("svg:polyline", NS) is None


def test_no_reports_gives_the_no_data_chart() -> None:
    root = parse(hdss([]))
    assert not dots(root)
    assert root.findtext("svg:desc", namespaces=NS) == "none"


def test_pain_scale_ticks_span_zero_to_ten() -> None:
    svg = outcome_chart(
        [OutcomePoint(DAY, 6)], title="Pain", scale_max=10, no_data="none", id_prefix="pain"
    )
    ticks = [t.text for t in parse(svg).findall("svg:text[@class='tick']", NS)]
    assert ticks == ["0", "2", "4", "6", "8", "10"]


def test_scale_must_have_room() -> None:
    with pytest.raises(ValueError, match="scale_max"):
        outcome_chart([], title="x", scale_min=4, scale_max=4, no_data="none", id_prefix="x")


def test_no_script_external_references_or_foreign_objects() -> None:
    svgs = [chart([WeekBar("2026-W49", 1, 1, 1)]), hdss([OutcomePoint(DAY, 2)]), chart([])]
    for svg in svgs:
        tags = {e.tag.rpartition("}")[2] for e in parse(svg).iter()}
        assert not tags & {"script", "foreignObject", "image", "use", "a"}
        assert "href" not in svg
        assert "url(" not in svg.replace("url(#adh-", "")
