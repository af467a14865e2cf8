"""The review of a fleet as queries: each event's place in its sensor's random sample (``events.sample_order``, the
SHA-256 of its key) and the event a verdict on its sound names (``labels.event``), both indexed; filled in for the
rows already there (a fleet review's verdict, on a snippet ``.../snippets/SENSOR/ID.EXT`` of an event of that sensor
and no window, names it).

Revision ID: 0005
Revises: 0004
"""

import hashlib
from pathlib import PurePath

import sqlalchemy as sa
from alembic import op

revision, down_revision = "0005", "0004"
CHUNK = 10_000  # rows read and updated a batch


def upgrade() -> None:
    with op.batch_alter_table("events") as table:
        table.add_column(sa.Column("sample_order", sa.String(64)))
    with op.batch_alter_table("labels") as table:
        table.add_column(sa.Column("event", sa.BigInteger))
    connection = op.get_bind()
    events = sa.table("events", sa.column("id"), sa.column("key"), sa.column("sensor"), sa.column("sample_order"))
    last = 0
    while rows := connection.execute(sa.select(events.c.id, events.c.key).where(events.c.id > last)
                                     .order_by(events.c.id).limit(CHUNK)).all():
        connection.execute(sa.update(events).where(events.c.id == sa.bindparam("row_id"))
                           .values(sample_order=sa.bindparam("order")),
                           [{"row_id": i, "order": hashlib.sha256(key.encode()).hexdigest()} for i, key in rows])
        last = rows[-1][0]
    labels = sa.table("labels", sa.column("id"), sa.column("file"), sa.column("event"), sa.column("window"))
    # a fleet review's verdict names no window (one given on a window of a store of snippets is a window's)
    snippets = connection.execute(sa.select(labels.c.id, labels.c.file).where(
        labels.c.file.like("%/snippets/%"), labels.c.window.is_(None))).all()
    named = {}
    for label_id, file in snippets:
        path = PurePath(file)
        if path.parent.parent.name == "snippets" and path.stem.isdigit():
            named[label_id] = (path.parent.name, int(path.stem))
    wanted, sensors = sorted({event for _, event in named.values()}), {}
    for at in range(0, len(wanted), 500):  # SQLite's bound parameters a statement are few
        sensors.update(connection.execute(sa.select(events.c.id, events.c.sensor)
                                          .where(events.c.id.in_(wanted[at:at + 500]))).all())
    matched = [{"label_id": label_id, "event_id": event} for label_id, (sensor, event) in named.items()
               if sensors.get(event) == sensor]
    if matched:
        connection.execute(sa.update(labels).where(labels.c.id == sa.bindparam("label_id"))
                           .values(event=sa.bindparam("event_id")), matched)
    op.create_index("ix_events_sample_order", "events", ["sample_order"])
    op.create_index("ix_events_sensor_label_sample_order", "events", ["sensor", "label", "sample_order"])
    op.create_index("ix_labels_event", "labels", ["event"])


def downgrade() -> None:
    op.drop_index("ix_labels_event", "labels")
    op.drop_index("ix_events_sensor_label_sample_order", "events")
    op.drop_index("ix_events_sample_order", "events")
    with op.batch_alter_table("labels") as table:
        table.drop_column("event")
    with op.batch_alter_table("events") as table:
        table.drop_column("sample_order")
