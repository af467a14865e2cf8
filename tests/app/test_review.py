"""The Review view of `envsound serve DB` (agile/review.py, app/review.py, static/review.js): its REST routes on a
real server over a small embeddings store of synthetic clips (embedded by the shared trained model), bad requests
answered in one line, reviewer and viewer tokens, and Chromium driving the view with its keys (y, n, u store three
verdicts, space plays the window again, the counts follow, the tenth verdict starts a learning round)."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from test_page import CHROMIUM, open_page

import envsound
from envsound.agile.labels import labelled
from envsound.agile.review import ROUND, Review, learned_folder
from envsound.app.auth import Guard
from envsound.app.run import running
from envsound.app.server import ServerLimits, create_app
from envsound.deploy.labels import Labels
from envsound.deploy.store import Store
from envsound.inference.embeddings import embed_archive


@pytest.fixture(scope="module")
def archive(tmp_path_factory, synthetic_manifest) -> Path:
    """8 synthetic clips (1.5 s, two windows each), one a file, and gone.wav, removed once embedded."""
    root = tmp_path_factory.mktemp("review-archive")
    for i, record in enumerate(synthetic_manifest.records[:8]):
        shutil.copy(record.path, root / f"{record.label}-{i}.wav")
    shutil.copy(synthetic_manifest.records[8].path, root / "gone.wav")
    return root


@pytest.fixture(scope="module")
def db(tmp_path_factory, trained_run, archive) -> Path:
    out = tmp_path_factory.mktemp("review-db") / "archive.db"
    embed_archive(trained_run.checkpoint, archive, out=out, options=envsound.ScanOptions(workers=1, progress=False))
    (archive / "gone.wav").unlink()
    return out


@pytest.fixture(scope="module")
def windows(db) -> pd.DataFrame:
    return pd.read_parquet(db / "windows").sort_values("window").reset_index(drop=True)


# a candidate is shown: its sound and picture loaded, or the page says why not (gone.wav's windows)
SHOWN = ("document.getElementById('review-audio').readyState >= 1 && "
         "document.getElementById('review-spectrogram').complete || "
         "document.getElementById('review-status').classList.contains('error')")


def serving(served, db, store_path: Path, *, required: bool = False):
    """``running(app)`` of the store ``db`` with its labels (and tokens) in ``store_path``, and that store."""
    store = Store.open(store_path)
    review = Review(db, store=store, spec=store_path)
    app = create_app(served.model, store=store, guard=Guard(store, required=required, rate=1000), review=review,
                     limits=ServerLimits(max_seconds=5))
    return running(app), store


def one_line(answer: httpx.Response, status: int, *words: str) -> str:
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert "\n" not in error and all(word in error for word in words), error
    return error


def test_the_routes_search_label_learn_and_answer_bad_requests_in_one_line(served, db, windows, archive, tmp_path):
    live, store = serving(served, db, tmp_path / "review.sqlite")
    with live as url, httpx.Client(base_url=url, timeout=60) as client:
        about = client.get("/api/review").json()
        assert (about["windows"], about["labels"], about["round"]) == (len(windows), [], ROUND)

        first = client.get("/api/review/next", params={"label": "siren", "k": 5}).json()
        assert first["candidates"] == [] and first["needs_example"] is True  # no labels: an example first

        clip = next(p for p in sorted(archive.glob("*.wav")))
        with open(clip, "rb") as fh:
            found = client.post("/api/review/search", data={"label": "siren", "k": "4"},
                                files={"file": (clip.name, fh, "audio/wav")}).json()["candidates"]
        assert len(found) == 4 and found[0]["file"] == str(clip) and found[0]["source"] == "search"
        assert found[0]["score"] >= found[-1]["score"]
        assert client.get("/api/review/next", params={"label": "siren", "k": 4}).json()["candidates"] == found

        # the window's sound: only its span, at the file's rate; its picture: a PNG
        w = found[0]["window"]
        sound, rate = sf.read(io.BytesIO(client.get(f"/api/review/audio/{w}").content))
        assert rate == sf.info(clip).samplerate
        assert len(sound) == round((found[0]["end"] - found[0]["start"]) * rate)
        picture = client.get(f"/api/review/spectrogram/{w}")
        assert picture.headers["content-type"] == "image/png" and picture.content[:8] == b"\x89PNG\r\n\x1a\n"

        answer = client.post("/api/review/label", json={"window": w, "label": "siren", "verdict": "yes"})
        assert answer.json()["counts"] == {"label": "siren", "yes": 1, "no": 0, "unsure": 0, "since_learn": 1,
                                           "learned": False, "round": ROUND, "to_next": ROUND - 1}
        after = client.get("/api/review/next", params={"label": "siren", "k": 10}).json()["candidates"]
        assert w not in [c["window"] for c in after] and after  # reviewed: never again a candidate

        # bad requests, one line each
        one_line(client.get(f"/api/review/audio/{len(windows)}"), 404, f"window {len(windows)} is not in")
        one_line(client.get("/api/review/spectrogram/-1"), 404, "window -1 is not in")
        one_line(client.post("/api/review/label", json={"window": len(windows) + 5, "label": "siren",
                                                        "verdict": "yes"}), 404, "is not in")
        one_line(client.post("/api/review/label", json={"window": w, "label": "siren", "verdict": "maybe"}), 422,
                 "verdict 'maybe' is not yes, no or unsure")
        one_line(client.post("/api/review/label", json={"window": w, "label": "a,b", "verdict": "no"}), 422,
                 "label 'a,b' holds a comma")
        one_line(client.get("/api/review/next", params={"label": "a,b"}), 422, "holds a comma")
        one_line(client.get("/api/review/next", params={"label": "siren", "k": 0}), 422, "k")
        one_line(client.post("/api/review/search", data={"label": "siren"}), 422, "an audio file or a window")
        one_line(client.post("/api/review/search", data={"label": "siren"},
                             files={"file": ("notes.wav", b"just text, not audio", "audio/wav")}), 415,
                 "notes.wav: not an audio file")
        long = tmp_path / "long.wav"
        sf.write(long, np.zeros(6 * 8000, np.float32), 8000)
        with open(long, "rb") as fh:
            one_line(client.post("/api/review/search", data={"label": "siren"}, files={"file": ("long.wav", fh)}),
                     413, "long.wav: 6.0 s of audio is over the server's limit of 5 s")
        gone = int(windows[windows["file"] == str(archive / "gone.wav")]["window"].iloc[0])
        error = one_line(client.get(f"/api/review/audio/{gone}"), 404, "gone.wav", f"window {gone} is missing")
        assert "gone.wav" in one_line(client.get(f"/api/review/spectrogram/{gone}"), 404)
        one_line(client.post("/api/review/learn", json={"label": "dog"}), 422, "no window reviewed yes")
    store.close()
    assert "the store keeps embeddings, not sound" in error


def test_a_learning_round_summarises_the_label_and_its_suggestions_become_the_candidates(served, db, windows,
                                                                                        tmp_path):
    spec = tmp_path / "review.sqlite"
    live, store = serving(served, db, spec)
    kinds = windows["file"].map(lambda f: Path(f).stem.rsplit("-", 1)[0])
    target = kinds.iloc[0]
    with live as url, httpx.Client(base_url=url, timeout=120) as client:
        for w, kind in zip(windows["window"], kinds):
            if kind == target or w % 3 == 0:
                client.post("/api/review/label", json={"window": int(w), "label": "round",
                                                       "verdict": "yes" if kind == target else "no"})
        summary = client.post("/api/review/learn", json={"label": "round"}).json()
        assert summary["positives"] == int((kinds == target).sum()) and summary["negatives"] > 0
        assert 0 < summary["threshold"] < 1 and summary["expected"].startswith(("precision", "not calibrated ("))
        assert summary["counts"]["since_learn"] == 0 and summary["counts"]["learned"] is True
        assert Path(summary["model"]) == learned_folder(db, "round") / "model.ckpt"
        suggested = client.get("/api/review/next", params={"label": "round", "k": 3}).json()["candidates"]
        assert suggested and {c["source"] for c in suggested} == {"learned"}
        reviewed = set(labelled(db, "round", store=spec)["round"].windows.tolist())
        assert not reviewed & {c["window"] for c in suggested}
        counts = client.post("/api/review/label", json={"window": suggested[0]["window"], "label": "round",
                                                        "verdict": "unsure"}).json()["counts"]
        assert (counts["since_learn"], counts["to_next"]) == (1, ROUND - 1)
    store.close()


def test_a_store_of_few_files_offers_every_unreviewed_window_not_one_a_file(db, windows, tmp_path):
    """Search collapses a file's neighbouring windows into one; once those are reviewed the other windows are still
    candidates (a 9-file store ran out of them after 9 verdicts, with 9 windows unreviewed)."""
    store = Store.open(tmp_path / "review.sqlite")
    review = Review(db, store=store, spec=tmp_path / "review.sqlite")
    assert review.candidates("every", 3) == []  # nothing reviewed: an example first
    assert review.search("every", window=0, k=3)[0].window == 0
    given = 0
    while True:
        found = review.candidates("every", 3)
        if not found:
            break
        for c in found:
            review.give(c.window, "every", "yes" if given == 0 else "no", reviewer="ana")
            given += 1
    counts = review.counts("every")
    store.close()
    assert given == len(windows) and (counts.yes, counts.no) == (1, len(windows) - 1)


def test_a_reviewer_token_labels_and_a_viewer_token_only_reads(served, db, windows, tmp_path):
    spec = tmp_path / "review.sqlite"
    live, store = serving(served, db, spec, required=True)
    reviewer, viewer = (store.create_token(name, role)[1] for name, role in (("ana", "reviewer"), ("vic", "viewer")))
    w = int(windows[~windows["file"].str.endswith("gone.wav")]["window"].iloc[0])
    routes = [("GET", "/api/review", None), ("GET", "/api/review/next?label=dog", None),
              ("GET", "/api/review/counts?label=dog", None), ("GET", f"/api/review/audio/{w}", None),
              ("GET", f"/api/review/spectrogram/{w}", None),
              ("POST", "/api/review/label", {"window": w, "label": "dog", "verdict": "no"}),
              ("POST", "/api/review/learn", {"label": "nothing-yet"})]
    with live as url, httpx.Client(base_url=url, timeout=60) as client:
        for method, path, body in routes:
            assert client.request(method, path, json=body).status_code == 401, path
            as_viewer = client.request(method, path, json=body, headers={"Authorization": f"Bearer {viewer}"})
            if method == "GET":
                assert as_viewer.status_code == 200, (path, as_viewer.text)
            else:
                one_line(as_viewer, 403, "a viewer token may not label windows")
        answer = client.post("/api/review/label", json={"window": w, "label": "dog", "verdict": "yes"},
                             headers={"Authorization": f"Bearer {reviewer}"})
        assert answer.status_code == 200, answer.text
        searched = client.post("/api/review/search", data={"label": "dog", "window": str(w), "k": "2"},
                               headers={"Authorization": f"Bearer {viewer}"})
        one_line(searched, 403, "a viewer token may not")
    given = Labels(store).read(label="dog")
    store.close()
    assert [(r["window"], r["verdict"], r["reviewer"]) for r in given] == [(w, "yes", "ana")]


def test_serve_db_serves_the_stores_model_and_the_review_tab_and_keeps_labels_in_the_db(db, windows, tmp_path):
    """``envsound serve DB`` as a console runs it: the store's model answers /v1/model, the page shows its Review
    tab, and a verdict lands in DB/review.sqlite."""
    import os
    import re
    import subprocess
    import sys

    copy = tmp_path / "copy.db"  # its own review.sqlite, beside the module's store
    shutil.copytree(db, copy, ignore=shutil.ignore_patterns("review.sqlite*", "learned"))
    home = tmp_path / "home"
    env = {**os.environ, "HOME": str(home), "XDG_DATA_HOME": str(home / "data"), "XDG_CONFIG_HOME": str(home / "cfg")}
    command = [sys.executable, "-m", "envsound.cli.main", "serve", str(copy), "--port", "0", "-q"]
    server = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        store_line, line = server.stderr.readline(), server.stderr.readline()
        assert store_line.startswith(f"envsound: reviewing {copy} ({len(windows)} windows)"), store_line
        url = re.search(r"serving at (http://127\.0\.0\.1:\d+)/", line).group(1)
        assert httpx.get(f"{url}/v1/model", timeout=10).json()["model"]
        assert 'data-testid="tab-review" hidden' not in httpx.get(url, timeout=10).text
        answer = httpx.post(f"{url}/api/review/label", json={"window": 3, "label": "dog", "verdict": "no"},
                            timeout=30)
        assert answer.status_code == 200, answer.text
    finally:
        server.terminate()
        server.wait(timeout=20)
    verdicts = labelled(copy, "dog")["dog"]
    assert (verdicts.windows.tolist(), verdicts.verdicts.tolist()) == ([3], ["no"])


def test_serve_db_with_auth_and_no_token_says_how_to_make_a_reviewer_token(db, tmp_path, envsound_main):
    spec = tmp_path / "labels.sqlite"
    ran = envsound_main("serve", db, "--auth", "--port", "0", "--store", spec)
    assert ran.returncode != 0
    line = ran.stderr.strip().splitlines()[-1]
    assert f"envsound token create NAME --role reviewer --store {spec}" in line, ran.stderr


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH: apt-get install chromium (as root)")
def test_the_view_takes_a_verdict_a_key_replays_with_space_and_counts(served, db, windows, tmp_path):
    from playwright.sync_api import sync_playwright

    spec = tmp_path / "review.sqlite"
    live, store = serving(served, db, spec)
    with live as url, sync_playwright() as driver:
        browser, page, failed = open_page(driver, url, "--autoplay-policy=no-user-gesture-required")
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))  # review.js once stopped at its first line
        try:
            page.get_by_test_id("tab-review").click()
            page.get_by_test_id("review-store").filter(has_text=f"{len(windows)} windows").wait_for(timeout=10_000)
            page.get_by_test_id("review-label").fill("bird")
            page.get_by_test_id("review-go").click()
            page.get_by_test_id("review-example").wait_for(timeout=10_000)  # no labels yet: an example first
            page.get_by_test_id("review-example-window").fill("2")
            page.get_by_test_id("review-search").click()
            card = page.get_by_test_id("review-card")
            card.wait_for(timeout=30_000)
            page.wait_for_function("document.getElementById('review-audio').readyState >= 1", timeout=10_000)
            first = int(card.get_attribute("data-window"))
            assert first == 2  # the example window itself is the most like it

            # space: back to the start, and played
            page.evaluate("""() => { const a = document.getElementById('review-audio'); window.plays = 0;
                a.pause();
                a.play = () => { window.plays += 1; return Promise.resolve(); }; a.currentTime = 0.5; }""")
            page.keyboard.press(" ")
            assert page.evaluate("document.getElementById('review-audio').currentTime") == 0
            assert page.evaluate("window.plays") == 1

            shown = []
            for key in ("y", "n", "u"):
                page.wait_for_function(f"document.getElementById('review-card').dataset.window !== "
                                       f"'{shown[-1] if shown else ''}'", timeout=10_000)
                shown.append(card.get_attribute("data-window"))
                page.keyboard.press(key)
            counts = page.get_by_test_id("review-counts")
            page.wait_for_function("document.getElementById('review-counts').textContent.includes('1 unsure')",
                                   timeout=10_000)
            assert "bird: 1 yes · 1 no · 1 unsure; 3 since the last learning round, 7 to the next" in \
                counts.inner_text()
            page.keyboard.press("j")  # next without a verdict
            page.wait_for_function(f"document.getElementById('review-card').dataset.window !== '{shown[-1]}'",
                                   timeout=10_000)
            page.wait_for_function(SHOWN, timeout=10_000)

            # the tenth verdict ends the round: the page learns the label and shows what it expects of it
            for i in range(ROUND - 3):
                page.wait_for_function(f"document.getElementById('review-counts').textContent.includes("
                                       f"'{3 + i} since the last')", timeout=10_000)
                page.keyboard.press("n")
            page.get_by_test_id("review-summary").filter(has_text="Learned bird from 1 yes and 8 no").wait_for(
                timeout=60_000)
            assert "not calibrated (1 yes, 8 no reviewed" in page.get_by_test_id("review-summary").inner_text()
            page.wait_for_function("document.getElementById('review-counts').textContent.includes("
                                   "'0 since the last learning round, 10 to the next')", timeout=10_000)
            assert "learned model" in page.get_by_test_id("review-score").inner_text()
            page.wait_for_function(SHOWN, timeout=10_000)
        finally:
            browser.close()
    store.close()
    verdicts = labelled(db, "bird", store=spec)["bird"]
    given = dict(zip(verdicts.windows.tolist(), verdicts.verdicts.tolist()))
    assert [given[int(w)] for w in shown] == ["yes", "no", "unsure"]
    assert len(given) == ROUND and list(given.values()).count("no") == ROUND - 2
    assert len(set(shown)) == 3 and int(shown[0]) == first
    assert not errors, errors
    gone = {int(w) for w in windows[windows["file"].str.endswith("gone.wav")]["window"]}  # its audio was removed
    assert not [u for u in failed if not any(u.endswith(f"/{w}") for w in gone)], failed


def test_embed_records_the_directory_it_ran_in_so_relative_names_resolve_elsewhere(db):
    from envsound.inference.embeddings.store import EmbeddingsStore

    assert EmbeddingsStore(db).settings["cwd"] == str(Path.cwd())


def test_an_example_is_copied_off_the_event_loop_and_the_stores_model_loaded_once(served, db, archive, tmp_path,
                                                                                   monkeypatch):
    """An uploaded example was copied to disk on the event loop (every other request waited for it) and the
    store's model loaded again for each search by example."""
    import asyncio

    from envsound.inference.predictor import Predictor

    copies, loads = [], []
    copy, load = shutil.copyfileobj, Predictor.from_checkpoint

    def copied(source, target, *args, **kwargs):
        if "envsound-upload-" in str(getattr(target, "name", "")):  # the private copy (app.answers.private_copy)
            try:
                asyncio.get_running_loop()
                copies.append("on the event loop")
            except RuntimeError:
                copies.append("in a worker thread")
        return copy(source, target, *args, **kwargs)

    def loaded(*args, **kwargs):
        loads.append(args[0])
        return load(*args, **kwargs)

    monkeypatch.setattr(shutil, "copyfileobj", copied)
    monkeypatch.setattr(Predictor, "from_checkpoint", loaded)
    live, store = serving(served, db, tmp_path / "review.sqlite")
    clip = sorted(archive.glob("*.wav"))[0]
    with live as url, httpx.Client(base_url=url, timeout=60) as client:
        for label in ("siren", "dog"):
            with open(clip, "rb") as fh:
                answer = client.post("/api/review/search", data={"label": label, "k": "2"},
                                     files={"file": (clip.name, fh, "audio/wav")})
            assert answer.status_code == 200 and answer.json()["candidates"][0]["file"] == str(clip), answer.text
    store.close()
    assert copies == ["in a worker thread"] * 2 and len(loads) == 1


def test_an_embeddings_store_served_with_a_store_keeps_the_fleets_snippets_too(db, tmp_path):
    """`serve DB --store events.sqlite` (a team reviewing an archive and a fleet on one server) keeps the sound the
    sensors send, in the store's fleet folder; `serve DB` alone keeps none, `serve DB --keep-snippets N` in the
    review store's."""
    from envsound.app.run import open_stores

    copy = tmp_path / "archive.db"
    shutil.copytree(db, copy)
    opened, model_file, snippets = open_stores(copy)
    assert snippets is None and model_file.is_file()
    opened.close()
    opened, _, snippets = open_stores(copy, store=tmp_path / "events.sqlite")
    assert snippets.folder == tmp_path / "events-fleet"
    opened.close()
    opened, _, snippets = open_stores(copy, keep_snippets=30)
    assert snippets.folder == copy / "review-fleet"
    opened.close()
