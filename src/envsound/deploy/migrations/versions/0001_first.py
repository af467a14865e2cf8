"""The first store: tokens, sensors, events.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "tokens",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False, unique=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked", sa.DateTime(timezone=True)),
    )
    op.create_table(
        "sensors",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("first_received", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_received", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_heard", sa.DateTime(timezone=True)),
        sa.Column("label", sa.String(200)),
        sa.Column("score", sa.Float),
        sa.Column("model", sa.String(200)),
        sa.Column("fingerprint", sa.String(64)),
    )
    op.create_table(
        "events",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("sensor", sa.String(64), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("onset", sa.DateTime(timezone=True), nullable=False),
        sa.Column("offset", sa.DateTime(timezone=True), nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("model", sa.String(200)),
        sa.Column("fingerprint", sa.String(64)),
        sa.Column("received", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("sensor", "key", name="uq_events_sensor_key"),
    )
    op.create_index("ix_events_onset", "events", ["onset"])
    op.create_index("ix_events_sensor_onset", "events", ["sensor", "onset"])


def downgrade() -> None:
    op.drop_table("events")
    op.drop_table("sensors")
    op.drop_table("tokens")
