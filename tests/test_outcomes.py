"""The verdict from a course's reports, one table per shipped protocol's rule."""

from __future__ import annotations

import pytest

from reminders.outcomes import SCALES, OutcomeRule, verdict
from reminders.protocols import Protocol

# (reports oldest first, verdict, urgent)
PAIN = [
    ((), "unknown", False),
    (("6",), "unknown", False),
    (("6", "4"), "improved", False),
    (("6", "5"), "unchanged", False),
    (("2", "4", "6", "8"), "worsening", True),
    (("2", "4"), "worsening", False),
    (("7", "8"), "worsening", True),  # reaching 8 from below alerts at once
    (("9", "9", "9"), "unchanged", False),  # no rise: reviewed at the end, not alerted
    (("6", "9", "3"), "improved", False),  # better at the last report
]
MAS = [
    (("2", "1+"), "improved", False),
    (("1+", "1+", "1+"), "unchanged", False),
    (("1", "1+"), "worsening", False),
    (("0", "1"), "worsening", False),
]
HDSS = [
    (("4", "4", "4"), "unchanged", False),  # never dry: the planner's review, not worsening
    (("4", "3", "2"), "improved", False),
    (("4", "1", "4"), "unchanged", False),  # a single relapse is not an alert
    (("4", "1", "4", "3"), "worsening", False),  # two in a row after a dry one
    (("4", "1", "4", "3", "1"), "improved", False),
]
BY_PROTOCOL = {
    "sports-injury-short-course": PAIN,
    "dexamethasone-plantar-heel": PAIN,
    "dexamethasone-tendinopathy": PAIN,
    "magnesium-sulphate-spasticity": MAS,
    "tap-water-hyperhidrosis": HDSS,
    "tap-water-fixed-schedule": HDSS,
    "glycopyrrolate-hyperhidrosis": HDSS,
}
REVIEW = {
    "sports-injury-short-course": "no_improvement",
    "dexamethasone-plantar-heel": "no_improvement",
    "dexamethasone-tendinopathy": "no_improvement",
    "magnesium-sulphate-spasticity": "no_improvement",
    "tap-water-hyperhidrosis": "no_response",
    "tap-water-fixed-schedule": "no_response",
    "glycopyrrolate-hyperhidrosis": "no_response",
}


def test_every_shipped_protocol_has_an_outcome_rule_with_its_source(
    protocols: dict[str, Protocol],
) -> None:
    assert set(BY_PROTOCOL) == set(protocols)
    for protocol_id, protocol in protocols.items():
        assert protocol.outcome is not None, protocol_id
        assert protocol.outcome.review == REVIEW[protocol_id]
        assert protocol.outcome.source


@pytest.mark.parametrize(
    ("protocol_id", "reports", "kind", "urgent"),
    [(p, r, k, u) for p, table in BY_PROTOCOL.items() for r, k, u in table],
)
def test_the_verdict_of_each_protocols_reports(
    protocols: dict[str, Protocol],
    protocol_id: str,
    reports: tuple[str, ...],
    kind: str,
    urgent: bool,
) -> None:
    protocol = protocols[protocol_id]
    assert protocol.scale is not None and protocol.outcome is not None
    found = verdict(protocol.scale, protocol.outcome, reports)
    assert (found.kind, found.urgent) == (kind, urgent)
    if reports:
        assert (found.first, found.last) == (reports[0], reports[-1])


def test_codes_the_scale_does_not_define_are_left_out() -> None:
    rule = OutcomeRule(review="no_improvement", improved_by=2, worse_by=2, source="test")
    assert verdict(SCALES["pain-nrs"], rule, ["6", "x", "3"]).kind == "improved"


def test_a_rule_is_either_a_change_or_a_relapse_rule() -> None:
    with pytest.raises(ValueError, match="dry_at_most"):
        OutcomeRule(review="no_response", source="test")
    with pytest.raises(ValueError, match="dry_at_most"):
        OutcomeRule(review="no_response", dry_at_most="2", improved_by=1, source="test")
