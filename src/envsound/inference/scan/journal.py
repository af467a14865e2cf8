"""The journal of a scan: which files are finished, in which committed part, under which model and settings.

An SQLite database in the results folder (``journal.sqlite``): a row per finished file (classified or failed) indexed
by its name, so that resuming a ten-million-file run checks each name in microseconds without reading any result
back; the parts committed; and the fingerprint of the model and of the settings that shape the results. A part is
committed in one transaction after its files are renamed into place, so after a crash a part file the journal does
not list is an orphan: :meth:`Journal.open` removes it (its files are scanned again) with any temporary file.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from envsound.errors import ConfigError
from envsound.fileio import connect_sqlite

JOURNAL_NAME = "journal.sqlite"
DESCRIPTIVE = {"model_file"}  # kept for the reader, not compared: the same model may be named by another path
SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS parts (part INTEGER PRIMARY KEY, files INTEGER NOT NULL, committed REAL NOT NULL);
CREATE TABLE IF NOT EXISTS files (name TEXT PRIMARY KEY, part INTEGER NOT NULL, ok INTEGER NOT NULL,
                                  seconds REAL NOT NULL);
"""


class Journal:
    """The journal of the results folder ``out`` (see the module's docstring)."""

    def __init__(self, out: Path, connection: sqlite3.Connection) -> None:
        self.out = out
        self.db = connection

    @classmethod
    def open(cls, out: str | Path, fingerprint: dict, *, tables: tuple[str, ...]) -> "Journal":
        """Open (or start) the journal of ``out`` for a scan whose results depend on ``fingerprint`` (JSON values).

        Raises:
            ConfigError: ``out`` holds results of another model or other settings (the first difference named), or
                files but no journal (not a results folder).
        """
        out = Path(out)
        path = out / JOURNAL_NAME
        if not path.exists() and out.is_dir() and any(p.name != ".envsound.lock" for p in out.iterdir()):
            raise ConfigError(f"{out}: holds files but no {JOURNAL_NAME}: not a results folder of envsound predict "
                              "--out; name an empty or new folder")
        out.mkdir(parents=True, exist_ok=True)
        db = _connect(path)
        db.executescript(SCHEMA)
        stored = {key: json.loads(value) for key, value in db.execute("SELECT key, value FROM settings")}
        if stored:
            # The model first: another model's labels differ too, and are not what a user needs to read.
            keys = sorted((set(stored) | set(fingerprint)) - DESCRIPTIVE, key=lambda key: (key != "model", key))
            for key in keys:
                if stored.get(key) != fingerprint.get(key):
                    db.close()
                    raise ConfigError(f"{out}: holds results of {_describe(key, stored)}, not "
                                      f"{_describe(key, fingerprint)}; resume with the same model and "
                                      "settings, or write to another folder")
        else:
            with db:
                db.executemany("INSERT INTO settings VALUES (?, ?)",
                               [(key, json.dumps(value)) for key, value in fingerprint.items()])
        journal = cls(out, db)
        journal._remove_orphans(tables)
        return journal

    def _remove_orphans(self, tables: tuple[str, ...]) -> None:
        committed = {row[0] for row in self.db.execute("SELECT part FROM parts")}
        for table in tables:
            for path in (self.out / table).glob("*"):
                number = _part_number(path.name)
                if path.name.endswith(".tmp") or (number is not None and number not in committed):
                    path.unlink(missing_ok=True)

    def next_part(self) -> int:
        return (self.db.execute("SELECT MAX(part) FROM parts").fetchone()[0] or 0) + 1

    def commit(self, part: int, finished: list[tuple[str, bool, float]]) -> None:
        """Record ``finished`` (file, classified, seconds of audio) as done in ``part``, in one transaction."""
        with self.db:
            # OR REPLACE: an interrupt between this commit and the caller's bookkeeping commits the part again
            self.db.execute("INSERT OR REPLACE INTO parts VALUES (?, ?, ?)", (part, len(finished), time.time()))
            self.db.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?)",
                                [(name, part, int(ok), seconds) for name, ok, seconds in finished])

    def totals(self) -> dict:
        """``{"files", "failed", "seconds"}`` over the whole journal."""
        files, failed, seconds = self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(1 - ok), 0), COALESCE(SUM(seconds), 0) FROM files").fetchone()
        return {"files": files, "failed": failed, "seconds": seconds}

    def reader(self) -> "DoneIndex":
        """A connection of its own for another thread (the lister) to ask which files are done."""
        return DoneIndex(self.out / JOURNAL_NAME)

    def close(self) -> None:
        self.db.close()


class DoneIndex:
    """``name in index``: whether the journal lists ``name`` as finished (a read-only connection, any thread)."""

    def __init__(self, path: Path) -> None:
        self.db = _connect(path)

    def __contains__(self, name: str) -> bool:
        return self.db.execute("SELECT 1 FROM files WHERE name = ?", (name,)).fetchone() is not None

    def close(self) -> None:
        self.db.close()


def _connect(path: Path) -> sqlite3.Connection:
    return connect_sqlite(path, timeout=60)  # WAL: the lister reads while the scan commits


def _part_number(name: str) -> int | None:
    if not name.startswith("part-"):
        return None
    digits = name[5:].split(".", 1)[0]
    return int(digits) if digits.isdigit() else None


def _describe(key: str, fingerprint: dict, *, width: int = 80) -> str:
    """One setting of ``fingerprint`` in a few words: the model by its file's name and digest, a long value cut."""
    value = fingerprint.get(key)
    if value is None:
        return f"no {key}"
    if key == "model":
        named = f"the model {Path(fingerprint['model_file']).name} " if fingerprint.get("model_file") else "the model "
        return f"{named}(sha256 {str(value)[:12]})"
    text = json.dumps(value)
    if len(text) > width:
        count = f", {len(value)} in all" if isinstance(value, (list, dict)) else ""
        text = f"{text[:width - 20]}...{count}"
    return f"{key} {text}"
