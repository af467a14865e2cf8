"""A sensor's outbox: the events and the last heartbeat it has not delivered yet, in a SQLite file of its own, so that
what it heard while the server was away (or while it was itself stopped) is sent when it can be.

Each event gets its key (a UUID) when it is queued, and keeps it through every retry: the server stores an event
once however many times it arrives. An event's snippet (its sound, ``listen --snippets``) waits in ``snippets``
under the event's key, and is sent once its event was delivered; the snippets queued stay within a budget of bytes,
the oldest dropped first and counted (:attr:`Outbox.snippets_dropped`). The standard library's sqlite3, not
SQLAlchemy: a sensor runs on the light install. Shared by the listening thread and the delivering one, behind one
lock.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from pathlib import Path

from envsound.errors import StoreError
from envsound.fileio import connect_sqlite

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, key TEXT UNIQUE NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS heartbeat (one INTEGER PRIMARY KEY CHECK (one = 1), body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS set_aside (key TEXT PRIMARY KEY, body TEXT NOT NULL, reason TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS snippets (id INTEGER PRIMARY KEY, key TEXT UNIQUE NOT NULL, type TEXT NOT NULL,
                                     body BLOB NOT NULL, start REAL);
"""


def default_queue_path(sensor: str) -> Path:
    """``queue-SENSOR.sqlite`` in the user's data folder: one outbox a sensor."""
    import platformdirs

    return platformdirs.user_data_path("envsound") / f"queue-{sensor}.sqlite"


class Outbox:
    """The undelivered reports of one sensor at ``path`` (made when missing)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # FULL: a queued event outlives a power cut too (a sensor's power is the first thing to fail)
            self.db = connect_sqlite(self.path, synchronous="FULL", autocommit=True)
            # the write-ahead log checkpointed at 1 MB and cut back to 1 MB after: snippets pass through it, and at
            # SQLite's defaults (4 MB, kept at its largest) it reached 4.8 MB in a 0.5-MB snippet budget's outage
            self.db.execute("PRAGMA wal_autocheckpoint = 256")  # pages of 4 kB
            self.db.execute("PRAGMA journal_size_limit = 1048576")
            self.db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"{self.path}: cannot open the sensor's queue ({exc})") from None
        self.lock = threading.Lock()
        self.snippets_dropped = 0  # snippets this Outbox dropped to stay within its budget

    def put_events(self, events: list[dict]) -> list[str]:
        """Queue ``events`` (``label``, ``onset``, ``offset`` as ISO UTC times, ``score``), each with a new key;
        returns the keys, in order."""
        keys = [uuid.uuid4().hex for _ in events]
        rows = [(key, json.dumps({**event, "key": key})) for key, event in zip(keys, events)]
        with self.lock, self.db:
            self.db.execute("BEGIN")
            self.db.executemany("INSERT INTO events (key, body) VALUES (?, ?)", rows)
        return keys

    def put_snippet(self, key: str, body: bytes, media_type: str, start: float | None = None, *, budget: int) -> int:
        """Queue the sound of the event ``key`` (``start``: where it begins, in seconds from the event's onset); then
        drop the oldest snippets (this one too, when it alone is over)
        until those queued hold at most ``budget`` bytes. Returns how many were dropped (added to
        :attr:`snippets_dropped`)."""
        with self.lock, self.db:
            self.db.execute("BEGIN")
            self.db.execute("INSERT OR REPLACE INTO snippets (key, type, body, start) VALUES (?, ?, ?, ?)",
                            (key, media_type, body, start))
            total, dropped = self.db.execute("SELECT coalesce(sum(length(body)), 0) FROM snippets").fetchone()[0], 0
            for row, size in self.db.execute("SELECT id, length(body) FROM snippets ORDER BY id").fetchall():
                if total <= budget:
                    break
                self.db.execute("DELETE FROM snippets WHERE id = ?", (row,))
                total, dropped = total - size, dropped + 1
        self.snippets_dropped += dropped
        return dropped

    def take_snippet(self) -> tuple[str, str, bytes, float | None] | None:
        """The oldest snippet whose event was delivered: (key, media type, bytes, start), left queued until
        :meth:`snippet_done`; None when there is none."""
        with self.lock:
            return self.db.execute("SELECT key, type, body, start FROM snippets s WHERE NOT EXISTS (SELECT 1 FROM events e "
                                   "WHERE e.key = s.key) ORDER BY id LIMIT 1").fetchone()

    def snippet_done(self, key: str) -> None:
        """Forget the snippet of ``key``: stored by the server, or refused for good."""
        with self.lock:
            self.db.execute("DELETE FROM snippets WHERE key = ?", (key,))

    def snippets_queued(self) -> int:
        """Snippets waiting to be delivered."""
        with self.lock:
            return self.db.execute("SELECT count(*) FROM snippets").fetchone()[0]

    def put_heartbeat(self, heartbeat: dict) -> None:
        """Keep ``heartbeat`` as the one to send (an older undelivered one is replaced: only the last matters)."""
        with self.lock:
            self.db.execute("INSERT OR REPLACE INTO heartbeat (one, body) VALUES (1, ?)", (json.dumps(heartbeat),))

    def take(self, limit: int) -> tuple[list[int], list[dict], dict | None]:
        """The oldest ``limit`` events (their row ids, their bodies) and the heartbeat, left queued until
        :meth:`delivered`."""
        with self.lock:
            rows = self.db.execute("SELECT id, body FROM events ORDER BY id LIMIT ?", (limit,)).fetchall()
            beat = self.db.execute("SELECT body FROM heartbeat").fetchone()
        return [row[0] for row in rows], [json.loads(row[1]) for row in rows], json.loads(beat[0]) if beat else None

    def delivered(self, ids: list[int], heartbeat: dict | None) -> None:
        """Forget what the server stored: the events ``ids`` and ``heartbeat`` unless a newer one came since."""
        with self.lock, self.db:
            self.db.execute("BEGIN")
            self.db.executemany("DELETE FROM events WHERE id = ?", [(i,) for i in ids])
            if heartbeat is not None:
                self.db.execute("DELETE FROM heartbeat WHERE body = ?", (json.dumps(heartbeat),))

    def set_aside(self, ids: list[int], reason: str) -> None:
        """Move the events ``ids`` that the server refused as malformed out of the queue, with the server's reason:
        kept for a person to look at (``SELECT * FROM set_aside``), never resent."""
        with self.lock, self.db:
            self.db.execute("BEGIN")
            for row in ids:
                self.db.execute("INSERT OR REPLACE INTO set_aside (key, body, reason) SELECT key, body, ? FROM events "
                                "WHERE id = ?", (reason, row))
                # its sound would find no event on the server: it goes too
                self.db.execute("DELETE FROM snippets WHERE key = (SELECT key FROM events WHERE id = ?)", (row,))
                self.db.execute("DELETE FROM events WHERE id = ?", (row,))

    def queued(self) -> int:
        """Events waiting to be delivered."""
        with self.lock:
            return self.db.execute("SELECT count(*) FROM events").fetchone()[0]

    def pending(self) -> bool:
        """Anything to send: events, a heartbeat or snippets."""
        with self.lock:
            return bool(self.db.execute("SELECT EXISTS (SELECT 1 FROM events) OR EXISTS (SELECT 1 FROM heartbeat) "
                                        "OR EXISTS (SELECT 1 FROM snippets)").fetchone()[0])

    def close(self) -> None:
        with self.lock:
            self.db.close()
