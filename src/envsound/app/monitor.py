"""The deployment's REST API: sensors report (``POST /v1/report``), people read (``GET /v1/events``,
``GET /v1/sensors``); the page's Monitor view reads the same two.

Each event keeps the sensor's times (``onset``, ``offset``) and the server's (``received``). A report that says when
it was sent (``sent``, by the sensor's clock) sets the sensor's ``clock_offset`` (its clock minus the server's, in
seconds); past :data:`CLOCK_WARN` ``GET /v1/sensors`` gives the sensor a ``clock`` line ("clock off by about 60 min,
ahead of the server's"), which the Monitor view shows.

Every write goes through one writer thread (:class:`Writer`): SQLite takes one writer at a time anyway, and a
queue in front of it keeps the event loop free and the order of a sensor's reports. A store that fails a write
(full disk, lost database) answers **503** with ``Retry-After``: nothing of that report was stored, and the sensor
keeps it and tries again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Annotated

from fastapi import Depends, FastAPI, Query
from pydantic import AwareDatetime, BaseModel, Field, model_validator
from starlette.exceptions import HTTPException

from envsound.app.answers import STORE_ERRORS, read
from envsound.app.auth import Caller, Guard, check_sensor
from envsound.app.fleet import refusal
from envsound.deploy.store import Detection, Heartbeat, Store
from envsound.deploy.times import as_utc, parse_time
from envsound.deploy.tokens import NAME
from envsound.errors import StoreError

log = logging.getLogger(__name__)
EARLIEST = datetime(2000, 1, 1, tzinfo=timezone.utc)
CLOCK_SLACK = timedelta(hours=1)  # a sensor's clock may run ahead of the server's this much
CLOCK_WARN = 120.0  # seconds: a sensor's clock off by more is shown as off (network delay is far less)
MAX_EVENTS = 1000  # a report
MAX_PAGE = 10_000
SensorName = Annotated[str, Field(pattern=f"^{NAME.pattern}$", max_length=64, description="the sensor's name")]


class EventIn(BaseModel):
    key: str = Field(min_length=1, max_length=64, description="unique for the sensor: a retry stores nothing twice")
    label: str = Field(min_length=1, max_length=200)
    onset: AwareDatetime = Field(description="UTC (or any zone) from the sensor's clock, e.g. 2026-11-27T19:00:00Z")
    offset: AwareDatetime
    score: float = Field(ge=0, le=1)
    version: int | None = Field(None, ge=0, description="the fleet's model version that heard it")

    @model_validator(mode="after")
    def _in_order(self):
        if self.offset < self.onset:
            raise ValueError(f"event {self.key}: offset {self.offset} is before onset {self.onset}")
        return self


class HeartbeatIn(BaseModel):
    time: AwareDatetime
    label: str | None = Field(None, max_length=200)
    score: float | None = Field(None, ge=0, le=1)
    version: int | None = Field(None, ge=0, description="the fleet's model version the sensor runs")
    refused: str | None = Field(None, max_length=10_000, description="the last version it refused, and why (kept "
                                                                     "to its first 500 characters)")
    snippets_dropped: int | None = Field(None, ge=0, description="snippets it dropped over its disk budget so far")


class ReportIn(BaseModel):
    sensor: SensorName
    model: str | None = Field(None, max_length=200)
    fingerprint: str | None = Field(None, max_length=64)
    events: list[EventIn] = Field(default_factory=list, max_length=MAX_EVENTS)
    heartbeat: HeartbeatIn | None = None
    sent: AwareDatetime | None = Field(None, description="when the sensor sent this report, by its clock: the "
                                                         "server compares it with its own to say whether the "
                                                         "sensor's clock is off")


class ReportOut(BaseModel):
    stored: int  # events new to the store
    duplicates: int  # events it had already (a retried report)


class Writer:
    """One thread that does every write of ``store``, in order; prunes events older than ``keep_days`` (checked at
    most once an hour, on the way)."""

    def __init__(self, store: Store, keep_days: float | None = None) -> None:
        self.store, self.keep_days = store, keep_days
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="envsound-store")
        self.pruned = float("-inf")

    async def run(self, fn, *args, **kwargs):
        return await asyncio.wrap_future(self.executor.submit(self._call, fn, *args, **kwargs))

    def _call(self, fn, *args, **kwargs):
        if self.keep_days is not None and time.monotonic() - self.pruned > 3600:
            self.pruned = time.monotonic()
            try:
                self.store.prune(self.keep_days)
            except StoreError as exc:  # the report itself may still be stored; pruning tries again in an hour
                log.warning("%s", exc)
        return fn(*args, **kwargs)

    async def report(self, sensor: str, events: list[Detection], **kwargs) -> int:
        """Store a report; StoreError becomes 503 (the sensor will retry)."""
        try:
            return await self.run(self.store.add_report, sensor, events, **kwargs)
        except StoreError as exc:
            raise HTTPException(503, f"{exc}; nothing of it was kept, retry", headers={"Retry-After": "5"}) from None


def check_times(*moments: datetime, name: str = "time") -> None:
    """422 for a time before 2000 or more than an hour ahead of the server's clock (a sensor's clock gone wrong)."""
    latest = datetime.now(timezone.utc) + CLOCK_SLACK
    for moment in moments:
        try:
            inside = EARLIEST <= moment <= latest
        except OverflowError:  # an offset that moves year 1 or 9999 out of range
            inside = False
        if not inside:
            raise HTTPException(422, f"{name} {moment.isoformat()} is out of range (2000 .. an hour past the "
                                     "server's clock): is the sensor's clock set?")


def add_monitor_routes(app: FastAPI, store: Store, guard: Guard, writer: Writer, *, online_seconds: float) -> None:
    """Register ``/v1/report``, ``/v1/events`` and ``/v1/sensors`` on ``app``."""
    logged: dict[str, str] = {}  # each sensor's refusal last logged, so that one is logged once

    @app.post("/v1/report", response_model=ReportOut, responses=STORE_ERRORS)
    async def report(body: ReportIn, caller: Caller = Depends(guard.needs("report"))) -> dict:
        """A sensor's events (each with its key) and heartbeat; a sensor token reports only as its own sensor."""
        received = datetime.now(timezone.utc)
        check_sensor(caller, body.sensor)
        check_times(*(t for e in body.events for t in (e.onset, e.offset)),
                    *([body.heartbeat.time] if body.heartbeat else []))
        events = [Detection(e.key, e.label, e.onset, e.offset, e.score, e.version) for e in body.events]
        beat = body.heartbeat and Heartbeat(body.heartbeat.time, body.heartbeat.label, body.heartbeat.score,
                                            body.heartbeat.version, (body.heartbeat.refused or "")[:500] or None,
                                            body.heartbeat.snippets_dropped)
        if body.heartbeat and body.heartbeat.refused:
            _log_refusal(logged, body.sensor, body.heartbeat.refused)
        stored = await writer.report(body.sensor, events, heartbeat=beat, model=body.model,
                                     fingerprint=body.fingerprint, received=received,
                                     clock_offset=_offset(body.sent, received))
        return {"stored": stored, "duplicates": len(events) - stored}

    @app.get("/v1/events", responses=STORE_ERRORS)
    async def events(caller: Caller = Depends(guard.needs("read")),
                     sensor: str | None = Query(None, max_length=64, description="only this sensor's"),
                     label: str | None = Query(None, max_length=200, description="only this label"),
                     since: datetime | None = Query(None, description="sounding at or after this time (ISO 8601)"),
                     until: datetime | None = Query(None, description="starting before this time"),
                     min_score: float | None = Query(None, ge=0, le=1),
                     version: int | None = Query(None, ge=0, description="only those the fleet's version heard"),
                     limit: int = Query(100, ge=1, le=MAX_PAGE, description="events a page"),
                     cursor: str | None = Query(None, max_length=100, description="the previous page's `next`")
                     ) -> dict:
        """Stored events, newest onset first; ``next`` is the cursor of the following page (null: the last)."""
        after = _parse_cursor(cursor) if cursor else None
        since, until = (_aware(t, name) for t, name in ((since, "since"), (until, "until")))
        found = await read(store.events, sensor=sensor, label=label, since=since, until=until,
                           min_score=min_score, limit=limit, after=after, version=version)
        last = found[-1] if len(found) == limit else None
        return {"events": found, "next": _cursor(last) if last else None}

    @app.get("/v1/sensors", responses=STORE_ERRORS)
    async def sensors(caller: Caller = Depends(guard.needs("read"))) -> dict:
        """Every sensor that reported: when it was last heard from (``online`` within the last
        ``online_seconds``), and what it heard then."""
        found = await read(store.sensors)
        now = datetime.now(timezone.utc)
        for item in found:
            item["online"] = (now - parse_time(item["last_received"])).total_seconds() <= online_seconds
            item["clock"] = clock_line(item.get("clock_offset"))
            item["refused"] = refusal(item)
        return {"sensors": found, "online_seconds": online_seconds}


