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
    Enrollment,
    Escalation,
    IdempotentRequest,
    Patient,
    PatientToken,
    ReviewDecisionRow,
    TreatmentSession,
)
from reminders.runtime import Runtime
from reminders.services.enrollments import set_status
from reminders.services.events import emit
from reminders.services.patients import get_patient

ERASED_NAME = ""


def _rows(db: Session, model: type[SQLModel], *where: Any) -> list[dict[str, Any]]:
    return [row.model_dump(mode="json") for row in db.exec(select(model).where(*where))]


def export_patient(db: Session, clinic_id: str, patient_id: str) -> dict[str, Any]:
    """Return everything held about the patient, row by row (tokens only as what they
    are for and until when: the stored hashes open nothing)."""
    patient = get_patient(db, clinic_id, patient_id)
    enrollment_ids = list(db.exec(select(Enrollment.id).where(Enrollment.patient_id == patient_id)))
    deliveries = _rows(db, Delivery, col(Delivery.patient_id) == patient_id)
    for delivery in deliveries:
        delivery["payload"] = _json_or_text(delivery["payload"])
    return {
        "patient": patient.model_dump(mode="json"),
        "enrollments": _rows(db, Enrollment, col(Enrollment.patient_id) == patient_id),
        "sessions": _rows(
            db, TreatmentSession, col(TreatmentSession.enrollment_id).in_(enrollment_ids)
        ),
        "review_decisions": _rows(
            db, ReviewDecisionRow, col(ReviewDecisionRow.enrollment_id).in_(enrollment_ids)
        ),
        "absences": _rows(db, AbsenceRow, col(AbsenceRow.patient_id) == patient_id),
        "escalations": _rows(db, Escalation, col(Escalation.patient_id) == patient_id),
        "deliveries": deliveries,
        "link_tokens": [
            {"purpose": t.purpose, "session_id": t.session_id, "expires_at": t.expires_at}
            for t in db.exec(select(PatientToken).where(PatientToken.patient_id == patient_id))
        ],
    }


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

    On SQLite, call `db.forget_overwritten` after the commit: until then the erased
    values are still in the write-ahead log."""
    patient = db.get(Patient, patient_id)
    if patient is None or patient.clinic_id != clinic_id:
        raise NotFound("patient", patient_id)
    if patient.erased_at is not None:
        return patient
    enrollments = db.exec(select(Enrollment).where(Enrollment.patient_id == patient_id)).all()
    for enrollment in enrollments:
        if enrollment.status in ("active", "paused"):
            set_status(db, rt, clinic_id, enrollment.id, "withdrawn", now)
    enrollment_ids = [e.id for e in enrollments]
    session_ids = sa.select(col(TreatmentSession.id)).where(
        col(TreatmentSession.enrollment_id).in_(enrollment_ids)
    )
    mine = sa.or_(col(Delivery.patient_id) == patient_id, col(Delivery.session_id).in_(session_ids))
    db.execute(
        sa.update(Delivery)
        .where(mine, col(Delivery.state) == "pending")
        .values(state="cancelled", last_error="patient erased")
    )
    db.execute(sa.update(Delivery).where(mine).values(payload="{}", last_error=None))
    db.execute(sa.delete(PatientToken).where(col(PatientToken.patient_id) == patient_id))
    # A replayed answer to "create this patient" would hand the name back.
    db.execute(sa.delete(IdempotentRequest).where(col(IdempotentRequest.body).contains(patient_id)))
    db.execute(
        sa.update(TreatmentSession)
        .where(col(TreatmentSession.enrollment_id).in_(enrollment_ids))
        .values(side_effect_note=None, skip_reason=None)
    )
    db.execute(
        sa.update(Enrollment)
        .where(col(Enrollment.patient_id) == patient_id)
        .values(pause_reason=None, override_reason=None)
    )
    db.execute(
        sa.update(ReviewDecisionRow)
        .where(col(ReviewDecisionRow.enrollment_id).in_(enrollment_ids))
        .values(note=None)
    )
    db.execute(
        sa.update(AbsenceRow).where(col(AbsenceRow.patient_id) == patient_id).values(reason=None)
    )
    db.execute(
        sa.update(Escalation).where(col(Escalation.patient_id) == patient_id).values(note=None)
    )
    patient.name = ERASED_NAME
    patient.email = None
    patient.external_id = None
    patient.unsubscribed_at = patient.unsubscribed_at or now
    patient.resubscribe_consent = None
    patient.erased_at = now
    patient.erased_by = by
    db.add(patient)
    db.flush()
    emit(db, clinic_id, "patient.erased", {"patient_id": patient_id}, now, patient_id=patient_id)
    return patient
