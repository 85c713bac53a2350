"""Patients, their enrollments and adherence."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from fastapi.concurrency import run_in_threadpool

from reminders.api.deps import CallerDep, ClinicDep, NowDep, RuntimeDep, TransactionsDep
from reminders.api.paging import Cursor, Limit, PageOut, page_after
from reminders.db import engine
from reminders.fields import SingleLine
from reminders.models import (
    AbsenceCreate,
    AbsencePublic,
    AdherencePublic,
    EnrollmentCreate,
    EnrollmentPublic,
    PatientCreate,
    PatientPublic,
    PatientRisk,
    PatientUpdate,
)
from reminders.services import absences, clinic_views, enrollments, erasure, patients, reading
from reminders.services.patients import PatientDefaults

router = APIRouter(prefix="/v1", tags=["patients"])
log = logging.getLogger(__name__)


@router.post("/patients", status_code=status.HTTP_201_CREATED)
async def create_patient(
    body: PatientCreate, clinic: ClinicDep, rt: RuntimeDep, tx: TransactionsDep, now: NowDep
) -> PatientPublic:
    """Add a patient to the calling clinic."""
    async with tx.write() as db:
        defaults = PatientDefaults.of(rt.settings)
        patient = patients.add_patient(db, clinic.id, body, now, defaults=defaults)
        return PatientPublic.of(patient)


@router.get("/patients")
def list_patients(
    clinic: ClinicDep,
    tx: TransactionsDep,
    cursor: Cursor = None,
    limit: Limit = 50,
    external_id: Annotated[SingleLine | None, Query(max_length=200, examples=["EHR-1042"])] = None,
) -> PageOut[PatientPublic]:
    """The clinic's patients, oldest first; with `external_id`, those that have it (the
    patient record in the clinic's own system)."""
    with tx.read() as db:
        page = reading.list_patients(db, clinic.id, cursor, limit, external_id)
        return PageOut(
            items=[PatientPublic.of(p) for p in page.items], next_cursor=page.next_cursor
        )


@router.get("/patients/{patient_id}")
def get_patient(patient_id: str, clinic: ClinicDep, tx: TransactionsDep) -> PatientPublic:
    """One patient."""
    with tx.read() as db:
        return PatientPublic.of(patients.get_patient(db, clinic.id, patient_id))


@router.get("/patients/{patient_id}/export")
def export_patient(patient_id: str, clinic: ClinicDep, tx: TransactionsDep) -> dict[str, Any]:
    """Everything held about the patient, as stored: for a request to see one's data."""
    with tx.read() as db:
        return erasure.export_patient(db, clinic.id, patient_id)


@router.delete("/patients/{patient_id}", status_code=status.HTTP_204_NO_CONTENT)
async def erase_patient(
    patient_id: str, caller: CallerDep, rt: RuntimeDep, tx: TransactionsDep, now: NowDep
) -> None:
    """Erase the person: name, email, external id, link tokens, messages and notes go,
    from the database file too; sessions and adherence stay under the id alone, and
    the erasure is recorded (who, when). Later reads of the patient answer 410."""
    async with tx.write() as db:
        erasure.erase_patient(db, rt, caller.clinic.id, patient_id, caller.who, now)
    if not await run_in_threadpool(engine.forget_overwritten, rt.engine):
        log.warning("erased values stay in the write-ahead log until the next checkpoint")


