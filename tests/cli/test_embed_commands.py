"""The two embeds are two commands (issue 74): ``embed MODEL INPUTS --out DB`` makes the window store,
``embed-clips MODEL INPUTS --out FILE.npz`` the clip embeddings; ``embed --out FILE.npz`` still makes them for a
release, with a DeprecationWarning naming embed-clips."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from audiofactory import write_tone


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    for i in range(2):
        write_tone(folder / f"{i}.wav", seconds=1.0, sample_rate=16000, freq=440 + 110 * i, seed=i)
    return folder


def test_embed_clips_writes_one_embedding_a_clip(trained_run, clips, tmp_path, envsound_main):
    ran = envsound_main("embed-clips", trained_run.checkpoint, clips, "--out", tmp_path / "e.npz", "-q")
    assert ran.returncode == 0, ran.stderr
    assert "embedded 2 clip(s)" in ran.stdout and np.load(tmp_path / "e.npz")["embeddings"].shape[0] == 2


def test_embed_with_an_npz_out_still_writes_the_clip_embeddings_and_names_embed_clips(trained_run, clips, tmp_path,
                                                                                       envsound_main):
    with pytest.warns(DeprecationWarning, match="envsound embed-clips MODEL"):
        ran = envsound_main("embed", trained_run.checkpoint, clips, "--out", tmp_path / "old.npz", "-q")
    assert ran.returncode == 0, ran.stderr
    assert envsound_main("embed-clips", trained_run.checkpoint, clips, "--out", tmp_path / "new.npz",
                         "-q").returncode == 0
    old, new = np.load(tmp_path / "old.npz"), np.load(tmp_path / "new.npz")
    assert list(old["files"]) == list(new["files"])
    np.testing.assert_allclose(old["embeddings"], new["embeddings"], rtol=1e-5, atol=1e-6)


def test_the_console_shows_the_deprecation(tmp_path):
    """Python shows a DeprecationWarning only to __main__'s code: the CLI lets its own through (this run stops, for
    want of audio, before any model loads)."""
    ran = subprocess.run([sys.executable, "-m", "envsound", "embed", "model.ckpt", "--out", str(tmp_path / "x.npz")],
                         capture_output=True, text=True, timeout=120)
    assert ran.returncode == 1 and "DeprecationWarning: envsound embed --out FILE.npz is deprecated" in ran.stderr
    assert ran.stderr.strip().splitlines()[-1] == (
        "envsound embed: error: embed needs audio: FILES/FOLDERS, or --dataset NAME (with --root)"), ran.stderr


def test_each_embed_refuses_the_others_output_naming_the_right_command(tmp_path, envsound_main):
    ran = envsound_main("embed-clips", "model.ckpt", "a.wav", "--out", tmp_path / "db")
    assert ran.returncode == 1 and "name the file *.npz" in ran.stderr and "envsound embed MODEL" in ran.stderr
    ran = envsound_main("embed", "model.ckpt", "--dataset", "esc50", "--out", tmp_path / "db")
    assert ran.returncode == 1 and "envsound embed-clips MODEL --dataset NAME" in ran.stderr
    assert not (tmp_path / "db").exists()
