"""A sensor's clock offset: its clock minus the server's when its last report was sent (seconds; NULL: a store's older
rows, and sensors that do not say when they sent).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sensors") as table:
        table.add_column(sa.Column("clock_offset", sa.Float))


def downgrade() -> None:
    with op.batch_alter_table("sensors") as table:
        table.drop_column("clock_offset")
