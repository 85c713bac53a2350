"""Outcome scales and side effects: what a protocol asks after a session. Pure data.

A protocol names its scale (`outcome_scale` in its file). A scale's values are the codes
it defines ("1+" is a grade of the Modified Ashworth Scale, not a number). Patient-rated
scales are asked on the patient's page, in the patient's language (their texts are marked
for the catalogs); clinician-rated ones are recorded by staff.
Only HDSS feeds the planner's dry and relapse rules, and only where a protocol's phases
define them. A protocol's `OutcomeRule` says what its reports mean; `verdict` reads them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

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


VerdictKind = Literal["improved", "unchanged", "worsening", "unknown"]
ReviewReason = Literal["no_response", "no_improvement"]


class OutcomeRule(BaseModel):
    """What a protocol's reports mean (`[outcome]` in its file).

    A change rule compares each report with the first: `improved_by` grades better at
    the last report is improved; `worse_by` grades worse at any report, or reaching
    `urgent_at` from below it, is worsening. A relapse rule (HDSS) calls a report at or
    below `dry_at_most` dry: the last report dry is improved, and `relapses_in_a_row`
    reports not dry after a dry one is worsening. `review` is the escalation a course
    that did not respond gets: `no_response` from the planner's review points on an
    ongoing course, `no_improvement` when a course ends without improving. `source`
    names where the figures come from.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    review: ReviewReason
    source: str = Field(min_length=1)
    improved_by: int | None = Field(default=None, ge=1, le=10)
    worse_by: int | None = Field(default=None, ge=1, le=10)
    urgent_at: str | None = None
    dry_at_most: str | None = None
    relapses_in_a_row: int | None = Field(default=None, ge=1, le=10)

    @model_validator(mode="after")
    def _one_kind(self) -> OutcomeRule:
        relapse = self.dry_at_most is not None
        change = self.improved_by is not None or self.worse_by is not None
        if relapse == change:
            raise ValueError(
                "outcome: give dry_at_most (a relapse rule) or improved_by and worse_by "
                "(a change rule)"
            )
        if self.relapses_in_a_row is not None and not relapse:
            raise ValueError("outcome.relapses_in_a_row needs dry_at_most")
        return self

    def codes(self) -> tuple[str, ...]:
        """The scale codes the rule names, which the scale must define."""
        return tuple(c for c in (self.urgent_at, self.dry_at_most) if c is not None)


@dataclass(frozen=True, slots=True)
class Verdict:
    """How a course's reports read: `first` and `last` are the codes reported (None
    without reports); `urgent` when worsening reached the rule's `urgent_at`."""

    kind: VerdictKind
    first: str | None = None
    last: str | None = None
    urgent: bool = False

    @property
    def improved(self) -> bool:
        return self.kind == "improved"


def verdict(scale: OutcomeScale, rule: OutcomeRule, reports: Sequence[str]) -> Verdict:
    """Return the verdict of a course's reports on `scale`, oldest first. Codes the
    scale does not define are left out; fewer than two reports are `unknown`."""
    ranks = [scale.values.index(code) for code in reports if code in scale.values]
    if len(ranks) < 2:
        only = scale.values[ranks[0]] if ranks else None
        return Verdict("unknown", only, only)
    first, last = ranks[0], ranks[-1]
    codes = scale.values[first], scale.values[last]
    if rule.dry_at_most is not None:
        dry = scale.values.index(rule.dry_at_most)
        if last <= dry:
            return Verdict("improved", *codes)
        run = rule.relapses_in_a_row or len(ranks)
        tail, before = ranks[-run:], ranks[:-run]
        relapsed = len(tail) == run and all(r > dry for r in tail) and any(r <= dry for r in before)
        return Verdict("worsening" if relapsed else "unchanged", *codes)
    if rule.improved_by is not None and last <= first - rule.improved_by:
        return Verdict("improved", *codes)
    later = ranks[1:]
    urgent_rank = scale.values.index(rule.urgent_at) if rule.urgent_at is not None else None
    rose = rule.worse_by is not None and any(r >= first + rule.worse_by for r in later)
    alarming = urgent_rank is not None and first < urgent_rank and max(later) >= urgent_rank
    if rose or alarming:
        urgent = urgent_rank is not None and max(later) >= urgent_rank
        return Verdict("worsening", *codes, urgent=urgent)
    return Verdict("unchanged", *codes)
