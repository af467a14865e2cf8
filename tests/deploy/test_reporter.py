"""A sensor's delivery against a real server: what the server refuses as malformed (a time from a clock gone wrong)
is set aside, one event at a time, and does not hold up the rest; a heartbeat refused is dropped. A sensor refused for
good counts its events the same way in its error and in its last line."""

from __future__ import annotations

import logging
import sqlite3
import time

import pytest

from envsound.app.auth import Guard
from envsound.app.run import running
from envsound.app.server import create_app
from envsound.deploy.outbox import Outbox
from envsound.deploy.reporter import Delivery, Reporting
from envsound.deploy.store import Store


def test_a_refused_event_is_set_aside_and_the_rest_is_delivered(served, tmp_path):
    store = Store.open(tmp_path / "events.sqlite")
    outbox = Outbox(tmp_path / "queue.sqlite")
    good = {"label": "dog", "onset": "2026-11-27T08:00:00Z", "offset": "2026-11-27T08:00:02Z", "score": 0.9}
    outbox.put_events([good, {**good, "onset": "2999-01-01T00:00:00Z", "offset": "2999-01-01T00:00:01Z"}, good])
    outbox.put_heartbeat({"time": "1970-01-01T00:00:00Z", "label": "dog", "score": 0.9})  # a clock not yet set
    with running(create_app(served.model, store=store)) as url:
        delivery = Delivery(outbox, url, sensor="lab", token=None)
        for _ in range(10):
            if not outbox.pending():
                break
            delivery.send_once()
    assert (delivery.delivered, delivery.set_aside, outbox.queued(), outbox.pending()) == (2, 1, 0, False)
    assert store.count_events("lab") == 2 and store.sensors()[0]["last_heard"] is None
    outbox.close()
    (reason,) = sqlite3.connect(tmp_path / "queue.sqlite").execute("SELECT reason FROM set_aside").fetchone()
    assert "2999-01-01" in reason and "out of range" in reason


def test_a_refused_sensor_counts_its_queued_events_the_same_way_in_its_error_and_its_last_line(served, tmp_path,
                                                                                                caplog):
    """Issue 69: a refused sensor said `9 event(s) stay queued`, then `3 events: 0 delivered, 12 queued`."""
    store = Store.open(tmp_path / "events.sqlite")
    store.create_token("lab", "sensor")
    outbox = Outbox(tmp_path / "queue.sqlite")
    event = {"label": "dog", "onset": "2026-11-27T08:00:00Z", "offset": "2026-11-27T08:00:02Z", "score": 0.9}
    outbox.put_events([event] * 9)  # an earlier run's
    app = create_app(served.model, store=store, guard=Guard(store, required=True, rate=1000, streams=1))
    with running(app) as url, caplog.at_level(logging.ERROR, logger="envsound.deploy.reporter"):
        reporting = Reporting(outbox, url, sensor="lab", token="es_not_a_token", model=None, fingerprint=None)
        deadline = time.monotonic() + 30
        while reporting.delivery.refused is None:  # the earlier run's events are refused (401) first
            assert time.monotonic() < deadline, "the server never refused the report"
            time.sleep(0.05)
        heard = [{"label": "dog", "onset": 0.5 * i, "offset": 0.5 * i + 0.4, "score": 0.9} for i in range(3)]
        reporting.hop({"time": 2.0, "top": [{"label": "dog", "score": 0.9}], "events": heard, "end": True})
        summary = reporting.finish(1.0)
    (refusal,) = [r.getMessage() for r in caplog.records if "refused the report" in r.getMessage()]
    assert "401" in refusal and "the 9 event(s) queued so far stay in" in refusal, refusal
    assert summary.line() == "3 events and 9 queued before: 0 delivered, 12 queued"
    assert summary.before + summary.heard == summary.delivered + summary.queued + summary.set_aside
    store.close()


def test_a_sensor_whose_clock_is_an_hour_behind_is_shown_off_with_its_times_kept(served, tmp_path, monkeypatch):
    """Issue 68: the real delivery says when it sent each report, by its clock; an hour behind, the server keeps the
    events' times as the sensor gave them, its own receive time beside them, and says the clock is off."""
    from datetime import datetime, timedelta, timezone

    from envsound.deploy import reporter

    class HourBehind(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.now(tz) - timedelta(hours=1)

    monkeypatch.setattr(reporter, "datetime", HourBehind)
    store = Store.open(tmp_path / "events.sqlite")
    outbox = Outbox(tmp_path / "queue.sqlite")
    onset = HourBehind.now(timezone.utc)
    outbox.put_events([{"label": "dog", "onset": onset.isoformat(), "offset": (onset + timedelta(seconds=2))
                        .isoformat(), "score": 0.9}])
    with running(create_app(served.model, store=store)) as url:
        assert Delivery(outbox, url, sensor="lab", token=None).send_once() == 0.0
        (sensor,) = store.sensors()
        (stored,) = store.events()
    assert sensor["clock_offset"] == pytest.approx(-3600, abs=60)
    received, heard = (datetime.fromisoformat(stored[k].replace("Z", "+00:00")) for k in ("received", "onset"))
    assert heard == onset and received - heard > timedelta(minutes=59)
    outbox.close()
    store.close()
