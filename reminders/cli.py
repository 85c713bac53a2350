"""The `reminders` command: a thin layer over settings, services and the planner."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
import typer
from pydantic import BaseModel, ValidationError
from sqlmodel import Session

from reminders import __version__
from reminders.db import schema
from reminders.db.backup import (
    Progress,
    backup_sqlite,
    check_backup,
    erased_patients,
    restore_sqlite,
    sqlite_file,
)
from reminders.db.engine import forget_overwritten, session_scope
from reminders.errors import RemindersError
from reminders.models import (
    AbsenceCreate,
    Acknowledgement,
    ApiKeyPublic,
    ClinicHours,
    ClinicIdentity,
    ClinicPublic,
    ClosedDateCreate,
    EnrollmentCreate,
    HoldDecisionCreate,
    PatientCreate,
    PatientPublic,
    PauseRequest,
    PlanPreview,
    ReviewDecisionCreate,
    SessionReport,
)
from reminders.planner import AssumedResponse, EnrollmentSettings, Plan, preview
from reminders.protocols import ProtocolError, load_protocols
from reminders.runtime import Runtime
from reminders.services import (
    absences,
    api_keys,
    calendar_feed,
    clinic_days,
    clinics,
    course_status,
    enrollments,
    erasure,
    escalations,
    holds,
    importing,
    patients,
    reading,
    sessions,
    staff,
    webhooks,
)
from reminders.services.audit import Actor
from reminders.services.holds import HoldDecision
from reminders.services.patients import PatientDefaults
from reminders.settings import Settings, SettingsError, load_settings, validate_timezone
from reminders.simulation import STORIES, simulate_in_throwaway
from reminders.stores import session_store
from reminders.weekdays import parse_weekdays, weekday_name

app = typer.Typer()
clinic_app = typer.Typer(help="Clinics (tenants): create, list, show, hours, closed days.")
patient_app = typer.Typer(help="Patients of a clinic.")
plan_app = typer.Typer(help="Read plans: preview a protocol or show an enrollment.")
session_app = typer.Typer(help="Record what a patient did.")
webhook_app = typer.Typer(help="A clinic's webhook endpoints.")
enrollment_app = typer.Typer(
    help="Change an enrollment: pause, resume, withdraw, review, decide on a hold."
)
absence_app = typer.Typer(help="Dates a patient is away: nothing is planned or reminded.")
escalation_app = typer.Typer(help="The clinic's escalation inbox.")
key_app = typer.Typer(help="A clinic's named API keys: create, list, revoke.")
staff_app = typer.Typer(help="Staff accounts of the web app (/app).")
app.add_typer(clinic_app, name="clinic")
app.add_typer(enrollment_app, name="enrollment")
app.add_typer(absence_app, name="absence")
app.add_typer(escalation_app, name="escalation")
app.add_typer(key_app, name="key")
app.add_typer(staff_app, name="staff")
app.add_typer(patient_app, name="patient")
app.add_typer(plan_app, name="plan")
app.add_typer(session_app, name="session")
app.add_typer(webhook_app, name="webhook")

M = TypeVar("M", bound=BaseModel)


JSON_OPTION = typer.Option(False, "--json", help="Print JSON instead of a table.")


def _print_json(data: object) -> None:
    json.dump(data, sys.stdout, indent=2)
    typer.echo()


def _print_fields(fields: dict[str, object]) -> None:
    """One `name: value` line a field (lists joined with commas, None left blank)."""
    for name, value in fields.items():
        shown = ", ".join(map(str, value)) if isinstance(value, list) else value
        typer.echo(f"{name}: {'' if shown is None else shown}")


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _settings(**overrides: Any) -> Settings:
    try:
        return load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except SettingsError as exc:
        raise _fail(str(exc), 2) from None


def _show_version(asked: bool) -> None:
    if asked:
        typer.echo(f"reminders {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    _version: bool = typer.Option(
        False, "--version", callback=_show_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """Keeps iontophoresis patients on their treatment schedule."""
    # Whatever a command writes (the database, the Maildir, keys) holds patient data or
    # secrets: its owner's alone.
    os.umask(0o077)


@contextmanager
def _runtime(*, database_needed: bool = True, **overrides: Any) -> Iterator[Runtime]:
    """The runtime for a command (settings `overrides` win over the environment and the
    config file); one that uses the database stops at once, with what to do, if its
    schema is missing or out of date, instead of failing on every query."""
    settings = _settings(**overrides)
    with _database_reachable(settings):
        try:
            runtime = Runtime.from_settings(settings)
        except ProtocolError as exc:
            raise _fail(str(exc), 2) from None
    try:
        with _database_reachable(settings):
            problem = schema.schema_mismatch(runtime.engine) if database_needed else None
        if problem:
            raise _fail(problem, 2)
        yield runtime
    finally:
        runtime.close()


@contextmanager
def _database_reachable(settings: Settings) -> Iterator[None]:
    """A database that cannot be opened or reached stops a command with one line."""
    try:
        yield
    except (sa.exc.OperationalError, sa.exc.InterfaceError, OSError) as exc:
        where = sa.engine.make_url(settings.database_url).render_as_string(hide_password=True)
        reason = getattr(exc, "orig", None) or exc
        text = str(reason).strip().splitlines()[0] if str(reason).strip() else type(reason).__name__
        raise _fail(f"cannot open the database {where}: {text}", 2) from None


@contextmanager
def _transaction(runtime: Runtime) -> Iterator[Session]:
    """A unit of work; a service error becomes a one-line message naming the field."""
    try:
        with session_scope(runtime.engine) as db:
            yield db
    except RemindersError as exc:
        raise _fail(str(exc)) from None


def _validated(model: type[M], data: dict[str, Any]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        raise _fail(f"{field}: {err['msg']}") from None


def _weekdays(text: str | None) -> list[str] | None:
    """Weekday names given as "mon,wed,fri"; none given (or empty) means every day."""
    return [d.strip().lower() for d in text.split(",") if d.strip()] if text else None


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema (safe to run again)."""
    settings = _settings()
    with _database_reachable(settings):
        before, after = schema.migrate(settings.database_url)
    if before == after:
        typer.echo(f"database is up to date (revision {after})")
    elif before is None:
        typer.echo(f"database created at revision {after}")
    else:
        typer.echo(f"database upgraded from revision {before} to {after}")


