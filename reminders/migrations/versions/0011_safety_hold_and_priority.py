"""safety: an enrollment held after a side effect resumes on a clinician's day;
escalations carry a priority and the patient's own words; whether each patient can be
reached is worked out again by the next sweep (every existing patient is left unchecked,
so one whose reminder time falls inside the quiet hours is found and the clinic told)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 21:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from reminders.models import UTCDateTime

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# `safety.Priority` by reason, as it was here: a side effect reported as blistering or a
# burn held the plan from this revision on, so those rank first.
_PRIORITY = """
UPDATE escalation SET priority = CASE
    WHEN reason = 'side_effect' AND (detail LIKE '%burn%' OR detail LIKE '%blistering%') THEN 1
    WHEN reason = 'no_response' THEN 4
    WHEN reason IN ('missed_sessions', 'lapsed', 'unrecorded') THEN 5
    ELSE 6
END
"""


def upgrade() -> None:
    with op.batch_alter_table('enrollment', schema=None) as batch_op:
        batch_op.add_column(sa.Column('resume_on', sa.Date(), nullable=True))
    with op.batch_alter_table('escalation', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('priority', sa.Integer(), nullable=False, server_default='6')
        )
        batch_op.add_column(sa.Column('patient_note', sa.String(length=2000), nullable=True))
    op.execute(_PRIORITY)
    with op.batch_alter_table('patient', schema=None) as batch_op:
        batch_op.add_column(sa.Column('unreachable', sa.String(length=100), nullable=True))
        batch_op.add_column(
            sa.Column('reachability_checked_at', UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column('email_refused', sa.String(length=320), nullable=True))
        batch_op.create_index(
            'ix_patient_reachability_checked_at', ['reachability_checked_at'], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table('patient', schema=None) as batch_op:
        batch_op.drop_index('ix_patient_reachability_checked_at')
        batch_op.drop_column('email_refused')
        batch_op.drop_column('reachability_checked_at')
        batch_op.drop_column('unreachable')
    with op.batch_alter_table('escalation', schema=None) as batch_op:
        batch_op.drop_column('patient_note')
        batch_op.drop_column('priority')
    with op.batch_alter_table('enrollment', schema=None) as batch_op:
        batch_op.drop_column('resume_on')
