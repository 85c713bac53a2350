"""An enrollment keeps the protocol version it was enrolled on; an edited file re-plans
nobody until the clinic moves the enrollment to it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from freezegun import freeze_time
from sqlmodel import Session

from reminders.dispatcher import Dispatcher, build_senders
from reminders.models import Enrollment, SessionReport
from reminders.runtime import Runtime
from reminders.services import course_status, sessions
from reminders.stores import session_store
from tests.conftest import at, enroll_patient, make_clinic, make_patient
from tests.servers import SmtpRecorder

pytestmark = pytest.mark.both_databases


def edited(rt: Runtime, protocol_id: str, **phase_changes: object) -> Runtime:
    """The runtime a restarted service would have after the file's first phase changed."""
    protocol = rt.protocols[protocol_id]
    first = protocol.phases[0].model_copy(update=phase_changes)
    changed = protocol.model_copy(update={"phases": (first, *protocol.phases[1:])})
    return Runtime(rt.settings, rt.engine, {**rt.protocols, protocol_id: changed}, rt.secret_key)


def planned_days(db: Session, enrollment_id: str) -> list[int]:
    rows = session_store.of_enrollment(db, enrollment_id)
    return [r.local_date.day for r in rows if r.status == "planned"]


def test_an_edited_protocol_replans_nobody_until_the_enrollment_is_moved(
    db: Session, rt: Runtime
) -> None:
    clinic = make_clinic(db)
    patient = make_patient(db, clinic, timezone="UTC")
    start = at("2026-12-07 08:00")
    enrollment_id = enroll_patient(
        db, rt, clinic, patient, "2026-12-07", start, protocol="glycopyrrolate-hyperhidrosis"
    )
    assert db.get(Enrollment, enrollment_id).protocol_version == 1  # type: ignore[union-attr]
    assert planned_days(db, enrollment_id) == [7, 14]

    restarted = edited(rt, "glycopyrrolate-hyperhidrosis", interval_days=10)
    first = session_store.of_enrollment(db, enrollment_id)[0]
    moment = start + timedelta(hours=9)
    sessions.confirm_session(db, restarted, clinic, first.id, SessionReport(), moment)
    db.commit()
    assert planned_days(db, enrollment_id) == [14], "still weekly: the version it was enrolled on"

    enrollment, before, after = course_status.move_to_current_protocol(
        db, restarted, clinic, enrollment_id, moment
    )
    db.commit()
    assert (before, after, enrollment.protocol_version) == (1, 2, 2)
    assert planned_days(db, enrollment_id) == [17]

    newcomer = make_patient(db, clinic, timezone="UTC", name="Bo Example")
    second = enroll_patient(
        db, restarted, clinic, newcomer, "2026-12-07", moment,
        protocol="glycopyrrolate-hyperhidrosis",
    )  # fmt: skip
    assert db.get(Enrollment, second).protocol_version == 2  # type: ignore[union-attr]


def test_reminders_carry_the_tips_of_the_version_enrolled_on(
    db: Session, rt: Runtime, smtp: SmtpRecorder
) -> None:
    clinic = make_clinic(db)
    patient = make_patient(db, clinic, timezone="UTC", reminder_time="09:00")
    enroll_patient(
        db, rt, clinic, patient, "2026-12-07", at("2026-12-07 08:00"),
        protocol="glycopyrrolate-hyperhidrosis",
    )  # fmt: skip
    enrolled_on = rt.protocols["glycopyrrolate-hyperhidrosis"]
    tips = enrolled_on.model_copy(update={"tips": ("A tip only the new version gives.",)})
    restarted = Runtime(rt.settings, rt.engine, {**rt.protocols, tips.id: tips}, rt.secret_key)
    with freeze_time(at("2026-12-07 09:00")):
        Dispatcher(restarted, build_senders(restarted), worker="test").dispatch()
    (reminder,) = smtp.messages
    text = reminder.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert enrolled_on.tips[0] in text
    assert "A tip only the new version gives." not in text
