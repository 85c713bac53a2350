"""Protocols: named treatment courses defined as data in `config/protocols/*.toml`.

A protocol's id is its file name without `.toml`. Loading validates every file and
raises `ProtocolError` naming the file and the field.

A protocol's tips and preparation are written in English; tables `[text.<locale>]` give
them in the other shipped languages, item for item (`Protocol.tips_in`,
`Protocol.preparation_in`).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from reminders.locales import DEFAULT, SHIPPED
from reminders.outcomes import SCALES, OutcomeRule, OutcomeScale, SideEffect
from reminders.safety import DEFAULT_HOLD_ON

WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

# The shipped locales other than English, which a protocol's `[text.<locale>]` tables
# may translate its tips and preparation into.
TEXT_LOCALES: tuple[str, ...] = tuple(locale for locale in SHIPPED if locale != DEFAULT)

CONTRAINDICATIONS: dict[str, str] = {
    "pacemaker": "pacemaker or implanted defibrillator",
    "pregnancy": "pregnancy",
    "epilepsy": "epilepsy",
    "heart_disease": "known heart disease or arrhythmia",
    "metal_implants": "metal implants in the current path",
    "skin_defects": "large skin defects in the treated area",
    "reduced_sensation": "reduced sensation in the treated area",
    "acute_infection": "acute infection in the treated area",
    "cancer_in_area": "cancer in the treated area",
}

# Words patients and staff use for an area, and the name protocols give it.
BODY_AREA_SYNONYMS: dict[str, str] = {
    "hands": "palms",
    "hand": "palms",
    "feet": "soles",
    "foot": "soles",
    "armpits": "underarms",
    "armpit": "underarms",
    "axillae": "underarms",
    "axilla": "underarms",
}

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
Cadence = Literal["weekly", "days", "interval"]
PatientText = Annotated[str, Field(min_length=1)]


class ProtocolError(Exception):
    """A protocol file is missing, unreadable or invalid."""


class Phase(BaseModel):
    """One stage of a protocol: how often sessions happen and when the phase ends.

    Cadences: `weekly` places `per_week` sessions in any 7 days on allowed weekdays;
    `days` follows fixed day numbers counted from the phase's first day (day 1);
    `interval` places a session every `interval_days`, which maintenance adapts.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, pattern=r"^[a-z][a-z0-9-]*$")
    cadence: Cadence
    per_week: int | None = Field(default=None, ge=1, le=7)
    days: tuple[int, ...] | None = None
    interval_days: int | None = Field(default=None, ge=1, le=90)

    sessions: int | None = Field(default=None, ge=1, le=500)
    dry_reports: int | None = Field(default=None, ge=1, le=50)
    min_sessions: int = Field(default=0, ge=0, le=500)
    max_sessions: int | None = Field(default=None, ge=1, le=500)

    lengthen_after: int | None = Field(default=None, ge=1, le=50)
    step_days: int = Field(default=7, ge=1, le=90)
    max_interval_days: int | None = Field(default=None, ge=1, le=180)
    relapses_to_return: int | None = Field(default=None, ge=1, le=50)
    return_to: str | None = None
    # A report not dry brings the next session this many days after it.
    relapse_next_in_days: int | None = Field(default=None, ge=1, le=90)
    # Sessions in a row without a dry report after which a review opens.
    review_without_dry: int | None = Field(default=None, ge=1, le=100)

    @model_validator(mode="after")
    def _cadence_fields(self) -> Phase:
        if self.cadence == "weekly" and self.per_week is None:
            raise ValueError("per_week is required for a weekly cadence")
        if self.cadence == "days":
            if not self.days:
                raise ValueError("days is required for a days cadence")
            if self.days[0] != 1 or list(self.days) != sorted(set(self.days)):
                raise ValueError("days must start at 1 and increase strictly")
        if self.cadence == "interval" and self.interval_days is None:
            raise ValueError("interval_days is required for an interval cadence")
        if self.cadence == "days" and self.dry_reports is not None:
            if self.interval_days is None:
                raise ValueError(
                    "a days cadence that waits for dry_reports needs interval_days (the "
                    "spacing after its last day)"
                )
        elif self.cadence == "days" and self.interval_days is not None:
            raise ValueError("interval_days on a days cadence needs dry_reports")
        if self.relapse_next_in_days is not None and self.lengthen_after is None:
            raise ValueError("relapse_next_in_days needs an adaptive interval (lengthen_after)")
        if self.lengthen_after is not None:
            if self.cadence != "interval":
                raise ValueError("lengthen_after needs an interval cadence")
            if self.max_interval_days is None or self.interval_days is None:
                raise ValueError("lengthen_after needs max_interval_days")
            if self.max_interval_days < self.interval_days:
                raise ValueError("max_interval_days must be at least interval_days")
        if (self.relapses_to_return is None) != (self.return_to is None):
            raise ValueError("relapses_to_return and return_to go together")
        if self.max_sessions is not None and self.max_sessions < self.min_sessions:
            raise ValueError("max_sessions must be at least min_sessions")
        return self

    @property
    def ends(self) -> bool:
        """True when some rule can end this phase; otherwise it goes on for good."""
        return (
            self.sessions is not None
            or self.dry_reports is not None
            or self.max_sessions is not None
            or (self.cadence == "days" and self.days is not None)
        )


