"""The server's snippets: the sound of sensors' events, kept as files in the fleet folder
(:func:`envsound.deploy.fleet_files.fleet_dir`), ``snippets/SENSOR/EVENT_ID.EXT``, each written atomically (a
temporary file renamed into place), and noted on its event (``events.snippet_bytes``, ``events.snippet_type``).

Files rather than rows, on SQLite and PostgreSQL alike: a browser reads a snippet whole, and a folder is what a
backup, a quota and ``du`` understand. Kept ``keep_days`` after the event ended and within ``quota`` bytes (the
oldest events' dropped first): :meth:`SnippetFiles.enforce` runs when the server starts and then along with the
writes, at most once an hour, or at once when a write takes the folder over its quota. :func:`purge_snippets`
deletes them by sensor, label or age (``envsound fleet purge``): the files first, then the columns.
"""

from __future__ import annotations

import logging
import os
import time
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from envsound.deploy import schema
from envsound.deploy.fleet_files import snippet_path
from envsound.deploy.snippets import MEDIA_TYPES
from envsound.deploy.store import Store
from envsound.deploy.times import UTC
from envsound.fileio import atomic_open

log = logging.getLogger(__name__)
MAX_SNIPPET_BYTES = 2_000_000  # one upload: 10 s of Opus is about 60 KB, of 48-kHz FLAC under 1 MB
MAGIC = {"audio/ogg": b"OggS", "audio/flac": b"fLaC"}  # what a snippet of each type starts with
ENFORCE_SECONDS = 3600.0
QUOTA_ROOM = 0.9  # once over its quota, the folder is brought down to this share of it: not one upload from over


class SnippetFiles:
    """The snippets of ``store``'s events in the fleet folder ``folder``; ``keep_days`` and ``quota`` (bytes): how
    long and how much is kept (None: no limit)."""

    def __init__(self, store: Store, folder: str | Path, *, keep_days: float | None = None,
                 quota: int | None = None) -> None:
        self.store, self.folder, self.keep_days, self.quota = store, Path(folder), keep_days, quota
        self.total = 0  # bytes kept, as of the last enforce plus what was written since
        self.enforced = float("-inf")

    def keep(self, sensor: str, key: str, body: bytes, media_type: str, start: float | None = None
             ) -> tuple[int, bool]:
        """Keep ``body`` as the sound of ``sensor``'s event ``key`` (``start``: where it begins, in seconds from the
        event's onset, as the sensor cut it; None: not said, the event taken to start with it); returns (the event's
        id, whether it is new: a retried upload of a snippet kept already writes nothing).

        Raises:
            LookupError: no such event.
            StoreError: the database refused the write (the file may be there: a retry rewrites it).
            OSError: the file could not be written.
        """
        table = schema.events
        with self.store.reading() as connection:
            row = connection.execute(sa.select(table.c.id, table.c.snippet_bytes, table.c.snippet_type)
                                     .where(table.c.sensor == sensor, table.c.key == key)).first()
        if row is None:
            raise LookupError(key)
        path = snippet_path(self.folder, sensor, row.id, media_type)
        if row.snippet_bytes == len(body) and row.snippet_type == media_type and path.is_file():
            return row.id, False
        with atomic_open(path) as out:  # whole or absent: a temporary file renamed (the sweep removes a leftover)
            out.write(body)
            out.flush()
            os.fsync(out.fileno())
        with self.store.writing("the snippet's size"), self.store.engine.begin() as connection:
            connection.execute(table.update().where(table.c.id == row.id)
                               .values(snippet_bytes=len(body), snippet_type=media_type, snippet_start=start))
        self.total += len(body) - (row.snippet_bytes or 0)
        if time.monotonic() - self.enforced > ENFORCE_SECONDS:
            self.enforce()
        elif self.quota is not None and self.total > self.quota:
            self.enforce(sweep=False)
        return row.id, True

    def audio(self, event_id: int) -> tuple[bytes, str, str] | None:
        """Event ``event_id``'s kept sound: (its bytes, its media type, its file's name); None when none is kept."""
        table = schema.events
        with self.store.reading() as connection:
            row = connection.execute(sa.select(table.c.sensor, table.c.snippet_type)
                                     .where(table.c.id == event_id, table.c.snippet_type.is_not(None))).first()
        if row is None or row.snippet_type not in MEDIA_TYPES:
            return None
        path = snippet_path(self.folder, row.sensor, event_id, row.snippet_type)
        try:
            return path.read_bytes(), row.snippet_type, path.name
        except FileNotFoundError:  # purged between the two reads
            return None

    def enforce(self, *, now: datetime | None = None, sweep: bool = True) -> int:
        """Delete what is past ``keep_days``, then, over ``quota``, the oldest events' snippets until the rest fit
        :data:`QUOTA_ROOM` of it, and (``sweep``) files whose event is gone (events pruned by ``serve --keep-days``);
        returns how many snippets went. An upload that takes the folder over its quota enforces without the sweep
        (a walk of the whole folder is hourly)."""
        if sweep:
            self.enforced = time.monotonic()
        gone = 0
        if self.keep_days is not None:
            gone += purge_snippets(self.store, self.folder, older_than_days=self.keep_days, now=now)[0]
        table = schema.events
        with self.store.reading() as connection:
            rows = connection.execute(sa.select(table.c.id, table.c.sensor, table.c.snippet_type,
                                                table.c.snippet_bytes).where(table.c.snippet_bytes.is_not(None))
                                      .order_by(table.c.offset.desc(), table.c.id.desc())).all()
        total = sum(row.snippet_bytes for row in rows)
        room = None if self.quota is None else (self.quota if total <= self.quota else QUOTA_ROOM * self.quota)
        kept, over = 0, []
        for row in rows:
            kept += row.snippet_bytes
            if room is not None and kept > room:
                over.append(row)
        gone += _forget(self.store, self.folder, over)
        self.total = sum(row.snippet_bytes for row in rows) - sum(row.snippet_bytes for row in over)
        if sweep:
            gone += self._sweep({row.id for row in rows} - {row.id for row in over})
        if gone:
            log.info("snippets: %d deleted (retention, quota or events gone); %d bytes kept", gone, self.total)
        return gone

    def _sweep(self, kept: set[int]) -> int:
        """Delete the files (and leftover temporary files) of events that keep no snippet."""
        gone = 0
        for path in (self.folder / "snippets").glob("*/*"):
            stem = path.name.split(".")[0] if not path.name.startswith(".") else ""
            if not (stem.isdigit() and int(stem) in kept):
                path.unlink(missing_ok=True)
                gone += not path.name.startswith(".")
        return gone


