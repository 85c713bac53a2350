"""one patient per external id in a clinic

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 08:22:57.179991
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import reminders.models


revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Patients given an external id another patient of the clinic already had keep it
    # with their own id appended, so nothing is lost and the clinic can see which.
    op.execute(
        "UPDATE patient SET external_id = substr(external_id, 1, 150) || ' (duplicate ' || id || ')'"
        " WHERE external_id IS NOT NULL AND EXISTS (SELECT 1 FROM patient AS first"
        " WHERE first.clinic_id = patient.clinic_id AND first.external_id = patient.external_id"
        " AND first.id < patient.id)"
    )
    with op.batch_alter_table('patient', schema=None) as batch_op:
        batch_op.create_unique_constraint('uq_patient_external_id', ['clinic_id', 'external_id'])



def downgrade() -> None:
    with op.batch_alter_table('patient', schema=None) as batch_op:
        batch_op.drop_constraint('uq_patient_external_id', type_='unique')

