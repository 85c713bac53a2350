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
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

import sqlalchemy as sa
from pydantic import ValidationError
from sqlmodel import Session, col

from reminders.db.bulk import EarlierBatchFailed, InsertWriter, collector_paused
from reminders.db.engine import session_scope
from reminders.db.rows import PreparedInsert, prepare_row_insert
from reminders.errors import InvalidInput, RemindersError
from reminders.models import EnrollmentCreate, Patient, PatientCreate, PatientUpdate
from reminders.runtime import Runtime
from reminders.services import clinics, patients
from reminders.services.enrollments import EnrollRequest, prepare_enrollments, register_versions
from reminders.services.reminding import PatientFacts

# The CSV's columns; only these may appear, and the required ones must.
REQUIRED = ("name", "timezone", "external_id", "protocol", "start_date", "screening")
OPTIONAL = ("email", "reminder_time", "channel", "locale", "body_area", "weekdays",
            "override_reason")  # fmt: skip
COLUMNS = REQUIRED + OPTIONAL
PATIENT_COLUMNS = ("name", "email", "timezone", "reminder_time", "channel", "locale",
                   "external_id")  # fmt: skip
LIST_SEPARATOR = ";"
NONE_PRESENT = "none"
BATCH = 5000
# What no import file needs: a file past them is refused whole before anything is read
# into the database, rather than parsed at length (a million columns) or crashing.
MAX_COLUMNS = 64
MAX_FIELD = 10_000
MAX_LINE = 1_000_000
SHAPE = "\0shape"  # a row whose fields do not match the header: why
_BATCHES_IN_FLIGHT = 3
Row = tuple[int, dict[str, str]]  # a data row with the line it starts on


@dataclass(frozen=True, slots=True)
class Refusal:
    """A row not imported: its line in the file, the column at fault, and why."""

    line: int
    field: str
    message: str


@dataclass(frozen=True, slots=True)
class KnownRow:
    """A row whose patient the clinic already has (by external id)."""

    line: int
    external_id: str


@dataclass(frozen=True, slots=True)
class Stop:
    """Where an import stopped because a batch could not be written: the batches
    before it are written, it and the rest of the file are not."""

    line: int
    reason: str


@dataclass
class ImportReport:
    """What an import did (or, dry, would do)."""

    dry_run: bool
    imported: int = 0
    sessions: int = 0
    updated: list[KnownRow] = field(default_factory=list)
    known: list[KnownRow] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    stopped: Stop | None = None


class BadFile(RemindersError):
    """The file is not an import file at all (its header is wrong)."""


def check_file(stream: IO[str]) -> int:
    """Read a whole import file once, as the import will (`read_rows`), and return how
    many lines it has; raise BadFile as `read_rows` does. Nothing is kept, so a file of
    any size is checked in constant memory before anything of it is written."""
    lines = _BoundedLines(stream)
    for _ in _rows_of(lines):
        pass
    return lines.number


def read_rows(stream: IO[str]) -> Iterator[Row]:
    """Check the header of a CSV import file and return its data rows, each with the
    line it starts on. Raise BadFile, naming the line and the limit, if the header names
    an unknown column, repeats one, lacks a required one or names over `MAX_COLUMNS`; as
    the rows are read, if a line is over `MAX_LINE` characters, a field over `MAX_FIELD`,
    or the CSV cannot be read. A UTF-8 byte order mark (Excel's "CSV UTF-8") is allowed."""
    return _rows_of(_BoundedLines(stream))


def _rows_of(lines: _BoundedLines) -> Iterator[Row]:
    reader = csv.DictReader(lines)
    with _read_as(lines):
        names = reader.fieldnames or []
    if len(names) > MAX_COLUMNS:
        raise BadFile(f"header: {len(names)} columns; an import file has at most {MAX_COLUMNS}")
    header = [name.removeprefix("\ufeff").strip().lower() for name in names]
    if not header:
        raise BadFile("empty: no header line naming the columns")
    if len(header) == 1 and ";" in header[0]:
        raise BadFile("the columns are separated by ';': save the file as comma-separated CSV")
    reader.fieldnames = header
    unknown = [c for c in header if c not in COLUMNS]
    repeated = sorted(c for c, n in Counter(header).items() if n > 1)
    missing = [c for c in REQUIRED if c not in header]
    problems = [f"unknown column(s): {', '.join(unknown)}"] if unknown else []
    problems += [f"repeated column(s): {', '.join(repeated)}"] if repeated else []
    problems += [f"missing column(s): {', '.join(missing)}"] if missing else []
    if problems:
        raise BadFile(f"header: {'; '.join(problems)} (columns: {', '.join(COLUMNS)})")
    return _rows(reader, lines)


