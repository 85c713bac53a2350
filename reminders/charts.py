"""Server-side SVG charts for the clinic pages. Pure: strings in, one SVG string out.

Templates embed the result with `|safe`, so every caller-supplied string (titles, week
keys, translated words) is escaped here, in `_escape`, and nowhere else.
The caller translates: no visible word is written in this module. Each chart's `<desc>`
is built from the numbers, ISO week keys or dates, and the words passed in, so it needs
no sentence of its own in the catalogs.
Accessibility: `role="img"` named by `<title>` and `<desc>`; colours have at least 3:1
contrast against white; missed bars are hatched and the legend names every series, so
colour is never the only cue; each bar and dot carries a `<title>` with its numbers.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Literal

WIDTH = 640
HEIGHT = 320
EMPTY_HEIGHT = 80
FONT = "system-ui, sans-serif"
TEXT = "#1f2937"
AXIS = "#6b7280"
GRID = "#e5e7eb"
LINE = "#1d4ed8"
# Stacked bottom up in this order; each colour has at least 4.5:1 contrast on white.
SERIES = ("confirmed", "skipped", "missed")
COLOURS = {"confirmed": "#1b7f3b", "skipped": "#8a6d00", "missed": "#b3261e"}
MAX_WEEK_LABELS = 12
BAR_MAX_WIDTH = 48.0

# ids go into aria-labelledby, a space-separated list, and into url(#...) references.
_ID_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
# Characters XML 1.0 forbids even when escaped; one in a name would make the SVG invalid.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


@dataclass(frozen=True, slots=True)
class WeekBar:
    """One ISO week's due sessions ('2026-W49', as in `Adherence.weeks`)."""

    week: str
    confirmed: int
    skipped: int
    missed: int

    def __post_init__(self) -> None:
        if min(self.confirmed, self.skipped, self.missed) < 0:
            raise ValueError(f"negative count in week {self.week!r}")

    @property
    def total(self) -> int:
        """Height of the stacked bar: every due session of the week."""
        return self.confirmed + self.skipped + self.missed


@dataclass(frozen=True, slots=True)
class AdherenceLabels:
    """The visible words of the adherence chart, already translated by the caller."""

    confirmed: str
    skipped: str
    missed: str
    no_data: str


@dataclass(frozen=True, slots=True)
class OutcomePoint:
    """One outcome report: the day it was given and its value on the scale."""

    day: date
    value: float


@dataclass(frozen=True, slots=True)
class PlotArea:
    """Where the data is drawn, in viewBox units; margins hold titles, axes and legend."""

    left: float
    top: float
    right: float
    bottom: float

    @property
    def width(self) -> float:
        return self.right - self.left

    @property
    def height(self) -> float:
        return self.bottom - self.top

    def y_of(self, value: float, low: float, high: float) -> float:
        """SVG y grows downwards, so a higher value is drawn at a smaller y."""
        share = (min(max(value, low), high) - low) / (high - low)
        return self.bottom - share * self.height


PLOT = PlotArea(left=44, top=64, right=WIDTH - 32, bottom=HEIGHT - 36)


def adherence_chart(
    weeks: Sequence[WeekBar], *, title: str, labels: AdherenceLabels, id_prefix: str
) -> str:
    """A stacked bar per ISO week (confirmed at the bottom, then skipped, then missed).

    Weeks are drawn in key order, which for ISO keys is chronological.
    `id_prefix` keeps ids unique when several charts share a page.
    """
    _check_prefix(id_prefix)
    if not weeks:
        return _no_data(id_prefix, title, labels.no_data)
    bars = sorted(weeks, key=lambda bar: bar.week)
    top, step = _axis_top(max(bar.total for bar in bars))
    slot = PLOT.width / len(bars)
    body = [_hatch(id_prefix), _text(PLOT.left, 22, title, size=16, bold=True)]
    body += _legend(labels, id_prefix)
    body += _y_axis(range(0, top + 1, step), 0, top)
    for index, bar in enumerate(bars):
        body.append(_bar(bar, PLOT.left + slot * (index + 0.5), slot, top, labels, id_prefix))
    body += _week_labels(bars, slot)
    return _svg(id_prefix, HEIGHT, title, _adherence_desc(bars, labels), body)