def purge_snippets(store: Store, folder: str | Path, *, sensor: str | None = None, label: str | None = None,
                   older_than_days: float | None = None, now: datetime | None = None) -> tuple[int, int]:
    """Delete the snippets of ``sensor``'s events, of ``label``'s, and of events that ended more than
    ``older_than_days`` ago (the conditions together; none given: every snippet), their files first, then their
    events' ``snippet_bytes`` and ``snippet_type``; the events stay. Returns (snippets, bytes) deleted.

    >>> purge_snippets(Store.open("events.sqlite"), "events-fleet", label="speech")
    (12, 371520)

    Raises:
        StoreError: the store cannot be read or written.
    """
    table = schema.events
    query = sa.select(table.c.id, table.c.sensor, table.c.snippet_type, table.c.snippet_bytes).where(
        table.c.snippet_bytes.is_not(None))
    if sensor is not None:
        query = query.where(table.c.sensor == sensor)
    if label is not None:
        query = query.where(table.c.label == label)
    if older_than_days is not None:
        cutoff = (now or datetime.now(UTC)) - timedelta(days=older_than_days)
        query = query.where(table.c.offset < store.bind(cutoff))
    with store.reading() as connection:
        rows = connection.execute(query).all()
    return _forget(store, Path(folder), rows), sum(row.snippet_bytes for row in rows)


def _forget(store: Store, folder: Path, rows) -> int:
    """Delete the files of ``rows`` (``id``, ``sensor``, ``snippet_type``), then clear their columns."""
    for row in rows:
        if row.snippet_type in MEDIA_TYPES:
            snippet_path(folder, row.sensor, row.id, row.snippet_type).unlink(missing_ok=True)
    table, ids = schema.events, [row.id for row in rows]
    with store.writing("the snippets' deletion"), store.engine.begin() as connection:
        for at in range(0, len(ids), 500):
            connection.execute(table.update().where(table.c.id.in_(ids[at:at + 500]))
                               .values(snippet_bytes=None, snippet_type=None))
    return len(rows)
