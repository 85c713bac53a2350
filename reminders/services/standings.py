"""Each patient's standing (adherence rate, misses in a row, last session, and the risk
rank the clinic's lists sort by), stored on the patient so that a list of thousands
reads one row a patient instead of every session.

The sweep keeps it: it finds the patients whose sessions or enrollments changed since
it last looked and works their figures out again from their ongoing enrollments, as
`reading.patient_adherence` does for one patient at one moment. A confirmation shows in the lists by
the next sweep; the patient's own page works its figures out afresh.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from reminders.adherence import adherence, risk_rank
from reminders.db.engine import mark_alive
from reminders.db.rows import in_chunks, update_rows
from reminders.models import Enrollment, Heartbeat, Patient, TreatmentSession
from reminders.runtime import Runtime
from reminders.services.reading import ongoing_facts
from reminders.timing import local_today

# The heartbeat row that holds when the sweep last looked. It looks back a little
# further than that: a change stamped just before a look may commit just after it.
WATERMARK = "standings"
OVERLAP = timedelta(minutes=2)


# The stored columns a standing consists of, beside the patient's id.
STANDING = ("risk_rank", "adherence_rate", "missed_in_a_row", "last_session_on")


def changed_patients(db: Session, _rt: Runtime, now: datetime) -> list[str]:
    """Return the patients whose standing needs writing: every patient with an
    enrollment the first time; after that, those whose sessions or enrollments changed
    since the last look and whose figures now differ from the stored ones (a change
    within the look's overlap is seen again, and must not take the write lock again)."""
    since = db.get(Heartbeat, WATERMARK)
    enrollments = select(Enrollment.patient_id)
    sessions = select(Enrollment.patient_id).join(
        TreatmentSession, col(TreatmentSession.enrollment_id) == col(Enrollment.id)
    )
    if since is None:
        return sorted(set(db.exec(enrollments)) | set(db.exec(sessions)))
    after = since.at - OVERLAP
    enrollments = enrollments.where(col(Enrollment.updated_at) > after)
    sessions = sessions.where(col(TreatmentSession.updated_at) > after)
    found = sorted(set(db.exec(enrollments)) | set(db.exec(sessions)))
    # In chunks, so that a look after a bulk import holds a chunk's sessions at a time.
    return [patient_id for chunk in in_chunks(found) for patient_id in _differing(db, now, chunk)]


def _differing(db: Session, now: datetime, patient_ids: Sequence[str]) -> list[str]:
    """Those of `patient_ids` whose standing worked out now is not the stored one."""
    stored = {
        row[0]: tuple(row[1:])
        for row in db.execute(
            sa.select(col(Patient.id), *(getattr(Patient, c) for c in STANDING)).where(
                col(Patient.id).in_(patient_ids)
            )
        )
    }
    return [
        row["id"]
        for row in standings_of(db, now, patient_ids)
        if stored.get(row["id"]) != tuple(row[c] for c in STANDING)
    ]


def note_look(db: Session, now: datetime) -> None:
    """Remember `now` as the time of the last look (once its changes are stored)."""
    mark_alive(db, WATERMARK, now)


def standings_of(db: Session, now: datetime, patient_ids: Sequence[str]) -> list[dict[str, Any]]:
    """Work out the standing of each of `patient_ids` from their ongoing enrollments, as
    rows of the patient table's standing columns."""
    patients: dict[str, str] = dict(
        db.exec(select(Patient.id, Patient.timezone).where(col(Patient.id).in_(patient_ids))).all()
    )
    sessions = ongoing_facts(db, col(Enrollment.patient_id).in_(patient_ids))
    rows = []
    for patient_id, timezone in patients.items():
        # No ongoing enrollment: no sessions, and so the neutral rank (`NO_RISK`).
        figures = adherence(sessions.get(patient_id, []), local_today(now, timezone))
        standing = (
            risk_rank(figures), figures.overall.rate, figures.missed_in_a_row,
            figures.last_session,
        )  # fmt: skip
        rows.append({"id": patient_id, **dict(zip(STANDING, standing, strict=True))})
    return rows


def refresh(db: Session, _rt: Runtime, now: datetime, patient_ids: Sequence[str]) -> int:
    """Work out the standing of each of `patient_ids` and store it; return how many."""
    rows = standings_of(db, now, patient_ids)
    update_rows(db, Patient, rows)
    return len(rows)
