"""A sensor's snippets on their way, against a real server: the sound of a label the sensor may not send never leaves
it (not even queued), and snippets heard while the server was away wait in the outbox and are delivered once, after
their events, when it is back."""

from __future__ import annotations

import numpy as np

from envsound.app.run import running
from envsound.app.server import create_app
from envsound.deploy.outbox import Outbox
from envsound.deploy.reporter import Reporting
from envsound.deploy.snippet_files import SnippetFiles
from envsound.deploy.snippets import Snipper, SnippetRules, SnippetSettings, decode
from envsound.deploy.store import Store

RATE = 16000


def reporting(outbox: Outbox, url: str) -> Reporting:
    cutter = Snipper(SnippetSettings(rules=SnippetRules.parse(None, "speech")), stream_rate=RATE,
                     network_rate=RATE, window=1.0, hop=0.5, median=0.0, gap=0.0)
    return Reporting(outbox, url, sensor="lab", token=None, model=None, fingerprint=None, snipper=cutter)


def test_a_label_not_allowed_is_never_sent_and_an_outage_queues_snippets_until_the_server_returns(served,
                                                                                                    tmp_path):
    away = reporting(Outbox(tmp_path / "queue.sqlite"), "http://127.0.0.1:9")  # nothing listens there
    away.hear(np.random.default_rng(0).uniform(-0.3, 0.3, 4 * RATE).astype(np.float32))
    heard = [{"label": "dog", "onset": 0.5, "offset": 1.5, "score": 0.9},
             {"label": "speech", "onset": 2.0, "offset": 3.0, "score": 0.8}]
    away.hop({"time": 4.0, "top": [{"label": "dog", "score": 0.9}], "events": heard, "end": True})
    summary = away.finish(0.3)
    assert (summary.queued, summary.snippets) == (2, (0, 1, 0))  # the speech event queued, its sound never
    assert summary.line() == "2 events: 0 delivered, 2 queued; snippets: 0 sent, 1 queued, 0 dropped (over the budget)"

    store = Store.open(tmp_path / "events.sqlite")
    with running(create_app(served.model, store=store, snippets=SnippetFiles(store, tmp_path / "fleet"))) as url:
        back = reporting(Outbox(tmp_path / "queue.sqlite"), url)
        summary = back.finish(30)
    assert (summary.before, summary.delivered, summary.queued, summary.snippets) == (2, 2, 0, (1, 0, 0))
    audio = {e["label"]: e["audio"] for e in store.events()}
    assert audio["speech"] is None and audio["dog"] > 0
    (kept,) = (tmp_path / "fleet" / "snippets" / "lab").iterdir()
    samples, rate = decode(kept.read_bytes())
    assert rate == RATE and abs(len(samples) / rate - 2.0) < 0.05  # the event and its margins
    store.close()


def test_snippets_over_the_budget_are_dropped_and_counted_in_the_heartbeat_and_the_last_line(tmp_path):
    outbox = Outbox(tmp_path / "queue.sqlite")
    away = reporting(outbox, "http://127.0.0.1:9")
    away.snippet_budget = 1  # bytes: no snippet fits
    away.hear(np.zeros(3 * RATE, np.float32))
    heard = [{"label": "dog", "onset": 0.5, "offset": 1.0, "score": 0.9}]
    away.hop({"time": 3.0, "top": [{"label": "dog", "score": 0.9}], "events": heard, "end": True})
    assert outbox.take(10)[2]["snippets_dropped"] == 1
    summary = away.finish(0.2)
    assert summary.snippets == (0, 0, 1) and summary.line().endswith("0 sent, 0 queued, 1 dropped (over the budget)")
