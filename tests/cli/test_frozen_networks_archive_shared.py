"""'envsound embed' and 'envsound search' with the real BirdNET V2.4 and YAMNet in ../shared/pretrained: each stored
window's embedding is the reference LiteRT gave for the same samples (within float16, as the store keeps them), and
an example found first. Skipped without ../shared (the tiny networks cover the same on a fresh clone:
test_frozen_networks_archive.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from test_frozen_networks import BIRDNET, YAMNET, installed, needs  # noqa: F401 (installed: a fixture)

# member -> (its shared folder, its reference file, its rate)
MEMBERS = {"birdnet-v2.4": (BIRDNET, "reference-birdnet.npz", 48_000),
           "yamnet": (YAMNET, "reference-yamnet.npz", 16_000)}


@pytest.mark.parametrize("member", list(MEMBERS))
def test_embed_stores_the_reference_embeddings_and_search_finds_the_example(member, installed, envsound_main,
                                                                            tmp_path, monkeypatch):
    folder, reference_file, rate = MEMBERS[member]
    needs(folder / reference_file)
    monkeypatch.setenv("ENVSOUND_MODELS", str(installed))
    reference = np.load(folder / reference_file)
    audio = tmp_path / "audio"
    audio.mkdir()
    # one window a clip, each exactly a reference window; not a silent one (a file of digital zeros is refused)
    chosen = [i for i in range(len(reference["names"])) if np.abs(reference[f"waveform_{i}"]).max() > 0][:3]
    for at, i in enumerate(chosen):
        sf.write(audio / f"clip{at}.wav", reference[f"waveform_{i}"], rate, subtype="FLOAT")
    ran = envsound_main("embed", member, audio, "--out", tmp_path / "db")
    assert ran.returncode == 0, ran.stderr
    from envsound.inference.embeddings.store import EmbeddingsStore

    store = EmbeddingsStore(tmp_path / "db")
    assert store.windows == 3
    expected = np.stack([reference[f"embedding_{i}"] for i in chosen])
    np.testing.assert_allclose(store.vectors([0, 1, 2]), expected, rtol=2e-3, atol=2e-3)
    ran = envsound_main("search", tmp_path / "db", "--example", audio / "clip1.wav", "--json")
    assert ran.returncode == 0, ran.stderr
    best = json.loads(ran.stdout.strip().splitlines()[0])
    assert best["file"].endswith("clip1.wav") and best["score"] == pytest.approx(1.0, abs=1e-3)