def _rows(reader: csv.DictReader[str], lines: _BoundedLines) -> Iterator[Row]:
    while True:
        line = lines.number + 1
        with _read_as(lines):
            row = next(reader, None)
        if row is None:
            return
        if any(len(value) > MAX_FIELD for value in _fields(row)):
            raise BadFile(f"line {lines.number}: {_FIELD_LIMIT}")
        if None in row:
            yield line, {SHAPE: "more fields than the header names"}
        elif None in row.values():
            yield line, {SHAPE: "fewer fields than the header names"}
        else:
            yield line, {k: v.strip() for k, v in row.items() if v and v.strip()}


def _fields(row: dict[str | None, Any]) -> Iterator[str]:
    """Every field of a row, those past the header's columns included."""
    for value in row.values():
        if isinstance(value, list):
            yield from value
        elif value is not None:
            yield value


_FIELD_LIMIT = f"a field is over {MAX_FIELD:,} characters, more than any column takes"


class _BoundedLines:
    """The stream's lines, each read no further than `MAX_LINE`; `number` is the line
    last read (the one csv is parsing)."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.number = 0

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        line = self.stream.readline(MAX_LINE + 1)
        if not line:
            raise StopIteration
        self.number += 1
        if len(line) > MAX_LINE:
            raise BadFile(f"line {self.number}: over {MAX_LINE:,} characters; not an import file")
        return line


@contextmanager
def _read_as(lines: _BoundedLines) -> Iterator[None]:
    """CSV that cannot be read as BadFile naming its line (a field past csv's own limit
    is one past ours, and says so)."""
    try:
        yield
    except csv.Error as exc:
        problem = _FIELD_LIMIT if "field limit" in str(exc) else str(exc)
        raise BadFile(f"line {lines.number}: {problem}") from None


def _parse(
    raw: dict[str, str], contraindications: Callable[[str], tuple[str, ...]], welcome: bool
) -> tuple[PatientCreate, EnrollmentCreate]:
    """Return a row as the API's inputs, the enrollment with or without the welcome;
    raise InvalidInput naming the column."""
    if SHAPE in raw:
        raise InvalidInput("row", raw[SHAPE])
    person = {k: raw[k] for k in PATIENT_COLUMNS if k in raw}
    wanted: dict[str, Any] = {
        k: raw[k] for k in ("protocol", "start_date", "body_area", "override_reason") if k in raw
    }
    wanted["welcome"] = welcome
    # Codes are case-insensitive in a file people typed: "Email", "Palms".
    if "channel" in person:
        person["channel"] = person["channel"].lower()
    for code in ("protocol", "body_area"):
        if code in wanted:
            wanted[code] = wanted[code].lower()
    if "weekdays" in raw:
        wanted["weekdays"] = [d.strip() for d in raw["weekdays"].split(LIST_SEPARATOR)]
    if "screening" in raw:
        wanted["screening"] = _screening(
            raw["screening"], contraindications(wanted.get("protocol", ""))
        )
    if "external_id" not in raw:
        raise InvalidInput("external_id", "required: it makes a second run skip what is imported")
    try:
        return PatientCreate.model_validate(person), EnrollmentCreate.model_validate(wanted)
    except ValidationError as exc:
        error = exc.errors()[0]
        column = str(error["loc"][0]) if error["loc"] else "row"
        raise InvalidInput(column, _in_words(column, error["type"], error["msg"])) from None


def _in_words(column: str, kind: str, message: str) -> str:
    """A validation message as a clinic's staff would want it."""
    if kind == "missing":
        return "required"
    if column == "start_date":
        if "outside expected range" in message:  # 2026-02-30: the shape is right
            return "no such date"
        return "not a date: write it as YYYY-MM-DD"
    if column == "reminder_time":
        return "not a time: write it as HH:MM, 00:00 to 23:59"
    return message.removeprefix("Value error, ")


def _screening(text: str, contraindications: tuple[str, ...]) -> dict[str, bool]:
    """`none`, or the contraindications present separated by `;`: every one the
    protocol lists is answered (the others as absent)."""
    if text.lower() == NONE_PRESENT:
        return dict.fromkeys(contraindications, False)
    present = {name.strip().lower() for name in text.split(LIST_SEPARATOR) if name.strip()}
    return {**dict.fromkeys(contraindications, False), **dict.fromkeys(present, True)}


