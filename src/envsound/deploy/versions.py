"""A fleet's model versions and which sensor should run which (``envsound fleet``), over the store's
``model_versions`` and ``assignments`` tables (:mod:`envsound.deploy.schema`).

A version is a file a sensor runs (an ONNX export), copied into the fleet folder's ``models/``, with its SHA-256, the
model's name (as events carry it), who published it, when, a note, the learned thresholds and their precision, and
the server's Ed25519 signature over its id and digest (:mod:`envsound.deploy.signing`). Publishing a file whose
digest a version already has reuses that version (a canary's file published again to all is the same version).

Assignments are rows, never changed or deleted: a sensor runs the version of the newest row naming it or naming
every sensor (``sensor`` NULL). One publish, assign or rollback writes its rows with one ``assigned`` time: a batch.
A canary (``share``) names a deterministic choice of the known sensors (those that reported, and those with an active
sensor token): the first ``share`` of them ordered by a hash of name and version, so a second canary of another
version picks others. :meth:`Fleet.rollback` writes a batch that gives each sensor of the newest batch the version it
had before it (a rollback of a rollback goes forward again); one that had none gets :data:`OWN`: the model it was
started with.

Acting on the store directly (as ``envsound token`` does), so a running server sees a change at its next request.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import math
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa

from envsound.deploy import schema
from envsound.deploy.signing import server_key, sign
from envsound.deploy.store import Store
from envsound.deploy.times import UTC, as_utc, iso, parse_time
from envsound.deploy.tokens import check_name
from envsound.errors import ConfigError
from envsound.fileio import atomic_path, file_digest

MODELS = "models"  # the fleet folder's sub-folder of published files
OWN = 0  # an assignment's version meaning "no published version": the model the sensor was started with


@dataclass(frozen=True)
class Version:
    """One published model version (a row of ``model_versions``); ``file`` is relative to the fleet folder."""

    id: int
    digest: str
    name: str
    file: str
    size: int
    format: str
    thresholds: dict | None
    note: str | None
    who: str
    created: datetime
    signature: str

    def to_dict(self) -> dict:
        """Its metadata as the server gives it to a sensor and a viewer (not the file's path on the server)."""
        return {"id": self.id, "digest": self.digest, "name": self.name, "size": self.size, "format": self.format,
                "thresholds": self.thresholds, "note": self.note, "who": self.who, "created": iso(self.created),
                "signature": self.signature}


@dataclass(frozen=True)
class Assigned:
    """One row of a batch: ``sensor`` (None: every sensor) should run ``version``."""

    sensor: str | None
    version: int

    def line(self) -> str:
        to = "its own model (the one it was started with)" if self.version == OWN else f"version {self.version}"
        return f"{self.sensor or 'every sensor'} -> {to}"


@dataclass(frozen=True)
class _Row:
    id: int
    sensor: str | None
    version: int
    assigned: datetime


def default_who() -> str:
    """The OS user's name, as a publish's ``who`` when none is given."""
    try:
        return getpass.getuser()[:64]
    except (KeyError, OSError):
        return "unknown"


class Fleet:
    """The versions and assignments of ``store``, the files and signing key in ``folder`` (the fleet folder)."""

    def __init__(self, store: Store, folder: str | Path) -> None:
        self.store, self.folder = store, Path(folder)

    # ------------------------------------------------------------------ versions

    def add_version(self, path: str | Path, *, name: str, thresholds: dict | None = None, note: str | None = None,
                    who: str | None = None, format: str = "onnx") -> tuple[Version, bool]:
        """Publish the file at ``path`` (what a sensor runs) as a new version, signed; returns it and whether it is
        new (False: a version of the same digest already there, returned as it is).

        Raises:
            ConfigError: ``path`` cannot be read. StoreError: the store refused the write.
        """
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: no such model file")
        digest = file_digest(path)
        found = self._versions(schema.model_versions.c.digest == digest)
        if found:
            return found[0], False
        table, key, created = schema.model_versions, server_key(self.folder), datetime.now(UTC)
        with self.store.writing("the version"), self.store.engine.begin() as connection:
            new_id = connection.execute(sa.select(sa.func.coalesce(sa.func.max(table.c.id), 0) + 1)).scalar_one()
            relative = f"{MODELS}/v{new_id}-{digest[:12]}.{format}"
            target = self.folder / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(target) as tmp:
                shutil.copyfile(path, tmp)
            row = {"id": new_id, "digest": digest, "name": name, "file": relative, "size": target.stat().st_size,
                   "format": format, "thresholds": json.dumps(thresholds) if thresholds else None, "note": note,
                   "who": check_name(who or default_who()), "created": self.store.bind(created),
                   "signature": sign(key, new_id, digest)}
            connection.execute(table.insert().values(row))
        return self.version(new_id), True

    def version(self, version_id: int) -> Version | None:
        """The version ``version_id``, or None when there is none."""
        found = self._versions(schema.model_versions.c.id == version_id)
        return found[0] if found else None

    def versions(self) -> list[Version]:
        """Every version, newest first."""
        return self._versions(None)

    def path(self, version: Version) -> Path:
        """Where ``version``'s file is on this server."""
        return self.folder / version.file

    def _versions(self, where) -> list[Version]:
        query = sa.select(schema.model_versions).order_by(schema.model_versions.c.id.desc())
        if where is not None:
            query = query.where(where)
        with self.store.reading() as connection:
            rows = connection.execute(query).all()
        return [Version(**{**row._mapping, "created": as_utc(row.created),
                           "thresholds": json.loads(row.thresholds) if row.thresholds else None}) for row in rows]

    # ------------------------------------------------------------------ assignments

    def assign(self, version_id: int, *, sensors: list[str] | None = None, share: float | None = None,
               who: str | None = None) -> list[Assigned]:
        """Assign version ``version_id`` (:data:`OWN`: the model each was started with) to ``sensors``, to a
        ``share`` (0 < share <= 1) of the known sensors, or to every sensor (neither given); returns the batch
        written.

        Raises:
            ConfigError: no such version, both ``sensors`` and ``share``, a share out of range or no known sensor.
        """
        if version_id != OWN and self.version(version_id) is None:
            raise ConfigError(f"version {version_id}: no such version in {self.store.shown}")
        if sensors and share is not None:
            raise ConfigError("give named sensors or a share of them, not both")
        if share is not None:
            if not 0 < share <= 1:
                raise ConfigError(f"share {share:g}: give a fraction above 0 and at most 1 (e.g. 0.1)")
            known = self.known_sensors()
            if not known:
                raise ConfigError(f"no sensor known to {self.store.shown} yet (none reported, no sensor token): "
                                  "a canary needs some; name them with --sensors")
            count = max(1, math.ceil(share * len(known) - 1e-9))
            sensors = sorted(sorted(known, key=lambda name: _draw(name, version_id))[:count])
        batch = [Assigned(check_name(name), version_id) for name in sensors] if sensors else [Assigned(None,
                                                                                                       version_id)]
        self._write(batch, share=share, who=who)
        return batch

    def rollback(self, *, who: str | None = None) -> list[Assigned]:
        """Give each sensor of the newest batch the version it was assigned before it (:data:`OWN` when none);
        returns the batch written.

        Raises:
            ConfigError: nothing assigned yet.
        """
        rows = self._rows()
        if not rows:
            raise ConfigError(f"nothing assigned in {self.store.shown} yet: nothing to roll back")
        newest = rows[-1].assigned
        last = [row for row in rows if row.assigned == newest]
        before = [row for row in rows if row.assigned != newest]
        batch = []
        if any(row.sensor is None for row in last):
            everyone = _resolve(before, None, OWN)
            batch.append(Assigned(None, everyone))
            named = set(self.known_sensors()) | {row.sensor for row in before if row.sensor is not None}
            batch += [Assigned(name, had) for name in sorted(named)
                      if (had := _resolve(before, name, OWN)) != everyone]
        for name in sorted({row.sensor for row in last if row.sensor is not None}):
            item = Assigned(name, _resolve(before, name, OWN))
            if item not in batch and not (batch and batch[0].sensor is None and batch[0].version == item.version):
                batch.append(item)
        self._write(batch, share=None, who=who)
        return batch

    def assigned(self, sensor: str) -> Version | None:
        """The version ``sensor`` should run (None: none assigned, or :data:`OWN`: the model it was started with)."""
        table = schema.assignments
        query = (sa.select(table.c.version).where(sa.or_(table.c.sensor == sensor, table.c.sensor.is_(None)))
                 .order_by(table.c.assigned.desc(), table.c.id.desc()).limit(1))
        with self.store.reading() as connection:
            found = connection.execute(query).scalar()
        return None if found is None else self.version(found)

    def known_sensors(self) -> list[str]:
        """Sensors that reported, and those with an active sensor token, by name."""
        tokens = schema.tokens
        query = sa.union(sa.select(schema.sensors.c.name),
                         sa.select(tokens.c.name).where(tokens.c.role == "sensor", tokens.c.revoked.is_(None)))
        with self.store.reading() as connection:
            return sorted(connection.execute(query).scalars())

    def status(self, *, online_seconds: float = 120.0, now: datetime | None = None) -> list[dict]:
        """Per known sensor (and any named by an assignment): the version assigned, the version it runs and since
        when (the server's clock), its last heartbeat (its clock), when the server last heard from it and whether
        that was within ``online_seconds``."""
        now = now or datetime.now(UTC)
        rows, reported = self._rows(), {item["name"]: item for item in self.store.sensors()}
        names = sorted(set(self.known_sensors()) | {row.sensor for row in rows if row.sensor is not None})
        out = []
        for name in names:
            seen = reported.get(name, {})
            last = seen.get("last_received")
            out.append({"sensor": name, "assigned": _resolve(rows, name) or None, "running": seen.get("version"),
                        "since": seen.get("version_since"), "last_heartbeat": seen.get("last_heard"),
                        "last_received": last, "refused": seen.get("refused"),
                        "snippets_dropped": seen.get("snippets_dropped"),
                        "online": last is not None and (now - as_utc(parse_time(last))).total_seconds()
                        <= online_seconds})
        return out

    def _rows(self) -> list[_Row]:
        table = schema.assignments
        query = sa.select(table.c.id, table.c.sensor, table.c.version, table.c.assigned).order_by(table.c.assigned,
                                                                                                   table.c.id)
        with self.store.reading() as connection:
            return [_Row(row.id, row.sensor, row.version, as_utc(row.assigned)) for row in connection.execute(query)]

    def _write(self, batch: list[Assigned], *, share: float | None, who: str | None) -> None:
        assigned = self.store.bind(datetime.now(UTC))  # one time for the batch: what rollback tells batches by
        rows = [{"sensor": item.sensor, "version": item.version, "share": share, "who": check_name(who or
                                                                                                  default_who()),
                 "assigned": assigned} for item in batch]
        with self.store.writing("the assignment"), self.store.engine.begin() as connection:
            connection.execute(schema.assignments.insert(), rows)


def _resolve(rows: list[_Row], sensor: str | None, default: int | None = None) -> int | None:
    """The version the newest of ``rows`` (oldest first) gives ``sensor`` (None: only rows for every sensor), else
    ``default``."""
    for row in reversed(rows):
        if row.sensor is None or (sensor is not None and row.sensor == sensor):
            return row.version
    return default


def _draw(name: str, version: int) -> str:
    """A sensor's place in a canary's order for ``version``: stable, and different from one version to the next."""
    return hashlib.sha256(f"{version}\n{name}".encode()).hexdigest()