class LocaleText(BaseModel):
    """A protocol's tips and preparation in one language other than English, item for
    item with the English lists. A list left out is read in English."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tips: tuple[PatientText, ...] | None = None
    preparation: tuple[PatientText, ...] | None = None


class Protocol(BaseModel):
    """A treatment course: phases in order, caps, session minutes, screening and tips."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    name: str = Field(min_length=1)
    description: str = ""
    condition: str = Field(min_length=1)
    max_per_week: int = Field(ge=1, le=7)
    hdss_dry_max: int = Field(default=2, ge=1, le=4)
    # Left out, the areas `minutes` names (a clinic's file from before areas existed).
    body_areas: tuple[str, ...] = ()
    minutes: dict[str, int]
    dose_ma_min: float | None = Field(default=None, gt=0)
    # The question asked after a session: an id in `reminders.outcomes.SCALES`.
    outcome_scale: str | None = None
    # What the scale's reports mean and which review a course without a response gets.
    # Left out of the stored body when unset (a clinic's file from before outcome rules).
    outcome: OutcomeRule | None = Field(default=None, exclude_if=lambda rule: rule is None)
    default_weekdays: tuple[Weekday, ...] = WEEKDAYS  # type: ignore[assignment]
    contraindications: tuple[str, ...] = ()
    # Side effects that stop the plan until a clinician decides (`reminders.safety`).
    # Left out of the stored body when it is the default, so older files keep their digest.
    hold_on: tuple[SideEffect, ...] = Field(
        default=DEFAULT_HOLD_ON, exclude_if=lambda hold_on: hold_on == DEFAULT_HOLD_ON
    )
    tips: tuple[str, ...] = ()
    # Given at the clinic: planned on its open days, recorded by staff, the patient
    # reminded of the appointment the day before with these preparations.
    given_at: Literal["home", "clinic"] = "home"
    # A clinic-given course that starts again (after a pause or a hold) books its first
    # appointment at least this many days ahead. Left out of the stored body when 2.
    notice_days: int = Field(default=2, ge=0, le=28, exclude_if=lambda days: days == 2)
    preparation: tuple[str, ...] = ()
    # `tips` and `preparation` in the other shipped languages, keyed by locale. Left out
    # of the stored body when empty, so a file without translations keeps its digest.
    text: dict[str, LocaleText] = Field(default_factory=dict, exclude_if=lambda text: not text)
    sources: tuple[str, ...] = Field(min_length=1)
    phases: tuple[Phase, ...] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _areas_from_minutes(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("body_areas"):
            minutes = data.get("minutes")
            if isinstance(minutes, dict):
                data = {**data, "body_areas": [a for a in minutes if a != "default"]}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Protocol:
        if "default" not in self.minutes:
            raise ValueError("minutes needs a 'default' entry")
        for area, value in self.minutes.items():
            if not 1 <= value <= 120:
                raise ValueError(f"minutes.{area} must be between 1 and 120")
            if area != "default" and area not in self.body_areas:
                raise ValueError(f"minutes.{area} is not one of body_areas")
        if self.outcome_scale is not None and self.outcome_scale not in SCALES:
            raise ValueError(f"outcome_scale must be one of {', '.join(SCALES)}")
        if self.outcome is not None:
            if self.scale is None:
                raise ValueError("outcome needs an outcome_scale")
            unknown_codes = [c for c in self.outcome.codes() if c not in self.scale.values]
            if unknown_codes:
                raise ValueError(
                    f"outcome: {', '.join(unknown_codes)} not a code of {self.scale.id}"
                )
        unknown = set(self.contraindications) - set(CONTRAINDICATIONS)
        if unknown:
            raise ValueError(f"unknown contraindication(s): {', '.join(sorted(unknown))}")
        if not self.default_weekdays:
            raise ValueError("default_weekdays must not be empty")
        names = [p.name for p in self.phases]
        if len(set(names)) != len(names):
            raise ValueError("phase names must be unique")
        for i, phase in enumerate(self.phases):
            if phase.return_to is not None and phase.return_to not in names[:i]:
                raise ValueError(f"phases[{i}].return_to must name an earlier phase")
            if phase.per_week is not None and phase.per_week > self.max_per_week:
                raise ValueError(f"phases[{i}].per_week is above max_per_week")
            if i < len(self.phases) - 1 and not phase.ends:
                raise ValueError(f"phases[{i}] never ends, so later phases are unreachable")
        return self

    @model_validator(mode="after")
    def _texts_match_english(self) -> Protocol:
        for locale, text in self.text.items():
            if locale not in TEXT_LOCALES:
                raise ValueError(
                    f"text.{locale}: not a translated locale; use one of "
                    f"{', '.join(TEXT_LOCALES)} (English is the file's own tips and preparation)"
                )
            for field, translated, english in (
                ("tips", text.tips, self.tips),
                ("preparation", text.preparation, self.preparation),
            ):
                if translated is not None and len(translated) != len(english):
                    raise ValueError(
                        f"text.{locale}.{field}: {len(translated)} item(s), but the English "
                        f"{field} has {len(english)}; give one translation per English item, "
                        "in the same order"
                    )
        return self

    def phase_index(self, name: str) -> int:
        """Return the position of the phase called `name`; raise KeyError if none."""
        for i, phase in enumerate(self.phases):
            if phase.name == name:
                return i
        raise KeyError(name)

    @property
    def scale(self) -> OutcomeScale | None:
        """The outcome scale the protocol asks, or None."""
        return SCALES[self.outcome_scale] if self.outcome_scale else None

    def body_area(self, name: str) -> str | None:
        """Return the protocol's name for a body area (synonyms accepted), or None."""
        wanted = name.strip().lower().replace(" ", "-")
        wanted = BODY_AREA_SYNONYMS.get(wanted, wanted)
        return wanted if wanted in self.body_areas else None

    def tips_in(self, locale: str) -> tuple[str, ...]:
        """Return the tips in a shipped locale ("en", "de", "es", "fr", "pt-BR"), in
        English when the protocol has none in that locale."""
        text = self.text.get(locale)
        return text.tips if text is not None and text.tips is not None else self.tips

    def preparation_in(self, locale: str) -> tuple[str, ...]:
        """Return the preparation in a shipped locale ("en", "de", "es", "fr", "pt-BR"),
        in English when the protocol has none in that locale."""
        text = self.text.get(locale)
        if text is not None and text.preparation is not None:
            return text.preparation
        return self.preparation

    def session_minutes(self, body_area: str | None) -> int:
        """Return the session length for a body area, falling back to the default."""
        if body_area and body_area in self.minutes:
            return self.minutes[body_area]
        return self.minutes["default"]


def load_protocol(path: Path) -> Protocol:
    """Return the protocol in one TOML file; raise ProtocolError naming file and field."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProtocolError(f"{path}: cannot read: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ProtocolError(f"{path}: not valid TOML: {exc}") from exc
    if "id" in data:
        raise ProtocolError(f"{path}: id: the id is the file name; remove the field")
    try:
        return Protocol.model_validate({"id": path.stem, **data})
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"])
            if err["type"] == "value_error":
                # A rule of this module: its message names the field when the place does not.
                message = str(err["ctx"]["error"])
                problems.append(f"{field}: {message}" if field else message)
            else:
                problems.append(f"{field or '(file)'}: {err['msg']}")
        raise ProtocolError(f"{path}: " + "; ".join(problems)) from exc


def load_protocols(folder: Path) -> dict[str, Protocol]:
    """Return every protocol in `folder` by id; raise ProtocolError on the first bad file."""
    if not folder.is_dir():
        raise ProtocolError(f"{folder}: protocol folder not found")
    protocols = {p.stem: load_protocol(p) for p in sorted(folder.glob("*.toml"))}
    if not protocols:
        raise ProtocolError(f"{folder}: no protocol files (*.toml)")
    return protocols
