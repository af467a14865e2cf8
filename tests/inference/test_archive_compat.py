"""Folders made by an earlier envsound still open, resume and search: ``tests/fixtures/archive_v1`` holds a results
folder (``envsound predict model.ckpt audio --out results``) and an embeddings store (``envsound embed model.ckpt
audio --out store.db``) made at commit 1083525 by ``tests/fixtures/make_archive_v1.py``, every name in them relative
to that folder; each test works on a copy of it."""

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

import envsound
from envsound.inference.embeddings import EmbeddingsStore, embed_archive, search

FIXTURE = Path(__file__).parent.parent / "fixtures" / "archive_v1"
MTIME_NS = 1_767_225_600 * 10**9  # the recordings' time when the folders were made (git keeps none)
OLD = ["audio/a.flac", "audio/b.flac", "audio/c.flac"]


@pytest.fixture
def archive_v1(tmp_path, monkeypatch) -> Path:
    """A copy of the fixture, its recordings as unchanged since (their time set back), the working directory there,
    and a fourth recording added since."""
    folder = tmp_path / "archive_v1"
    shutil.copytree(FIXTURE, folder)
    for name in OLD:
        os.utime(folder / name, ns=(MTIME_NS, MTIME_NS))
    t = np.arange(24_000) / 16_000
    sf.write(folder / "audio" / "d.flac", (0.3 * np.sin(2 * np.pi * 700.0 * t)).astype(np.float32), 16_000)
    monkeypatch.chdir(folder)
    return folder


def test_a_results_folder_of_the_first_layout_resumes_with_only_the_new_file_classified(archive_v1):
    before = pd.read_parquet(FIXTURE / "results" / "files")
    summary = envsound.scan("model.ckpt", "audio", out="results", options=envsound.ScanOptions(progress=False))
    assert (summary.files, summary.skipped, summary.total_files, summary.changed) == (1, 3, 4, 0)
    files = pd.read_parquet(archive_v1 / "results" / "files").sort_values("file").reset_index(drop=True)
    assert files.file.tolist() == [*OLD, "audio/d.flac"]
    assert files.iloc[:3].equals(before.sort_values("file").reset_index(drop=True))  # kept as made
    windows = pd.read_parquet(archive_v1 / "results" / "windows")
    assert windows.groupby("file").size().to_dict() == dict.fromkeys([*OLD, "audio/d.flac"], 2)


def test_an_embeddings_store_of_the_first_layout_resumes_and_searches(archive_v1):
    summary = embed_archive("model.ckpt", "audio", out="store.db", options=envsound.ScanOptions(progress=False))
    assert (summary.files, summary.skipped, summary.windows, summary.total_windows) == (1, 3, 2, 8)
    store = EmbeddingsStore("store.db")
    assert [row["file"] for row in store.rows(np.arange(8))] == [name for name in [*OLD, "audio/d.flac"]
                                                                for _ in range(2)]
    assert store.resolve("audio/a.flac") == archive_v1 / "audio" / "a.flac"  # beside the store, wherever it went
    old = np.load(FIXTURE / "store.db" / "embeddings" / "part-000001.npy")
    assert np.array_equal(store.vectors(np.arange(6)), old.astype(np.float32))  # the old windows as they were
    hits = search("store.db", archive_v1 / "audio" / "b.flac", top=2)  # the model the store names, found beside it
    assert hits[0].file == "audio/b.flac" and hits[0].score == pytest.approx(1.0, abs=1e-2)
