"""staff accounts, their logins and links, the audit log, patients' stored standing,
and the indexes the clinic's pages read by

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from reminders.models import UTCDateTime

# What `adherence.risk_rank` gives a patient with nothing due, as it was here.
NO_RISK = "9999.1.000000.9999999"

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'staff_member',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('clinic_id', sa.String(length=32), nullable=False),
        sa.Column('email', sa.String(length=320), nullable=False),
        sa.Column('role', sa.String(length=16), nullable=False),
        sa.Column('password_hash', sa.String(length=200), nullable=True),
        sa.Column('failed_logins', sa.Integer(), nullable=False),
        sa.Column('locked_until', UTCDateTime(timezone=True), nullable=True),
        sa.Column('disabled_at', UTCDateTime(timezone=True), nullable=True),
        sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['clinic_id'], ['clinic.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('email'),
    )
    op.create_index('ix_staff_member_clinic_id', 'staff_member', ['clinic_id'])
    op.create_table(
        'staff_login',
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('staff_id', sa.String(length=32), nullable=False),
        sa.Column('expires_at', UTCDateTime(timezone=True), nullable=False),
        sa.Column('ended_at', UTCDateTime(timezone=True), nullable=True),
        sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['staff_id'], ['staff_member.id']),
        sa.PrimaryKeyConstraint('token_hash'),
    )
    op.create_index('ix_staff_login_staff_id', 'staff_login', ['staff_id'])
    op.create_table(
        'staff_link',
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('staff_id', sa.String(length=32), nullable=False),
        sa.Column('purpose', sa.String(length=16), nullable=False),
        sa.Column('expires_at', UTCDateTime(timezone=True), nullable=False),
        sa.Column('used_at', UTCDateTime(timezone=True), nullable=True),
        sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['staff_id'], ['staff_member.id']),
        sa.PrimaryKeyConstraint('token_hash'),
    )
    op.create_index('ix_staff_link_staff_id', 'staff_link', ['staff_id'])
    op.create_table(
        'audit_event',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('clinic_id', sa.String(length=32), nullable=False),
        sa.Column('actor', sa.String(length=400), nullable=False),
        sa.Column('staff_id', sa.String(length=32), nullable=True),
        sa.Column('action', sa.String(length=40), nullable=False),
        sa.Column('subject_type', sa.String(length=32), nullable=False),
        sa.Column('subject_id', sa.String(length=32), nullable=True),
        sa.Column('detail', sa.Text(), nullable=False),
        sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['clinic_id'], ['clinic.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_audit_event_clinic_id', 'audit_event', ['clinic_id'])
    with op.batch_alter_table('patient', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('risk_rank', sa.String(length=40), nullable=False, server_default=NO_RISK)
        )
        batch_op.add_column(sa.Column('adherence_rate', sa.Float(), nullable=True))
        batch_op.add_column(
            sa.Column('missed_in_a_row', sa.Integer(), nullable=False, server_default='0')
        )
        batch_op.add_column(sa.Column('last_session_on', sa.Date(), nullable=True))
        batch_op.create_index('ix_patient_clinic_risk', ['clinic_id', 'risk_rank', 'id'])
    op.create_index('ix_session_updated_at', 'treatment_session', ['updated_at'])
    op.create_index('ix_enrollment_updated_at', 'enrollment', ['updated_at'])
    op.create_index('ix_delivery_patient', 'delivery', ['patient_id'])
    op.drop_index('ix_delivery_clinic_id', table_name='delivery')
    op.create_index('ix_delivery_clinic_channel', 'delivery', ['clinic_id', 'channel', 'id'])


def downgrade() -> None:
    op.drop_index('ix_delivery_clinic_channel', table_name='delivery')
    op.create_index('ix_delivery_clinic_id', 'delivery', ['clinic_id'])
    op.drop_index('ix_delivery_patient', table_name='delivery')
    op.drop_index('ix_enrollment_updated_at', table_name='enrollment')
    op.drop_index('ix_session_updated_at', table_name='treatment_session')
    with op.batch_alter_table('patient', schema=None) as batch_op:
        batch_op.drop_index('ix_patient_clinic_risk')
        batch_op.drop_column('last_session_on')
        batch_op.drop_column('missed_in_a_row')
        batch_op.drop_column('adherence_rate')
        batch_op.drop_column('risk_rank')
    op.drop_table('audit_event')
    op.drop_table('staff_link')
    op.drop_table('staff_login')
    op.drop_table('staff_member')
