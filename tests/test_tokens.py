from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session

from reminders.tokens import find_token, link_token, purge_expired_tokens, store_tokens, token_row
from tests.conftest import at, make_clinic, make_patient

NOW = at("2026-12-07 09:00")


def test_tokens_are_stored_hashed_found_until_expiry_then_purged(db: Session) -> None:
    patient = make_patient(db, make_clinic(db))
    live = link_token(b"k" * 32, "delivery-1", "unsubscribe")
    old = link_token(b"k" * 32, "delivery-2", "unsubscribe")
    store_tokens(
        db,
        [
            token_row(live, patient, None, "unsubscribe", NOW + timedelta(days=1), NOW),
            token_row(old, patient, None, "unsubscribe", NOW - timedelta(seconds=1), NOW),
        ],
    )
    db.commit()
    assert find_token(db, live, "unsubscribe", NOW) is not None
    assert find_token(db, live, "session", NOW) is None, "scoped to its purpose"
    assert find_token(db, old, "unsubscribe", NOW) is None, "expired"
    assert purge_expired_tokens(db, NOW) == 1
    db.commit()
    assert find_token(db, live, "unsubscribe", NOW) is not None
