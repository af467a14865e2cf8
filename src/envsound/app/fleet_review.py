"""The REST API of reviewing a fleet's detections (a deployment server: ``envsound serve MODEL --store S``): thin routes
over :class:`envsound.agile.fleet_review.FleetReview`.

- ``GET /v1/review/events?label=&sensor=&since=&until=&low=&high=&sample=&k=``: the next events with their sound kept
  and no verdict yet (newest first; ``sample``: in each sensor's random-sample order), and how many are left;
- ``POST /v1/review/verdicts`` ``{event, verdict}``: a verdict on the event's label, kept in the labels table with the
  reviewer (the token's name) and the time;
- ``GET /v1/review/precision?label=&sensor=&since=&until=``: per sensor and label, the precision from its random
  sample, with its interval.

Reading needs a token that may ``read`` (the snippets themselves: ``GET /v1/events/{id}/audio``); a verdict one that
may ``review``. An event not in the store or without its sound answers 404; a bad verdict 422; a store that refuses a
write 503.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from fastapi import Depends, FastAPI, Query
from pydantic import AwareDatetime, BaseModel, Field

from envsound.agile.fleet_review import MAX_CANDIDATES, Filters, FleetReview
from envsound.agile.review import page_reviewer
from envsound.app.answers import STORE_ERRORS
from envsound.app.auth import Caller, Guard
from envsound.app.review import answer
from envsound.deploy.store import Store


class EventVerdictIn(BaseModel):
    event: int = Field(description="the event's id (GET /v1/events)")
    verdict: str = Field(description="yes, no or unsure: does the snippet hold the event's label?")


def _filters(label: str | None, sensor: str | None, since: datetime | None, until: datetime | None,
             low: float | None = None, high: float | None = None) -> Filters:
    return Filters(label=label, sensor=sensor, since=since, until=until, low=low, high=high)


def add_fleet_review_routes(app: FastAPI, store: Store, folder: str | Path, guard: Guard) -> None:
    """Register the routes on ``app``: the events of ``store`` whose snippets the fleet folder ``folder`` keeps."""
    review = FleetReview(store, folder)
    reader = Depends(guard.needs("read"))
    label_q = Query(None, max_length=200, description="only this label")
    sensor_q = Query(None, max_length=64, description="only this sensor")
    since_q = Query(None, description="events sounding at or after this time (ISO 8601 with a zone)")
    until_q = Query(None, description="events sounding before this time")

    @app.get("/v1/review/events", dependencies=[reader], responses=STORE_ERRORS)
    async def events_to_review(label: str | None = label_q, sensor: str | None = sensor_q,
                               since: AwareDatetime | None = since_q, until: AwareDatetime | None = until_q,
                               low: float | None = Query(None, description="scored at least this"),
                               high: float | None = Query(None, description="scored below this"),
                               sample: bool = Query(False, description="in each sensor's random-sample order: "
                                                                       "the verdicts give its precision"),
                               k: int = Query(10, ge=1, le=MAX_CANDIDATES)) -> dict:
        """The next ``k`` events with their sound kept and no verdict yet (``event``, ``sensor``, ``label``,
        ``onset``, ``offset``, ``score``, ``version``, ``audio``: its address, ``start`` and ``end``: the event in
        its snippet, seconds), and ``left``: how many such events in all."""
        found, left = await answer(review.candidates, _filters(label, sensor, since, until, low, high),
                                  sample=sample, k=k)
        return {"events": found, "left": left}

    @app.post("/v1/review/verdicts", responses=STORE_ERRORS)
    async def give(body: EventVerdictIn, caller: Caller = Depends(guard.needs("review"))) -> dict:
        """Keep a verdict on the event's label, with who gave it and when: a verdict on the snippet's span of the
        event, which an embeddings store of the snippet folder finds (``learn`` learns from it)."""
        given = await answer(review.answer, body.event, body.verdict, reviewer=caller.name or page_reviewer())
        return {"stored": 1, "verdict": given}

    @app.get("/v1/review/precision", dependencies=[reader], responses=STORE_ERRORS)
    async def precision(label: str | None = label_q, sensor: str | None = sensor_q,
                        since: AwareDatetime | None = since_q, until: AwareDatetime | None = until_q) -> dict:
        """Per sensor and label: ``events`` (with their sound kept), ``reviewed``, ``sampled`` (the run of its
        random sample reviewed from the first), ``yes``, ``no``, ``unsure``, ``precision`` with ``low`` and
        ``high`` (95 %; null until the sample has a yes or a no)."""
        return {"precision": await answer(review.precision, _filters(label, sensor, since, until))}