@dataclass
class _NewPatients:
    """A batch's new patients: their rows, lines and enrollment requests, by position."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    requests: list[EnrollRequest] = field(default_factory=list)
    facts: dict[str, PatientFacts] = field(default_factory=dict)

    def add(self, line: int, row: dict[str, Any], request: EnrollRequest) -> None:
        self.rows.append(row)
        self.lines.append(line)
        self.requests.append(request)
        self.facts[row["id"]] = _facts(row)


@dataclass(slots=True)
class _Batch:
    """What one batch writes, in order, and what it counts for once written."""

    inserts: list[PreparedInsert]
    external_ids: list[str]
    patients: int
    sessions: int
    first_line: int = 0


@dataclass
class _Importer:
    rt: Runtime
    clinic_id: str
    now: datetime
    update: bool
    report: ImportReport
    versions: dict[str, int]
    welcome: bool
    # External ids of rows sent to the writer and not yet known to be written (or, dry,
    # of every row), with their lines: the database answers for the rest, since the
    # patients this import wrote carry its `now` as their created_at.
    pending_ids: dict[str, int] = field(default_factory=dict)
    defaults: patients.PatientDefaults = field(init=False)

    def __post_init__(self) -> None:
        # Worked out once, not for each of a million rows.
        self.defaults = patients.PatientDefaults.of(self.rt.settings)

    def batch(self, db: Session, rows: list[Row]) -> _Batch | None:
        """Check and plan one batch; return what to write (None when nothing is new)."""
        parsed = self._parsed(rows)
        known = _known_ids(db, self.clinic_id, [p.external_id for _, p, _ in parsed])
        new = _NewPatients()
        for line, person, wanted in parsed:
            external = str(person.external_id)
            earlier = self.pending_ids.get(external)
            if earlier is None and external in known:
                patient_id, created_at = known[external]
                if created_at != self.now:
                    self._known(line, person, patient_id)
                    continue
            if earlier is not None or external in known:
                where = f"line {earlier}" if earlier else "an earlier line of this file"
                self._refuse(line, InvalidInput("external_id", f"already given on {where}"))
                continue
            try:
                row = patients.patient_row(self.clinic_id, person, self.defaults, self.now)
                if person.channel == "webhook":
                    patients.check_webhook_channel(db, self.clinic_id)
            except InvalidInput as problem:
                self._refuse(line, problem)
                continue
            self.pending_ids[external] = line
            new.add(line, row, EnrollRequest(row["id"], wanted))
        return self._enrolled(db, new)

    def _parsed(self, rows: list[Row]) -> list[tuple[int, PatientCreate, EnrollmentCreate]]:
        parsed = []
        for line, raw in rows:
            try:
                parsed.append((line, *_parse(raw, self._contraindications, self.welcome)))
            except InvalidInput as problem:
                self._refuse(line, problem)
        return parsed

    def _enrolled(self, db: Session, new: _NewPatients) -> _Batch | None:
        """Plan the new patients' enrollments; those refused are left out whole."""
        refused: set[int] = set()

        def not_enrolled(index: int, problem: RemindersError) -> None:
            refused.add(index)
            self._refuse(new.lines[index], problem)
            self.pending_ids.pop(str(new.rows[index]["external_id"]), None)

        prepared = prepare_enrollments(
            db, self.rt, self.clinic_id, new.requests, self.now,
            versions=self.versions, new_patients=new.facts, refused=not_enrolled,
        )  # fmt: skip
        kept = [row for i, row in enumerate(new.rows) if i not in refused]
        if not kept:
            return None
        patients_insert = prepare_row_insert(db.get_bind().dialect, Patient, kept)
        return _Batch(
            # Patients first: enrollments refer to them.
            [patients_insert, *prepared.inserts],
            [str(row["external_id"]) for row in kept],
            len(kept),
            prepared.sessions,
        )

    def _contraindications(self, protocol_id: str) -> tuple[str, ...]:
        protocol = self.rt.protocols.get(protocol_id)
        return protocol.contraindications if protocol is not None else ()

    def _refuse(self, line: int, problem: RemindersError) -> None:
        where = problem.field if isinstance(problem, InvalidInput) else "row"
        message = problem.message if isinstance(problem, InvalidInput) else str(problem)
        self.report.refused.append(Refusal(line, where, message))

    def _known(self, line: int, person: PatientCreate, patient_id: str) -> None:
        row = KnownRow(line, str(person.external_id))
        if not self.update:
            self.report.known.append(row)
            return
        changes = PatientUpdate.model_validate(person.model_dump(exclude_unset=True))
        if not self.report.dry_run:
            try:
                with session_scope(self.rt.engine) as db:
                    patients.update_patient(
                        db, self.rt, self.clinic_id, patient_id, changes, self.now, by="import"
                    )
            except RemindersError as problem:
                self._refuse(line, problem)
                return
        self.report.updated.append(row)


