"""Bulk import: `reminders import --clinic ID patients.csv` enrolls a clinic's patients
from its own system, one CSV row per patient and enrollment.

Every row is checked with the rules the API applies; a refused row is reported with its
line and field, and the others are imported. Rows are idempotent by external id: a
patient the clinic already has is skipped (reported), or with `update` has their
details changed. Batches are checked and planned here while a writer process writes
the ones before (the fast bulk path, `db.InsertWriter`), each batch one transaction, so
an import uses two cores and memory does not grow with the file.
"""

from __future__ import annotations

import csv
import gc
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

import sqlalchemy as sa
from pydantic import ValidationError
from sqlmodel import Session, col

from reminders.db import InsertWriter, collector_paused, prepare_row_insert, session_scope
from reminders.errors import InvalidInput, RemindersError
from reminders.models import EnrollmentCreate, Patient, PatientCreate, PatientUpdate, utcnow
from reminders.runtime import Runtime
from reminders.services import clinics, patients
from reminders.services.enrollments import (
    EnrollRequest,
    PreparedEnrollments,
    prepare_enrollments,
    register_versions,
)
from reminders.services.reminding import PatientFacts

# The CSV's columns; only these may appear, and the first five must.
REQUIRED = ("name", "timezone", "external_id", "protocol", "start_date")
OPTIONAL = ("email", "reminder_time", "channel", "locale", "body_area", "weekdays",
            "screening", "override_reason")  # fmt: skip
COLUMNS = REQUIRED + OPTIONAL
PATIENT_COLUMNS = ("name", "email", "timezone", "reminder_time", "channel", "locale",
                   "external_id")  # fmt: skip
LIST_SEPARATOR = ";"
NONE_PRESENT = "none"
BATCH = 5000
_BATCHES_IN_FLIGHT = 3


@dataclass(frozen=True, slots=True)
class Refusal:
    """A row not imported: its line in the file, the column at fault, and why."""

    line: int
    field: str
    message: str


@dataclass
class ImportReport:
    """What an import did (or, dry, would do)."""

    dry_run: bool
    imported: int = 0
    sessions: int = 0
    updated: list[tuple[int, str]] = field(default_factory=list)
    known: list[tuple[int, str]] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)


class BadFile(RemindersError):
    """The file is not an import file at all (its header is wrong)."""


