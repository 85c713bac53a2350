"""The patient's calendar feed behind its private link: sessions at the local reminder
time across DST changes in three zones, stable UIDs and a SEQUENCE that grows with each
change, the link stored only hashed, revoked and replaced, closed to other clinics and
to erased patients, and nothing about the patient's condition in it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime

import icalendar
import pytest
import sqlalchemy as sa
from freezegun import freeze_time
from sqlmodel import Session, select

from reminders.ids import hash_secret
from reminders.models import Clinic, Patient, PatientToken
from reminders.runtime import Runtime
from reminders.tokens import calendar_link, store_tokens
from tests.api.conftest import Api
from tests.conftest import at
from tests.test_calendar import read_feed

pytestmark = pytest.mark.both_databases
HOST = "https://reminders.example.org"


@contextmanager
def moment(api: Api, text: str) -> Iterator[None]:
    """The service's clock at `text` (UTC): the API's `now` and the rows' stamps alike."""
    api.clock[0] = at(text)
    with freeze_time(at(text)):
        yield


def feed_path(api: Api, patient_id: str) -> str:
    answer = api.get(f"/v1/patients/{patient_id}/calendar")
    assert answer.status_code == 200, answer.text
    url = str(answer.json()["url"])
    assert url.startswith(f"{HOST}/c/") and url.endswith(".ics")
    return url.removeprefix(HOST)


def fetch(api: Api, path: str) -> bytes:
    answer = api.client.get(path)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "text/calendar; charset=utf-8"
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["referrer-policy"] == "no-referrer"
    assert answer.headers["x-robots-tag"] == "noindex"
    body: bytes = answer.content
    return body


def assert_gone(api: Api, path: str) -> None:
    answer = api.client.get(path)
    assert answer.status_code == 404
    assert answer.content == b"", "nothing tells an unknown link from a revoked one"
    assert answer.headers["cache-control"] == "no-store"


def summaries(body: bytes) -> list[str]:
    return [str(e["SUMMARY"]) for e in icalendar.Calendar.from_ical(body).events]


# Zone, enrollment day (a Monday), the Friday before the zone's change and the Monday
# after, each with its session's UTC time at 18:30 local. São Paulo has had no DST since
# 2019: its sessions keep their UTC time.
ACROSS_DST = [
    ("Europe/Berlin", "2027-03-22", ("2027-03-26", "17:30"), ("2027-03-29", "16:30")),
    ("America/New_York", "2027-03-08", ("2027-03-12", "23:30"), ("2027-03-15", "22:30")),
    ("America/Sao_Paulo", "2027-03-08", ("2027-03-12", "21:30"), ("2027-03-15", "21:30")),
]


@pytest.mark.parametrize(("timezone", "start", "before", "after"), ACROSS_DST)
def test_sessions_are_at_the_local_reminder_time_on_both_sides_of_a_dst_change(
    api: Api, timezone: str, start: str, before: tuple[str, str], after: tuple[str, str]
) -> None:
    with moment(api, f"{start} 06:00"):
        patient = api.patient(timezone=timezone, reminder_time="18:30")
        api.enroll(patient, start_date=start, weekdays=["mon", "wed", "fri"])
        events = read_feed(fetch(api, feed_path(api, patient)))
    by_day = {e.wall.date(): e for e in events.values() if isinstance(e.wall, datetime)}
    assert len(by_day) == len(events) >= 6
    for day, utc in (before, after):
        event = by_day[date.fromisoformat(day)]
        assert event.wall == datetime.fromisoformat(f"{day} 18:30")
        assert event.instant == at(f"{day} {utc}")
        assert (event.status, event.summary) == ("CONFIRMED", "Treatment session")


