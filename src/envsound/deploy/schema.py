"""The detections store's tables (SQLAlchemy Core). Alembic's migrations (``deploy/migrations``) create them; a test
checks that the migrations and these tables agree, so a change here needs a new migration.

Times are UTC. ``onset``/``offset``/``last_heard`` come from the sensor's clock; ``received`` is the server's;
``clock_offset`` is the sensor's clock minus the server's, in seconds, at its last report that said when it was sent.

``labels`` holds every verdict a reviewer gave a window of an embeddings store (``envsound label``): the window's id in
the store it was given in, and its ``file``, ``start`` and ``end`` (seconds), by which another store of the same files
finds it; ``given`` is the server's clock. No verdict replaces another: the latest given is the current one. It is read
and written by :mod:`envsound.deploy.labels` (not by the sensors' :class:`~envsound.deploy.store.Store`).

A fleet (``envsound fleet``): ``model_versions`` holds each model published to the sensors (its file is kept in the
server's fleet folder, :func:`envsound.deploy.fleet_files.fleet_dir`, signed with the server's key);
``assignments`` says which version each sensor should run, newest row first (``sensor`` NULL: every sensor without
a row of its own newer than it). An event says which version heard it (``version``; NULL: a model not published
through the fleet) and whether its sound is kept (``snippet_bytes``, ``snippet_type``: a file in the fleet folder);
``sample_order`` is its place in its sensor's random sample (the SHA-256 of its key), and a verdict on an event's
sound names the event (``labels.event``), so the review of a fleet is a query, not a walk over every event.
"""

from __future__ import annotations

from sqlalchemy import (BigInteger, Column, DateTime, Float, Index, Integer, MetaData, String, Table,
                        UniqueConstraint)

NAME_LENGTH = 64  # sensor, token and reviewer names
LABEL_LENGTH = 200
FILE_LENGTH = 4096  # an audio file's path, as the embeddings store lists it (Linux's PATH_MAX)
VERDICTS = ("yes", "no", "unsure")  # what a reviewer says of a window and a label

metadata = MetaData()
# SQLite's rowid is a 64-bit INTEGER PRIMARY KEY; BIGINT would not alias it (and so would not autoincrement there)
_ID = BigInteger().with_variant(Integer(), "sqlite")

tokens = Table(
    "tokens", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(NAME_LENGTH), nullable=False),  # a sensor token's name is the sensor's
    Column("role", String(16), nullable=False),
    Column("digest", String(64), nullable=False, unique=True),  # SHA-256 of the secret: the secret is never stored
    Column("created", DateTime(timezone=True), nullable=False),
    Column("revoked", DateTime(timezone=True)),
)

sensors = Table(
    "sensors", metadata,
    Column("name", String(NAME_LENGTH), primary_key=True),
    Column("first_received", DateTime(timezone=True), nullable=False),
    Column("last_received", DateTime(timezone=True), nullable=False),  # server's clock: is it online?
    Column("last_heard", DateTime(timezone=True)),  # sensor's clock, from its last heartbeat
    Column("label", String(LABEL_LENGTH)),  # what it heard then
    Column("score", Float),
    Column("model", String(LABEL_LENGTH)),
    Column("fingerprint", String(64)),
    Column("clock_offset", Float),  # seconds, sensor's clock - server's; NULL: not known (older sensors and rows)
    Column("version", Integer),  # the model version it runs, from its last heartbeat (NULL: none published)
    Column("version_since", DateTime(timezone=True)),  # server's clock: when it first said it runs that version
    Column("refused", String(500)),  # the last version it refused and why, while its heartbeats say so (NULL: none)
    Column("snippets_dropped", Integer),  # snippets it dropped over its disk budget, as its last heartbeat said
)

events = Table(
    "events", metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("sensor", String(NAME_LENGTH), nullable=False),
    Column("key", String(64), nullable=False),  # the sensor's idempotency key: a retried report stores nothing twice
    Column("label", String(LABEL_LENGTH), nullable=False),
    Column("onset", DateTime(timezone=True), nullable=False),
    Column("offset", DateTime(timezone=True), nullable=False),
    Column("score", Float, nullable=False),
    Column("model", String(LABEL_LENGTH)),
    Column("fingerprint", String(64)),
    Column("received", DateTime(timezone=True), nullable=False),
    Column("version", Integer),  # the model version that heard it (NULL: a model not published through the fleet)
    Column("snippet_bytes", Integer),  # the size of its sound kept by the server (NULL: none kept)
    Column("snippet_type", String(32)),  # its media type, e.g. audio/ogg
    Column("snippet_start", Float),  # where the snippet begins, in seconds from the event's onset (<= 0: a margin)
    Column("sample_order", String(64)),  # SHA-256 of its key, hex: its place in its sensor's random sample
    UniqueConstraint("sensor", "key", name="uq_events_sensor_key"),
    Index("ix_events_onset", "onset"),
    Index("ix_events_sensor_onset", "sensor", "onset"),
    Index("ix_events_sample_order", "sample_order"),
    Index("ix_events_sensor_label_sample_order", "sensor", "label", "sample_order"),
)

labels = Table(
    "labels", metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("window", BigInteger),  # the window's id in the store it was given in (None: given by file and times)
    Column("file", String(FILE_LENGTH), nullable=False),
    Column("start", Float, nullable=False),  # seconds in the file
    Column("end", Float, nullable=False),
    Column("label", String(LABEL_LENGTH), nullable=False),
    Column("verdict", String(8), nullable=False),  # one of VERDICTS
    Column("reviewer", String(NAME_LENGTH), nullable=False),
    Column("given", DateTime(timezone=True), nullable=False),  # the server's clock, UTC
    Column("event", BigInteger),  # a verdict on a fleet event's sound: the event's id (None: on an archive's window)
    Index("ix_labels_label_given", "label", "given"),
    Index("ix_labels_event", "event"),
)

model_versions = Table(
    "model_versions", metadata,
    Column("id", Integer, primary_key=True),
    Column("digest", String(64), nullable=False),  # SHA-256 of the file a sensor runs
    Column("name", String(LABEL_LENGTH), nullable=False),  # the model's name (its network), as events carry it
    Column("file", String(FILE_LENGTH), nullable=False),  # relative to the fleet folder
    Column("size", BigInteger, nullable=False),
    Column("format", String(16), nullable=False),  # what a sensor runs: "onnx"
    Column("thresholds", String),  # JSON: {label: {"threshold", "precision"}} as learn calibrated them
    Column("note", String(1000)),
    Column("who", String(NAME_LENGTH), nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("signature", String(128), nullable=False),  # Ed25519 over the version's id and digest, hex
)

assignments = Table(
    "assignments", metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("sensor", String(NAME_LENGTH)),  # NULL: every sensor
    Column("version", Integer, nullable=False),
    Column("share", Float),  # a canary's share of the fleet this row was one of (NULL: named or all)
    Column("who", String(NAME_LENGTH), nullable=False),
    Column("assigned", DateTime(timezone=True), nullable=False),
    Index("ix_assignments_sensor_assigned", "sensor", "assigned"),
)
