"""Staff accounts: one clinic per address, links that work once, logins that lock."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session, select

from reminders.errors import Conflict, InvalidInput, NotFound
from reminders.ids import hash_secret
from reminders.models import StaffLink, StaffLogin
from reminders.runtime import Runtime
from reminders.services import staff
from reminders.services.audit import Actor
from reminders.services.staff import LOCK_FOR, LinkPurpose, Role
from reminders.stores import outbox
from tests.conftest import at, make_clinic

NOW = at("2026-12-07 09:00")
ADMIN = Actor("boss@north.example", "x")


def test_an_address_belongs_to_one_clinic_whatever_its_case(db: Session) -> None:
    north, south = make_clinic(db), make_clinic(db, "South")
    added = staff.add_member(db, north, "Nurse@North.example", "clinician", ADMIN, NOW)
    assert added.email == "nurse@north.example"
    with pytest.raises(Conflict):
        staff.add_member(db, south, "NURSE@north.example", "admin", ADMIN, NOW)


@pytest.mark.parametrize(
    ("email", "role", "field"),
    [("not an address", "admin", "email"), ("a@b.example", "owner", "role")],
)
def test_a_bad_address_or_role_is_refused_by_name(
    db: Session, email: str, role: str, field: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        staff.add_member(db, make_clinic(db), email, role, ADMIN, NOW)
    assert refused.value.field == field


def test_failed_logins_slow_down_alike_for_every_address_known_or_not() -> None:
    throttle = staff.LoginThrottle()
    waits = [throttle.failed("Anyone@North.example", NOW) for _ in range(7)]
    assert waits == [0.0, 0.0, 0.5, 1.0, 2.0, 4.0, 4.0]
    assert throttle.failed("anyone@north.example", NOW + LOCK_FOR) == 0.0  # time forgives
    throttle.forget("anyone@north.example")
    assert throttle.failed("anyone@north.example", NOW) == 0.0


def test_the_throttle_keeps_a_bounded_number_of_addresses() -> None:
    throttle = staff.LoginThrottle(size=2)
    for address in ("a@x.example", "b@x.example", "c@x.example"):
        throttle.failed(address, NOW)
    assert [throttle.failed("c@x.example", NOW) for _ in range(2)] == [0.0, 0.5]


def test_the_fifth_wrong_password_locks_the_account_and_emails_its_owner(
    db: Session,
) -> None:
    clinic = make_clinic(db)
    staff.add_member(db, clinic, "nurse@north.example", "clinician", ADMIN, NOW)
    outcomes = [staff.log_in(db, "nurse@north.example", False, NOW) for _ in range(5)]
    assert [o.locked_until for o in outcomes] == [None] * 4 + [NOW + LOCK_FOR]  # type: ignore[union-attr]
    locked_out = staff.log_in(db, "nurse@north.example", True, NOW + timedelta(minutes=1))
    assert isinstance(locked_out, staff.LoginRefused)
    (notice,) = outbox.matching(db, kind="staff_locked")
    assert notice.audience == "staff"
    member, secret = staff.log_in(db, "nurse@north.example", True, NOW + LOCK_FOR)  # type: ignore[misc]
    assert staff.member_of_login(db, secret, NOW + LOCK_FOR) == member


def test_an_unknown_address_is_refused_like_a_wrong_password(db: Session) -> None:
    refused = staff.log_in(db, "nobody@north.example", False, NOW)
    assert refused == staff.LoginRefused(None)
    assert staff.password_matches(None, "anything at all") is False


def test_a_setup_link_works_once_and_ends_other_logins(db: Session, rt: Runtime) -> None:
    member = staff.add_member(db, make_clinic(db), "a@north.example", "admin", None, NOW)
    old_login = staff.start_login(db, member, NOW)
    link = staff.setup_link(db, rt, member, NOW)
    token = link.rsplit("/", 1)[1]
    assert link.startswith(rt.settings.base_url + "/app/setup/")
    assert db.exec(select(StaffLink.token_hash)).one() == hash_secret(token)  # not the token
    staff.set_password(db, LinkPurpose.SETUP, token, staff.hash_password("a long password"), NOW)
    assert staff.member_of_login(db, old_login, NOW) is None
    with pytest.raises(NotFound):
        staff.set_password(db, LinkPurpose.SETUP, token, "x", NOW)


def test_a_reset_link_expires_after_an_hour(db: Session, rt: Runtime) -> None:
    member = staff.add_member(db, make_clinic(db), "a@north.example", "admin", None, NOW)
    staff.request_reset(db, rt, "A@north.example", NOW)
    staff.request_reset(db, rt, "a@north.example", NOW + timedelta(minutes=1))  # no second
    (delivery,) = outbox.matching(db, kind="staff_reset")
    from reminders.tokens import link_token

    token = link_token(rt.secret_key, delivery.id, "reset")
    assert staff.member_of_link(db, LinkPurpose.RESET, token, NOW + timedelta(minutes=59))
    assert staff.member_of_link(db, LinkPurpose.RESET, token, NOW + timedelta(hours=1)) is None
    assert staff.member_of_link(db, LinkPurpose.SETUP, token, NOW) is None
    assert member.password_hash is None


def test_a_password_shorter_than_ten_characters_is_refused() -> None:
    with pytest.raises(InvalidInput) as refused:
        staff.hash_password("short")
    assert refused.value.field == "password"


def test_the_last_admin_can_be_neither_demoted_nor_disabled(db: Session) -> None:
    clinic = make_clinic(db)
    admin = staff.add_member(db, clinic, "a@north.example", "admin", None, NOW)
    nurse = staff.add_member(db, clinic, "n@north.example", "clinician", None, NOW)
    actor = Actor.staff(nurse.id, nurse.email)
    with pytest.raises(Conflict):
        staff.set_role(db, clinic, admin.id, Role.CLINICIAN, actor, NOW)
    with pytest.raises(Conflict):
        staff.set_enabled(db, clinic, admin.id, False, actor, NOW)


def test_disabling_a_member_ends_their_logins(db: Session) -> None:
    clinic = make_clinic(db)
    admin = staff.add_member(db, clinic, "a@north.example", "admin", None, NOW)
    nurse = staff.add_member(db, clinic, "n@north.example", "clinician", None, NOW)
    secret = staff.start_login(db, nurse, NOW)
    staff.set_enabled(db, clinic, nurse.id, False, Actor.staff(admin.id, admin.email), NOW)
    assert staff.member_of_login(db, secret, NOW) is None
    assert db.exec(select(StaffLogin.ended_at)).one() == NOW
