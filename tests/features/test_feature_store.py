"""The feature store read lazily: memory-mapped clips, extraction spread over processes, damaged entries rebuilt."""

from __future__ import annotations

import numpy as np

from envsound.features.cache import ClipFeatures, FeatureCache, cache_settings
from envsound.features.extract import extract_features
from envsound.features.parallel import MIN_PARALLEL_JOBS
from test_feature_cache_extract import CFG, record, write_clip


def many_clips(folder, n):
    folder.mkdir()
    return [record(write_clip(folder / f"c{i}.wav", seed=i, seconds=0.2 + 0.01 * (i % 7)), i) for i in range(n)]


def test_stored_features_are_memory_mapped_not_held(tmp_path):
    clips = many_clips(tmp_path / "audio", 4)
    kept, feats, _ = extract_features(clips, CFG, cache=FeatureCache(tmp_path / "cache"), progress=False)
    assert isinstance(feats, ClipFeatures) and feats.in_memory_bytes == 0
    assert all(isinstance(feats[i], np.memmap) for i in range(len(feats)))
    picked = feats.select([2, 0])
    np.testing.assert_array_equal(picked[0], feats[2])
    _, held, _ = extract_features(clips, CFG, cache=None, progress=False)
    assert held.in_memory_bytes == sum(a.nbytes for a in held) > 0
    for a, b in zip(feats, held):
        np.testing.assert_array_equal(a, b)


def test_extraction_in_worker_processes_equals_extraction_in_this_one(tmp_path):
    """Enough missing clips start one single-threaded process per core; the stored arrays are the same."""
    clips = many_clips(tmp_path / "audio", MIN_PARALLEL_JOBS + 4)
    bad = tmp_path / "audio" / "bad.wav"
    bad.write_text("not audio")
    records = clips[:5] + [record(bad, 99)] + clips[5:]
    kept, parallel, skipped = extract_features(records, CFG, cache=FeatureCache(tmp_path / "a"), on_error="skip",
                                               progress=False, workers=2)
    assert kept == clips and [p.name for p, _ in skipped] == ["bad.wav"]
    _, alone, _ = extract_features(clips, CFG, cache=FeatureCache(tmp_path / "b"), progress=False, workers=1)
    for a, b in zip(parallel, alone):
        np.testing.assert_array_equal(a, b)


def test_an_entry_cut_short_by_a_kill_is_detected_and_rebuilt(tmp_path):
    """A header that promises more data than the file holds (what a partial copy leaves) is never read as
    complete: the entry is removed and computed again."""
    clips = many_clips(tmp_path / "audio", 2)
    cache = FeatureCache(tmp_path / "cache")
    _, first, _ = extract_features(clips, CFG, cache=cache, progress=False)
    entry = cache.path_for(cache.key(clips[1].path, cache_settings(CFG)))
    entry.write_bytes(entry.read_bytes()[:-100])
    again_cache = FeatureCache(tmp_path / "cache")
    _, again, _ = extract_features(clips, CFG, cache=again_cache, progress=False)
    assert (again_cache.hits, again_cache.misses) == (1, 1)
    np.testing.assert_array_equal(again[1], first[1])