@router.get("/patients/{patient_id}/enrollments")
def list_enrollments(
    patient_id: str,
    clinic: ClinicDep,
    rt: RuntimeDep,
    tx: TransactionsDep,
    now: NowDep,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> PageOut[EnrollmentPublic]:
    """The patient's enrollments, oldest first, each with where the patient stands."""
    with tx.read() as db:
        patient = patients.get_patient(db, clinic.id, patient_id)
        page = page_after(enrollments.enrollments_of(db, patient.id), cursor, limit)
        items = [
            reading.enrollment_view(db, clinic.id, e.id, now, rt.protocols) for e in page.items
        ]
        return PageOut(items=items, next_cursor=page.next_cursor)


@router.patch("/patients/{patient_id}")
async def update_patient(
    patient_id: str,
    body: PatientUpdate,
    caller: CallerDep,
    rt: RuntimeDep,
    tx: TransactionsDep,
    now: NowDep,
) -> PatientPublic:
    """Change a patient; reminders follow a new time zone, time, quiet hours or channel.
    `subscribed: true` with `consent` resubscribes a patient who unsubscribed."""
    async with tx.write() as db:
        changed = patients.update_patient(
            db, rt, caller.clinic.id, patient_id, body, now, by=caller.who, actor=caller.actor()
        )
        return PatientPublic.of(changed)


@router.post("/patients/{patient_id}/enrollments", status_code=status.HTTP_201_CREATED)
async def enroll(
    patient_id: str,
    body: EnrollmentCreate,
    caller: CallerDep,
    rt: RuntimeDep,
    tx: TransactionsDep,
    now: NowDep,
) -> EnrollmentPublic:
    """Enroll the patient in a protocol. A contraindication found in the screening refuses
    the enrollment (422 naming it) unless `override_reason` says why to go ahead."""
    async with tx.write() as db:
        clinic_id = caller.clinic.id
        enrollment = enrollments.enroll(
            db, rt, clinic_id, patient_id, body, now, actor=caller.actor()
        )
        return reading.enrollment_view(db, clinic_id, enrollment.id, now, rt.protocols)


@router.get("/patients/{patient_id}/adherence")
def patient_adherence(
    patient_id: str, clinic: ClinicDep, tx: TransactionsDep, now: NowDep
) -> AdherencePublic:
    """A patient's adherence over all their enrollments."""
    with tx.read() as db:
        return reading.patient_adherence(db, clinic.id, patient_id, now)


@router.get("/adherence", tags=["adherence"])
async def clinic_adherence(
    clinic: ClinicDep, tx: TransactionsDep, now: NowDep, cursor: Cursor = None, limit: Limit = 50
) -> PageOut[PatientRisk]:
    """Every patient under treatment, most at risk first (misses in a row, then low
    adherence, then long since the last session). The order is the patients' standing,
    which the sweep keeps within a minute of each change; the figures are worked out now.
    A page is a few indexed reads, served on the event loop: in worker threads, pages
    asked for at once would take turns on the GIL, each waiting for all the others."""
    with tx.read() as db:
        page = clinic_views.adherence_page(db, clinic.id, now, cursor, limit)
    return PageOut(items=page.items, next_cursor=page.next_cursor)


@router.post("/patients/{patient_id}/absences", status_code=status.HTTP_201_CREATED)
async def add_absence(
    patient_id: str,
    body: AbsenceCreate,
    caller: CallerDep,
    rt: RuntimeDep,
    tx: TransactionsDep,
    now: NowDep,
) -> AbsencePublic:
    """The patient is away: nothing is planned, reminded, missed or escalated from `from`
    to `to`; the plan picks up after it."""
    async with tx.write() as db:
        patient = patients.get_patient(db, caller.clinic.id, patient_id)
        absence = absences.add_absence(
            db, rt, patient, body.first, body.last, body.reason, "clinic", now,
            actor=caller.actor(),
        )  # fmt: skip
        return AbsencePublic.of(absence)


@router.get("/patients/{patient_id}/absences")
def list_absences(
    patient_id: str,
    clinic: ClinicDep,
    tx: TransactionsDep,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> PageOut[AbsencePublic]:
    """The patient's absences, earliest first."""
    with tx.read() as db:
        patient = patients.get_patient(db, clinic.id, patient_id)
        items = [AbsencePublic.of(a) for a in absences.list_absences(db, patient)]
    return page_after(items, cursor, limit, key=lambda a: f"{a.first.isoformat()}.{a.id}")


@router.delete("/absences/{absence_id}", status_code=status.HTTP_204_NO_CONTENT)
async def remove_absence(
    absence_id: str, clinic: ClinicDep, rt: RuntimeDep, tx: TransactionsDep, now: NowDep
) -> None:
    """The patient is back early: the absence is removed and the plan resumes."""
    async with tx.write() as db:
        absences.remove_absence(db, rt, clinic.id, absence_id, now)