def test_uids_stay_and_sequence_grows_when_a_session_is_skipped_or_the_plan_changes(
    api: Api,
) -> None:
    with moment(api, "2027-03-22 06:00"):
        patient = api.patient(timezone="Europe/Berlin", reminder_time="18:30")
        enrollment = api.enroll(patient, start_date="2027-03-22", weekdays=["mon", "wed", "fri"])
        path = feed_path(api, patient)
        first = fetch(api, path)
        assert fetch(api, path) == first, "the same sessions make the same feed"
    before = read_feed(first)
    assert {e.sequence for e in before.values()} == {0}
    wednesday, friday = (
        next(uid for uid, e in before.items() if e.wall.isoformat().startswith(day))
        for day in ("2027-03-24", "2027-03-26")
    )
    with moment(api, "2027-03-23 10:00"):
        skipped = api.post(f"/v1/sessions/{wednesday.partition('@')[0]}/skip", {"reason": "away"})
        assert skipped.status_code == 200, skipped.text
        after_skip = read_feed(fetch(api, path))
    assert before.keys() <= after_skip.keys(), "a re-plan may add sessions, never renames one"
    assert after_skip[wednesday].status == "CANCELLED"
    assert after_skip[wednesday].sequence > 0
    assert after_skip[wednesday].wall == before[wednesday].wall
    with moment(api, "2027-03-24 10:00"):
        paused = api.post(f"/v1/enrollments/{enrollment['id']}/pause", {"reason": "holiday"})
        assert paused.status_code == 200, paused.text
        after_pause = read_feed(fetch(api, path))
    assert after_pause[friday].status == "CANCELLED"
    assert after_pause[friday].sequence > after_skip[friday].sequence
    assert after_pause[wednesday] == after_skip[wednesday], "an untouched event stays as it was"


def test_a_new_reminder_time_moves_the_coming_sessions_and_counts_their_sequence_up(
    api: Api,
) -> None:
    with moment(api, "2027-03-22 06:00"):
        patient = api.patient(timezone="Europe/Berlin", reminder_time="18:30")
        api.enroll(patient, start_date="2027-03-22", weekdays=["mon", "wed", "fri"])
        path = feed_path(api, patient)
        before = read_feed(fetch(api, path))
    with moment(api, "2027-03-22 09:00"):
        changed = api.patch(f"/v1/patients/{patient}", {"reminder_time": "08:15"})
        assert changed.status_code == 200, changed.text
        after = read_feed(fetch(api, path))
    assert after.keys() == before.keys()
    for uid, event in after.items():
        assert isinstance(event.wall, datetime) and event.wall.time().isoformat() == "08:15:00"
        assert event.sequence > before[uid].sequence


def test_the_link_is_stored_only_as_a_hash_and_asking_again_gives_the_same_one(
    api: Api, db: Session
) -> None:
    patient = api.patient()
    path = feed_path(api, patient)
    assert feed_path(api, patient) == path
    token = path.removeprefix("/c/").removesuffix(".ics")
    assert len(token) >= 22, "at least 128 bits"
    rows = db.exec(select(PatientToken).where(PatientToken.purpose == "calendar")).all()
    assert [(r.token_hash, r.patient_id) for r in rows] == [(hash_secret(token), patient)]
    table = db.execute(sa.text("SELECT * FROM patient_token")).all()
    assert not [row for row in table if any(token in str(value) for value in row)]


def test_revoking_the_link_stops_it_and_gives_a_new_one_once_per_idempotency_key(
    api: Api, db: Session
) -> None:
    patient = api.patient()
    api.enroll(patient)
    old = feed_path(api, patient)
    fetch(api, old)
    headers = {**api.headers(), "Idempotency-Key": "revoke-1"}
    revoked = api.client.post(f"/v1/patients/{patient}/calendar/revoke", headers=headers)
    assert revoked.status_code == 200, revoked.text
    new = str(revoked.json()["url"]).removeprefix(HOST)
    assert new != old
    assert_gone(api, old)
    fetch(api, new)
    assert feed_path(api, patient) == new, "messages carry the new link from now on"
    replayed = api.client.post(f"/v1/patients/{patient}/calendar/revoke", headers=headers)
    assert replayed.json() == revoked.json(), "a retried revocation revokes nothing more"
    fetch(api, new)
    db.expire_all()
    assert db.get(Patient, patient).calendar_generation == 1  # type: ignore[union-attr]


