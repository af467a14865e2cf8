"""The labels table of a deployment database: every verdict a reviewer gave a window of an embeddings store
(:mod:`envsound.agile`), read and written through :class:`Labels`.

Where it lives, decided: in the deployment database, beside the tokens (a detections store, :mod:`.store`; for an
embeddings store ``DB/review.sqlite`` by default, or a PostgreSQL URL, so the Review pages of a team's servers share
one table and its reviewers' tokens); its table is :data:`envsound.deploy.schema.labels`, made by the same Alembic
migrations (``0003_labels``), so every existing database opens unchanged. The code that reads and writes it is this
module's, not the sensors' :class:`~envsound.deploy.store.Store` (whose ``add_labels``, ``labels``, ``label_names``
and ``label_mark`` remain, deprecated, for a release).

>>> labels = Labels(Store.open("archive.db/review.sqlite"))
>>> labels.add([{"window": 3, "file": "a.wav", "start": 1.0, "end": 2.0, "label": "dog", "verdict": "yes"}],
...            reviewer="ana")
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Iterable, Mapping

import sqlalchemy as sa

from envsound.deploy import schema
from envsound.deploy.times import UTC, as_utc
from envsound.errors import ConfigError

if TYPE_CHECKING:
    from envsound.deploy.store import Store


class Labels:
    """The verdicts kept in one deployment database (an opened :class:`~envsound.deploy.store.Store`, which the
    caller closes)."""

    def __init__(self, store: "Store") -> None:
        self.store = store

    @property
    def shown(self) -> str:
        """The database's URL without its password."""
        return self.store.shown

    def add(self, rows: Iterable[Mapping], *, reviewer: str, given: datetime | None = None) -> int:
        """Store verdicts on windows of an embeddings store in one transaction; returns how many. Each row is a
        mapping with ``window`` (the window's id in its store, or None), ``file``, ``start``, ``end`` (seconds),
        ``label`` and ``verdict`` (``yes``, ``no`` or ``unsure``), and for a verdict on a fleet event's sound its
        ``event`` (its id in the events table). Every verdict is kept: a second one on the same
        window and label (another reviewer's, or a change of mind) is the current one from then on. ``given``: the
        server's time (default now).

        Raises:
            ConfigError: a verdict other than yes/no/unsure, a label or reviewer name empty or too long, a file name
                longer than 4,096 characters: nothing was stored.
            StoreError: the database refused the write: nothing was stored.
        """
        if not reviewer or len(reviewer) > schema.NAME_LENGTH or not reviewer.isprintable():
            raise ConfigError(f"reviewer {reviewer!r}: a reviewer's name is 1-{schema.NAME_LENGTH} printable "
                              "characters")
        given = self.store.bind(given or datetime.now(UTC))
        values = [_value(row, reviewer, given) for row in rows]
        if not values:
            return 0
        with self.store.writing("the labels"):
            with self.store.engine.begin() as connection:
                connection.execute(schema.labels.insert(), values)
        return len(values)

    def read(self, *, label: str | None = None, after: int | None = None) -> list[dict]:
        """Every verdict stored (of ``label`` only, when given; with an ``id`` over ``after`` only, when given),
        oldest first (by ``given``, then by ``id``: the order they were stored in): ``id``, ``window``, ``file``,
        ``start``, ``end``, ``label``, ``verdict``, ``reviewer``, ``given`` (a UTC datetime)."""
        table = schema.labels
        query = sa.select(table).order_by(table.c.given, table.c.id)
        if label is not None:
            query = query.where(table.c.label == label)
        if after is not None:
            query = query.where(table.c.id > after)
        with self.store.reading() as connection:
            rows = [dict(row._mapping) for row in connection.execute(query)]
        for row in rows:
            row["given"] = as_utc(row["given"])
        return rows

    def names(self) -> list[str]:
        """The labels given so far, each once, in the order they were first given (one grouped query)."""
        table = schema.labels
        query = (sa.select(table.c.label).group_by(table.c.label)
                 .order_by(sa.func.min(table.c.given), sa.func.min(table.c.id)))
        with self.store.reading() as connection:
            return [row[0] for row in connection.execute(query)]

    def mark(self, label: str) -> tuple[int, int]:
        """``(verdicts stored of label, their highest id; 0 when none)``: one indexed query that changes whenever a
        verdict of ``label`` is stored, by this process or another (a reader keeps what it read until it does)."""
        table = schema.labels
        query = sa.select(sa.func.count(), sa.func.max(table.c.id)).where(table.c.label == label)
        with self.store.reading() as connection:
            count, last = connection.execute(query).one()
        return int(count), int(last or 0)


def _value(row: Mapping, reviewer: str, given: datetime) -> dict:
    """One row of the table from a verdict given (checked: raises ConfigError as :meth:`Labels.add`)."""
    if row["verdict"] not in schema.VERDICTS:
        raise ConfigError(f"verdict {row['verdict']!r}: a verdict is one of {', '.join(schema.VERDICTS)}")
    if not row["label"] or len(row["label"]) > schema.LABEL_LENGTH:
        raise ConfigError(f"label {row['label']!r}: a label is 1-{schema.LABEL_LENGTH} characters")
    if len(row["file"]) > schema.FILE_LENGTH:
        raise ConfigError(f"{row['file'][:80]}...: a file name of over {schema.FILE_LENGTH} characters")
    window, event = row.get("window"), row.get("event")
    return {"window": None if window is None else int(window), "file": row["file"], "start": float(row["start"]),
            "end": float(row["end"]), "label": row["label"], "verdict": row["verdict"], "reviewer": reviewer,
            "given": given, "event": None if event is None else int(event)}
