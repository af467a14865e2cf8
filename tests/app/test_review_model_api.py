"""The Review view's REST routes for the model it reviews with (GET /api/review/model: the store's network, each
learned label's model file, threshold and expected precision or why it is not calibrated) and for check's random
sample as a way to review (POST /api/review/check: envsound check's sheet, its unreviewed windows as candidates,
their verdicts in the same labels table), on a real server; bad requests answered in one line; both in the schema."""

from __future__ import annotations

import csv

import httpx
import pytest
from review_page import one_line, review_server
from reviewed_store import LABEL, reviewed_store

from envsound.agile.check import check
from envsound.agile.labels import labelled
from envsound.agile.review import learned_folder


@pytest.fixture(scope="module")
def server(served, trained_run, synthetic_manifest, tmp_path_factory):
    """A server of a reviewed store: ``(url, db, labels store path)``."""
    db, spec = reviewed_store(tmp_path_factory, trained_run.checkpoint, synthetic_manifest)
    with review_server(served, db, spec) as (url, _):
        yield url, db, spec


def test_the_model_route_names_the_network_and_each_learned_labels_file_threshold_and_calibration(server, served):
    url, db, _ = server
    with httpx.Client(base_url=url, timeout=30) as client:
        about = client.get("/api/review/model").json()
        only = client.get("/api/review/model", params={"label": LABEL}).json()["labels"]
        assert client.get("/api/review/model", params={"label": "never"}).json()["labels"] == []
        one_line(client.get("/api/review/model", params={"label": "a,b"}), 422, "holds a comma")
        paths = client.get("/openapi.json").json()["paths"]
    assert about["network"] == {"name": served.model.describe()["model"], "file": str(served.model.file.path),
                                "digest": served.model.file.digest}
    [entry] = about["labels"]
    assert only == [entry]
    assert entry["label"] == LABEL and entry["model"] == str(learned_folder(db, LABEL) / "model.ckpt")
    # 2 yes and 6 no: too few to calibrate, and the page says why and which reviews would
    assert (entry["threshold"], entry["calibrated"], entry["precision"]) == (0.5, False, None)
    assert (entry["positives"], entry["negatives"]) == (2, 6)
    assert entry["why"] == "2 yes, 6 no reviewed; 5 of each calibrate it" and entry["wanted"] == "3 more yes"
    assert entry["learned"].endswith("+00:00")
    assert {"404", "422"} <= set(paths["/api/review/model"]["get"]["responses"])
    assert {"404", "422"} <= set(paths["/api/review/check"]["post"]["responses"])


def test_checks_random_sample_is_a_review_mode_whose_verdicts_land_in_the_labels_table(server):
    url, db, spec = server
    with httpx.Client(base_url=url, timeout=60) as client:
        first = client.post("/api/review/check", json={"label": LABEL, "sample": 5}).json()
        sheet = learned_folder(db, LABEL) / f"{LABEL}.check.csv"
        with open(sheet, encoding="utf-8", newline="") as fh:
            unanswered = [int(row["window"]) for row in csv.DictReader(fh) if not row["verdict"]]
        found = first["check"]
        assert first["check"]["sheet"] == str(sheet) and found["drawn"] == min(5, found["above"])
        assert [c["window"] for c in first["candidates"]] == unanswered and unanswered  # check's own draw
        assert {c["source"] for c in first["candidates"]} == {"check"}
        assert found["yes"] + found["no"] + found["unsure"] + len(unanswered) == found["drawn"]
        window = unanswered[0]
        given = client.post("/api/review/label", json={"window": window, "label": LABEL, "verdict": "no"})
        assert given.status_code == 200, given.text
        again = client.post("/api/review/check", json={"label": LABEL, "sample": 5}).json()
        assert again["check"]["no"] == found["no"] + 1 and again["check"]["drawn"] == found["drawn"]
        assert window not in [c["window"] for c in again["candidates"]]
        assert f"{found['no'] + 1} no" in again["line"]

        one_line(client.post("/api/review/check", json={"label": "never"}), 404, "never learned")
        one_line(client.post("/api/review/check", json={"label": LABEL, "sample": 0}), 422, "sample")
        one_line(client.post("/api/review/check", json={"label": "a,b"}), 422, "holds a comma")
    verdicts = labelled(db, LABEL, store=spec)[LABEL]
    assert dict(zip(verdicts.windows.tolist(), verdicts.verdicts.tolist()))[window] == "no"
    # what envsound check says of the same sheet: the page's verdict counted
    assert check(learned_folder(db, LABEL) / "model.ckpt", db, labels=[LABEL], sample=5,
                 store=str(spec)).checks[0].no == found["no"] + 1


def test_a_viewer_token_reads_the_model_and_only_a_reviewer_draws_checks_sample(served, trained_run,
                                                                                  synthetic_manifest,
                                                                                  tmp_path_factory):
    db, spec = reviewed_store(tmp_path_factory, trained_run.checkpoint, synthetic_manifest)
    roles = (("ana", "reviewer"), ("vic", "viewer"))
    with review_server(served, db, spec, tokens=roles) as (url, (reviewer, viewer)), \
            httpx.Client(base_url=url, timeout=60) as client:
        assert client.get("/api/review/model").status_code == 401
        as_viewer = {"Authorization": f"Bearer {viewer}"}
        assert client.get("/api/review/model", headers=as_viewer).json()["labels"][0]["label"] == LABEL
        one_line(client.post("/api/review/check", json={"label": LABEL}, headers=as_viewer), 403, "viewer")
        drawn = client.post("/api/review/check", json={"label": LABEL}, headers={"Authorization": f"Bearer {reviewer}"})
        assert drawn.status_code == 200, drawn.text