def _facts(row: dict[str, Any]) -> PatientFacts:
    """What planning needs of a patient not written yet."""
    return PatientFacts(
        row["id"], row["clinic_id"], row["timezone"], row["reminder_time"],
        row["quiet_start"], row["quiet_end"], row["channel"], None,
    )  # fmt: skip


def _known_ids(
    db: Session, clinic_id: str, external_ids: list[str | None]
) -> dict[str, tuple[str, datetime]]:
    """Return the clinic's patients among these external ids: external id -> (patient
    id, when the patient was added)."""
    wanted = sorted({e for e in external_ids if e})
    if not wanted:
        return {}
    found = db.execute(
        sa.select(col(Patient.external_id), col(Patient.id), col(Patient.created_at)).where(
            col(Patient.clinic_id) == clinic_id,
            col(Patient.external_id).in_(wanted),
        )
    )
    return {str(external): (patient_id, created) for external, patient_id, created in found}


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
    rows: Iterable[Row],
    now: datetime,
    *,
    dry_run: bool = False,
    update: bool = False,
    welcome: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import `rows` (from `read_rows`) into the clinic; return what was done. With
    `dry_run` everything is checked and planned and nothing written. With `welcome`, each
    patient enrolled is sent a welcome with their plan. `progress` is told how many rows
    each batch held.

    `now` is the import's instant, and also tells the patients it wrote from those
    already there (they carry it as their `created_at`): two runs need two instants, as
    two readings of the runtime's clock are.

    Raises NotFound for an unknown clinic. A batch that cannot be written stops the
    import (`ImportReport.stopped`): the batches before stay written, and running the
    import again skips them."""
    with session_scope(rt.engine, write=not dry_run) as db:
        clinics.get_clinic(db, clinic_id)
        # A dry run records nothing, protocol versions included.
        versions = {} if dry_run else register_versions(db, rt, set(rt.protocols), now)
    report = ImportReport(dry_run)
    importer = _Importer(rt, clinic_id, now, update, report, versions, welcome)
    writer = None if dry_run else InsertWriter(rt.settings.database_url)
    in_flight: deque[tuple[Future[None], _Batch]] = deque()
    try:
        with collector_paused():
            for batch in _batches(rows):
                with session_scope(rt.engine, write=False) as db:
                    planned = importer.batch(db, batch)
                if planned is not None:
                    planned.first_line = batch[0][0]
                    if writer is None:
                        _count(report, planned)
                    else:
                        in_flight.append((writer.submit(planned.inserts), planned))
                while len(in_flight) > _BATCHES_IN_FLIGHT and report.stopped is None:
                    _written(in_flight.popleft(), importer, report)
                if progress is not None:
                    progress(len(batch))
                if report.stopped is not None:
                    break
                # With the collector paused, the cycles a batch leaves (its session,
                # its transaction) would pile up for the whole file: collect them now,
                # when the batch's rows are gone and little is left to scan.
                del planned, batch
                gc.collect(0)
    finally:
        while in_flight:
            _written(in_flight.popleft(), importer, report)
        if writer is not None:
            writer.close()
    report.refused.sort(key=lambda refusal: refusal.line)
    return report


def _count(report: ImportReport, batch: _Batch) -> None:
    report.imported += batch.patients
    report.sessions += batch.sessions


def _written(sent: tuple[Future[None], _Batch], importer: _Importer, report: ImportReport) -> None:
    """Wait for a batch sent to the writer and count it; from then on the database
    knows its external ids. The first batch that fails is where the import stopped."""
    future, batch = sent
    try:
        future.result()
    except EarlierBatchFailed:
        return  # not written because the stop came before it
    except Exception as exc:  # the writer's error, whatever the database said
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        report.stopped = report.stopped or Stop(batch.first_line, reason)
        return
    _count(report, batch)
    for external in batch.external_ids:
        importer.pending_ids.pop(external, None)
