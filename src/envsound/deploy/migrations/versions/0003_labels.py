"""Labels: every verdict (yes, no, unsure) a reviewer gave a window of an embeddings store, with who and when.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "labels",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("window", sa.BigInteger),
        sa.Column("file", sa.String(4096), nullable=False),
        sa.Column("start", sa.Float, nullable=False),
        sa.Column("end", sa.Float, nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("verdict", sa.String(8), nullable=False),
        sa.Column("reviewer", sa.String(64), nullable=False),
        sa.Column("given", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_labels_label_given", "labels", ["label", "given"])


def downgrade() -> None:
    op.drop_table("labels")