def _log_refusal(logged: dict[str, str], sensor: str, line: str) -> None:
    """Log ``sensor``'s refusal of a version once (its heartbeats say it until it takes a version)."""
    if logged.get(sensor) != line:
        log.warning("sensor %s refused a model version: %s", sensor, line)
        logged[sensor] = line


def clock_line(offset: float | None) -> str | None:
    """``"clock off by about 60 min, ahead of the server's"`` for a sensor whose clock is off by more than
    :data:`CLOCK_WARN` seconds (``offset``: its clock minus the server's); None otherwise or when not known."""
    if offset is None or abs(offset) <= CLOCK_WARN:
        return None
    minutes = abs(offset) / 60
    size = f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.1f} h"
    return f"clock off by about {size}, {'ahead of' if offset > 0 else 'behind'} the server's"


def _offset(sent: datetime | None, received: datetime) -> float | None:
    """The sensor's clock minus the server's, in seconds (None: the report did not say when it was sent)."""
    if sent is None:
        return None
    try:
        return (as_utc(sent) - received).total_seconds()
    except OverflowError:  # a zone that moves the time out of range: nothing to compare
        return None


def _aware(moment: datetime | None, name: str) -> datetime | None:
    if moment is not None and moment.tzinfo is None:
        raise HTTPException(422, f"{name}: give the time's zone (e.g. {moment.isoformat()}Z for UTC)")
    if moment is not None:
        try:
            as_utc(moment)
        except OverflowError:
            raise HTTPException(422, f"{name}: {moment.isoformat()} is out of range in UTC") from None
    return moment


def _cursor(event: dict) -> str:
    """The next page's cursor: the last event's onset (to the microsecond; ties are broken by id) and id."""
    return f"{event['onset']}~{event['id']}"


def _parse_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        onset, _, last = cursor.rpartition("~")
        moment = parse_time(onset)
        if moment.tzinfo is None:
            raise ValueError(onset)
        return moment, int(last)
    except (ValueError, OverflowError):
        raise HTTPException(422, f"cursor {cursor!r} is not one this server gave") from None
