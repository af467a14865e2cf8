"""Review what a fleet's sensors detected, by ear, and the precision each sensor's detector has from a random sample.

A sensor that sends snippets (``listen --report URL --snippets``) leaves the sound of each event in the server's
fleet folder (:func:`envsound.deploy.fleet_files.snippet_path`). A verdict on an event is an ordinary verdict of the
labels table: the event's label, the snippet's file and the event's span within it (``start``, ``end``, seconds),
so an embeddings store of the snippet folder finds it as it finds any verdict on its windows, and ``learn`` learns
from the fleet's windows with the archive's.

**The random sample** of a sensor and label is the order of the SHA-256 of its events' keys (a key is a random UUID
the sensor gave the event; ``events.sample_order``, kept as the event is stored): a fixed random permutation, the
same for every reviewer and every server, needing no table of draws. The sample mode offers events in that order; the precision reported is ``yes / (yes + no)`` over the
longest run of that order, from its first event, in which every event has a verdict: a simple random sample of the
sensor's detections of that label, however many other events were reviewed out of order (those never count here).

A verdict names its event (``labels.event``), so what is left to review and each sensor's sample are indexed queries
(``benchmarks/bench_fleet_review.py``): a store of a million events costs a few indexed reads, not a walk over all.

>>> review = FleetReview(Store.open("events.sqlite"), fleet_dir("events.sqlite"))
>>> review.candidates(label="rooster", sample=True, k=10)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa

from envsound.agile.calibrate import wilson
from envsound.agile.review import NotFound
from envsound.deploy import schema
from envsound.deploy.fleet_files import snippet_path
from envsound.deploy.snippets import MEDIA_TYPES
from envsound.deploy.labels import Labels
from envsound.deploy.store import Store, sample_order
from envsound.deploy.times import iso
from envsound.errors import ConfigError

MAX_CANDIDATES = 100


class NoSnippet(NotFound):
    """The event is not in the store, or its sound was not kept (the page: 404)."""


@dataclass(frozen=True)
class Filters:
    """Which events to review: of ``label`` and ``sensor`` (None: any), sounding at some time in ``[since, until)``,
    scored in ``[low, high)`` (None: no bound)."""

    label: str | None = None
    sensor: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    low: float | None = None
    high: float | None = None

    def where(self, store: Store, query):
        table = schema.events
        query = query.where(table.c.snippet_bytes.is_not(None), table.c.snippet_type.in_(list(MEDIA_TYPES)))
        if self.label is not None:
            query = query.where(table.c.label == self.label)
        if self.sensor is not None:
            query = query.where(table.c.sensor == self.sensor)
        if self.since is not None:
            query = query.where(table.c.offset >= store.bind(self.since))
        if self.until is not None:
            query = query.where(table.c.onset < store.bind(self.until))
        if self.low is not None:
            query = query.where(table.c.score >= self.low)
        if self.high is not None:
            query = query.where(table.c.score < self.high)
        return query


__all__ = ["Filters", "FleetReview", "NoSnippet", "precision_line", "sample_order"]  # sample_order: the store's


class FleetReview:
    """The events of ``store`` whose sound is kept in the fleet folder ``folder``: offered for review, answered,
    and each sensor's precision per label from its random sample."""

    def __init__(self, store: Store, folder: str | Path) -> None:
        self.store, self.folder = store, Path(folder).absolute()
        self.labels = Labels(store)

    def _file(self, row: dict) -> str:
        return str(snippet_path(self.folder, row["sensor"], row["id"], row["snippet_type"]))

    def _verdicts(self, filters: Filters) -> dict[int, tuple[str, str, str]]:
        """The current verdict (the latest given) on each event of ``filters`` reviewed: {id: (sensor, label,
        verdict)}; one query over the verdicts (few), joined to their events."""
        events, labels = schema.events, schema.labels
        query = (filters.where(self.store, sa.select(events.c.id, events.c.sensor, events.c.label, labels.c.verdict))
                 .join_from(events, labels, sa.and_(labels.c.event == events.c.id, labels.c.label == events.c.label))
                 .order_by(labels.c.given, labels.c.id))
        with self.store.reading() as connection:
            return {row.id: (row.sensor, row.label, row.verdict) for row in connection.execute(query)}

    def candidates(self, filters: Filters = Filters(), *, sample: bool = False, k: int = 10) -> tuple[list[dict], int]:
        """(The next ``k`` events to review, how many are left in all): those of ``filters`` with their sound kept
        and no verdict yet, newest first, or with ``sample`` in each sensor's random-sample order. Each is a dict:
        ``event``, ``sensor``, ``label``, ``onset``, ``offset``, ``score``, ``version``, ``audio`` (its address),
        ``start`` and ``end`` (the event's span in its snippet, seconds)."""
        if not 1 <= k <= MAX_CANDIDATES:
            raise ConfigError(f"k={k}: ask for 1-{MAX_CANDIDATES} events at a time")
        table, labels = schema.events, schema.labels
        unanswered = ~sa.exists().where(labels.c.event == table.c.id, labels.c.label == table.c.label)
        columns = [table.c.id, table.c.sensor, table.c.label, table.c.onset, table.c.offset, table.c.score,
                   table.c.version, table.c.snippet_type, table.c.snippet_start]
        query = filters.where(self.store, sa.select(*columns)).where(unanswered).limit(k).order_by(
            *((table.c.sample_order, table.c.id) if sample else (table.c.onset.desc(), table.c.id.desc())))
        count = filters.where(self.store, sa.select(sa.func.count()).select_from(table)).where(unanswered)
        with self.store.reading() as connection:
            rows = [dict(row._mapping) for row in connection.execute(query)]
            left = connection.execute(count).scalar_one()
        return [self._candidate(row) for row in rows], int(left)

    def _candidate(self, row: dict) -> dict:
        start, end = self._span(row)
        return {"event": row["id"], "sensor": row["sensor"], "label": row["label"], "onset": iso(row["onset"]),
                "offset": iso(row["offset"]), "score": row["score"], "version": row["version"],
                "audio": f"/v1/events/{row['id']}/audio", "start": start, "end": end}

    @staticmethod
    def _span(row: dict) -> tuple[float, float]:
        """The event's span in its snippet (seconds): from the snippet's start, its onset and offset."""
        lead = -float(row["snippet_start"] or 0.0)
        length = (row["offset"] - row["onset"]).total_seconds()
        return round(lead, 3), round(lead + max(length, 0.0), 3)

    def answer(self, event: int, verdict: str, *, reviewer: str) -> dict:
        """Keep ``reviewer``'s ``verdict`` (yes, no, unsure) on ``event``'s label: a row of the labels table naming
        the snippet and the event's span in it. Returns that row.

        Raises:
            NoSnippet: no such event, or its sound was not kept.
            ConfigError: a verdict other than yes/no/unsure (nothing stored).
        """
        table = schema.events
        query = sa.select(table.c.id, table.c.sensor, table.c.label, table.c.onset, table.c.offset,
                          table.c.snippet_type, table.c.snippet_start, table.c.snippet_bytes).where(table.c.id == event)
        with self.store.reading() as connection:
            found = connection.execute(query).first()
        if found is None or found.snippet_bytes is None or found.snippet_type not in MEDIA_TYPES:
            raise NoSnippet(f"event {event}: {'not in the store' if found is None else 'its sound was not kept'}")
        row = dict(found._mapping)
        start, end = self._span(row)
        given = {"window": None, "file": self._file(row), "start": start, "end": end, "label": row["label"],
                 "verdict": verdict, "event": row["id"]}
        self.labels.add([given], reviewer=reviewer)
        return given

    def precision(self, filters: Filters = Filters()) -> list[dict]:
        """Per sensor and label of ``filters``' events (with their sound kept): ``events``, ``reviewed`` (with a
        verdict), ``sampled`` (the run of the random sample with verdicts, from its first event), its ``yes``,
        ``no`` and ``unsure``, and ``precision`` with its 95 % Wilson interval (``low``, ``high``; None when no
        yes or no is in the run)."""
        table = schema.events
        grouped = filters.where(self.store, sa.select(table.c.sensor, table.c.label, sa.func.count())).group_by(
            table.c.sensor, table.c.label)
        verdicts = self._verdicts(filters)
        reviewed: dict[tuple[str, str], int] = {}
        for sensor, label, _ in verdicts.values():
            reviewed[(sensor, label)] = reviewed.get((sensor, label), 0) + 1
        out = []
        with self.store.reading() as connection:
            groups = sorted(connection.execute(grouped).all())
            for sensor, label, events in groups:
                said: list[str] = []
                if reviewed.get((sensor, label)):  # its sample's first events, until one without a verdict
                    first = filters.where(self.store, sa.select(table.c.id)).where(
                        table.c.sensor == sensor, table.c.label == label).order_by(
                        table.c.sample_order, table.c.id).limit(reviewed[(sensor, label)] + 1)
                    for (event,) in connection.execute(first):
                        if event not in verdicts:
                            break
                        said.append(verdicts[event][2])
                counts = {name: said.count(name) for name in schema.VERDICTS}
                answered = counts["yes"] + counts["no"]
                low, high = (float(v) for v in wilson(counts["yes"], answered))
                out.append({"sensor": sensor, "label": label, "events": int(events),
                            "reviewed": reviewed.get((sensor, label), 0), "sampled": len(said), **counts,
                            "precision": round(counts["yes"] / answered, 4) if answered else None,
                            "low": round(low, 4) if answered else None, "high": round(high, 4) if answered else None})
        return out


def precision_line(item: dict) -> str:
    """One sensor and label's precision in words: ``lab / rooster: precision 0.900 (0.744-0.965) from 30 events
    drawn at random of 412 (27 yes, 3 no); 35 reviewed``."""
    head = f"{item['sensor']} / {item['label']}: "
    if item["precision"] is None:
        return (head + f"no precision yet: review its random sample (sample mode) from the first event; "
                f"{item['reviewed']} of {item['events']} events reviewed")
    return (head + f"precision {item['precision']:.3f} ({item['low']:.3f}-{item['high']:.3f}) from "
            f"{item['sampled']} events drawn at random of {item['events']} ({item['yes']} yes, {item['no']} no"
            + (f", {item['unsure']} unsure" if item["unsure"] else "") + f"); {item['reviewed']} reviewed")
