"""The journal of a scan: which files are finished, in which committed part, under which model and settings.

An SQLite database in the results folder (``journal.sqlite``): a row per finished file (classified or failed) indexed
by its name, so that resuming a ten-million-file run checks each name in microseconds without reading any result
back; the parts committed; and the fingerprint of the model and of the settings that shape the results. A part is
committed in one transaction after its files are renamed into place, so after a crash a part file the journal does
not list is an orphan: :meth:`Journal.open` removes it (its files are scanned again) with any temporary file.

A journal damaged on disk (SQLite's quick check fails, or it was emptied while parts remain) is refused, never
rebuilt: the part files do not record the model and settings they were made with, so a journal rebuilt from them
could let a resumed run mix two runs' rows.

Each finished file's size (bytes) and modification time (ns) when it was handed out are kept, so a file that grew or
changed since (a recorder still writing) is classified again; its new rows go in a new part and each committed part
holding its older rows is rewritten without them under a new number, all committed in one transaction with the new
part (:meth:`Journal.commit`): a crash before it leaves the old parts listed (the new ones are orphans), after it the
old ones are orphans, so a file's rows are in the tables once, whole, at every moment the journal describes.
A journal written before sizes and times were kept has none for its files: a run over it records each listed done
file's as they are then (:meth:`DoneIndex.record`), so a change from there on is seen.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from envsound.errors import ConfigError
from envsound.fileio import connect_sqlite

JOURNAL_NAME = "journal.sqlite"
DESCRIPTIVE = {"model_file", "cwd"}  # kept for the reader, not compared: the same model may be named by another path
SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS parts (part INTEGER PRIMARY KEY, files INTEGER NOT NULL, committed REAL NOT NULL);
CREATE TABLE IF NOT EXISTS files (name TEXT PRIMARY KEY, part INTEGER NOT NULL, ok INTEGER NOT NULL,
                                  seconds REAL NOT NULL, size INTEGER, mtime_ns INTEGER);
"""
# Added to the files table of a journal written before them (ALTER TABLE). Its files hold NULL there until the next
# run records them as they are then (DoneIndex.record): what they were when classified is not known, so they are
# taken as unchanged once, and a change after that is seen.
ADDED_COLUMNS = {"files": {"size": "INTEGER", "mtime_ns": "INTEGER"}}
Stat = tuple[int, int]  # (size in bytes, modification time in ns) of a file when it was handed out


def part_name(number: int) -> str:
    """The name of part ``number`` of any table, without its suffix: ``part-000001`` (the one place it is made)."""
    return f"part-{number:06d}"


