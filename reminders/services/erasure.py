"""What is held about a patient: all of it, on request (export), or nothing that names
them (erasure).

Erasure keeps what the clinic needs to account for its care and what adherence is made
of (sessions, their outcomes, the enrollment's plan), under the patient's id alone, and
removes everything that names or reaches the person: name, email, external id, link
tokens, rendered messages, and free text anyone wrote about them.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, SQLModel, col, select

from reminders.errors import NotFound
from reminders.models import (
    AbsenceRow,
    Delivery,
    DigestLine,
    Enrollment,
    Escalation,
    IdempotentRequest,
    Patient,
    PatientToken,
    ReviewDecisionRow,
    TreatmentSession,
)
from reminders.runtime import Runtime
from reminders.services.course_status import set_status
from reminders.services.events import emit
from reminders.services.holds import HoldDecision, decide_hold
from reminders.services.patients import get_patient
from reminders.states import ONGOING, EnrollmentStatus
from reminders.stores import outbox

ERASED_NAME = ""


# Where a patient's data is held: each table's rows of the patient, and the values
# erasure gives the columns that may name them (free text, rendered messages). Export
# and erasure both read this list, so a table added here is exported and erased alike.
Holding = tuple[str, type[SQLModel], sa.ColumnElement[bool], dict[str, Any]]


def _enrollments_of(patient_id: str) -> sa.Select[Any]:
    return sa.select(col(Enrollment.id)).where(col(Enrollment.patient_id) == patient_id)


def _sessions_of(patient_id: str) -> sa.Select[Any]:
    return sa.select(col(TreatmentSession.id)).where(
        col(TreatmentSession.enrollment_id).in_(_enrollments_of(patient_id))
    )


def _holdings(patient_id: str) -> list[Holding]:
    enrollments = _enrollments_of(patient_id)
    sessions = _sessions_of(patient_id)
    return [
        ("enrollments", Enrollment, col(Enrollment.patient_id) == patient_id,
         {"pause_reason": None, "override_reason": None}),
        ("sessions", TreatmentSession, col(TreatmentSession.enrollment_id).in_(enrollments),
         {"side_effect_note": None, "skip_reason": None}),
        ("review_decisions", ReviewDecisionRow,
         col(ReviewDecisionRow.enrollment_id).in_(enrollments), {"note": None}),
        ("absences", AbsenceRow, col(AbsenceRow.patient_id) == patient_id, {"reason": None}),
        ("escalations", Escalation, col(Escalation.patient_id) == patient_id,
         {"note": None, "patient_note": None}),
        ("digest_lines", DigestLine, col(DigestLine.patient_id) == patient_id, {"detail": ""}),
        ("deliveries", Delivery,
         sa.or_(col(Delivery.patient_id) == patient_id, col(Delivery.session_id).in_(sessions)),
         {"payload": "{}", "last_error": None}),
    ]  # fmt: skip


def export_patient(db: Session, clinic_id: str, patient_id: str) -> dict[str, Any]:
    """Return everything held about the patient, row by row (tokens only as what they
    are for and until when: the stored hashes open nothing)."""
    patient = get_patient(db, clinic_id, patient_id)
    document: dict[str, Any] = {"patient": patient.model_dump(mode="json")}
    for name, model, rows_of_patient, _ in _holdings(patient_id):
        document[name] = [
            row.model_dump(mode="json") for row in db.exec(select(model).where(rows_of_patient))
        ]
    for delivery in document["deliveries"]:
        delivery["payload"] = _json_or_text(delivery["payload"])
    tokens = db.exec(select(PatientToken).where(PatientToken.patient_id == patient_id))
    document["link_tokens"] = [
        {"purpose": t.purpose, "session_id": t.session_id, "expires_at": t.expires_at}
        for t in tokens
    ]
    return document


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def erase_patient(
    db: Session, rt: Runtime, clinic_id: str, patient_id: str, by: str, now: datetime
) -> Patient:
    """Erase the patient (see the module's docstring) and record who did it and when;
    erasing again changes nothing. Raises NotFound.

    On SQLite, call `db.engine.forget_overwritten` after the commit: until then the erased
    values are still in the write-ahead log."""
    patient = db.get(Patient, patient_id)
    if patient is None or patient.clinic_id != clinic_id:
        raise NotFound("patient", patient_id)
    if patient.erased_at is not None:
        return patient
    enrollments = db.exec(select(Enrollment).where(Enrollment.patient_id == patient_id)).all()
    for enrollment in enrollments:
        if enrollment.status == EnrollmentStatus.HELD:
            # Only a decision ends a hold; erasing is one (its notice is cancelled below).
            ended = HoldDecision("end", by[:200], "the patient's data was erased")
            decide_hold(db, rt, clinic_id, enrollment.id, ended, now)
        elif enrollment.status in ONGOING:
            set_status(db, rt, clinic_id, enrollment.id, EnrollmentStatus.WITHDRAWN, now)
    holdings = _holdings(patient_id)
    outbox.cancel_about_patient(db, patient_id, _sessions_of(patient_id), "patient erased")
    for _, model, rows_of_patient, cleared in holdings:
        db.execute(sa.update(model).where(rows_of_patient).values(cleared))
    db.execute(sa.delete(PatientToken).where(col(PatientToken.patient_id) == patient_id))
    # A replayed answer to "create this patient" would hand the name back.
    db.execute(sa.delete(IdempotentRequest).where(col(IdempotentRequest.body).contains(patient_id)))
    patient.name = ERASED_NAME
    patient.email = None
    patient.email_refused = None
    patient.unreachable = None
    patient.external_id = None
    patient.unsubscribed_at = patient.unsubscribed_at or now
    patient.resubscribe_consent = None
    patient.erased_at = now
    patient.erased_by = by
    db.add(patient)
    db.flush()
    emit(db, clinic_id, "patient.erased", {"patient_id": patient_id}, now, patient_id=patient_id)
    return patient


def erase_again(db: Session, rt: Runtime, erased: list[tuple[str, str | None, datetime]]) -> int:
    """Erase once more the patients erased in a database that was replaced (a restore
    brings back a backup from before): (patient id, by whom, when). Returns how many
    were erased again; patients the restored database never had are left alone."""
    again = 0
    for patient_id, by, when in erased:
        patient = db.get(Patient, patient_id)
        if patient is None or patient.erased_at is not None:
            continue
        erase_patient(db, rt, patient.clinic_id, patient_id, by or "restore", when)
        again += 1
    return again
