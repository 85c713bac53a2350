"""course outcomes: an ended course says why; a review nobody decided is alerted again;
each clinic chooses its digest and remembers when the last one went out; what the
digest names about courses is kept as lines

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 23:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from reminders.models import UTCDateTime

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('enrollment', schema=None) as batch_op:
        batch_op.add_column(sa.Column('end_reason', sa.String(length=32), nullable=True))
    with op.batch_alter_table('escalation', schema=None) as batch_op:
        batch_op.add_column(sa.Column('alerted_at', UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column('realerts', sa.Integer(), nullable=False, server_default='0')
        )
    op.execute("UPDATE escalation SET alerted_at = created_at")
    with op.batch_alter_table('clinic', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('digest', sa.String(length=8), nullable=False, server_default='daily')
        )
        batch_op.add_column(
            sa.Column('digest_sent_at', UTCDateTime(timezone=True), nullable=True)
        )
    op.create_table(
        'digest_line',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('clinic_id', sa.String(length=32), nullable=False),
        sa.Column('patient_id', sa.String(length=32), nullable=False),
        sa.Column('enrollment_id', sa.String(length=32), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('detail', sa.String(length=500), nullable=False),
        sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['clinic_id'], ['clinic.id']),
        sa.ForeignKeyConstraint(['patient_id'], ['patient.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_digest_line_clinic_created', 'digest_line', ['clinic_id', 'created_at'])


def downgrade() -> None:
    op.drop_index('ix_digest_line_clinic_created', table_name='digest_line')
    op.drop_table('digest_line')
    with op.batch_alter_table('clinic', schema=None) as batch_op:
        batch_op.drop_column('digest_sent_at')
        batch_op.drop_column('digest')
    with op.batch_alter_table('escalation', schema=None) as batch_op:
        batch_op.drop_column('realerts')
        batch_op.drop_column('alerted_at')
    with op.batch_alter_table('enrollment', schema=None) as batch_op:
        batch_op.drop_column('end_reason')
