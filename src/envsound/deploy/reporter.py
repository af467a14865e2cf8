"""A sensor's side of a deployment: turn what :class:`~envsound.inference.live.LiveListener` hears into events with
UTC times from this machine's clock, queue them (:class:`~envsound.deploy.outbox.Outbox`) and deliver them to the
server's ``POST /v1/report`` from a thread of their own, so listening never waits for the network. No audio leaves
the device unless asked (``listen --snippets``): then each event's snippet (:mod:`envsound.deploy.snippets`) follows
its event, once the event was delivered, as ``PUT /v1/snippets/SENSOR/KEY`` under the same retry rules; a snippet the
server will never take (404: its event is not there; 413: too large; 415) is dropped and counted.

Delivery retries with back-off while the server cannot be reached or answers 5xx, and waits what ``Retry-After``
says on 429 and 503. A 401, 403 or 413 will not change by retrying: the sensor stops sending, keeps everything queued
and says why. A 422 is about the events themselves (a time out of range: a clock gone wrong): the batch is sent again
one event at a time, and an event refused alone is set aside in the outbox (kept, not resent), so it does not hold up
the rest. The standard library only (urllib, sqlite3): a sensor runs on the light install.
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime

from envsound.deploy.outbox import Outbox
from envsound.deploy.times import UTC, StreamClock, iso

log = logging.getLogger(__name__)
BATCH = 500  # events a report (the server takes up to 1000)
PERMANENT = {400, 401, 403, 404, 405, 413, 415}  # a 422 is about single events: see _malformed


class Delivery(threading.Thread):
    """Sends the outbox to ``url`` (the server's base address) as ``sensor`` with ``token``, until :meth:`stop`."""

    def __init__(self, outbox: Outbox, url: str, *, sensor: str, token: str | None, model: str | None = None,
                 fingerprint: str | None = None, timeout: float = 10.0) -> None:
        super().__init__(name="envsound-report", daemon=True)
        self.outbox, self.endpoint = outbox, url.rstrip("/") + "/v1/report"
        self.sensor, self.token, self.model, self.fingerprint, self.timeout = sensor, token, model, fingerprint, timeout
        self.delivered = 0  # events the server acknowledged (new or already stored)
        self.set_aside = 0  # events the server refused as malformed (422): kept apart in the outbox, not resent
        self.snippets_url = f"{url.rstrip('/')}/v1/snippets/{sensor}/"
        self.snippets_sent = self.snippets_refused = 0  # snippets the server stored; refused for good (dropped)
        self.refused: str | None = None  # the server's reason, once it refused for good
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.backoff = 0.0
        self.problem: str | None = None  # the last trouble logged, so a long outage is one line, not one a try

    def run(self) -> None:
        while not self.stopping.is_set() and self.refused is None:
            if not self.outbox.pending():
                self.wake.wait(1.0)
                self.wake.clear()
                continue
            try:
                pause = self.send_once()
            except Exception as exc:  # never die quietly: what is queued stays queued, and the next try comes
                pause = self._trouble(f"delivery failed ({type(exc).__name__}: {exc})", None)
            if pause:
                self.stopping.wait(pause)

    def send_once(self) -> float:
        """Deliver one batch, or when no event nor heartbeat waits, one snippet; returns how long to wait before
        the next try (0: go on)."""
        ids, events, beat = self.outbox.take(BATCH)
        if ids or beat is not None:
            return self._post(ids, events, beat)
        snippet = self.outbox.take_snippet()
        return self._upload(*snippet) if snippet else 0.0

    def _upload(self, key: str, media_type: str, body: bytes, start: float | None) -> float:
        where = {} if start is None else {"X-Snippet-Start": f"{start:.4f}"}  # the event's place in it
        request = urllib.request.Request(self.snippets_url + key, data=body, method="PUT",
                                         headers={"Content-Type": media_type, **where, **self._auth()})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                answer.read()
        except urllib.error.HTTPError as exc:
            if exc.code in (404, 413, 415, 422):  # about this snippet alone: resending will not change it
                self.outbox.snippet_done(key)
                self.snippets_refused += 1
                log.warning("%s refused the snippet of event %s for good (%d: %s): dropped", self.snippets_url,
                            key, exc.code, _reason(exc))
                return 0.0
            if exc.code in PERMANENT:
                self.refused = f"{self.snippets_url} refused a snippet ({exc.code}: {_reason(exc)})"
                log.error("%s; sending stops", self.refused)
                return 0.0
            wait = _retry_after(exc.headers.get("Retry-After")) if exc.code in (429, 503) else None
            return self._trouble(f"{self.snippets_url} answered {exc.code} ({_reason(exc)})", wait)
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
            return self._trouble(f"cannot reach {self.snippets_url} ({getattr(exc, 'reason', exc)})", None)
        self.outbox.snippet_done(key)
        self.snippets_sent += 1
        self.backoff, self.problem = 0.0, None
        return 0.0

    def _auth(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def _post(self, ids: list[int], events: list[dict], beat: dict | None) -> float:
        # sent: this machine's time now, so the server can tell when this clock is off (an older server ignores it)
        body = {"sensor": self.sensor, "model": self.model, "fingerprint": self.fingerprint, "events": events,
                "heartbeat": beat, "sent": iso(datetime.now(UTC))}
        request = urllib.request.Request(self.endpoint, data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json",
                                                  **self._auth()})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                json.load(answer)
        except urllib.error.HTTPError as exc:
            reason = _reason(exc)
            if exc.code == 422:
                return self._malformed(ids, events, beat, reason)
            if exc.code in PERMANENT:
                self.refused = f"{self.endpoint} refused the report ({exc.code}: {reason})"
                # "so far": what is heard from now on joins them, and the summary's "queued" counts them all
                log.error("%s; sending stops: the %d event(s) queued so far stay in %s", self.refused,
                          self.outbox.queued(), self.outbox.path)
                return 0.0
            wait = _retry_after(exc.headers.get("Retry-After")) if exc.code in (429, 503) else None
            return self._trouble(f"{self.endpoint} answered {exc.code} ({reason})", wait)
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
            return self._trouble(f"cannot reach {self.endpoint} ({getattr(exc, 'reason', exc)})", None)
        self.outbox.delivered(ids, beat)
        self.delivered += len(ids)
        if self.problem:
            log.info("%s reached again: %d event(s) delivered", self.endpoint, len(ids))
        self.backoff, self.problem = 0.0, None
        return 0.0

    def _malformed(self, ids: list[int], events: list[dict], beat: dict | None, reason: str) -> float:
        """A report refused as malformed (422): the heartbeat alone, then each event alone, so that only what is bad
        is set aside (an event) or dropped (a heartbeat) and the rest goes on."""
        if len(ids) + (beat is not None) == 1:  # one item: it is the bad one
            if ids:
                self.outbox.set_aside(ids, reason)
                self.set_aside += len(ids)
                log.error("%s refused an event for good: set aside in %s (%s)", self.endpoint, self.outbox.path,
                          reason)
            else:
                self.outbox.delivered([], beat)
                log.error("%s refused a heartbeat for good: dropped (%s)", self.endpoint, reason)
            return 0.0
        pause = self._post([], [], beat) if beat is not None else 0.0
        for row, event in zip(ids, events):
            if pause:
                break
            pause = self._post([row], [event], None)
        return pause

    def _trouble(self, problem: str, wait: float | None) -> float:
        self.backoff = min(max(self.backoff * 2, 0.5), 30.0)
        pause = wait if wait is not None else self.backoff
        if problem != self.problem:
            log.warning("%s; %d event(s) queued, trying again in %.1f s", problem, self.outbox.queued(), pause)
            self.problem = problem
        return pause

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()
        self.join(timeout=self.timeout + 5)


@dataclass(frozen=True)
class ReportSummary:
    """What a sensor's run did with its events: ``before`` were queued when it began (an earlier run's), ``heard`` it
    queued itself; of these ``delivered`` reached the server, ``set_aside`` were refused as malformed and ``queued``
    still wait. With one process on the queue, ``before + heard == delivered + queued + set_aside``."""

    heard: int
    before: int
    delivered: int
    queued: int
    set_aside: int
    snippets: tuple[int, int, int] | None = None  # with snippets on: (sent, queued, dropped over the budget)

    def line(self) -> str:
        """``N events: D delivered, Q queued``, with ``and B queued before`` after N when an earlier run left some
        (so that the counts add up) and ``, S set aside (refused by the server)`` when some were."""
        return (f"{self.heard} events" + (f" and {self.before} queued before" if self.before else "")
                + f": {self.delivered} delivered, {self.queued} queued"
                + (f", {self.set_aside} set aside (refused by the server)" if self.set_aside else "")
                + ("; snippets: {} sent, {} queued, {} dropped (over the budget)".format(*self.snippets)
                   if self.snippets else ""))


class Reporting:
    """What ``listen --report`` adds to listening: each hop's ended events and a heartbeat every
    ``heartbeat_seconds`` into the outbox, delivered in the background; :meth:`finish` waits for the rest.

    The stream's second 0 is this machine's UTC time when listening began: an event's onset is that time plus its
    onset in the stream, as the sensor's clock tells it. ``snipper`` (:class:`~envsound.deploy.snippets.Snipper`,
    fed every block by :meth:`hear`) cuts each ended event's snippet, queued within ``snippet_budget`` bytes.

    A fleet's sensor (``listen --follow``): each event carries the ``version`` that heard it, and each heartbeat the
    version the sensor runs (:attr:`version`, from the last hop; a change is sent at once) and its last refusal of a
    version (``refusal()``, when set).
    """

    version: int | None = None  # the fleet's version the listener runs (None: the model it was started with)
    refusal = None  # () -> the follower's last refusal of a version (None: none)

    def __init__(self, outbox: Outbox, url: str, *, sensor: str, token: str | None, model: str | None,
                 fingerprint: str | None, heartbeat_seconds: float = 30.0, snipper=None,
                 snippet_budget: int = 100_000_000) -> None:
        self.outbox, self.snipper, self.snippet_budget = outbox, snipper, snippet_budget
        self.before = outbox.queued()  # an earlier run's events, sent first
        self.delivery = Delivery(outbox, url, sensor=sensor, token=token, model=model, fingerprint=fingerprint)
        self.clock = StreamClock(datetime.now(UTC))
        self.heartbeat_seconds, self.last_beat = heartbeat_seconds, float("-inf")
        self.heard = 0  # events of this run
        self.delivery.start()

    def hop(self, hop: dict) -> None:
        """One of :class:`~envsound.inference.live.Hop`'s ``to_dict()``."""
        ended = [{**e, "onset": iso(e["onset"]), "offset": iso(e["offset"]), **_version_of(raw)}
                 for e, raw in zip(self.clock.ended(hop), hop.get("events", ()))]
        if ended:
            keys = self.outbox.put_events(ended)
            self.heard += len(ended)
            for key, event in zip(keys, hop["events"] if self.snipper else ()):
                self._snippet(key, event)
        swapped = hop.get("version") != self.version and bool(hop.get("top"))
        self.version = hop.get("version") if swapped else self.version
        if time.monotonic() - self.last_beat >= self.heartbeat_seconds or hop.get("end") or swapped:
            hearing = self.clock.hearing
            self.outbox.put_heartbeat({"time": iso(datetime.now(UTC)), "label": hearing.get("label"),
                                       "score": hearing.get("score"), **_version_of({"version": self.version}),
                                       **({"refused": self.refusal()} if self.refusal and self.refusal() else {}),
                                       **({"snippets_dropped": self.outbox.snippets_dropped} if self.snipper else {})})
            self.last_beat = time.monotonic()
        if ended or hop.get("end"):
            self.delivery.wake.set()

    def _snippet(self, key: str, event: dict) -> None:
        try:
            snippet = self.snipper.cut(event)  # None: a label whose sound may not leave, never cut
        except Exception as exc:  # listening goes on: the event is reported, without its sound
            log.error("the snippet of event %s (%s) could not be made (%s: %s)", key, event["label"],
                      type(exc).__name__, exc)
            return
        if snippet:
            self.outbox.put_snippet(key, *snippet, budget=self.snippet_budget)

    def hear(self, samples) -> None:
        """A block of the stream as it is heard, before the listener scores it (kept for snippets)."""
        if self.snipper is not None:
            self.snipper.hear(samples)

    def finish(self, deliver_seconds: float) -> ReportSummary:
        """Wait up to ``deliver_seconds`` for the outbox to empty, then stop; returns what became of the events."""
        deadline = time.monotonic() + deliver_seconds
        self.delivery.wake.set()
        while self.outbox.pending() and self.delivery.refused is None and time.monotonic() < deadline:
            time.sleep(0.05)
        self.delivery.stop()
        queued = self.outbox.queued()
        snippets = ((self.delivery.snippets_sent, self.outbox.snippets_queued(), self.outbox.snippets_dropped)
                    if self.snipper else None)
        if not self.delivery.is_alive():  # a send still waiting on the network would find it closed
            self.outbox.close()
        return ReportSummary(heard=self.heard, before=self.before, delivered=self.delivery.delivered, queued=queued,
                             set_aside=self.delivery.set_aside, snippets=snippets)


def _version_of(item: dict) -> dict:
    """``{"version": N}`` for a hop or event of a fleet's version, else nothing (an older server's reports)."""
    return {"version": item["version"]} if item.get("version") is not None else {}


def _reason(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read() or b"{}").get("error") or exc.reason)
    except (ValueError, AttributeError, OSError):
        return str(exc.reason)


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (the HTTP-date form is not used by envsound's server), at most a minute."""
    try:
        return min(max(float(value), 0.0), 60.0) if value else None
    except ValueError:
        return None
