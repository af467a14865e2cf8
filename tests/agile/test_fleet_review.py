"""Reviewing a fleet's detections (agile/fleet_review.py, app/fleet_review.py): the events whose sound a server keeps,
offered for review, answered into the labels table, each sensor's precision per label from its random sample, and the
verdicts reaching an embeddings store of the snippet folder as the verdicts of its windows.

The events are stored as sensors report them (Store.add_report); their snippets as the server keeps them: a FLAC file
in the fleet folder and the event's snippet columns."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf

from envsound.agile.fleet_review import Filters, FleetReview, NoSnippet, precision_line, sample_order
from envsound.agile.labelled import LabelledStore
from envsound.deploy import schema
from envsound.deploy.fleet_files import snippet_path
from envsound.deploy.snippet_files import SnippetFiles
from envsound.deploy.store import Detection, Store
from envsound.errors import ConfigError
from envsound.inference.embeddings.store import EmbeddingsStore

import test_labelled

T0 = datetime(2026, 11, 20, 6, 0, tzinfo=timezone.utc)


def keep_snippet(store: Store, folder: Path, event_id: int, *, seconds: float = 3.0, lead: float = 0.5) -> Path:
    """What the server does with a snippet: the file in the fleet folder, its size, type and start on the event."""
    with store.engine.begin() as connection:
        sensor = connection.execute(schema.events.select().where(schema.events.c.id == event_id)).one().sensor
    path = snippet_path(folder, sensor, event_id, "audio/flac")
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(int(16000 * seconds), np.float32), 16000, format="FLAC")
    with store.engine.begin() as connection:
        connection.execute(schema.events.update().where(schema.events.c.id == event_id).values(
            snippet_bytes=path.stat().st_size, snippet_type="audio/flac", snippet_start=-lead))
    return path


@pytest.fixture()
def fleet(tmp_path):
    """Two sensors: lab with 12 rooster events (all with their sound) and 2 dog events (one without), yard with 3
    rooster events; ids by the order reported."""
    store = Store.open(tmp_path / "events.sqlite")
    folder = tmp_path / "events-fleet"
    for sensor, label, n in (("lab", "rooster", 12), ("lab", "dog", 2), ("yard", "rooster", 3)):
        events = [Detection(f"{sensor}-{label}-{i}", label, T0 + timedelta(minutes=i),
                            T0 + timedelta(minutes=i, seconds=2), 0.5 + i / 40) for i in range(n)]
        store.add_report(sensor, events)
    with store.engine.connect() as connection:
        rows = connection.execute(schema.events.select().order_by(schema.events.c.id)).all()
    ids = {row.key: row.id for row in rows}
    for key, event_id in ids.items():
        if key != "lab-dog-1":
            keep_snippet(store, folder, event_id)
    yield store, folder, ids
    store.close()


def test_only_events_with_their_sound_are_offered_newest_first_and_a_verdict_takes_one_out(fleet):
    store, folder, ids = fleet
    review = FleetReview(store, folder)
    found, left = review.candidates(Filters(sensor="lab"), k=5)
    assert left == 13  # 12 roosters and the dog with its sound; not the dog without
    assert [c["event"] for c in found] == [ids[f"lab-rooster-{i}"] for i in (11, 10, 9, 8, 7)]
    first = found[0]
    assert first["audio"] == f"/v1/events/{first['event']}/audio" and (first["start"], first["end"]) == (0.5, 2.5)
    review.answer(first["event"], "yes", reviewer="ana")
    again, left = review.candidates(Filters(sensor="lab"), k=5)
    assert left == 12 and first["event"] not in [c["event"] for c in again]
    banded, _ = review.candidates(Filters(label="rooster", low=0.6, high=0.7), k=20)
    assert {c["sensor"] for c in banded} == {"lab"} and all(0.6 <= c["score"] < 0.7 for c in banded)


def test_a_verdict_names_the_snippet_and_the_event_in_it(fleet):
    store, folder, ids = fleet
    review = FleetReview(store, folder)
    given = review.answer(ids["yard-rooster-1"], "no", reviewer="ana")
    assert given == {"window": None, "file": str(snippet_path(folder, "yard", ids["yard-rooster-1"], "audio/flac")),
                     "start": 0.5, "end": 2.5, "label": "rooster", "verdict": "no", "event": ids["yard-rooster-1"]}
    with pytest.raises(NoSnippet, match="its sound was not kept"):
        review.answer(ids["lab-dog-1"], "yes", reviewer="ana")
    with pytest.raises(NoSnippet, match="not in the store"):
        review.answer(10_000, "yes", reviewer="ana")
    with pytest.raises(ConfigError, match="verdict 'maybe'"):
        review.answer(ids["yard-rooster-0"], "maybe", reviewer="ana")


def test_precision_counts_the_random_sample_from_its_first_event_only(fleet):
    store, folder, ids = fleet
    review = FleetReview(store, folder)
    order = sorted((key for key in ids if key.startswith("lab-rooster")), key=sample_order)
    sampled, _ = review.candidates(Filters(sensor="lab", label="rooster"), sample=True, k=12)
    assert [c["event"] for c in sampled] == [ids[key] for key in order]
    # out of order: the last of the sample answered first does not count until the run reaches it
    review.answer(ids[order[-1]], "no", reviewer="ana")
    (lab,) = review.precision(Filters(sensor="lab", label="rooster"))
    assert (lab["sampled"], lab["reviewed"], lab["precision"]) == (0, 1, None)
    assert "no precision yet" in precision_line(lab)
    for key, verdict in zip(order[:5], ("yes", "yes", "no", "yes", "unsure")):
        review.answer(ids[key], verdict, reviewer="ana")
    (lab,) = review.precision(Filters(sensor="lab", label="rooster"))
    assert (lab["sampled"], lab["yes"], lab["no"], lab["unsure"], lab["events"]) == (5, 3, 1, 1, 12)
    assert lab["precision"] == 0.75 and 0.0 < lab["low"] < 0.75 < lab["high"] < 1.0
    assert precision_line(lab).startswith("lab / rooster: precision 0.750 (")
    review.answer(ids[order[2]], "yes", reviewer="bo")  # a verdict changed: the latest is the current one
    (lab,) = review.precision(Filters(sensor="lab", label="rooster"))
    assert (lab["yes"], lab["no"]) == (4, 0)
    groups = {(item["sensor"], item["label"]) for item in review.precision()}
    assert groups == {("lab", "rooster"), ("lab", "dog"), ("yard", "rooster")}


def test_a_fleet_verdict_is_the_verdict_of_each_window_centred_in_the_event(fleet, tmp_path):
    """An embeddings store of the snippet folder finds the verdicts on its snippets: learn learns from them."""
    store, folder, ids = fleet
    review = FleetReview(store, folder)
    given = review.answer(ids["lab-rooster-3"], "yes", reviewer="ana")  # the event at 0.5-2.5 s of its snippet
    other = review.answer(ids["lab-rooster-4"], "no", reviewer="ana")
    db = test_labelled.write_store(tmp_path / "snippets.db", [given["file"], other["file"], "elsewhere.wav"],
                                   per_file=3)  # 1-s windows at 0, 1, 2 s: centres 0.5, 1.5, 2.5
    with LabelledStore(EmbeddingsStore(db), store) as labelled:
        verdicts = labelled.verdicts(["rooster"])["rooster"]
    # windows 0-2 are the first snippet's, 3-5 the second's: centres 0.5 and 1.5 lie in [0.5, 2.5), 2.5 does not
    assert verdicts.windows.tolist() == [0, 1, 3, 4]
    assert verdicts.verdicts.tolist() == ["yes", "yes", "no", "no"]
    # a store of the snippet folder embedded by relative names (embed ... events-fleet/snippets) finds them too
    (tmp_path / "sub").mkdir()  # and by a name with ../ in it
    relative = [str(Path(name).relative_to(tmp_path)) for name in (given["file"], other["file"])]
    relative[1] = f"sub/../{relative[1]}"
    db = test_labelled.write_store(tmp_path / "relative.db", relative, per_file=3)
    with LabelledStore(EmbeddingsStore(db), store) as labelled:
        assert labelled.verdicts(["rooster"])["rooster"].windows.tolist() == [0, 1, 3, 4]


def test_the_review_routes_offer_answer_and_count(fleet, served):
    from envsound.app.auth import Guard
    from envsound.app.run import running
    from envsound.app.server import create_app

    store, folder, ids = fleet
    reviewer = store.create_token("ana", "reviewer")[1]
    viewer = store.create_token("vic", "viewer")[1]
    app = create_app(served.model, store=store, guard=Guard(store, required=True, rate=1000),
                     snippets=SnippetFiles(store, folder))
    with running(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        as_reviewer, as_viewer = ({"Authorization": f"Bearer {secret}"} for secret in (reviewer, viewer))
        answer = client.get("/v1/review/events", params={"sensor": "yard", "sample": "true", "k": 2},
                            headers=as_viewer)
        assert answer.status_code == 200 and answer.json()["left"] == 3 and len(answer.json()["events"]) == 2
        event = answer.json()["events"][0]["event"]
        assert client.post("/v1/review/verdicts", json={"event": event, "verdict": "yes"},
                           headers=as_viewer).status_code == 403
        answer = client.post("/v1/review/verdicts", json={"event": event, "verdict": "yes"}, headers=as_reviewer)
        assert answer.status_code == 200 and answer.json()["verdict"]["label"] == "rooster"
        assert client.post("/v1/review/verdicts", json={"event": event, "verdict": "maybe"},
                           headers=as_reviewer).status_code == 422
        missing = client.post("/v1/review/verdicts", json={"event": ids["lab-dog-1"], "verdict": "no"},
                              headers=as_reviewer)
        assert missing.status_code == 404 and "not kept" in missing.json()["error"]
        answer = client.get("/v1/review/precision", params={"sensor": "yard"}, headers=as_viewer)
        (yard,) = answer.json()["precision"]
        assert (yard["sampled"], yard["yes"], yard["precision"]) == (1, 1, 1.0)
        assert client.get("/v1/review/events", params={"since": "yesterday"},
                          headers=as_viewer).status_code == 422


def test_a_verdict_on_a_pruned_event_is_not_the_verdict_of_the_event_given_its_id_later(fleet):
    """SQLite gives a new event the id of one pruned: a verdict kept on the old one must not answer the new one."""
    store, folder, ids = fleet
    review = FleetReview(store, folder)
    first = min(ids.values())
    review.answer(first, "yes", reviewer="ana")
    assert store.prune(0, now=T0 + timedelta(days=1)) == len(ids)
    onset = T0 + timedelta(days=2)
    store.add_report("lab", [Detection("new", "rooster", onset, onset + timedelta(seconds=2), 0.9)])
    (new,) = [event["id"] for event in store.events(sensor="lab", limit=10)]
    assert new == first  # the id again
    keep_snippet(store, folder, new)
    offered, left = review.candidates(k=5)
    assert [c["event"] for c in offered] == [new] and left == 1
    assert [(p["reviewed"], p["sampled"]) for p in review.precision()] == [(0, 0)]
    assert len(review.labels.read(label="rooster")) == 1  # the verdict itself is kept, for learning by its file
