"""Answers to look at again over REST (issue 77, item 4): POST /api/review/again lists a label's reviewed windows
farthest from their verdicts out of fold (what ``envsound learn --disagreements K`` lists), each with its verdict and
score; a new verdict on one lands in the labels table and is the one counted from then on; a learning round's summary
says how many answers disagree; bad requests answered in one line; the reviewer role; the route in the schema."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest
from review_page import one_line, review_server
from reviewed_store import LABEL, reviewed_store

from envsound.agile.labels import labelled
from envsound.agile.learn import learn
from envsound.agile.review import Review, learned_folder
from envsound.deploy.store import Store

AGAIN = "second_look"  # a label answered with two mistakes


def answer_with_two_mistakes(db: Path, spec: Path) -> tuple[int, int]:
    """Answer :data:`AGAIN` on every window of the store: ``yes`` on the windows of two kinds of clip, ``no`` on the
    others', but for one window of each answered the other way. Returns ``(the yes answered no,
    the no answered yes)``."""
    store = Store.open(spec)
    review = Review(db, store=store, spec=spec)
    rows = review.windows.rows(np.arange(review.windows.windows))
    kinds = [Path(row["file"]).stem.rsplit("-", 1)[0] for row in rows]
    sound = sorted(set(kinds))[:2]  # 8 windows of the 24 (6 kinds of 2 clips, 2 windows a clip)
    mistaken_yes = next(row["window"] for row, kind in zip(rows, kinds) if kind in sound and row["start"] > 0)
    mistaken_no = next(row["window"] for row, kind in zip(rows, kinds) if kind not in sound and row["start"] > 0)
    for row, kind in zip(rows, kinds):
        holds = (kind in sound) != (row["window"] in (mistaken_yes, mistaken_no))
        review.give(row["window"], AGAIN, "yes" if holds else "no", reviewer="ana")
    store.close()
    return mistaken_yes, mistaken_no


@pytest.fixture(scope="module")
def server(served, trained_run, synthetic_manifest, tmp_path_factory):
    """A server of a reviewed store with :data:`AGAIN` answered: ``(url, db, labels store, the two mistakes)``."""
    db, spec = reviewed_store(tmp_path_factory, trained_run.checkpoint, synthetic_manifest)
    mistakes = answer_with_two_mistakes(db, spec)
    with review_server(served, db, spec) as (url, _):
        yield url, db, spec, mistakes


def current(db: Path, spec: Path, label: str) -> dict[int, str]:
    verdicts = labelled(db, label, store=spec)[label]
    return dict(zip(verdicts.windows.tolist(), verdicts.verdicts.tolist()))


def test_the_answers_to_look_at_again_are_learns_disagreements_and_a_new_verdict_counts(server, tmp_path):
    url, db, spec, (mistaken_yes, mistaken_no) = server
    with httpx.Client(base_url=url, timeout=120) as client:
        listed = client.post("/api/review/again", json={"label": AGAIN, "k": 3}).json()
        # the same windows, verdicts and scores as envsound learn --disagreements 3 of the label
        learned = learn(db, AGAIN, out=tmp_path / "cli", store=str(spec), disagreements=3, progress=False).labels[0]
        assert [(c["window"], c["verdict"], c["disagrees"]) for c in listed["candidates"]] == \
            [(d.window, d.verdict, d.disagrees) for d in learned.disagreements]
        assert np.allclose([c["score"] for c in listed["candidates"]], [d.score for d in learned.disagreements])
        assert {c["source"] for c in listed["candidates"]} == {"again"}
        first_two = {c["window"]: c["verdict"] for c in listed["candidates"][:2]}
        assert first_two == {mistaken_yes: "no", mistaken_no: "yes"}  # both mistakes, farthest first
        assert listed["calibrated"] and listed["disagreeing"] == learned.disagreeing >= 2
        assert listed["line"] == f"{learned.disagreeing} reviewed windows disagree with the head out of fold"
        assert not learned_folder(db, AGAIN).exists()  # the learn behind the list left no model in the store

        given = client.post("/api/review/label", json={"window": mistaken_yes, "label": AGAIN, "verdict": "yes"})
        assert given.status_code == 200, given.text
        assert current(db, spec, AGAIN)[mistaken_yes] == "yes"  # the latest verdict counts
        after = client.post("/api/review/again", json={"label": AGAIN, "k": 3}).json()
        assert after["disagreeing"] == listed["disagreeing"] - 1
        assert (mistaken_yes, "no") not in [(c["window"], c["verdict"]) for c in after["candidates"]]

        summary = client.post("/api/review/learn", json={"label": AGAIN}).json()
        assert summary["disagreeing"] == after["disagreeing"]
        assert summary["again"] == after["line"]


def test_a_label_not_calibrated_has_no_answers_to_look_at_again_and_bad_requests_answer_4xx(server):
    url = server[0]
    with httpx.Client(base_url=url, timeout=60) as client:
        uncalibrated = client.post("/api/review/again", json={"label": LABEL}).json()  # 2 yes, 6 no
        assert (uncalibrated["calibrated"], uncalibrated["candidates"], uncalibrated["line"]) == (False, [], "")
        assert uncalibrated["why"] == "2 yes, 6 no reviewed; 5 of each calibrate it"
        one_line(client.post("/api/review/again", json={"label": AGAIN, "k": 0}), 422, "k")
        one_line(client.post("/api/review/again", json={"label": AGAIN, "k": 101}), 422, "k")
        one_line(client.post("/api/review/again", json={"label": "a,b"}), 422, "holds a comma")
        one_line(client.post("/api/review/again", json={"label": "never"}), 422, "no window reviewed yes")
        paths = client.get("/openapi.json").json()["paths"]
    assert {"404", "422"} <= set(paths["/api/review/again"]["post"]["responses"])


def test_only_a_reviewer_lists_the_answers_to_look_at_again(served, trained_run, synthetic_manifest,
                                                            tmp_path_factory):
    db, spec = reviewed_store(tmp_path_factory, trained_run.checkpoint, synthetic_manifest)
    roles = (("ana", "reviewer"), ("vic", "viewer"))
    with review_server(served, db, spec, tokens=roles) as (url, (reviewer, viewer)), \
            httpx.Client(base_url=url, timeout=60) as client:
        assert client.post("/api/review/again", json={"label": LABEL}).status_code == 401
        one_line(client.post("/api/review/again", json={"label": LABEL},
                             headers={"Authorization": f"Bearer {viewer}"}), 403, "viewer")
        listed = client.post("/api/review/again", json={"label": LABEL},
                             headers={"Authorization": f"Bearer {reviewer}"})
        assert listed.status_code == 200, listed.text
