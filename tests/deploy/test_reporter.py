"""A sensor's delivery against a real server: what the server refuses as malformed (a time from a clock gone wrong)
is set aside, one event at a time, and does not hold up the rest; a heartbeat refused is dropped."""

from __future__ import annotations

import sqlite3

from envsound.app.run import running
from envsound.app.server import create_app
from envsound.deploy.outbox import Outbox
from envsound.deploy.reporter import Delivery
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
