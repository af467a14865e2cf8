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


def test_other_processes_read_what_process_0_stored_and_learn_which_clips_were_bad(tmp_path, monkeypatch):
    """Under torchrun or SLURM every process starts at once: process 0 extracts, the others wait for its entries."""
    clips = many_clips(tmp_path / "audio", 3)
    bad = tmp_path / "audio" / "bad.wav"
    bad.write_text("not audio")
    records = clips + [record(bad, 9)]
    kept0, feats0, skipped0 = extract_features(records, CFG, cache=FeatureCache(tmp_path / "cache"),
                                               on_error="skip", progress=False)
    monkeypatch.setenv("RANK", "1")
    kept1, feats1, skipped1 = extract_features(records, CFG, cache=FeatureCache(tmp_path / "cache"),
                                               on_error="skip", progress=False)
    assert kept1 == kept0 == clips and skipped1 == skipped0 and [p.name for p, _ in skipped1] == ["bad.wav"]
    assert feats1.in_memory_bytes == 0
    for a, b in zip(feats0, feats1):
        np.testing.assert_array_equal(a, b)


def test_waiting_for_entries_that_never_come_ends_with_a_clear_error(tmp_path):
    import pytest

    from envsound.errors import EnvsoundError

    cache = FeatureCache(tmp_path / "cache")
    with pytest.raises(EnvsoundError, match="1 clip features never appeared while waiting for process 0"):
        cache.wait_for(["0" * 64], what="clip features", timeout=0.2, poll=0.05)


def test_stored_read_with_a_remembered_header_equals_np_load(tmp_path):
    """ClipFeatures maps an entry from its header parsed once; the array must be what np.load gives, any layout."""
    from envsound.features.cache import _entry_layout, open_entry, open_stored

    rng = np.random.default_rng(0)
    arrays = {"c.npy": rng.standard_normal((2, 5, 7)).astype(np.float32),
              "f.npy": np.asfortranarray(rng.standard_normal((4, 3))),
              "empty.npy": np.zeros((1, 0), dtype=np.float32)}
    for name, array in arrays.items():
        np.save(tmp_path / name, array)
        for read in range(2):  # the second read takes the remembered header
            hits = _entry_layout.cache_info().hits
            got = open_stored(tmp_path / name)
            assert _entry_layout.cache_info().hits == hits + read
            assert got.dtype == array.dtype and got.shape == array.shape
            np.testing.assert_array_equal(got, array)
            np.testing.assert_array_equal(got, open_entry(tmp_path / name))
