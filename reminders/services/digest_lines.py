"""What the clinic's digest names about courses (`models.DigestLine`), written where it
happens: ids, dates and scale codes only, never a name."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from reminders.models import DigestLine, Enrollment


def note(db: Session, enrollment: Enrollment, kind: str, detail: str, now: datetime) -> None:
    """Keep a line for the clinic's next digest."""
    db.add(
        DigestLine(
            clinic_id=enrollment.clinic_id,
            patient_id=enrollment.patient_id,
            enrollment_id=enrollment.id,
            kind=kind,
            detail=detail[:500],
            created_at=now,
        )
    )
