"""Outcome scales and side effects: what a protocol asks after a session. Pure data.

A protocol names its scale (`outcome_scale` in its file). A scale's values are the codes
it defines ("1+" is a grade of the Modified Ashworth Scale, not a number). Patient-rated
scales are asked on the patient's page, in the patient's language (their texts are marked
for the catalogs); clinician-rated ones are recorded by staff.
Only HDSS feeds the planner's dry and relapse rules, and only where a protocol's phases
define them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from reminders.locales import N_

RatedBy = Literal["patient", "clinician"]


@dataclass(frozen=True, slots=True)
class OutcomeScale:
    """A symptom scale: the question, its codes (in order, best first) and who rates."""

    id: str
    name: str
    question: str
    codes: tuple[tuple[str, str], ...]
    rated_by: RatedBy
    source: str

    @property
    def values(self) -> tuple[str, ...]:
        """The codes a report may carry."""
        return tuple(code for code, _ in self.codes)


SCALES: dict[str, OutcomeScale] = {
    scale.id: scale
    for scale in (
        OutcomeScale(
            "hdss",
            "Hyperhidrosis Disease Severity Scale",
            N_("How is the sweating now?"),
            (
                ("1", N_("Never noticeable, never gets in the way")),
                ("2", N_("Tolerable, sometimes gets in the way")),
                ("3", N_("Barely tolerable, often gets in the way")),
                ("4", N_("Intolerable, always gets in the way")),
            ),
            "patient",
            "Solish et al. 2007 (Dermatol Surg 33:908)",
        ),
        OutcomeScale(
            "pain-nrs",
            "Pain numeric rating scale (0-10)",
            N_("How much pain do you have now?"),
            (
                ("0", N_("No pain")),
                *((str(n), str(n)) for n in range(1, 10)),
                ("10", N_("Worst pain imaginable")),
            ),
            "patient",
            "Hawker et al. 2011 (Arthritis Care Res 63:S240), numeric rating scale for pain",
        ),
        OutcomeScale(
            "mas",
            "Modified Ashworth Scale",
            "Muscle tone (rated by the clinician)",
            (
                ("0", "No increase in muscle tone"),
                ("1", "Slight increase, catch and release at the end of the range"),
                ("1+", "Slight increase, catch then minimal resistance through the range"),
                ("2", "Marked increase through most of the range, moved easily"),
                ("3", "Considerable increase, passive movement difficult"),
                ("4", "Rigid in flexion or extension"),
            ),
            "clinician",
            "Bohannon & Smith 1987 (Phys Ther 67:206)",
        ),
    )
}


class SideEffect(StrEnum):
    """What a patient may report after a session (sources 001 and 003)."""

    NONE = "none"
    DRYNESS = "dryness"
    REDNESS = "redness"
    BLISTERING = "blistering"
    BURN = "burn"
    OTHER = "other"


# The clinic hears of these at once: a blister or a burn can mean wrong settings or a
# damaged electrode pad.
ALARMING = frozenset({SideEffect.BLISTERING, SideEffect.BURN})
