"""birdnet-v2.4 and yamnet over archives on a fresh clone: 'envsound embed NAME INPUTS --out DB' (each window's
1,024-d embedding, the store recording the network by digest, rate, window and hop), 'envsound search DB --example'
on it, and 'envsound predict NAME INPUTS --out RESULTS' giving the scores predict gives without --out. The networks
are the tiny BirdNET- and YAMNet-shaped ones of tests/tinytflite.py, checked against its numpy reference."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("ai_edge_litert")
pytest.importorskip("flatbuffers")

from tinytflite import install_tiny_pair, reference  # noqa: E402 (after the skips)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A models folder holding both tiny networks, installed by the library call 'envsound download --from' makes."""
    return install_tiny_pair(tmp_path_factory.mktemp("frozen"))


def clips(folder, rate: int, seconds: list[float]) -> list:
    folder.mkdir()
    paths = []
    for i, length in enumerate(seconds):
        wave = np.random.default_rng(i).uniform(-0.5, 0.5, int(rate * length)).astype(np.float32)
        sf.write(folder / f"c{i}.wav", wave, rate, subtype="FLOAT")
        paths.append(folder / f"c{i}.wav")
    return paths


def test_embed_birdnet_stores_each_windows_embedding_and_search_finds_the_example(envsound_main, models, tmp_path,
                                                                                  monkeypatch):
    monkeypatch.setenv("ENVSOUND_MODELS", str(models))
    paths = clips(tmp_path / "audio", 48_000, [4.0, 2.0])
    ran = envsound_main("embed", "birdnet-v2.4", tmp_path / "audio", "--out", tmp_path / "db")
    assert ran.returncode == 0, ran.stderr
    assert "3 windows in" in ran.stdout
    from envsound.fileio import file_digest
    from envsound.inference.embeddings.store import EmbeddingsStore

    store = EmbeddingsStore(tmp_path / "db")
    assert store.settings["model"] == file_digest(models / "birdnet-v2.4" / "BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite")
    assert {key: store.settings[key] for key in ("sample_rate", "window_seconds", "hop_seconds")} == {
        "sample_rate": 48_000, "window_seconds": 3.0, "hop_seconds": 3.0}
    rows = store.columns().to_pylist()
    assert [(row["file"][-6:], row["start"]) for row in rows] == [("c0.wav", 0.0), ("c0.wav", 1.0), ("c1.wav", 0.0)]
    long, short = (sf.read(path, dtype="float32")[0] for path in paths)
    windows = np.zeros((3, 144_000), np.float32)  # 0 s and the one aligned to the end of c0; c1 zero-padded
    windows[0], windows[1], windows[2, :len(short)] = long[:144_000], long[48_000:], short
    _, expected = reference("birdnet-v2.4", windows)
    np.testing.assert_allclose(store.vectors([0, 1, 2]), expected.astype(np.float16), atol=1e-3)

    ran = envsound_main("search", tmp_path / "db", "--example", paths[1], "--json")
    assert ran.returncode == 0, ran.stderr
    import json

    best = json.loads(ran.stdout.strip().splitlines()[0])
    assert best["window"] == 2 and best["score"] == pytest.approx(1.0, abs=1e-3)


def test_embed_yamnet_resumes_and_refuses_another_network(envsound_main, models, tmp_path, monkeypatch):
    monkeypatch.setenv("ENVSOUND_MODELS", str(models))
    clips(tmp_path / "audio", 16_000, [2.0])
    ran = envsound_main("embed", "yamnet", tmp_path / "audio", "--out", tmp_path / "db")
    assert ran.returncode == 0, ran.stderr
    from envsound.inference.embeddings.store import EmbeddingsStore

    store = EmbeddingsStore(tmp_path / "db")
    assert store.settings["hop_seconds"] == 0.48 and store.settings["sample_rate"] == 16_000
    assert [row["start"] for row in store.columns().to_pylist()] == [0.0, 0.48, 0.96, 1.025]
    assert store.vectors([0]).shape == (1, 1024)
    again = envsound_main("embed", "yamnet", tmp_path / "audio", "--out", tmp_path / "db")
    assert again.returncode == 0 and "0 files" in again.stdout
    other = envsound_main("embed", "birdnet-v2.4", tmp_path / "audio", "--out", tmp_path / "db")
    assert other.returncode != 0 and "model" in other.stderr.strip().splitlines()[-1]


def test_predict_out_with_birdnet_gives_the_scores_predict_gives(envsound_main, models, tmp_path, monkeypatch):
    monkeypatch.setenv("ENVSOUND_MODELS", str(models))
    paths = clips(tmp_path / "audio", 48_000, [4.0, 7.0])
    ran = envsound_main("predict", "birdnet-v2.4", tmp_path / "audio", "--out", tmp_path / "results")
    assert ran.returncode == 0, ran.stderr
    import pyarrow.parquet as pq

    from envsound import load_model

    files = {row["file"]: row for row in pq.read_table(tmp_path / "results" / "files").to_pylist()}
    windows = pq.read_table(tmp_path / "results" / "windows").to_pylist()
    model = load_model("birdnet-v2.4")
    for path in paths:
        alone = model.predict(path, top_k=1, segments=True)
        assert files[str(path)]["score"] == alone.top[0]["score"]
        mine = [(row["start"], row["score"]) for row in windows if row["file"] == str(path)]
        assert mine == [(segment["start"], segment["score"]) for segment in alone.segments]



def test_predict_out_with_a_frozen_network_never_imports_torch(models, tmp_path):
    """A BirdNET run over an archive needs LiteRT, not torch: importing torch cost 1.1 s of its 1.7-s start-up (the
    archive engine counted its cores through envsound.hardware, which imports torch), a sixth of a 10-s run."""
    import os
    import subprocess
    import sys

    clips(tmp_path / "audio", 48_000, [4.0])
    code = ("import sys\n"
            "class Absent:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in ('torch', 'lightning'):\n"
            "            raise ImportError(name + ' is blocked')\n"
            "sys.meta_path.insert(0, Absent())\n"
            "from envsound.cli.main import main\n"
            "sys.exit(main(sys.argv[1:]))\n")
    ran = subprocess.run([sys.executable, "-c", code, "predict", "birdnet-v2.4", str(tmp_path / "audio"), "--out",
                          str(tmp_path / "results"), "-q"], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "ENVSOUND_MODELS": str(models)})
    assert ran.returncode == 0, ran.stderr
    assert (tmp_path / "results" / "files").is_dir()