def other_files(table, drop: set[str]):
    """The rows of the Arrow ``table`` whose ``file`` is not in ``drop``: a boolean array (what rewriting a part
    keeps)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.invert(pc.is_in(table["file"], value_set=pa.array(sorted(drop), type=pa.string())))


@dataclass(frozen=True)
class Done:
    """A file the journal lists as finished, and its :data:`Stat` when it was handed out (None: not known, a journal
    written before they were kept, a run over an embeddings store)."""

    stat: Stat | None


class Journal:
    """The journal of the results folder ``out`` (see the module's docstring)."""

    def __init__(self, out: Path, connection: sqlite3.Connection) -> None:
        self.out = out
        self.db = connection

    @classmethod
    def open(cls, out: str | Path, fingerprint: dict, *, tables: tuple[str, ...]) -> "Journal":
        """Open (or start) the journal of ``out`` for a scan whose results depend on ``fingerprint`` (JSON values).

        Raises:
            ConfigError: ``out`` holds results of another model or other settings (the first difference named),
                files but no journal (not a results folder), or a damaged journal (see the module's docstring).
        """
        out = Path(out)
        path = out / JOURNAL_NAME
        if not path.exists() and out.is_dir() and any(p.name != ".envsound.lock" for p in out.iterdir()):
            raise ConfigError(f"{out}: holds files but no {JOURNAL_NAME}: not a results folder of envsound predict "
                              "--out; name an empty or new folder")
        out.mkdir(parents=True, exist_ok=True)
        db, stored = _open_whole(out, tables)
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
        journal.remove_orphans(tables)
        return journal

    def remove_orphans(self, tables: tuple[str, ...]) -> None:
        """Remove the part files of ``tables`` that no committed part lists, and temporary files. A folder named like
        one is not envsound's: it is left alone (unlinking it failed with IsADirectoryError; found by fuzzing)."""
        committed = {row[0] for row in self.db.execute("SELECT part FROM parts")}
        for table in tables:
            for path in (self.out / table).glob("*"):
                if path.is_dir() and not path.is_symlink():
                    continue
                number = _part_number(path.name)
                if path.name.endswith(".tmp") or (number is not None and number not in committed):
                    path.unlink(missing_ok=True)

    def next_part(self) -> int:
        return (self.db.execute("SELECT MAX(part) FROM parts").fetchone()[0] or 0) + 1

    def commit(self, part: int, finished: list[tuple[str, bool, float]], *, stats: dict[str, Stat] | None = None,
               rewritten: dict[int, int | None] | None = None) -> None:
        """Record ``finished`` (file, classified, seconds of audio) as done in ``part``, in one transaction, with each
        file's :data:`Stat` in ``stats`` (none given: unknown, never seen as changed). ``rewritten``: each committed
        part that held older rows of files in ``finished``, and the part written with its other rows (None: it held
        no other); the old one is dropped from the journal, its files left to be removed
        (:meth:`remove_orphans`)."""
        stats = stats or {}
        with self.db:
            # OR REPLACE: an interrupt between this commit and the caller's bookkeeping commits the part again
            self.db.execute("INSERT OR REPLACE INTO parts VALUES (?, ?, ?)", (part, len(finished), time.time()))
            for old, new in (rewritten or {}).items():
                if new is not None:
                    self.db.execute("UPDATE files SET part = ? WHERE part = ?", (new, old))
                self.db.execute("DELETE FROM parts WHERE part = ?", (old,))
            self.db.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?)",
                                [(name, part, int(ok), seconds, *stats.get(name, (None, None)))
                                 for name, ok, seconds in finished])
            for new in (rewritten or {}).values():
                if new is not None:
                    count = self.db.execute("SELECT COUNT(*) FROM files WHERE part = ?", (new,)).fetchone()[0]
                    self.db.execute("INSERT OR REPLACE INTO parts VALUES (?, ?, ?)", (new, count, time.time()))

    def parts_from(self, first: int, *, besides: int) -> list[int]:
        """The committed parts numbered ``first`` or more, other than ``besides``, in order."""
        return [part for part, in self.db.execute("SELECT part FROM parts WHERE part >= ? AND part != ? ORDER BY part",
                                                  (first, besides))]

    def parts_holding(self, names: list[str], *, besides: int) -> dict[int, list[str]]:
        """The committed parts other than ``besides`` that hold rows of ``names``: part -> those names."""
        held: dict[int, list[str]] = {}
        for name in names:
            row = self.db.execute("SELECT part FROM files WHERE name = ?", (name,)).fetchone()
            if row is not None and row[0] != besides:
                held.setdefault(row[0], []).append(name)
        return held

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
    """``name in index``: whether the journal lists ``name`` as finished (a connection of its own, any thread; it
    writes only the stats :meth:`record` fills in)."""

    def __init__(self, path: Path) -> None:
        self.db = _connect(path)

    def __contains__(self, name: str) -> bool:
        return self.db.execute("SELECT 1 FROM files WHERE name = ?", (name,)).fetchone() is not None

    def done(self, name: str) -> Done | None:
        """``name`` as the journal lists it finished, with its kept :data:`Stat`; None when it is not done."""
        row = self.db.execute("SELECT size, mtime_ns FROM files WHERE name = ?", (name,)).fetchone()
        if row is None:
            return None
        return Done(None if row[0] is None or row[1] is None else (row[0], row[1]))

    def kept(self, name: str) -> Stat | None | bool:
        """Deprecated (its three kinds of answer read alike): :meth:`done`. The :data:`Stat` kept for ``name``, None
        when it is done but its stat is unknown, False when it is not done."""
        warnings.warn("DoneIndex.kept(name) is deprecated: use DoneIndex.done(name) (None: not done; .stat: the "
                      "kept size and time, None if unknown)", DeprecationWarning, stacklevel=2)
        done = self.done(name)
        return False if done is None else done.stat

    def record(self, stats: dict[str, Stat]) -> int:
        """Keep ``stats`` for done files whose stat is unknown (see :meth:`done`), in one transaction; returns how
        many were recorded. A file's kept stat is never replaced here: only a commit of it does that."""
        with self.db:
            before = self.db.total_changes
            self.db.executemany("UPDATE files SET size = ?, mtime_ns = ? WHERE name = ? AND size IS NULL",
                                [(size, mtime, name) for name, (size, mtime) in stats.items()])
            return self.db.total_changes - before

    def close(self) -> None:
        self.db.close()


