"""A fleet: model versions published to the sensors, which version each sensor should run, which version heard each
event and the size of its sound kept by the server.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision, down_revision = "0004", "0003"  # Alembic reads branch_labels and depends_on as None when absent


def upgrade() -> None:
    with op.batch_alter_table("sensors") as table:
        table.add_column(sa.Column("version", sa.Integer))
        table.add_column(sa.Column("version_since", sa.DateTime(timezone=True)))
        table.add_column(sa.Column("refused", sa.String(500)))
        table.add_column(sa.Column("snippets_dropped", sa.Integer))
    with op.batch_alter_table("events") as table:
        table.add_column(sa.Column("version", sa.Integer))
        table.add_column(sa.Column("snippet_bytes", sa.Integer))
        table.add_column(sa.Column("snippet_type", sa.String(32)))
        table.add_column(sa.Column("snippet_start", sa.Float))
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("file", sa.String(4096), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("thresholds", sa.String),
        sa.Column("note", sa.String(1000)),
        sa.Column("who", sa.String(64), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
    )
    op.create_table(
        "assignments",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("sensor", sa.String(64)),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("share", sa.Float),
        sa.Column("who", sa.String(64), nullable=False),
        sa.Column("assigned", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_assignments_sensor_assigned", "assignments", ["sensor", "assigned"])


def downgrade() -> None:
    op.drop_table("assignments")
    op.drop_table("model_versions")
    with op.batch_alter_table("events") as table:
        table.drop_column("snippet_start")
        table.drop_column("snippet_type")
        table.drop_column("snippet_bytes")
        table.drop_column("version")
    with op.batch_alter_table("sensors") as table:
        table.drop_column("snippets_dropped")
        table.drop_column("refused")
        table.drop_column("version_since")
        table.drop_column("version")
