"""The patient page's two charts, from a patient's record (the drawing is `charts`)."""

from __future__ import annotations

from collections.abc import Mapping

from reminders import charts
from reminders.outcomes import SCALES
from reminders.protocols import Protocol
from reminders.services.clinic_views import Course, PatientRecord
from reminders.services.reading import sessions_reported

LABELS = charts.AdherenceLabels("confirmed", "skipped", "missed", "No sessions due yet.")


def week_bars(record: PatientRecord) -> list[charts.WeekBar]:
    """One bar per ISO week with sessions due, oldest first."""
    weeks = sorted(record.adherence.weeks.items())
    return [charts.WeekBar(w, t.confirmed, t.skipped, t.missed) for w, t in weeks]


def adherence_svg(record: PatientRecord) -> str:
    return charts.adherence_chart(
        week_bars(record), title="Adherence by week", labels=LABELS, id_prefix="adherence"
    )


def _value(code: str) -> float | None:
    """A code as a point on its scale: codes are numbers, but for the Modified Ashworth
    Scale's "1+", between 1 and 2; anything else is not drawn."""
    try:
        return float(code.replace("+", ".5"))
    except ValueError:
        return None


def outcome_points(course: Course) -> list[charts.OutcomePoint]:
    reported = [(s.local_date, _value(s.outcome or "")) for s in sessions_reported(course.sessions)]
    return [charts.OutcomePoint(day, value) for day, value in reported if value is not None]


def outcome_svg(course: Course, protocols: Mapping[str, Protocol]) -> str | None:
    """The outcome trend of one course, on its protocol's scale (None if it asks none)."""
    protocol = protocols.get(course.enrollment.protocol_id)
    scale = SCALES.get(protocol.outcome_scale) if protocol and protocol.outcome_scale else None
    if scale is None:
        return None
    values = [v for code in scale.values if (v := _value(code)) is not None]
    return charts.outcome_chart(
        outcome_points(course),
        title=f"{scale.name}: reported after sessions",
        scale_min=int(min(values)),
        scale_max=int(max(values)),
        better="lower",
        no_data="No outcome reported yet.",
        axis_note="lower is better",
        id_prefix=f"outcome-{course.enrollment.id}",
    )
