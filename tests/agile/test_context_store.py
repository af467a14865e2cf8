"""A store scored with a learned model's context (envsound.agile.head): each window's neighbours are its file's
windows within the context, never another file's, whichever part or batch they are read in."""

import numpy as np
import pytest
from test_labelled import write_store

from envsound.agile import head as head_module
from envsound.agile.head import LinearHead, context_vectors, store_scores
from envsound.errors import ConfigError
from envsound.inference.embeddings.store import EmbeddingsStore


@pytest.fixture
def store(tmp_path) -> EmbeddingsStore:
    """5 files of 4 windows at a 1-s hop, 2 files a part (3 parts)."""
    return EmbeddingsStore(write_store(tmp_path / "s.db", [f"f{i}.wav" for i in range(5)]))


def expected_means(store: EmbeddingsStore) -> np.ndarray:
    """Each window's mean with the windows one second before and after it in its file (4 windows a file)."""
    vectors = store.vectors(np.arange(store.windows)).astype(np.float64)
    out = np.empty_like(vectors)
    for file in range(store.windows // 4):
        for k in range(4):
            out[file * 4 + k] = vectors[file * 4 + max(k - 1, 0): file * 4 + min(k + 2, 4)].mean(axis=0)
    return out


def test_the_neighbours_mean_stays_in_its_file_across_parts_and_batches(store, monkeypatch):
    expected = expected_means(store)
    ids = np.array([19, 0, 3, 4, 7, 8, 12, 5])  # files' edges, across parts, out of order
    assert np.allclose(context_vectors(store, ids, 1.0), expected[ids], atol=1e-6)
    monkeypatch.setattr(head_module, "CONTEXT_ROWS", 3)  # batches that cut between a window's neighbours
    assert np.allclose(context_vectors(store, ids, 1.0), expected[ids], atol=1e-6)
    assert np.array_equal(context_vectors(store, ids, 0.0), store.vectors(ids))
    with pytest.raises(ConfigError, match="window 20 is not in this store"):
        context_vectors(store, np.array([20]), 1.0)


def test_a_store_scored_with_context_is_the_head_on_the_neighbours_mean(store):
    head = LinearHead(np.random.default_rng(1).standard_normal((2, 6)), np.array([0.1, -0.2]))
    chunks = list(store_scores(store, head, context=1.0))
    ids = np.concatenate([i for i, _ in chunks])
    probs = np.concatenate([p for _, p in chunks])
    assert np.array_equal(ids, np.arange(store.windows))
    assert np.allclose(probs, head.predict_proba(expected_means(store)), atol=1e-5)
    alone = np.concatenate([p for _, p in store_scores(store, head)])
    assert np.allclose(alone, head.predict_proba(store.vectors(np.arange(store.windows))), atol=1e-6)
    assert np.abs(alone - probs).max() > 1e-3
