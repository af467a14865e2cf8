"""The detections store: every event a sensor reported, each sensor's last heartbeat, the server's tokens and the
labels reviewers gave (their table read and written by :mod:`envsound.deploy.labels`), in one database through
SQLAlchemy, its tables made and kept current by Alembic (:mod:`envsound.deploy.schema`).

**SQLite by default** (a file: WAL, so readers never wait for the writer, and a busy timeout, so a second process
waits instead of failing), **PostgreSQL by URL** (``postgresql://user@host/db``; psycopg 3). A report is one
transaction: its events and its heartbeat are stored together or not at all. Inserts are idempotent: an event's key
is ``(sensor, key)``, and ``ON CONFLICT DO NOTHING`` makes a retried report store nothing twice.

>>> store = Store.open("events.sqlite")
>>> store.add_report("lab", [Detection("k1", "dog", onset, offset, 0.9)], model="cnn", fingerprint="ab12")
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Iterable, Iterator, Mapping

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from envsound.deploy import schema
from envsound.deploy.times import UTC, as_utc, iso
from envsound.deploy.tokens import ROLES, check_name
from envsound.errors import ConfigError, NoStoreError, StoreError
from envsound.fileio import use_wal

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"
# Alembic's `context` and `op` are module globals: two threads migrating at once (two reviewers' labels opening one
# store) failed with KeyError: 'config', so one thread of a process migrates at a time
_MIGRATING = threading.Lock()


def sample_order(key: str) -> str:
    """An event's place in its sensor's random sample (:mod:`envsound.agile.fleet_review`): the SHA-256 of its key
    (which the sensor made a random UUID; hashed, so that keys made otherwise are in a random order too), hex."""
    return hashlib.sha256(key.encode()).hexdigest()


def default_store_path() -> Path:
    """``events.sqlite`` in the user's data folder (``~/.local/share/envsound`` on Linux)."""
    import platformdirs

    return platformdirs.user_data_path("envsound") / "events.sqlite"


SUPPORTED = ("sqlite", "postgresql")  # the databases a store can be kept in


def store_url(spec: str | Path | None) -> str:
    """A ``--store`` value (a path, or a URL) -> SQLAlchemy's URL. ``postgresql://`` means psycopg 3.

    Raises:
        ConfigError: a URL of another database (``mysql://...``): only SQLite and PostgreSQL are supported.
    """
    text = str(default_store_path() if spec is None else spec)
    for prefix in ("postgresql://", "postgres://"):
        if text.startswith(prefix):
            return "postgresql+psycopg://" + text[len(prefix):]
    if "://" in text:
        scheme = text.split("://", 1)[0]
        if scheme.split("+", 1)[0].lower() not in SUPPORTED:  # e.g. mysql: not "No module named 'MySQLdb'"
            raise ConfigError(f"a store URL of {scheme}://: envsound keeps its store in {' or '.join(SUPPORTED)} "
                              "only (a path, sqlite:///PATH or postgresql://USER@HOST/DB)")
        return text
    return f"sqlite:///{Path(text).expanduser().absolute()}"


@dataclass(frozen=True)
class Detection:
    """One event as a sensor reports it: ``key`` unique for the sensor; times UTC, from the sensor's clock."""

    key: str
    label: str
    onset: datetime
    offset: datetime
    score: float
    version: int | None = None  # the fleet's model version that heard it (None: a model not published by the fleet)


@dataclass(frozen=True)
class Heartbeat:
    """A sensor's sign of life: its clock's time and what it hears then (``label`` None: nothing yet)."""

    time: datetime
    label: str | None = None
    score: float | None = None
    version: int | None = None  # the fleet's model version it runs (kept on the sensor, with since when)
    refused: str | None = None  # the last version it refused and why, said until it takes one
    snippets_dropped: int | None = None  # snippets it dropped over its disk budget (listen --snippet-budget-mb)


@dataclass(frozen=True)
class Token:
    id: int
    name: str
    role: str
    created: datetime
    revoked: datetime | None = None

    def to_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "role": self.role, "created": iso(self.created),
                "revoked": iso(self.revoked) if self.revoked else None}


