"""A fleet's routes: a sensor fetches the version assigned to it and the server's public key; people read the
versions, each sensor's status and the detection rates of each version side by side (a canary's old and new).

- ``GET /v1/fleet/assignment``: the caller's assigned version (``{"sensor", "version": metadata or null}``; null: run
  the model it was started with). A sensor token asks for its own sensor only; an admin names one (``?sensor=``).
- ``GET /v1/fleet/versions/{id}/file``: a version's file; a sensor token gets only the version assigned to it (403
  for any other), so a sensor cannot read what it was not given.
- ``GET /v1/fleet/key``: the server's Ed25519 public key (PEM), which a sensor pins at first contact.
- ``GET /v1/fleet/versions``, ``GET /v1/fleet/status``, ``GET /v1/fleet/rates``: for viewers.

The versions and assignments are written by ``envsound fleet`` on the store directly; the routes read them at each
request, so a publish is seen at the next one. A sensor's refusal of a version (a bad signature or digest) comes in
its heartbeat (:mod:`envsound.app.monitor`), kept on the sensor's row while its heartbeats say it.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa
from fastapi import Depends, FastAPI, Query
from fastapi.responses import FileResponse, Response
from starlette.exceptions import HTTPException

from envsound.app.answers import STORE_ERRORS, read
from envsound.app.auth import Caller, Guard, check_sensor
from envsound.deploy import schema
from envsound.deploy.fleet_files import fleet_dir
from envsound.deploy.signing import public_pem
from envsound.deploy.versions import Fleet

log = logging.getLogger(__name__)


def add_fleet_routes(app: FastAPI, store, guard: Guard, *, online_seconds: float,
                     folder: str | Path | None = None) -> None:
    """Register the ``/v1/fleet/...`` routes of ``store``'s fleet on ``app``; ``folder``: the fleet folder (default:
    the store's, :func:`~envsound.deploy.fleet_files.fleet_dir`)."""
    fleet = Fleet(store, fleet_dir(store.shown, folder))
    sensor_or_admin = Depends(guard.needs("report"))  # a sensor's own business (as its reports are), or an admin's
    reader = Depends(guard.needs("read"))

    @app.get("/v1/fleet/assignment", responses=STORE_ERRORS)
    async def assignment(caller: Caller = sensor_or_admin,
                         sensor: str | None = Query(None, max_length=64, description="an admin's: whose")) -> dict:
        """The version assigned to the calling sensor (null: the model it was started with)."""
        name = _whose(caller, sensor)
        version = await read(fleet.assigned, name)
        return {"sensor": name, "version": version.to_dict() if version else None}

    @app.get("/v1/fleet/versions/{version_id}/file", responses=STORE_ERRORS, response_class=FileResponse)
    async def version_file(version_id: int, caller: Caller = sensor_or_admin):
        """A version's file: a sensor gets only the version assigned to it."""
        version = await read(fleet.version, version_id)
        if version is None:
            raise HTTPException(404, f"version {version_id}: no such version")
        if caller.role == "sensor":
            mine = await read(fleet.assigned, caller.name)
            if mine is None or mine.id != version_id:
                raise HTTPException(403, f"version {version_id} is not the one assigned to sensor {caller.name!r}")
        path = fleet.path(version)
        if not path.is_file():
            raise HTTPException(404, f"version {version_id}: its file is missing from the server's fleet folder")
        return FileResponse(path, media_type="application/octet-stream", filename=Path(version.file).name)

    @app.get("/v1/fleet/key", responses=STORE_ERRORS, response_class=Response, dependencies=[sensor_or_admin])
    async def key() -> Response:
        """The server's Ed25519 public key (PEM): what a sensor checks each version's signature with."""
        return Response(public_pem(fleet.folder), media_type="application/x-pem-file")

    @app.get("/v1/fleet/versions", responses=STORE_ERRORS, dependencies=[reader])
    async def versions() -> dict:
        """Every published version, newest first."""
        return {"versions": [version.to_dict() for version in await read(fleet.versions)]}

    @app.get("/v1/fleet/status", responses=STORE_ERRORS, dependencies=[reader])
    async def status() -> dict:
        """Per sensor: the version assigned, the one it runs and since when, its last heartbeat, online, and the
        last version it refused while its heartbeats say so (``{"line"}``; null: none)."""
        rows = await read(fleet.status, online_seconds=online_seconds)
        for row in rows:
            row["refused"] = refusal(row)
        return {"sensors": rows, "online_seconds": online_seconds}

    @app.get("/v1/fleet/rates", responses=STORE_ERRORS, dependencies=[reader])
    async def rates(hours: float = Query(24.0, gt=0, le=24 * 366, description="over the last this many hours"),
                    label: str | None = Query(None, max_length=200)) -> dict:
        """Per version (null: a model not published by the fleet) and label: events, sensors that heard them, and
        events per sensor-hour over the last ``hours``; a canary's old and new side by side."""
        until = datetime.now(timezone.utc)
        return {"rates": await read(version_rates, fleet.store, until - timedelta(hours=hours), until, label),
                "hours": hours}


def version_rates(store, since: datetime, until: datetime, label: str | None = None) -> list[dict]:
    """Events that sounded in ``[since, until)`` by version and label: ``events``, ``sensors`` (that heard them with
    that version) and ``per_sensor_hour``: events / (sensors x hours). Sensors on two versions in the window count
    for both; a rate is a comparison of versions heard at the same time (a canary), not a census."""
    table = schema.events
    query = (sa.select(table.c.version, table.c.label, sa.func.count().label("events"),
                       sa.func.count(sa.distinct(table.c.sensor)).label("sensors"))
             .where(table.c.offset >= store.bind(since), table.c.onset < store.bind(until))
             .group_by(table.c.version, table.c.label).order_by(table.c.version, table.c.label))
    if label is not None:
        query = query.where(table.c.label == label)
    hours = (until - since).total_seconds() / 3600
    with store.reading() as connection:
        rows = connection.execute(query).all()
    return [{"version": row.version, "label": row.label, "events": row.events, "sensors": row.sensors,
             "per_sensor_hour": round(row.events / (row.sensors * hours), 4)} for row in rows]


def refusal(row: dict) -> dict | None:
    """A sensor's row's refusal of a version as the API gives it: ``{"line": why}``, or None."""
    return {"line": row["refused"]} if row.get("refused") else None


def _whose(caller: Caller, sensor: str | None) -> str:
    if caller.role == "sensor":
        if sensor is not None:
            check_sensor(caller, sensor)
        return caller.name
    if sensor is None:
        raise HTTPException(422, "sensor: name the sensor whose assignment to read (?sensor=NAME)")
    return sensor