def outcome_chart(
    points: Sequence[OutcomePoint],
    *,
    title: str,
    scale_max: int,
    scale_min: int = 0,
    better: Literal["lower", "higher"] = "lower",
    no_data: str,
    axis_note: str = "",
    id_prefix: str,
    day_label: Callable[[date], str] = date.isoformat,
) -> str:
    """A line with a dot per report, x by date, y from `scale_min` up to `scale_max`.

    x is proportional to the days between reports, so a gap in reporting shows as one.
    `better` puts an arrow beside the plot pointing to the better end of the scale.
    `day_label` formats the dates shown (pass a localised formatter; ISO by default).
    Values outside the scale are drawn at its edge; their dot's title keeps the value.
    """
    _check_prefix(id_prefix)
    if scale_max <= scale_min:
        raise ValueError(f"scale_max {scale_max} must be above scale_min {scale_min}")
    if not points:
        return _no_data(id_prefix, title, no_data)
    ordered = sorted(points, key=lambda point: point.day)
    step = _nice_step(scale_max - scale_min, target=5)
    ticks = sorted({*range(scale_min, scale_max + 1, step), scale_max})
    body = [_text(PLOT.left, 22, title, size=16, bold=True)]
    if axis_note:
        body.append(_text(PLOT.left, 40, axis_note, size=12))
    body += _y_axis(ticks, scale_min, scale_max)
    body += _better_arrow(better)
    body += _line_and_dots(ordered, scale_min, scale_max, day_label)
    desc = _outcome_desc(ordered, scale_min, scale_max, axis_note, day_label)
    return _svg(id_prefix, HEIGHT, title, desc, body)


# Shared pieces


def _escape(text: str) -> str:
    """Escape for both text and double-quoted attributes; drop characters XML forbids."""
    return html.escape(_NOT_XML.sub("", text), quote=True)


def _num(x: float) -> str:
    """A coordinate with at most two decimals, so output is short and reproducible."""
    return f"{x:.2f}".rstrip("0").rstrip(".")


def _value(v: float) -> str:
    """A reported value as people write it: 3, not 3.0; 2.5 stays 2.5."""
    return f"{v:g}"


def _check_prefix(id_prefix: str) -> None:
    if not _ID_PREFIX.fullmatch(id_prefix):
        raise ValueError(f"id_prefix must be a letter then letters, digits, - or _: {id_prefix!r}")


def _svg(id_prefix: str, height: int, title: str, desc: str, body: list[str]) -> str:
    """The root element: responsive width, named and described for screen readers."""
    return "\n".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}"'
            f' width="100%" role="img" aria-labelledby="{id_prefix}-title {id_prefix}-desc"'
            f' class="chart" font-family="{FONT}">',
            f'<title id="{id_prefix}-title">{_escape(title)}</title>',
            f'<desc id="{id_prefix}-desc">{_escape(desc)}</desc>',
            *body,
            "</svg>",
        ]
    )


def _no_data(id_prefix: str, title: str, message: str) -> str:
    """A short chart that says there is nothing to draw, in the caller's words."""
    body = [
        _text(PLOT.left, 22, title, size=16, bold=True),
        _text(PLOT.left, 52, message, size=14, cls="no-data"),
    ]
    return _svg(id_prefix, EMPTY_HEIGHT, title, message, body)


def _text(
    x: float,
    y: float,
    content: str,
    *,
    size: int = 12,
    anchor: str = "start",
    bold: bool = False,
    cls: str = "",
) -> str:
    weight = ' font-weight="bold"' if bold else ""
    klass = f' class="{cls}"' if cls else ""
    return (
        f'<text x="{_num(x)}" y="{_num(y)}" font-size="{size}" fill="{TEXT}"'
        f' text-anchor="{anchor}"{weight}{klass}>{_escape(content)}</text>'
    )


