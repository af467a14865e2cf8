"""The Review view of `envsound serve DB` over a store a frozen network embedded (the tiny BirdNET-shaped network of
tests/tinytflite.py, installed as birdnet-v2.4): the store's own network is what serve runs, an uploaded example is
embedded by it, verdicts land, and a learning round writes a head over the frozen trunk that names it by digest and
carries BirdNET's licence."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("ai_edge_litert")
pytest.importorskip("flatbuffers")

from tinytflite import birdnet_folder  # noqa: E402 (after the skips)

from envsound.agile.review import Review, learned_folder  # noqa: E402
from envsound.app.run import running  # noqa: E402
from envsound.app.server import ServerLimits, create_app  # noqa: E402
from envsound.deploy.store import Store  # noqa: E402
from envsound.inference.api import load_model  # noqa: E402
from envsound.inference.embeddings.store import EmbeddingsStore  # noqa: E402
from envsound.models.checkpoint import load_checkpoint  # noqa: E402


def test_review_of_a_birdnet_store_searches_labels_and_learns_a_head_over_the_trunk(envsound_main, tmp_path,
                                                                                  monkeypatch):
    from envsound.transfer.install_frozen import install_frozen

    monkeypatch.setenv("ENVSOUND_MODELS", str(tmp_path / "models"))
    install_frozen("birdnet-v2.4", source=birdnet_folder(tmp_path / "copy"), progress=False)
    audio = tmp_path / "audio"
    audio.mkdir()
    rng = np.random.default_rng(1)
    for i in range(8):  # 'call' clips carry an offset the tiny network's embedding (a mean of the waveform) shows
        wave = rng.uniform(-0.2, 0.2, 48_000 * 3).astype(np.float32) + (0.3 if i % 2 == 0 else 0.0)
        sf.write(audio / f"{'call' if i % 2 == 0 else 'quiet'}{i}.wav", wave, 48_000, subtype="FLOAT")
    db = tmp_path / "db"
    assert envsound_main("embed", "birdnet-v2.4", audio, "--out", db).returncode == 0

    windows = EmbeddingsStore(db)
    model = load_model(windows.resolve(windows.settings["model_file"]))  # what `serve DB` runs: the store's network
    spec = tmp_path / "review.sqlite"
    store = Store.open(spec)
    review = Review(db, store=store, spec=spec)
    review.windows.check_network(windows.resolve(windows.settings["model_file"]), model.file.digest, fix="serve it")
    app = create_app(model, store=store, review=review, limits=ServerLimits(max_seconds=5))
    with running(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        assert client.get("/v1/model").json()["licence"] == "CC BY-NC-SA 4.0"
        with open(audio / "call0.wav", "rb") as handle:
            found = client.post("/api/review/search", data={"label": "call", "k": "8"},
                                files={"file": ("call0.wav", handle, "audio/wav")}).json()["candidates"]
        assert found[0]["file"].endswith("call0.wav")  # the example's own window first: embedded by the same network
        for candidate in found:
            verdict = "yes" if "call" in candidate["file"].rsplit("/", 1)[-1] else "no"
            answer = client.post("/api/review/label", json={"window": candidate["window"], "label": "call",
                                                            "verdict": verdict})
            assert answer.status_code == 200, answer.text
        summary = client.post("/api/review/learn", json={"label": "call"}).json()
    store.close()
    assert (summary["positives"], summary["negatives"]) == (4, 4), summary
    learned = load_checkpoint(learned_folder(db, "call") / "model.ckpt")
    assert learned.meta["trunk"]["network"] == "birdnet-v2.4" and learned.meta["licence"] == "CC BY-NC-SA 4.0"
    assert learned.meta["trunk"]["digest"] == model.file.digest
