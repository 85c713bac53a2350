"""foundation tables

Revision ID: 0001
Revises: 
Create Date: 2026-11-21 11:17:20.162833
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import reminders.models


revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('clinic',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('api_key_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', reminders.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('api_key_hash')
    )
    op.create_table('patient',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('clinic_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('email', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=True),
    sa.Column('timezone', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('reminder_time', sqlmodel.sql.sqltypes.AutoString(length=5), nullable=False),
    sa.Column('quiet_start', sqlmodel.sql.sqltypes.AutoString(length=5), nullable=True),
    sa.Column('quiet_end', sqlmodel.sql.sqltypes.AutoString(length=5), nullable=True),
    sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('locale', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('external_id', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('unsubscribed_at', reminders.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', reminders.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['clinic_id'], ['clinic.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('patient', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_patient_clinic_id'), ['clinic_id'], unique=False)

    op.create_table('enrollment',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('clinic_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('patient_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('protocol_id', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('start_date', sa.Date(), nullable=False),
    sa.Column('body_area', sqlmodel.sql.sqltypes.AutoString(length=50), nullable=True),
    sa.Column('weekdays', sqlmodel.sql.sqltypes.AutoString(length=27), nullable=True),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('phase', sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
    sa.Column('interval_days', sa.Integer(), nullable=True),
    sa.Column('review_reason', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.Column('screening', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
    sa.Column('override_reason', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True),
    sa.Column('created_at', reminders.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', reminders.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['clinic_id'], ['clinic.id'], ),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('enrollment', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_enrollment_clinic_id'), ['clinic_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_enrollment_patient_id'), ['patient_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_enrollment_status'), ['status'], unique=False)

    op.create_table('treatment_session',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('enrollment_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('local_date', sa.Date(), nullable=False),
    sa.Column('timezone', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('phase', sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('minutes', sa.Integer(), nullable=False),
    sa.Column('unscheduled', sa.Boolean(), nullable=False),
    sa.Column('completed_at', reminders.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('hdss', sa.Integer(), nullable=True),
    sa.Column('current_ma', sa.Float(), nullable=True),
    sa.Column('minutes_done', sa.Integer(), nullable=True),
    sa.Column('skip_reason', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.Column('created_at', reminders.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', reminders.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['enrollment_id'], ['enrollment.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('enrollment_id', 'local_date', name='uq_session_enrollment_date')
    )
    with op.batch_alter_table('treatment_session', schema=None) as batch_op:
        batch_op.create_index('ix_session_status_date', ['status', 'local_date'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('treatment_session', schema=None) as batch_op:
        batch_op.drop_index('ix_session_status_date')

    op.drop_table('treatment_session')
    with op.batch_alter_table('enrollment', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_enrollment_status'))
        batch_op.drop_index(batch_op.f('ix_enrollment_patient_id'))
        batch_op.drop_index(batch_op.f('ix_enrollment_clinic_id'))

    op.drop_table('enrollment')
    with op.batch_alter_table('patient', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_patient_clinic_id'))

    op.drop_table('patient')
    op.drop_table('clinic')