def _nice_step(span: int, *, target: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten giving at most `target` intervals."""
    raw = max(span / target, 1.0)
    power = int(10 ** math.floor(math.log10(raw)))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def _axis_top(highest: int) -> tuple[int, int]:
    """The y axis' top and tick step: the tallest bar rounded up to a whole step."""
    step = _nice_step(max(highest, 1), target=4)
    return step * math.ceil(max(highest, 1) / step), step


def _y_axis(ticks: Sequence[int], low: int, high: int) -> list[str]:
    """A gridline and an integer label per tick, and the axis line itself."""
    parts = []
    for tick in ticks:
        y = PLOT.y_of(tick, low, high)
        parts.append(
            f'<line x1="{_num(PLOT.left)}" y1="{_num(y)}" x2="{_num(PLOT.right)}" y2="{_num(y)}"'
            f' stroke="{GRID}" class="grid"/>'
        )
        parts.append(_text(PLOT.left - 6, y + 4, str(tick), anchor="end", cls="tick"))
    parts.append(
        f'<line x1="{_num(PLOT.left)}" y1="{_num(PLOT.top)}" x2="{_num(PLOT.left)}"'
        f' y2="{_num(PLOT.bottom)}" stroke="{AXIS}"/>'
    )
    return parts


# Adherence pieces


def _hatch(id_prefix: str) -> str:
    """Diagonal white stripes over the missed colour: missed reads without colour."""
    colour = COLOURS["missed"]
    return (
        f'<defs><pattern id="{id_prefix}-missed-hatch" patternUnits="userSpaceOnUse"'
        ' width="6" height="6" patternTransform="rotate(45)">'
        f'<rect width="6" height="6" fill="{colour}"/>'
        '<line x1="0" y1="0" x2="0" y2="6" stroke="#ffffff" stroke-width="2"/>'
        "</pattern></defs>"
    )


def _fill(series: str, id_prefix: str) -> str:
    if series == "missed":
        return f'fill="url(#{id_prefix}-missed-hatch)" stroke="{COLOURS["missed"]}"'
    return f'fill="{COLOURS[series]}"'


def _bar(
    bar: WeekBar, centre: float, slot: float, top: int, labels: AdherenceLabels, id_prefix: str
) -> str:
    """One week's stack, bottom up; empty segments are left out."""
    width = min(slot * 0.7, BAR_MAX_WIDTH)
    summary = f"{bar.week}: {_counts(labels, bar.confirmed, bar.skipped, bar.missed)}"
    parts = [f'<g class="bar"><title>{_escape(summary)}</title>']
    below = 0
    for series, count in zip(SERIES, (bar.confirmed, bar.skipped, bar.missed), strict=True):
        if count:
            y_top = PLOT.y_of(below + count, 0, top)
            height = PLOT.y_of(below, 0, top) - y_top
            parts.append(
                f'<rect class="{series}" x="{_num(centre - width / 2)}" y="{_num(y_top)}"'
                f' width="{_num(width)}" height="{_num(height)}" {_fill(series, id_prefix)}/>'
            )
            below += count
    return "".join([*parts, "</g>"])


def _week_labels(bars: Sequence[WeekBar], slot: float) -> list[str]:
    """'W49' under its bar; past MAX_WEEK_LABELS weeks only every n-th, so they don't collide."""
    every = math.ceil(len(bars) / MAX_WEEK_LABELS)
    return [
        _text(
            PLOT.left + slot * (index + 0.5),
            PLOT.bottom + 18,
            bar.week.rpartition("-")[2],
            anchor="middle",
            cls="week",
        )
        for index, bar in enumerate(bars)
        if index % every == 0
    ]


def _legend(labels: AdherenceLabels, id_prefix: str) -> list[str]:
    """A swatch and its word per series, in one row under the title."""
    parts = ['<g class="legend">']
    x = PLOT.left
    words = (labels.confirmed, labels.skipped, labels.missed)
    for series, word in zip(SERIES, words, strict=True):
        swatch = f'<rect x="{_num(x)}" y="36" width="12" height="12" {_fill(series, id_prefix)}/>'
        parts.append(swatch)
        parts.append(_text(x + 18, 46, word))
        # No text metrics on the server: about 7 units a character at size 12 is enough.
        x += 18 + 7 * len(word) + 20
    return [*parts, "</g>"]


def _counts(labels: AdherenceLabels, confirmed: int, skipped: int, missed: int) -> str:
    return f"{labels.confirmed} {confirmed}, {labels.skipped} {skipped}, {labels.missed} {missed}"


def _adherence_desc(bars: Sequence[WeekBar], labels: AdherenceLabels) -> str:
    """The span of weeks and the totals over it, e.g. '2026-W40 - 2026-W49: confirmed 30, ...'."""
    span = bars[0].week if len(bars) == 1 else f"{bars[0].week} - {bars[-1].week}"
    confirmed = sum(bar.confirmed for bar in bars)
    skipped = sum(bar.skipped for bar in bars)
    missed = sum(bar.missed for bar in bars)
    return f"{span}: {_counts(labels, confirmed, skipped, missed)}"


# Outcome pieces


def _x_of(day: date, first: date, last: date) -> float:
    """Proportional to days since the first report; a single day sits in the middle."""
    if first == last:
        return PLOT.left + PLOT.width / 2
    return PLOT.left + (day - first).days / (last - first).days * PLOT.width


def _line_and_dots(
    points: Sequence[OutcomePoint], low: int, high: int, day_label: Callable[[date], str]
) -> list[str]:
    """The line through the reports, a dot per report, and the first and last dates."""
    first, last = points[0].day, points[-1].day
    xy = [(_x_of(p.day, first, last), PLOT.y_of(p.value, low, high)) for p in points]
    parts = []
    if len(points) > 1:
        coords = " ".join(f"{_num(x)},{_num(y)}" for x, y in xy)
        parts.append(f'<polyline points="{coords}" fill="none" stroke="{LINE}" stroke-width="2"/>')
    for point, (x, y) in zip(points, xy, strict=True):
        parts.append(
            f'<circle class="point" cx="{_num(x)}" cy="{_num(y)}" r="4" fill="{LINE}">'
            f"<title>{_escape(f'{day_label(point.day)}: {_value(point.value)}')}</title></circle>"
        )
    days = sorted({first, last})
    for day in days:
        anchor = "middle" if len(days) == 1 else ("start" if day == first else "end")
        x = _x_of(day, first, last)
        parts.append(_text(x, PLOT.bottom + 18, day_label(day), anchor=anchor, cls="day"))
    return parts


def _better_arrow(better: Literal["lower", "higher"]) -> list[str]:
    """An arrow right of the plot, from its middle towards the better end of the scale."""
    x = PLOT.right + 16
    middle = PLOT.top + PLOT.height / 2
    tip, back = (PLOT.top, 8) if better == "higher" else (PLOT.bottom, -8)
    base = _num(tip + back)
    head = f"{_num(x)},{_num(tip)} {_num(x - 5)},{base} {_num(x + 5)},{base}"
    return [
        f'<g class="better {better}" aria-hidden="true">'
        f'<line x1="{_num(x)}" y1="{_num(middle)}" x2="{_num(x)}" y2="{base}"'
        f' stroke="{TEXT}" stroke-width="2"/><polygon points="{head}" fill="{TEXT}"/></g>'
    ]


def _outcome_desc(
    points: Sequence[OutcomePoint],
    low: int,
    high: int,
    axis_note: str,
    day_label: Callable[[date], str],
) -> str:
    """First and last report and the scale, e.g. '2026-01-05: 7 - 2026-02-09: 3 (0-10)'."""
    first, last = points[0], points[-1]
    span = f"{day_label(first.day)}: {_value(first.value)}"
    if len(points) > 1:
        span += f" - {day_label(last.day)}: {_value(last.value)}"
    desc = f"{span} ({low}-{high})"
    return f"{desc}. {axis_note}" if axis_note else desc