def test_a_revoked_token_stored_again_by_a_late_message_still_opens_nothing(
    api: Api, rt: Runtime, db: Session
) -> None:
    patient = api.patient()
    old = feed_path(api, patient)
    assert api.post(f"/v1/patients/{patient}/calendar/revoke").status_code == 200
    # A message prepared before the revocation stores the old generation's row.
    _, row = calendar_link(rt.secret_key, HOST, patient, 0, at("2026-12-07 07:00"))
    store_tokens(db, [row])
    db.commit()
    assert_gone(api, old)


def test_another_clinic_gets_404_and_an_erased_patient_410_and_a_dead_link(
    api: Api, other: Api
) -> None:
    patient = api.patient()
    api.enroll(patient)
    path = feed_path(api, patient)
    assert other.get(f"/v1/patients/{patient}/calendar").status_code == 404
    assert other.post(f"/v1/patients/{patient}/calendar/revoke").status_code == 404
    assert api.get(f"/v1/patients/{'0' * 32}/calendar").status_code == 404
    fetch(api, path)
    assert api.delete(f"/v1/patients/{patient}").status_code == 204
    assert_gone(api, path)
    assert api.get(f"/v1/patients/{patient}/calendar").status_code == 410
    assert api.post(f"/v1/patients/{patient}/calendar/revoke").status_code == 410
    assert_gone(api, "/c/not-a-token-anyone-was-given-0000000000.ics")


def test_the_feed_names_the_clinic_and_never_the_condition_or_the_patient(
    api: Api, rt: Runtime, db: Session
) -> None:
    home = api.patient(timezone="UTC", reminder_time="09:00")
    api.enroll(home, body_area="palms")
    at_clinic = api.patient(timezone="UTC", reminder_time="09:00")
    api.enroll(at_clinic, protocol="dexamethasone-tendinopathy", body_area="elbow", weekdays=None)
    fed = {p: fetch(api, feed_path(api, p)) for p in (home, at_clinic)}
    for protocol_id in ("tap-water-hyperhidrosis", "dexamethasone-tendinopathy"):
        protocol = rt.protocols[protocol_id]
        words = [word for word in protocol_id.split("-") if len(word) > 4]  # not "tap"
        secret = {protocol.id, protocol.name, *words, "palms", "elbow", "iontophoresis",
                  "induction", "Ann Example", "ann@example.org"}  # fmt: skip
        for body in fed.values():
            text = body.decode().lower()
            assert not [word for word in secret if word.lower() in text]
    assert set(summaries(fed[home])) == {"Treatment session"}
    # The clinic books the hour of an appointment: the feed gives its day.
    appointments = read_feed(fed[at_clinic]).values()
    assert {e.summary for e in appointments} == {"Appointment at the clinic"}
    assert all(e.instant is None and not isinstance(e.wall, datetime) for e in appointments)
    organizer = icalendar.Calendar.from_ical(fed[home]).events[0]["ORGANIZER"]
    assert organizer.params["CN"] == "North Clinic"
    assert str(organizer) == "mailto:reminders@clinic.example.org", "the configured sender"
    clinic = db.exec(select(Clinic).where(Clinic.name == "North Clinic")).one()
    clinic.display_name, clinic.reply_to = "Hautzentrum Nord", "desk@clinic.example.org"
    db.add(clinic)
    db.commit()
    body = fetch(api, feed_path(api, home))
    organizer = icalendar.Calendar.from_ical(body).events[0]["ORGANIZER"]
    assert organizer.params["CN"] == "Hautzentrum Nord"
    assert str(organizer) == "mailto:desk@clinic.example.org"
