"""delivery audience: who a delivery is for, apart from what it is

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('audience', sa.String(length=16), nullable=False, server_default='patient')
        )
    # Until now the kind told them apart: events have a dot, and two kinds were emails
    # to the clinic.
    op.execute("UPDATE delivery SET audience = 'integration' WHERE kind LIKE '%.%'")
    op.execute(
        "UPDATE delivery SET audience = 'clinic' WHERE kind IN ('escalation', 'clinic_alert')"
    )
    # From now on every writer says whom a delivery is for (`outbox.new_delivery`).
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.alter_column('audience', server_default=None)


def downgrade() -> None:
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.drop_column('audience')