def read_rows(stream: IO[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield each data row of a CSV import file with its line number; raise BadFile if
    the header names an unknown column or lacks a required one."""
    reader = csv.DictReader(stream)
    header = reader.fieldnames or []
    unknown = [c for c in header if c not in COLUMNS]
    missing = [c for c in REQUIRED if c not in header]
    if unknown or missing:
        problems = [f"unknown column(s): {', '.join(unknown)}"] if unknown else []
        problems += [f"missing column(s): {', '.join(missing)}"] if missing else []
        raise BadFile(f"header: {'; '.join(problems)} (columns: {', '.join(COLUMNS)})")
    for row in reader:
        yield reader.line_num, {k: v.strip() for k, v in row.items() if k and v and v.strip()}


def _parse(raw: dict[str, str], contraindications: Callable[[str], tuple[str, ...]]) -> tuple[
    PatientCreate, EnrollmentCreate
]:  # fmt: skip
    """Return a row as the API's inputs; raise InvalidInput naming the column."""
    person = {k: raw[k] for k in PATIENT_COLUMNS if k in raw}
    wanted: dict[str, Any] = {
        k: raw[k] for k in ("protocol", "start_date", "body_area", "override_reason") if k in raw
    }
    if "weekdays" in raw:
        wanted["weekdays"] = [d.strip() for d in raw["weekdays"].split(LIST_SEPARATOR)]
    if "screening" in raw:
        wanted["screening"] = _screening(
            raw["screening"], contraindications(raw.get("protocol", ""))
        )
    if "external_id" not in raw:
        raise InvalidInput("external_id", "required: it makes a second run skip what is imported")
    try:
        return PatientCreate.model_validate(person), EnrollmentCreate.model_validate(wanted)
    except ValidationError as exc:
        error = exc.errors()[0]
        raise InvalidInput(str(error["loc"][0]) if error["loc"] else "row", error["msg"]) from None


def _screening(text: str, contraindications: tuple[str, ...]) -> dict[str, bool]:
    """`none`, or the contraindications present separated by `;`: every one the
    protocol lists is answered (the others as absent)."""
    if text.lower() == NONE_PRESENT:
        return dict.fromkeys(contraindications, False)
    present = {name.strip() for name in text.split(LIST_SEPARATOR) if name.strip()}
    return {**dict.fromkeys(contraindications, False), **dict.fromkeys(present, True)}


@dataclass
class _Importer:
    rt: Runtime
    clinic_id: str
    now: datetime
    update: bool
    report: ImportReport
    versions: dict[str, int]
    # External ids of rows sent to the writer and not yet known to be written (or, dry,
    # of every row): the database answers for the rest.
    pending_ids: dict[str, int] = field(default_factory=dict)

    def batch(self, db: Session, rows: list[tuple[int, dict[str, str]]]) -> tuple[
        PreparedEnrollments | None, list[str]
    ]:  # fmt: skip
        """Check and plan one batch; return its inserts (None when nothing is new) and
        the external ids it adds."""
        parsed = []
        for line, raw in rows:
            try:
                parsed.append((line, *_parse(raw, self._contraindications)))
            except InvalidInput as problem:
                self._refuse(line, problem)
        known = _known_ids(db, self.clinic_id, [p.external_id for _, p, _ in parsed])
        default_time = self.rt.settings.default_reminder_time.strftime("%H:%M")
        new_rows: list[dict[str, Any]] = []
        lines: list[int] = []
        requests: list[EnrollRequest] = []
        facts: dict[str, PatientFacts] = {}
        for line, person, wanted in parsed:
            external = str(person.external_id)
            if external in self.pending_ids:
                first = self.pending_ids[external]
                self._refuse(line, InvalidInput("external_id", f"also on line {first}"))
                continue
            if external in known:
                self._known(line, person, known[external])
                continue
            try:
                row = patients.patient_row(self.clinic_id, person, default_time, self.now)
                if person.channel == "webhook":
                    patients.check_webhook_channel(db, self.clinic_id)
            except InvalidInput as problem:
                self._refuse(line, problem)
                continue
            self.pending_ids[external] = line
            facts[row["id"]] = _facts(row)
            new_rows.append(row)
            lines.append(line)
            requests.append(EnrollRequest(row["id"], wanted))
        refused: set[int] = set()

        def not_enrolled(index: int, problem: RemindersError) -> None:
            refused.add(index)
            self._refuse(lines[index], problem)
            self.pending_ids.pop(str(new_rows[index]["external_id"]), None)

        prepared = prepare_enrollments(
            db, self.rt, self.clinic_id, requests, self.now,
            versions=self.versions, new_patients=facts, refused=not_enrolled,
        )  # fmt: skip
        kept = [row for i, row in enumerate(new_rows) if i not in refused]
        self.report.imported += len(kept)
        self.report.sessions += len(prepared.inserts[1].params)
        if not kept:
            return None, []
        dialect = db.get_bind().dialect
        prepared.inserts.insert(0, prepare_row_insert(dialect, Patient, kept))
        return prepared, [str(row["external_id"]) for row in kept]

    def _contraindications(self, protocol_id: str) -> tuple[str, ...]:
        protocol = self.rt.protocols.get(protocol_id)
        return protocol.contraindications if protocol is not None else ()

    def _refuse(self, line: int, problem: RemindersError) -> None:
        where = problem.field if isinstance(problem, InvalidInput) else "row"
        message = problem.message if isinstance(problem, InvalidInput) else str(problem)
        self.report.refused.append(Refusal(line, where, message))

    def _known(self, line: int, person: PatientCreate, patient_id: str) -> None:
        if not self.update:
            self.report.known.append((line, str(person.external_id)))
            return
        self.report.updated.append((line, str(person.external_id)))
        if self.report.dry_run:
            return
        changes = PatientUpdate.model_validate(person.model_dump(exclude_unset=True))
        with session_scope(self.rt.engine) as db:
            patients.update_patient(
                db, self.rt, self.clinic_id, patient_id, changes, self.now, by="import"
            )


def _facts(row: dict[str, Any]) -> PatientFacts:
    """What planning needs of a patient not written yet."""
    return PatientFacts(
        row["id"], row["clinic_id"], row["timezone"], row["reminder_time"],
        row["quiet_start"], row["quiet_end"], row["channel"], None,
    )  # fmt: skip


def _known_ids(db: Session, clinic_id: str, external_ids: list[str | None]) -> dict[str, str]:
    """Return the clinic's patients among these external ids: external id -> patient id."""
    wanted = sorted({e for e in external_ids if e})
    if not wanted:
        return {}
    found = db.execute(
        sa.select(col(Patient.external_id), col(Patient.id)).where(
            col(Patient.clinic_id) == clinic_id,
            col(Patient.external_id).in_(wanted),
        )
    )
    return {str(external): patient_id for external, patient_id in found}


def _batches(
    rows: Iterable[tuple[int, dict[str, str]]],
) -> Iterator[list[tuple[int, dict[str, str]]]]:
    batch: list[tuple[int, dict[str, str]]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def import_patients(
    rt: Runtime,
    clinic_id: str,
    rows: Iterable[tuple[int, dict[str, str]]],
    now: datetime | None = None,
    *,
    dry_run: bool = False,
    update: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import `rows` (from `read_rows`) into the clinic; return what was done. With
    `dry_run` everything is checked and planned and nothing written. `progress` is told
    how many rows each batch held.

    Raises NotFound for an unknown clinic, BadFile for a bad header. A failure to write
    stops the import: the batches before stay written, and running the import again
    skips them."""
    now = now or utcnow()
    with session_scope(rt.engine) as db:
        clinics.get_clinic(db, clinic_id)
        versions = register_versions(db, rt, set(rt.protocols), now)
    report = ImportReport(dry_run)
    importer = _Importer(rt, clinic_id, now, update, report, versions)
    in_flight: deque[tuple[Future[None], list[str]]] = deque()
    writer = None if dry_run else InsertWriter(rt.settings.database_url)
    try:
        with collector_paused():
            for batch in _batches(rows):
                with session_scope(rt.engine, write=False) as db:
                    prepared, added = importer.batch(db, batch)
                if writer is not None and prepared is not None:
                    in_flight.append((writer.submit(prepared.inserts), added))
                while len(in_flight) > _BATCHES_IN_FLIGHT:
                    _written(in_flight.popleft(), importer.pending_ids)
                if progress is not None:
                    progress(len(batch))
                # With the collector paused, the cycles a batch leaves (its session,
                # its transaction) would pile up for the whole file: collect them now,
                # when the batch's rows are gone and little is left to scan.
                del prepared, batch
                gc.collect(0)
    finally:
        failure: BaseException | None = None
        while in_flight:
            try:
                _written(in_flight.popleft(), importer.pending_ids)
            except Exception as error:
                failure = failure or error
        if writer is not None:
            writer.close()
        if failure is not None:
            raise failure
    report.refused.sort(key=lambda refusal: refusal.line)
    return report


def _written(sent: tuple[Future[None], list[str]], pending_ids: dict[str, int]) -> None:
    """Wait for a batch sent to the writer; from then on the database knows its ids."""
    sent[0].result()
    for external in sent[1]:
        pending_ids.pop(external, None)