@contextmanager
def _progress(label: str) -> Iterator[Progress]:
    """A progress bar for a copy that reports (pages done, pages)."""
    with typer.progressbar(length=1, label=label, file=sys.stderr) as bar:
        shown = 0

        def advance(done: int, total: int) -> None:
            nonlocal shown
            bar.length = max(total, 1)
            bar.update(done - shown)
            shown = done

        yield advance


@contextmanager
def _copying(file: Path, server_tool: str) -> Iterator[None]:
    """What can go wrong copying a database, as one-line messages."""
    try:
        yield
    except ValueError as exc:
        raise _fail(f"{exc}; for PostgreSQL use {server_tool}", 2) from None
    except FileNotFoundError as exc:
        raise _fail(f"no database at {exc}: run `reminders migrate` first", 2) from None
    except FileExistsError:
        raise _fail(f"{file} exists; a backup never overwrites a file", 2) from None
    except NotADirectoryError as exc:
        raise _fail(str(exc), 2) from None
    except OSError as exc:
        raise _fail(f"cannot copy: {exc.strerror or exc}", 2) from None


@app.command()
def backup(
    file: Path = typer.Argument(..., help="The new file to copy the database to."),
) -> None:
    """Copy the SQLite database to FILE while the service runs (a consistent copy).
    PostgreSQL: use pg_dump (see the README)."""
    settings = _settings()
    with _copying(file, "pg_dump"), _progress("copying") as progress:
        size = backup_sqlite(settings.database_url, file, progress)
    typer.echo(f"database copied to {file} ({size:,} bytes)")


@app.command()
def restore(
    file: Path = typer.Argument(..., help="A copy made by `reminders backup`."),
    yes: bool = typer.Option(False, "--yes", help="Replace the database without asking."),
) -> None:
    """Go back to a backup: check it, save the current SQLite database beside it, copy
    the backup in, bring it to this version's schema, and erase again the patients
    erased since. Stop `serve` and every `worker` first. PostgreSQL: use pg_restore (see
    the README)."""
    settings = _settings()
    with _copying(file, "pg_restore"):
        sqlite_file(settings.database_url)
    try:
        revision = check_backup(file)
    except ValueError as exc:
        raise _fail(str(exc), 2) from None
    typer.echo(f"{file}: a sound database at schema revision {revision}")
    if not yes and not typer.confirm("Replace the database with it?"):
        raise _fail("nothing changed", 1)
    with _copying(file, "pg_restore"), _progress("restoring") as progress:
        saved = restore_sqlite(settings.database_url, file, progress)
    before, after = schema.migrate(settings.database_url)
    typer.echo(f"database restored from {file} (revision {before}, now {after})")
    if saved is None:
        return
    typer.echo(f"the database it replaced is saved as {saved}")
    erased = [
        (patient, by, datetime.fromisoformat(at).replace(tzinfo=UTC))
        for patient, by, at in erased_patients(saved)
    ]
    with _runtime() as runtime, _transaction(runtime) as db:
        again = erasure.erase_again(db, runtime, erased)
    if again:
        forget_overwritten(runtime.engine)
        typer.echo(f"{again} patient(s) erased since the backup were erased again")


@app.command()
def serve(
    host: str | None = typer.Option(None, help="Address to listen on (setting http_host)."),
    port: int | None = typer.Option(
        None, min=1, max=65535, help="Port to listen on (setting http_port)."
    ),
    reload: bool = typer.Option(
        False, "--reload", help="Development: restart when the code or config changes."
    ),
) -> None:
    """Run the service: the scheduler and the HTTP API."""
    from reminders import server  # uvicorn and FastAPI: only for serve and worker

    with _runtime(http_host=host, http_port=port) as runtime:
        if reload:
            server.run_reloading(runtime.settings)
            return
        _serving(runtime, runtime.settings.http_port, with_api=True)


@app.command()
def worker(
    host: str | None = typer.Option(None, help="Address to listen on (setting http_host)."),
    port: int | None = typer.Option(
        None, min=1, max=65535, help="Port for /healthz, /readyz, /metrics (worker_port)."
    ),
) -> None:
    """Run only the scheduler (dispatch, sweep, housekeeping), serving just /healthz,
    /readyz and /metrics; `serve` elsewhere answers the API."""
    with _runtime(http_host=host, worker_port=port) as runtime:
        _serving(runtime, runtime.settings.worker_port, with_api=False)


def _serving(runtime: Runtime, port: int, *, with_api: bool) -> None:
    from reminders.server import run_server

    try:
        run_server(runtime, with_api=with_api)
    except OSError as exc:
        address = f"{runtime.settings.http_host}:{port}"
        raise _fail(f"cannot listen on {address}: {exc.strerror or exc}", 2) from None