def _open_whole(out: Path, tables: tuple[str, ...]) -> tuple[sqlite3.Connection, dict]:
    """The journal of ``out``, opened, checked whole (SQLite's quick check: a tenth of a second a million files) and
    with its tables made, and the settings it holds ({} in a new one).

    Raises:
        ConfigError: the journal is damaged, or holds no settings while ``out`` holds parts (emptied or truncated).
    """
    path = out / JOURNAL_NAME
    has_parts = any(any((out / table).glob("part-*")) for table in tables)
    emptied = "it lists no model and no part, yet the folder holds parts: it was emptied or truncated"
    if has_parts and _size(path) == 0 and _size(path.with_name(f"{JOURNAL_NAME}-wal")) == 0:
        raise ConfigError(damaged_message(out, emptied))  # said before SQLite writes a header into it
    db = None
    try:
        db = _connect(path)
        problems = [" ".join(str(row[0]).split()) for row in db.execute("PRAGMA quick_check(1)")]
        if problems != ["ok"]:
            raise ConfigError(damaged_message(out, f"SQLite: {problems[0]}"))
        stored = {}
        if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'settings'").fetchone():
            stored = {key: json.loads(value) for key, value in db.execute("SELECT key, value FROM settings")}
        if not stored and has_parts:
            raise ConfigError(damaged_message(out, emptied))
        db.executescript(SCHEMA)
        for table, columns in _schema_columns().items():  # a table the schema made, with columns lost: damaged
            found = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
            added = ADDED_COLUMNS.get(table, {})
            if missing := [column for column in columns if column not in found and column not in added]:
                raise ConfigError(damaged_message(out, f"its {table} table lacks {', '.join(missing)}"))
            with db:  # a journal written before these columns: they are added (see ADDED_COLUMNS)
                for column, kind in added.items():
                    if column not in found:
                        db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
        return db, stored
    except (sqlite3.DatabaseError, ValueError) as exc:  # ValueError: a setting that is no longer JSON
        if db is not None:
            db.close()
        if isinstance(exc, ValueError):
            raise ConfigError(damaged_message(out, f"a setting is not JSON: {exc}")) from None
        # SQLITE_ERROR here: the schema is not the journal's ("no such column: key"; found by fuzzing)
        if damaged(exc) is None and (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF != 1:
            raise
        raise ConfigError(damaged_message(out, f"SQLite: {' '.join(str(damaged(exc) or exc).split())}")) from None
    except BaseException:
        if db is not None:
            db.close()
        raise


def _schema_columns() -> dict[str, list[str]]:
    """The columns of each table of :data:`SCHEMA` (read from an in-memory database made by it)."""
    with contextlib.closing(sqlite3.connect(":memory:")) as memory:
        memory.executescript(SCHEMA)
        tables = [row[0] for row in memory.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {table: [row[1] for row in memory.execute(f"PRAGMA table_info({table})")] for table in tables}


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def damaged(exc: BaseException) -> str | None:
    """SQLite's words when ``exc`` says a database file is damaged (``SQLITE_CORRUPT``, ``SQLITE_NOTADB``), else
    None."""
    if not isinstance(exc, sqlite3.DatabaseError):
        return None
    if str(exc) == "unsupported file format":  # a header's schema format damaged (SQLITE_ERROR; found by fuzzing)
        return str(exc)
    if str(exc).startswith("Could not decode to UTF-8"):  # Python's sqlite3 reading damaged text (found by fuzzing)
        return "a stored text is not UTF-8"
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:  # Python < 3.11
        return str(exc) if str(exc) in ("database disk image is malformed", "file is not a database") else None
    return str(exc) if code & 0xFF in (11, 26) else None


def damaged_message(out: Path, reason: str) -> str:
    """One line: ``out``'s journal is damaged (``reason``), and what to do."""
    return (f"{out / JOURNAL_NAME} is damaged ({reason}), so the results in {out} cannot be resumed: write to a new "
            "out folder (the tables already there stay readable)")


def _connect(path: Path) -> sqlite3.Connection:
    return connect_sqlite(path, timeout=60)  # WAL: the lister reads while the scan commits


def _part_number(name: str) -> int | None:
    """The number of a part file named by :func:`part_name`, else None."""
    if not name.startswith("part-"):
        return None
    digits = name[5:].split(".", 1)[0]
    return int(digits) if digits.isascii() and digits.isdigit() else None  # "²".isdigit(), yet int("²") fails


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