class Store:
    """One detections store (see the module's docstring); open it with :meth:`open`."""

    def __init__(self, engine: sa.Engine, shown: str) -> None:
        self.engine = engine
        self.shown = shown  # the URL without its password: what messages and `serve` print
        self.dialect = engine.dialect.name
        self.new = False  # made by the Store.open that opened it
        self._insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert

    @classmethod
    def open(cls, spec: str | Path | None = None, *, create: bool = True) -> "Store":
        """Open the store at ``spec`` (a path, ``sqlite:///...`` or ``postgresql://...``; None: the default file),
        creating (``create``) or upgrading its tables. ``create=False`` opens only a store that exists: a SQLite
        file that is there, a PostgreSQL database that holds a store's tables. :attr:`new` says whether this call
        made it.

        Raises:
            StoreError: it cannot be opened, reached or migrated (one line naming it and why).
            NoStoreError: it is not there and ``create`` is False.
            ConfigError: ``spec`` is a URL of a database other than SQLite and PostgreSQL.
        """
        url = sa.engine.make_url(store_url(spec))
        shown = url.render_as_string(hide_password=True)
        a_file = url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")
        existed = a_file and Path(url.database).exists()
        if a_file and not existed and not create:  # asked for a store, not for a new one: make no file
            raise NoStoreError(url.database)
        if a_file and create:
            try:
                Path(url.database).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"{url.database}: cannot make its folder ({exc.strerror})") from None
        # a PostgreSQL host that does not answer is an error in seconds, not after the system's TCP timeout
        connect_args = {"connect_timeout": 10} if url.get_backend_name() == "postgresql" else {}
        try:
            engine = sa.create_engine(url, pool_pre_ping=True, connect_args=connect_args)
        except (sa.exc.ArgumentError, ImportError) as exc:
            raise StoreError(f"--store {shown}: not a store this can open ({exc})") from None
        if engine.dialect.name == "sqlite":
            sa.event.listen(engine, "connect", _sqlite_pragmas)
        store = cls(engine, shown)
        if not a_file:  # a database: a store is there when its tables are
            try:
                existed = sa.inspect(engine).has_table("alembic_version")
            except sa.exc.SQLAlchemyError as exc:
                raise StoreError(f"{shown}: cannot open the store ({_reason(exc)})") from None
            if not existed and not create:
                engine.dispose()
                raise NoStoreError(shown)
        store.new = not existed
        store.migrate()
        return store

    def migrate(self) -> None:
        """Create the tables, or bring an older store's up to date (Alembic's ``upgrade head``)."""
        from alembic import command
        from alembic.config import Config
        from alembic.util.exc import CommandError

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        try:
            with _MIGRATING, self.engine.begin() as connection:
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
        except CommandError as exc:  # e.g. a store written by a newer envsound
            raise StoreError(f"{self.shown}: cannot migrate the store ({_one_line(exc)})") from None
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(f"{self.shown}: cannot open the store ({_reason(exc)})") from None

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------------ reports

    def add_report(self, sensor: str, events: list[Detection], *, heartbeat: Heartbeat | None = None,
                   model: str | None = None, fingerprint: str | None = None,
                   received: datetime | None = None, clock_offset: float | None = None) -> int:
        """Store ``events`` and ``heartbeat`` from ``sensor`` in one transaction; returns how many events were new
        (the rest were stored before: a retry). ``received``: the server's time (default now); ``clock_offset``:
        the sensor's clock minus the server's, in seconds, kept on the sensor's row (None leaves it as it was).

        Raises:
            StoreError: the database refused the write (full disk, lost connection): nothing of it was stored.
        """
        received = self.bind(received or datetime.now(UTC))
        sensor_row = {"name": sensor, "first_received": received, "last_received": received}
        changed = {"last_received": received}
        if clock_offset is not None:
            sensor_row["clock_offset"] = changed["clock_offset"] = float(clock_offset)
        try:
            with self.engine.begin() as connection:
                upsert = self._insert(schema.sensors).values(sensor_row)
                connection.execute(upsert.on_conflict_do_update(index_elements=["name"], set_=changed))
                if heartbeat is not None:  # a sensor running a fleet's version: that version's name and digest
                    runs = self._versions(connection, {heartbeat.version} if heartbeat.version else set()).get(
                        heartbeat.version, {"model": model, "fingerprint": fingerprint})
                    self._heartbeat(connection, sensor, heartbeat, runs["model"], runs["fingerprint"], received)
                if not events:
                    return 0
                # an event of a fleet's version: that version's name and file digest, whatever the report says (a
                # queue delivered after a swap holds the old version's events)
                heard_by = self._versions(connection, {e.version for e in events if e.version})
                rows = [{"sensor": sensor, "key": e.key, "label": e.label, "onset": self.bind(e.onset),
                         "offset": self.bind(e.offset), "score": float(e.score), "received": received,
                         "version": e.version, "sample_order": sample_order(e.key),
                         **heard_by.get(e.version, {"model": model, "fingerprint": fingerprint})}
                        for e in events]
                insert = self._insert(schema.events).on_conflict_do_nothing(index_elements=["sensor", "key"])
                return len(connection.execute(insert.returning(schema.events.c.id), rows).all())
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(f"{self.shown}: the report could not be stored ({_reason(exc)})") from None

    @staticmethod
    def _versions(connection, ids: set[int]) -> dict[int, dict]:
        """The fleet's versions ``ids`` -> their ``model`` (name) and ``fingerprint`` (16 digits of the digest)."""
        if not ids:
            return {}
        table = schema.model_versions
        rows = connection.execute(sa.select(table.c.id, table.c.name, table.c.digest).where(table.c.id.in_(ids)))
        return {row.id: {"model": row.name, "fingerprint": row.digest[:16]} for row in rows}

    def _heartbeat(self, connection, sensor: str, beat: Heartbeat, model, fingerprint, received) -> None:
        """A heartbeat older than the one stored (a queue delivered late) leaves the sensor's row as it is; the
        version it runs keeps its ``version_since`` (the server's clock) until it changes."""
        table, heard = schema.sensors, self.bind(beat.time)
        since = sa.case((table.c.version.is_not_distinct_from(beat.version), table.c.version_since), else_=received)
        connection.execute(
            table.update().where(table.c.name == sensor)
            .where(sa.or_(table.c.last_heard.is_(None), table.c.last_heard <= heard))
            .values(last_heard=heard, label=beat.label, score=beat.score, model=model, fingerprint=fingerprint,
                    version=beat.version, version_since=since, refused=beat.refused,
                    snippets_dropped=beat.snippets_dropped))

    # ------------------------------------------------------------------ reads

    def events(self, *, sensor: str | None = None, label: str | None = None, since: datetime | None = None,
               until: datetime | None = None, min_score: float | None = None, limit: int = 100,
               after: tuple[datetime, int] | None = None, version: int | None = None) -> list[dict]:
        """Events newest first (by onset): those of ``sensor`` and ``label`` sounding at some time in
        ``[since, until)``, scored ``min_score`` or more, heard by model ``version`` of the fleet; ``after``: the
        ``(onset, id)`` of the last one of the previous page."""
        table = schema.events
        query = sa.select(table).order_by(table.c.onset.desc(), table.c.id.desc()).limit(limit)
        if sensor is not None:
            query = query.where(table.c.sensor == sensor)
        if label is not None:
            query = query.where(table.c.label == label)
        if since is not None:
            query = query.where(table.c.offset >= self.bind(since))
        if until is not None:
            query = query.where(table.c.onset < self.bind(until))
        if min_score is not None:
            query = query.where(table.c.score >= min_score)
        if version is not None:
            query = query.where(table.c.version == version)
        if after is not None:
            onset, last = self.bind(after[0]), after[1]
            query = query.where(sa.or_(table.c.onset < onset, sa.and_(table.c.onset == onset, table.c.id < last)))
        with self.reading() as connection:
            return [self._event(row._mapping) for row in connection.execute(query)]

    @staticmethod
    def _event(row) -> dict:
        return {"id": row["id"], "sensor": row["sensor"], "label": row["label"], "onset": iso(row["onset"]),
                "offset": iso(row["offset"]), "score": row["score"], "model": row["model"],
                "fingerprint": row["fingerprint"], "key": row["key"], "received": iso(row["received"]),
                "version": row["version"],
                "audio": row["snippet_bytes"]}  # the bytes of its sound kept (GET /v1/events/ID/audio); None: none

    def sensors(self) -> list[dict]:
        """Every sensor that ever reported, by name: when the server last heard from it and what it heard then."""
        with self.reading() as connection:
            rows = connection.execute(sa.select(schema.sensors).order_by(schema.sensors.c.name)).all()
        out = []
        for row in rows:
            item = dict(row._mapping)
            for key in ("first_received", "last_received", "last_heard", "version_since"):
                item[key] = iso(item[key]) if item[key] is not None else None
            out.append(item)
        return out

    def count_events(self, sensor: str | None = None) -> int:
        query = sa.select(sa.func.count()).select_from(schema.events)
        if sensor is not None:
            query = query.where(schema.events.c.sensor == sensor)
        with self.engine.connect() as connection:
            return connection.execute(query).scalar_one()

    def prune(self, keep_days: float, *, now: datetime | None = None) -> int:
        """Delete the events that ended more than ``keep_days`` ago; returns how many. The verdicts on them stay
        (learning reads them by file) but name no event any more: SQLite may give a deleted event's id to a new one."""
        cutoff = self.bind((now or datetime.now(UTC)) - timedelta(days=keep_days))
        events, labels = schema.events, schema.labels
        try:
            with self.engine.begin() as connection:
                deleted = connection.execute(events.delete().where(events.c.offset < cutoff)).rowcount
                if deleted:
                    gone = ~sa.exists().where(events.c.id == labels.c.event)
                    connection.execute(labels.update().where(labels.c.event.is_not(None), gone).values(event=None))
                return deleted
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(f"{self.shown}: old events could not be pruned ({_reason(exc)})") from None

    # ------------------------------------------------------------------ labels (deprecated here: deploy/labels.py)

    def add_labels(self, rows: Iterable[Mapping], *, reviewer: str, given: datetime | None = None) -> int:
        """Deprecated: :meth:`Labels(store).add <envsound.deploy.labels.Labels.add>`."""
        return self._labels("add_labels", "add").add(rows, reviewer=reviewer, given=given)

    def labels(self, *, label: str | None = None, after: int | None = None) -> list[dict]:
        """Deprecated: :meth:`Labels(store).read <envsound.deploy.labels.Labels.read>`."""
        return self._labels("labels", "read").read(label=label, after=after)

    def label_names(self) -> list[str]:
        """Deprecated: :meth:`Labels(store).names <envsound.deploy.labels.Labels.names>`."""
        return self._labels("label_names", "names").names()

    def label_mark(self, label: str) -> tuple[int, int]:
        """Deprecated: :meth:`Labels(store).mark <envsound.deploy.labels.Labels.mark>`."""
        return self._labels("label_mark", "mark").mark(label)

    def _labels(self, old: str, new: str):
        from envsound.deploy.labels import Labels

        warnings.warn(f"Store.{old} is deprecated; use envsound.deploy.labels.Labels(store).{new}", DeprecationWarning,
                      stacklevel=3)
        return Labels(self)

    # ------------------------------------------------------------------ tokens

    def create_token(self, name: str, role: str) -> tuple[Token, str]:
        """A new token: its record and its secret (``es_...``), which is shown once and stored only hashed."""
        check_name(name)
        if role not in ROLES:
            raise StoreError(f"role {role!r}: choose one of {', '.join(ROLES)}")
        secret = "es_" + secrets.token_urlsafe(32)
        created = datetime.now(UTC)
        with self.engine.begin() as connection:
            new_id = connection.execute(schema.tokens.insert().values(
                name=name, role=role, digest=_digest(secret), created=self.bind(created))).inserted_primary_key[0]
        return Token(new_id, name, role, created), secret

    def tokens(self) -> list[Token]:
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(schema.tokens).order_by(schema.tokens.c.id)).all()
        return [self._token(row._mapping) for row in rows]

    def revoke(self, name: str, token_id: int | None = None) -> int:
        """Revoke ``name``'s tokens (only ``token_id`` when given); returns how many were active."""
        table = schema.tokens
        where = sa.and_(table.c.name == name, table.c.revoked.is_(None))
        if token_id is not None:
            where = sa.and_(where, table.c.id == token_id)
        with self.engine.begin() as connection:
            return connection.execute(table.update().where(where)
                                      .values(revoked=self.bind(datetime.now(UTC)))).rowcount

    def token_for(self, secret: str) -> Token | None:
        """The active token whose secret this is, or None (unknown, or revoked)."""
        table = schema.tokens
        query = sa.select(table).where(table.c.digest == _digest(secret), table.c.revoked.is_(None))
        with self.reading() as connection:
            row = connection.execute(query).first()
        return None if row is None else self._token(row._mapping)

    def has_tokens(self) -> bool:
        query = sa.select(sa.func.count()).select_from(schema.tokens).where(schema.tokens.c.revoked.is_(None))
        with self.engine.connect() as connection:
            return connection.execute(query).scalar_one() > 0

    @staticmethod
    def _token(row) -> Token:
        return Token(row["id"], row["name"], row["role"], as_utc(row["created"]),
                     as_utc(row["revoked"]) if row["revoked"] is not None else None)

    @contextmanager
    def writing(self, what: str) -> Iterator[None]:
        """A write whose database error is a StoreError naming ``what`` could not be stored (nothing was)."""
        try:
            yield
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(f"{self.shown}: {what} could not be stored ({_reason(exc)})") from None

    @contextmanager
    def reading(self) -> Iterator[sa.Connection]:
        """A connection for reads; a database gone away is a StoreError (the server answers 503), not a crash."""
        try:
            with self.engine.connect() as connection:
                yield connection
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(f"{self.shown}: the store cannot be read ({_reason(exc)})") from None

    def bind(self, moment: datetime) -> datetime:
        """SQLite keeps times as text without a zone: they are written in UTC, and compare as text in order."""
        moment = as_utc(moment)
        return moment.replace(tzinfo=None) if self.dialect == "sqlite" else moment


def _sqlite_pragmas(connection, _record) -> None:
    use_wal(connection)  # another writer (a `token create` beside the server) waits; a crash loses no report


def _digest(secret: str) -> str:
    # the secret holds 256 random bits, so a plain hash cannot be guessed back: no slow password hash needed
    return hashlib.sha256(secret.encode()).hexdigest()


def _reason(exc: sa.exc.SQLAlchemyError) -> str:
    original = getattr(exc, "orig", None)
    return _one_line(original if original is not None else exc)


def _one_line(exc) -> str:
    return " ".join(str(exc).split())[:300]