@app.command("import")
def import_file(
    file: Path = typer.Argument(..., help="CSV file, one patient per row (see the README)."),
    clinic: str = typer.Option(..., help="Clinic id."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Check and plan every row, write nothing."
    ),
    update: bool = typer.Option(
        False, "--update", help="Change the details of patients already known by external id."
    ),
    welcome: bool = typer.Option(
        False, "--welcome", help="Send each patient enrolled a welcome with their plan."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Import a clinic's patients, each enrolled and planned: refused rows are listed by
    line and column and the others imported; a patient the clinic already has (same
    external id) is skipped, or with --update has their details changed. Sends no
    messages beyond the plan's reminders unless --welcome. Exit code 1 when some row was
    refused, 2 when the import stopped (what was written before stays)."""
    try:
        with file.open(newline="", encoding="utf-8-sig") as stream:
            lines = importing.check_file(stream)
    except importing.BadFile as exc:
        raise _fail(f"{file}: {exc}", 2) from None
    except OSError as exc:
        raise _fail(f"cannot read {file}: {exc.strerror or exc}", 2) from None
    except UnicodeDecodeError as exc:
        raise _fail(f"{file}: not UTF-8 text (byte {exc.start}); save it as CSV UTF-8", 2) from None
    with (
        _runtime() as runtime,
        file.open(newline="", encoding="utf-8-sig") as stream,
        typer.progressbar(length=max(lines - 1, 1), label="importing", file=sys.stderr) as bar,
    ):
        try:
            report = importing.import_patients(
                runtime, clinic, importing.read_rows(stream), runtime.clock(),
                dry_run=dry_run, update=update,
                welcome=welcome, progress=bar.update,
            )  # fmt: skip
        except importing.BadFile as exc:
            raise _fail(f"{file}: {exc}", 2) from None
        except RemindersError as exc:
            raise _fail(str(exc), 2) from None
    if as_json:
        _print_json(dataclasses.asdict(report))
    else:
        _print_import_report(report)
    if report.stopped is not None:
        raise typer.Exit(2)
    if report.refused:
        raise typer.Exit(1)


def _print_import_report(report: importing.ImportReport, shown: int = 20) -> None:
    """Refused rows first and all of them (each needs fixing); known and updated ones
    up to `shown` (--json lists every one)."""
    would = "would be " if report.dry_run else ""
    typer.echo(
        f"{report.imported} patient(s) {would}imported and enrolled, {report.sessions} "
        f"session(s) {would}planned"
    )
    if report.refused:
        typer.echo(f"{len(report.refused)} refused (nothing of them written):")
        for refusal in report.refused:
            typer.echo(f"  line {refusal.line}: {refusal.field}: {refusal.message}")
    for title, rows in ((f"{would}updated", report.updated),
                        ("already known, skipped", report.known)):  # fmt: skip
        if rows:
            typer.echo(f"{len(rows)} {title}:")
            for known in rows[:shown]:
                typer.echo(f"  line {known.line}: external_id {known.external_id}")
            if len(rows) > shown:
                typer.echo(f"  … and {len(rows) - shown} more (--json lists every one)")
    if report.stopped is not None:
        typer.echo(
            f"stopped at the batch starting on line {report.stopped.line}: "
            f"{report.stopped.reason}; the rows before it are imported, and running the "
            "import again skips them"
        )


@app.command()
def simulate(
    protocol: str = typer.Option(..., help="Protocol id (see `reminders protocols`)."),
    start: str = typer.Option(..., help="Start date, YYYY-MM-DD."),
    days: int = typer.Option(200, min=1, max=730, help="How many days to simulate."),
    story: str = typer.Option(..., help="What the patient does: " + ", ".join(STORIES) + "."),
    timezone: str = typer.Option("Europe/Berlin", help="The patient's IANA time zone."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Run one patient's course through the real service on a throwaway database, with a
    simulated clock, and show what the patient and the clinic would receive each day."""
    if story not in STORIES:
        raise _fail(f"story: expected one of {', '.join(STORIES)}")
    try:
        start_date = date.fromisoformat(start)
    except ValueError:
        raise _fail(f"start: not a date (YYYY-MM-DD): {start!r}") from None
    try:
        validate_timezone(timezone)
    except ValueError as exc:
        raise _fail(f"timezone: {exc}") from None
    try:
        result = simulate_in_throwaway(_settings(), protocol, start_date, days, story, timezone)
    except ProtocolError as exc:
        raise _fail(str(exc), 2) from None
    except RemindersError as exc:
        raise _fail(str(exc)) from None
    if as_json:
        _print_json(result.as_json())
        return
    typer.echo(f"{protocol}, story {story!r} ({STORIES[story]}), {timezone}")
    _print_table(
        ["date", "day", "phase", "patient receives", "clinic receives"],
        [
            [d.date.isoformat(), _day(d.date), d.phase, " ".join(d.patient), " ".join(d.clinic)]
            for d in result.days
            if d.patient or d.clinic
        ],
    )
    typer.echo("totals: " + ", ".join(f"{k} {v}" for k, v in result.totals.items()))
    for refused in result.refused:
        typer.echo(f"refused: {refused}")


@app.command("protocols")
def list_protocols() -> None:
    """List the installed protocols."""
    with _runtime(database_needed=False) as runtime:
        for protocol in runtime.protocols.values():
            phases = " -> ".join(p.name for p in protocol.phases)
            typer.echo(f"{protocol.id:32} {protocol.name}  [{phases}]")


@clinic_app.command("create")
def clinic_create(
    name: str,
    alert_email: str | None = typer.Option(
        None, help="Where the clinic is told about dead deliveries and escalations."
    ),
) -> None:
    """Create a clinic and print its API key (shown only this once)."""
    with _runtime() as runtime, _transaction(runtime) as db:
        clinic, api_key = clinics.create_clinic(db, name, runtime.clock(), alert_email)
    typer.echo(f"clinic {clinic.id}")
    typer.echo(f"api key {api_key}")
    typer.echo("Store the key now: it is kept only as a hash and cannot be shown again.")


@clinic_app.command("list")
def clinic_list(as_json: bool = JSON_OPTION) -> None:
    """List the clinics, oldest first."""
    with _runtime() as runtime, _transaction(runtime) as db:
        found = [ClinicPublic.of(c) for c in clinics.list_clinics(db)]
    if as_json:
        _print_json([c.model_dump(mode="json") for c in found])
        return
    _print_table(["id", "name", "timezone"], [[c.id, c.name, c.timezone or ""] for c in found])


@clinic_app.command("show")
def clinic_show(
    clinic: str = typer.Argument(..., help="Clinic id."), as_json: bool = JSON_OPTION
) -> None:
    """Show a clinic: its hours and where its alerts go."""
    with _runtime() as runtime, _transaction(runtime) as db:
        row = clinics.get_clinic(db, clinic)
        shown = {**ClinicPublic.of(row).model_dump(mode="json"), "alert_email": row.alert_email}
    if as_json:
        _print_json(shown)
        return
    _print_fields(shown)


@key_app.command("create")
def key_create(
    name: str = typer.Argument(..., help="What will use the key, e.g. ehr-sync."),
    clinic: str = typer.Option(..., help="Clinic id."),
) -> None:
    """Create an API key for a clinic and print it (shown only this once)."""
    with _runtime() as runtime, _transaction(runtime) as db:
        clinics.get_clinic(db, clinic)
        key, secret = api_keys.create_key(db, clinic, name, runtime.clock())
    typer.echo(f"api key {key.name} ({key.id})")
    typer.echo(secret)
    typer.echo("Store the key now: it is kept only as a hash and cannot be shown again.")


@key_app.command("list")
def key_list(
    clinic: str = typer.Option(..., help="Clinic id."), as_json: bool = JSON_OPTION
) -> None:
    """List a clinic's API keys, revoked ones included (never the keys themselves)."""
    with _runtime() as runtime, _transaction(runtime) as db:
        clinics.get_clinic(db, clinic)
        found = [ApiKeyPublic.of(k) for k in api_keys.list_keys(db, clinic)]
    if as_json:
        _print_json([k.model_dump(mode="json") for k in found])
        return
    _print_table(
        ["id", "name", "created", "last used", "revoked"],
        [[k.id, k.name, _minute(k.created_at), _minute(k.last_used_at), _minute(k.revoked_at)]
         for k in found],
    )  # fmt: skip


def _minute(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M}" if moment is not None else ""


@key_app.command("revoke")
def key_revoke(
    key: str = typer.Argument(..., help="The key's id or name."),
    clinic: str = typer.Option(..., help="Clinic id."),
) -> None:
    """Revoke a key: within a second no process accepts it."""
    with _runtime() as runtime, _transaction(runtime) as db:
        clinics.get_clinic(db, clinic)
        revoked = api_keys.revoke_key(db, clinic, key, runtime.clock())
    typer.echo(f"api key {revoked.name} ({revoked.id}) revoked")


@clinic_app.command("hours")
def clinic_hours(
    clinic: str = typer.Argument(..., help="Clinic id."),
    open_weekdays: str | None = typer.Option(
        None, "--open", help="Weekdays it gives appointments, e.g. mon,tue,wed,thu,fri."
    ),
    timezone: str | None = typer.Option(None, help="The clinic's IANA time zone."),
) -> None:
    """Set when a clinic gives appointments (protocols given at the clinic)."""
    wanted = _validated(
        ClinicHours, {"timezone": timezone, "open_weekdays": _weekdays(open_weekdays)}
    )
    with _runtime() as runtime, _transaction(runtime) as db:
        found = clinic_days.set_hours(
            db, runtime, clinic, runtime.clock(),
            timezone=wanted.timezone, open_weekdays=wanted.open_weekdays,
        )  # fmt: skip
    typer.echo(f"clinic {found.id} open {found.open_weekdays}")


@clinic_app.command("identity")
def clinic_identity(
    clinic: str = typer.Argument(..., help="Clinic id."),
    display_name: str | None = typer.Option(
        None, help='The name patients\' messages come from ("<name> via Reminders").'
    ),
    reply_to: str | None = typer.Option(None, help="Where patients' replies to an email go."),
    phone: str | None = typer.Option(None, help="A number patients can call."),
    digest: str | None = typer.Option(
        None, help="The clinic's digest at 07:30 its time: daily, weekly (Mondays) or off."
    ),
) -> None:
    """Set how patients see and reach a clinic, and its digest; options left out stay as
    they are."""
    given = {"display_name": display_name, "reply_to": reply_to, "phone": phone, "digest": digest}
    wanted = _validated(ClinicIdentity, {k: v for k, v in given.items() if v is not None})
    with _runtime() as runtime, _transaction(runtime) as db:
        found = clinics.set_identity(
            db, clinic, wanted, runtime.clock(), actor=Actor("command line")
        )
        shown = ClinicPublic.of(found).model_dump(mode="json")
    _print_fields(shown)


@staff_app.command("add")
def staff_add(
    clinic: str = typer.Option(..., "--clinic", help="Clinic id."),
    email: str = typer.Option(..., "--email", help="Their email address (one clinic only)."),
    role: str = typer.Option("clinician", "--role", help="admin or clinician."),
) -> None:
    """Add a staff member and print their one-time setup link (it works for three days)."""
    with _runtime() as runtime, _transaction(runtime) as db:
        now = runtime.clock()
        member = staff.add_member(db, clinic, email, role, Actor("command line"), now)
        link = staff.setup_link(db, runtime, member, now)
    typer.echo(f"staff {member.id} {member.email} ({member.role})")
    typer.echo(f"setup link (once, within 3 days, while the service runs): {link}")


@staff_app.command("list")
def staff_list(clinic: str = typer.Option(..., "--clinic", help="Clinic id.")) -> None:
    """List a clinic's staff."""
    with _runtime() as runtime, _transaction(runtime) as db:
        members = staff.members_of(db, clinic)
        rows = [(m.id, m.email, m.role, "disabled" if m.disabled_at else "") for m in members]
    for row in rows:
        typer.echo("\t".join(row))


@clinic_app.command("close")
def clinic_close(
    clinic: str = typer.Argument(..., help="Clinic id."),
    day: str = typer.Option(..., "--date", help="Closed on, YYYY-MM-DD."),
    reason: str | None = typer.Option(None),
) -> None:
    """Record a day the clinic is closed; appointments move off it."""
    wanted = _validated(ClosedDateCreate, {"date": day, "reason": reason})
    with _runtime() as runtime, _transaction(runtime) as db:
        clinic_days.close_on(db, runtime, clinic, wanted.day, wanted.reason, runtime.clock())
    typer.echo(f"clinic {clinic} closed on {wanted.day}")


@patient_app.command("list")
def patient_list(
    clinic: str = typer.Option(..., help="Clinic id."),
    external_id: str | None = typer.Option(None, help="Only the patient with this id."),
    as_json: bool = JSON_OPTION,
) -> None:
    """List a clinic's patients, oldest first."""
    found: list[PatientPublic] = []
    with _runtime() as runtime, _transaction(runtime) as db:
        clinics.get_clinic(db, clinic)
        cursor = None
        while True:
            page = reading.list_patients(db, clinic, cursor, reading.MAX_PAGE, external_id)
            found.extend(PatientPublic.of(p) for p in page.items)
            if (cursor := page.next_cursor) is None:
                break
    if as_json:
        _print_json([p.model_dump(mode="json") for p in found])
        return
    _print_table(
        ["id", "external id", "name", "channel", "timezone"],
        [[p.id, p.external_id or "", p.name, p.channel, p.timezone] for p in found],
    )


@patient_app.command("show")
def patient_show(
    patient: str = typer.Argument(..., help="Patient id, or the clinic's external id."),
    clinic: str = typer.Option(..., help="Clinic id."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Show a patient and their enrollments."""
    with _runtime() as runtime, _transaction(runtime) as db:
        clinics.get_clinic(db, clinic)
        found = patients.find_patient(db, clinic, patient)
        shown = {
            **PatientPublic.of(found).model_dump(mode="json"),
            "enrollments": [
                {"id": e.id, "protocol": e.protocol_id, "body_area": e.body_area,
                 "status": e.status, "phase": e.phase}
                for e in enrollments.enrollments_of(db, found.id)
            ],
        }  # fmt: skip
    if as_json:
        _print_json(shown)
        return
    _print_fields({k: v for k, v in shown.items() if k != "enrollments"})
    for e in shown["enrollments"]:
        typer.echo(f"enrollment {e['id']}: {e['protocol']} {e['body_area'] or ''} "
                   f"{e['status']} ({e['phase']})")  # fmt: skip


@patient_app.command("add")
def patient_add(
    clinic: str = typer.Option(..., help="Clinic id."),
    name: str = typer.Option(...),
    timezone: str = typer.Option(..., help="IANA time zone, e.g. Europe/Berlin."),
    email: str | None = typer.Option(None),
    reminder_time: str | None = typer.Option(
        None, help="Local HH:MM (default: the default_reminder_time setting)."
    ),
    channel: str = typer.Option("email", help="email or webhook."),
    quiet_hours: str | None = typer.Option(None, help="Local HH:MM-HH:MM, e.g. 21:00-08:00."),
    locale: str = typer.Option("en"),
    external_id: str | None = typer.Option(None),
) -> None:
    """Add a patient to a clinic and print the patient id."""
    quiet = None
    if quiet_hours is not None:
        start, _, end = quiet_hours.partition("-")
        quiet = {"start": start, "end": end}
    data = {
        "name": name,
        "email": email,
        "timezone": timezone,
        "reminder_time": reminder_time,
        "channel": channel,
        "quiet_hours": quiet,
        "locale": locale,
        "external_id": external_id,
    }
    request = _validated(PatientCreate, data)
    with _runtime() as runtime, _transaction(runtime) as db:
        patient = patients.add_patient(
            db, clinic, request, runtime.clock(),
            defaults=PatientDefaults.of(runtime.settings),
        )  # fmt: skip
    typer.echo(f"patient {patient.id}")


@patient_app.command("calendar")
def patient_calendar(
    patient: str = typer.Argument(..., help="Patient id."),
    revoke: bool = typer.Option(
        False, "--revoke", help="Stop the current link from working and print a new one."
    ),
) -> None:
    """Print the patient's private calendar feed link (messages carry it too)."""
    with _runtime() as runtime, _transaction(runtime) as db:
        found = patients.get_patient(db, None, patient)
        link_of = calendar_feed.revoke_feed if revoke else calendar_feed.feed_link
        link = link_of(db, runtime, found, runtime.clock())
    typer.echo(link)


@app.command()
def enroll(
    patient: str = typer.Argument(..., help="Patient id."),
    protocol: str = typer.Option(..., help="Protocol id (see `reminders protocols`)."),
    start: str = typer.Option(..., help="Start date, YYYY-MM-DD."),
    screened: bool = typer.Option(
        False, "--screened", help="Confirms the patient was screened for every contraindication."
    ),
    contraindication: list[str] = typer.Option(
        [], help="A contraindication the screening found (repeat for several)."
    ),
    override_reason: str | None = typer.Option(None, help="Why to enroll despite one."),
    body_area: str | None = typer.Option(
        None, help="The treated area, e.g. palms; required where the protocol lists areas."
    ),
    weekdays: str | None = typer.Option(None, help="Allowed weekdays, e.g. mon,wed,fri."),
    welcome: bool = typer.Option(
        True, "--welcome/--no-welcome", help="Send the patient a welcome with their plan."
    ),
) -> None:
    """Enroll a patient in a protocol and write the first horizon of sessions."""
    if not screened:
        raise _fail("screening: pass --screened to confirm the contraindication screening")
    with _runtime() as runtime:
        chosen = runtime.protocols.get(protocol)
        if chosen is None:
            raise _fail(f"protocol: unknown protocol {protocol!r}")
        unknown = sorted(set(contraindication) - set(chosen.contraindications))
        if unknown:
            raise _fail(f"contraindication: not screened by this protocol: {', '.join(unknown)}")
        screening = {c: c in contraindication for c in chosen.contraindications}
        request = _validated(
            EnrollmentCreate,
            {
                "protocol": protocol,
                "start_date": start,
                "body_area": body_area,
                "weekdays": _weekdays(weekdays),
                "screening": screening,
                "override_reason": override_reason,
                "welcome": welcome,
            },
        )
        with _transaction(runtime) as db:
            found = patients.get_patient(db, None, patient)
            enrollment = enrollments.enroll(
                db, runtime, found.clinic_id, found.id, request, runtime.clock()
            )
            rows = session_store.of_enrollment(db, enrollment.id)
    typer.echo(f"enrollment {enrollment.id} ({enrollment.protocol_id}, phase {enrollment.phase})")
    _print_table(
        ["date", "day", "phase", "minutes", "status"],
        [
            [r.local_date.isoformat(), _day(r.local_date), r.phase, r.minutes, r.status]
            for r in rows
        ],
    )


def _day(day: date) -> str:
    return weekday_name(day.weekday()).capitalize()


def _print_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [list(header), *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


RESPONSE_HELP = (
    "Assumed response, repeatable: dry-after=N (dry, HDSS 1, from session N on), "
    "relapse-at=N (HDSS 4 at session N), never-dry (HDSS 4 every time: a non-responder)."
)


def _parse_response(items: Sequence[str]) -> AssumedResponse | None:
    if not items:
        return None
    dry_after: int | None = None
    never_dry = False
    relapses: set[int] = set()
    for item in items:
        key, _, value = item.partition("=")
        if key == "never-dry" and not value:
            never_dry = True
        elif key in ("dry-after", "relapse-at") and value.isdigit() and int(value) >= 1:
            if key == "dry-after":
                dry_after = int(value)
            else:
                relapses.add(int(value))
        else:
            raise _fail(f"response: expected dry-after=N, relapse-at=N or never-dry, got {item!r}")
    return AssumedResponse(dry_after, never_dry, frozenset(relapses))


@plan_app.command("preview")
def plan_preview(
    protocol: str = typer.Option(..., help="Protocol id."),
    start: str = typer.Option(..., help="Start date, YYYY-MM-DD."),
    response: list[str] = typer.Option([], help=RESPONSE_HELP),
    days: int = typer.Option(182, min=1, max=730, help="How far to show an ongoing plan."),
    weekdays: str | None = typer.Option(None, help="Allowed weekdays, e.g. mon,wed,fri."),
    body_area: str | None = typer.Option(None),
    as_json: bool = JSON_OPTION,
) -> None:
    """Show the whole plan for a protocol from a start date, assuming full adherence."""
    settings = _settings()
    try:
        protocols = load_protocols(settings.protocols_path)
    except ProtocolError as exc:
        raise _fail(str(exc), 2) from None
    chosen = protocols.get(protocol)
    if chosen is None:
        raise _fail(f"protocol: unknown protocol {protocol!r}")
    try:
        start_date = date.fromisoformat(start)
    except ValueError:
        raise _fail(f"start: not a date (YYYY-MM-DD): {start!r}") from None
    try:
        names = _weekdays(weekdays)
        allowed = None if names is None else parse_weekdays(names, "weekdays")
        area = enrollments.body_area_of(chosen, body_area, "body_area")
    except RemindersError as exc:
        raise _fail(str(exc)) from None
    settings_for_plan = EnrollmentSettings(start_date, allowed, area)
    result = preview(chosen, settings_for_plan, days, _parse_response(response))
    if as_json:
        _print_json(PlanPreview.of(chosen.id, start_date, result).model_dump(mode="json"))
        return
    typer.echo(f"{chosen.name} ({chosen.id}) from {start_date.isoformat()}")
    _print_table(
        ["date", "day", "phase", "minutes"],
        [
            [s.local_date.isoformat(), _day(s.local_date), s.phase, s.minutes]
            for s in result.sessions
        ],
    )
    _print_changes(result)


def _print_changes(result: Plan) -> None:
    for change in result.changes:
        on = change.on.isoformat()
        if change.is_review:
            typer.echo(
                f"after {on}: review: no response in {change.from_phase}; reminders go on"
                " until a clinician decides (continue, move on or end)"
            )
            continue
        to = change.to_phase or "end of course"
        typer.echo(f"after {on}: {change.from_phase} -> {to} ({change.reason})")
    if result.completed or (result.changes and result.changes[-1].to_phase is None):
        typer.echo("the course ends: the patient and the clinic are told")
    for reason in result.review:
        typer.echo(f"review open: {reason}")


@enrollment_app.command("show")
@plan_app.command("show")
def plan_show(
    enrollment: str = typer.Argument(..., help="Enrollment id."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Show an enrollment's sessions: past ones with what happened, then the plan."""
    with _runtime() as runtime, _transaction(runtime) as db:
        found = enrollments.get_enrollment(db, None, enrollment)
        rows = session_store.of_enrollment(db, found.id)
    if as_json:
        document = {
            "enrollment": found.id,
            "protocol": found.protocol_id,
            "status": found.status,
            "phase": found.phase,
            "review": found.review_reason,
            "sessions": [
                {
                    "id": r.id,
                    "date": r.local_date.isoformat(),
                    "phase": r.phase,
                    "minutes": r.minutes,
                    "status": r.status,
                    "hdss": r.hdss,
                }
                for r in rows
            ],
        }
        _print_json(document)
        return
    typer.echo(
        f"enrollment {found.id}: {found.protocol_id}, {found.status}, phase {found.phase}"
        + (f", review: {found.review_reason}" if found.review_reason else "")
    )
    _print_table(
        ["session", "date", "day", "phase", "minutes", "status", "hdss"],
        [
            [
                r.id,
                r.local_date.isoformat(),
                _day(r.local_date),
                r.phase,
                r.minutes,
                r.status,
                "" if r.hdss is None else r.hdss,
            ]
            for r in rows
        ],
    )


def _record(action: Callable[[Session, Runtime], None]) -> None:
    with _runtime() as runtime, _transaction(runtime) as db:
        action(db, runtime)


@session_app.command("confirm")
def session_confirm(
    session: str = typer.Argument(..., help="Session id."),
    hdss: int | None = typer.Option(None, help="HDSS 1-4 reported by the patient."),
    outcome: str | None = typer.Option(
        None, help="A code of the protocol's outcome scale, e.g. 1+ on the Modified Ashworth."
    ),
    side_effect: str | None = typer.Option(
        None, help="none, dryness, redness, blistering, burn or other."
    ),
    note: str | None = typer.Option(None, help="What the side effect was."),
    current_ma: float | None = typer.Option(None, help="Current in mA."),
    minutes: int | None = typer.Option(None, help="Minutes actually treated."),
) -> None:
    """Record a session as done and re-plan the enrollment."""
    report = _validated(
        SessionReport,
        {
            "hdss": hdss,
            "outcome": outcome,
            "side_effect": side_effect,
            "side_effect_note": note,
            "current_ma": current_ma,
            "minutes": minutes,
        },
    )

    def action(db: Session, runtime: Runtime) -> None:
        sessions.confirm_session(db, runtime, None, session, report, runtime.clock())

    _record(action)
    typer.echo(f"session {session} confirmed")


@session_app.command("skip")
def session_skip(
    session: str = typer.Argument(..., help="Session id."),
    reason: str | None = typer.Option(None),
) -> None:
    """Record that a session will not be done and re-plan the enrollment."""

    def action(db: Session, runtime: Runtime) -> None:
        sessions.skip_session(db, runtime, None, session, reason, runtime.clock())

    _record(action)
    typer.echo(f"session {session} skipped")


@webhook_app.command("add")
def webhook_add(
    url: str = typer.Argument(..., help="https URL of the clinic's receiver."),
    clinic: str = typer.Option(..., help="Clinic id."),
    events: str = typer.Option("*", help="Event types, comma-separated, or * for all."),
) -> None:
    """Register a webhook endpoint and print its signing secret (shown only this once)."""
    with _runtime() as runtime, _transaction(runtime) as db:
        endpoint = webhooks.add_endpoint(db, runtime.settings, clinic, url, runtime.clock(), events)
    typer.echo(f"endpoint {endpoint.id}")
    typer.echo(f"secret {endpoint.secret}")
    typer.echo("Verify signatures with this secret (Standard Webhooks).")


@webhook_app.command("listen")
def webhook_listen(
    secret: str = typer.Option(..., help="The endpoint's signing secret (whsec_…)."),
    port: int = typer.Option(9000, min=1, max=65535),
    host: str = typer.Option("127.0.0.1"),
    show_sms: bool = typer.Option(
        False, "--show-sms", help="Also print the SMS text of each relayed patient message."
    ),
) -> None:
    """Receive webhooks for trying them out: check each signature and print one line
    per delivery (type, id, whether the signature is good). Ctrl-C stops."""
    from reminders.webhook_receiver import receiver

    def say(line: str) -> None:
        typer.echo(line)
        sys.stdout.flush()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server = receiver(host, port, secret, say, show_sms=show_sms)
    except ValueError as exc:
        raise _fail(f"secret: {exc}") from None
    except OSError as exc:
        raise _fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}", 2) from None
    say(f"listening on http://{host}:{port}")
    with server, contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


def _change_enrollment(enrollment: str, status: str, **options: Any) -> None:
    with _runtime() as runtime, _transaction(runtime) as db:
        found = course_status.set_status(
            db, runtime, None, enrollment, status, runtime.clock(), **options
        )
        until = f" until {found.paused_until}" if found.paused_until else ""
    typer.echo(f"enrollment {found.id} {found.status}{until}")


@enrollment_app.command("pause")
def enrollment_pause(
    enrollment: str = typer.Argument(..., help="Enrollment id."),
    until: str | None = typer.Option(None, help="Local date it resumes by itself, YYYY-MM-DD."),
    reason: str | None = typer.Option(None, help="Why, for the clinic's record."),
) -> None:
    """Pause: no sessions, reminders, misses or lapses until it resumes."""
    wanted = _validated(PauseRequest, {"until": until, "reason": reason})
    _change_enrollment(enrollment, "paused", until=wanted.until, reason=wanted.reason)


@enrollment_app.command("resume")
def enrollment_resume(enrollment: str = typer.Argument(..., help="Enrollment id.")) -> None:
    """Resume a paused enrollment: the plan starts again from today."""
    _change_enrollment(enrollment, "active")


@enrollment_app.command("withdraw")
def enrollment_withdraw(enrollment: str = typer.Argument(..., help="Enrollment id.")) -> None:
    """End an enrollment early: no more sessions or reminders."""
    _change_enrollment(enrollment, "withdrawn")


@enrollment_app.command("review")
def enrollment_review(
    enrollment: str = typer.Argument(..., help="Enrollment id."),
    decision: str = typer.Option(..., help="continue, move_on or end."),
    by: str | None = typer.Option(None, help="Who decided."),
    note: str | None = typer.Option(None),
) -> None:
    """Answer an open review (a patient who has not responded)."""
    wanted = _validated(ReviewDecisionCreate, {"decision": decision, "by": by, "note": note})
    with _runtime() as runtime, _transaction(runtime) as db:
        found = course_status.decide_review(
            db, runtime, None, enrollment, wanted.decision, runtime.clock(),
            decided_by=wanted.by, note=wanted.note,
        )  # fmt: skip
    typer.echo(f"enrollment {found.id} {found.status}, phase {found.phase}")


@enrollment_app.command("hold-decision")
def enrollment_hold_decision(
    enrollment: str = typer.Argument(..., help="Enrollment id."),
    decision: str = typer.Option(..., help="continue, pause or end."),
    by: str = typer.Option(..., help="The clinician who decided."),
    until: str | None = typer.Option(None, help="For a pause: the local date it ends."),
    note: str | None = typer.Option(None),
) -> None:
    """Answer a plan held after a side effect: continue, pause until a day, or end."""
    wanted = _validated(
        HoldDecisionCreate, {"decision": decision, "by": by, "until": until, "note": note}
    )
    answer = HoldDecision.of(wanted)
    with _runtime() as runtime, _transaction(runtime) as db:
        who = Actor(f"{wanted.by} (command line)")
        found = holds.decide_hold(db, runtime, None, enrollment, answer, runtime.clock(), actor=who)
        until_text = f" until {found.paused_until}" if found.paused_until else ""
    typer.echo(f"enrollment {found.id} {found.status}{until_text}")


@enrollment_app.command("upgrade")
def enrollment_upgrade(enrollment: str = typer.Argument(..., help="Enrollment id.")) -> None:
    """Move an enrollment to the installed version of its protocol file and re-plan."""
    with _runtime() as runtime, _transaction(runtime) as db:
        found, before, after = course_status.move_to_current_protocol(
            db, runtime, None, enrollment, runtime.clock()
        )
    typer.echo(f"enrollment {found.id}: {found.protocol_id} version {before} -> {after}")


@absence_app.command("add")
def absence_add(
    patient: str = typer.Argument(..., help="Patient id."),
    first: str = typer.Option(..., "--from", help="First local date away, YYYY-MM-DD."),
    last: str = typer.Option(..., "--to", help="Last local date away, YYYY-MM-DD."),
    reason: str | None = typer.Option(None),
) -> None:
    """Record that a patient is away; the plan picks up after it."""
    wanted = _validated(AbsenceCreate, {"from": first, "to": last, "reason": reason})
    with _runtime() as runtime, _transaction(runtime) as db:
        found = patients.get_patient(db, None, patient)
        absence = absences.add_absence(
            db, runtime, found, wanted.first, wanted.last, wanted.reason, "clinic", runtime.clock()
        )
    typer.echo(f"absence {absence.id} {absence.first_date} to {absence.last_date}")


@absence_app.command("list")
def absence_list(patient: str = typer.Argument(..., help="Patient id.")) -> None:
    """List a patient's absences."""
    with _runtime() as runtime, _transaction(runtime) as db:
        rows = absences.list_absences(db, patients.get_patient(db, None, patient))
        table = [[a.id, a.first_date, a.last_date, a.set_by, a.reason or ""] for a in rows]
    _print_table(["absence", "from", "to", "set by", "reason"], table)


@absence_app.command("remove")
def absence_remove(absence: str = typer.Argument(..., help="Absence id.")) -> None:
    """Remove an absence (the patient is back early) and re-plan."""
    with _runtime() as runtime, _transaction(runtime) as db:
        absences.remove_absence(db, runtime, None, absence, runtime.clock())
    typer.echo(f"absence {absence} removed")


@escalation_app.command("list")
def escalation_list(
    clinic: str = typer.Option(..., help="Clinic id."),
    state: str | None = typer.Option("open", help="open, acknowledged, or all."),
    limit: int = typer.Option(50, min=1, max=200),
) -> None:
    """List a clinic's escalations, newest first."""
    wanted = None if state == "all" else state
    with _runtime() as runtime, _transaction(runtime) as db:
        clinics.get_clinic(db, clinic)
        page = escalations.list_escalations(db, clinic, wanted, None, limit)
        table = [
            [e.id, e.created_at.strftime("%Y-%m-%d %H:%M"), e.reason, e.state, e.detail]
            for e in page.items
        ]
    _print_table(["escalation", "opened (UTC)", "reason", "state", "detail"], table)


@escalation_app.command("ack")
def escalation_ack(
    escalation: str = typer.Argument(..., help="Escalation id."),
    by: str = typer.Option(..., help="Who looked at it."),
    note: str | None = typer.Option(None),
) -> None:
    """Acknowledge an escalation."""
    wanted = _validated(Acknowledgement, {"by": by, "note": note})
    with _runtime() as runtime, _transaction(runtime) as db:
        done = escalations.acknowledge(
            db, runtime, None, escalation, wanted.by, wanted.note, runtime.clock()
        )
    typer.echo(f"escalation {done.id} acknowledged by {done.acknowledged_by}")
