"""named api keys, erasure, resubscribe consent, idempotency, heartbeat

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 07:48:37.298361
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import reminders.models


revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('heartbeat',
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('at', reminders.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('idempotent_request',
    sa.Column('scope', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('request_digest', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('status', sa.Integer(), nullable=True),
    sa.Column('content_type', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('body', sa.Text(), nullable=True),
    sa.Column('created_at', reminders.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('scope', 'key')
    )
    op.create_table('api_key',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('clinic_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('key_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', reminders.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_used_at', reminders.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', reminders.models.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['clinic_id'], ['clinic.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('clinic_id', 'name', name='uq_api_key_name'),
    sa.UniqueConstraint('key_hash')
    )
    with op.batch_alter_table('api_key', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_key_clinic_id'), ['clinic_id'], unique=False)

    # "Who" names the person and the API key they used, which takes more room.
    with op.batch_alter_table('escalation', schema=None) as batch_op:
        batch_op.alter_column('acknowledged_by', type_=sa.String(300), existing_nullable=True)
    with op.batch_alter_table('review_decision', schema=None) as batch_op:
        batch_op.alter_column('decided_by', type_=sa.String(300), existing_nullable=True)

    # Each clinic's one key becomes its first named key, so integrations keep working.
    op.execute(
        "INSERT INTO api_key (id, clinic_id, name, key_hash, created_at)"
        " SELECT id, id, 'first', api_key_hash, created_at FROM clinic"
    )
    with op.batch_alter_table('clinic', schema=None) as batch_op:
        batch_op.drop_column('api_key_hash')

    with op.batch_alter_table('patient', schema=None) as batch_op:
        batch_op.add_column(sa.Column('resubscribed_at', reminders.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('resubscribed_by', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True))
        batch_op.add_column(sa.Column('resubscribe_consent', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True))
        batch_op.add_column(sa.Column('erased_at', reminders.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('erased_by', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('patient', schema=None) as batch_op:
        batch_op.drop_column('erased_by')
        batch_op.drop_column('erased_at')
        batch_op.drop_column('resubscribe_consent')
        batch_op.drop_column('resubscribed_by')
        batch_op.drop_column('resubscribed_at')

    with op.batch_alter_table('clinic', schema=None) as batch_op:
        batch_op.add_column(sa.Column('api_key_hash', sa.VARCHAR(length=64), nullable=True))
    # The oldest key still in use goes back to being the clinic's one key.
    op.execute(
        "UPDATE clinic SET api_key_hash = (SELECT key_hash FROM api_key"
        " WHERE api_key.clinic_id = clinic.id AND revoked_at IS NULL"
        " ORDER BY created_at LIMIT 1)"
    )

    with op.batch_alter_table('api_key', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_key_clinic_id'))

    op.drop_table('api_key')
    op.drop_table('idempotent_request')
    op.drop_table('heartbeat')
