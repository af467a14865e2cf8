"""Content fingerprints, and the guard that refuses audio which sounds like a validation or test clip."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile as sf
import soxr

from conftest import TINY_OVERRIDES
from envsound.config.files import bare_config
from envsound.errors import DatasetLayoutError
from envsound.features.cache import FeatureCache, cache_settings
from envsound.features.fingerprint import (FINGERPRINT_VERSION, clip_fingerprints, fingerprint_file, find_overlaps,
                                          guard_content)
from envsound.training.prepare import prepare_training_data


@pytest.fixture(scope="module")
def originals(synthetic_manifest):
    """Five different synthetic sounds of 1.5 s (real WAV files at 22.05 kHz)."""
    by_label = {}
    for record in synthetic_manifest.records:
        by_label.setdefault(record.label, record.path)
    return list(by_label.values())[:5]


def altered(path, folder, how: str):
    """A copy of ``path`` changed the way a user's copy of a test clip might be."""
    audio, rate = sf.read(path, dtype="float32")
    out = folder / f"{how}-{path.stem}"
    if how == "byte-copy":
        return shutil.copy(path, out.with_suffix(path.suffix))
    if how == "flac":
        sf.write(out.with_suffix(".flac"), audio, rate, subtype="PCM_16")
        return out.with_suffix(".flac")
    if how == "ogg":
        sf.write(out.with_suffix(".ogg"), audio, rate, format="OGG", subtype="VORBIS")
        return out.with_suffix(".ogg")
    if how == "mp3":
        sf.write(out.with_suffix(".mp3"), audio, rate, format="MP3")
        return out.with_suffix(".mp3")
    if how == "16k-quieter-shifted":
        moved = np.concatenate([np.zeros(int(0.1 * rate), np.float32), audio])[:len(audio)] * 0.5
        sf.write(out.with_suffix(".wav"), soxr.resample(moved, rate, 16000), 16000)
        return out.with_suffix(".wav")
    raise ValueError(how)


@pytest.mark.parametrize("how, exact", [("byte-copy", True), ("flac", True), ("ogg", False), ("mp3", False),
                                        ("16k-quieter-shifted", False)])
def test_copies_are_found_and_distinct_sounds_are_not(originals, tmp_path, how, exact):
    copies = [altered(p, tmp_path, how) for p in originals]
    overlaps = find_overlaps([fingerprint_file(c) for c in copies], [fingerprint_file(p) for p in originals])
    assert [(o.candidate, o.protected) for o in overlaps] == list(zip(copies, originals))
    assert all(("exact copy" in o.how) == exact for o in overlaps)
    others = find_overlaps([fingerprint_file(c) for c in copies[1:]], [fingerprint_file(originals[0])])
    assert others == []


def test_fingerprints_are_cached_and_a_damaged_entry_is_rebuilt(originals, tmp_path):
    cache = FeatureCache(tmp_path / "cache")
    first = clip_fingerprints(originals[:1], cache=cache)[0]
    entry = cache.path_for(cache.key(originals[0], {"fingerprint": FINGERPRINT_VERSION}))
    features_key = cache.key(originals[0], cache_settings(bare_config().features))
    assert entry.exists() and entry != cache.path_for(features_key)  # beside the features, not in their place
    again = clip_fingerprints(originals[:1], cache=cache)[0]
    assert again.exact == first.exact and np.array_equal(again.words, first.words)
    entry.write_bytes(entry.read_bytes()[:-8])  # cut short
    rebuilt = clip_fingerprints(originals[:1], cache=FeatureCache(tmp_path / "cache"))[0]
    assert rebuilt.exact == first.exact and np.array_equal(rebuilt.words, first.words)


def test_a_background_folder_holding_a_reencoded_test_clip_is_refused(synthetic_manifest, tmp_path, caplog):
    """The issue's case: a user's folder of copies of test clips, under other names and formats."""
    train, test = synthetic_manifest.select_folds([1, 2, 3, 4]), synthetic_manifest.select_folds([5])
    folder = tmp_path / "noise"
    folder.mkdir()
    mp3 = altered(test.records[3].path, folder, "mp3")
    altered(train.records[0].path, folder, "flac")  # a training clip: allowed
    config = bare_config(overrides=TINY_OVERRIDES + ("augment.copies=1", "augment.background=1.0",
                                                     f"augment.background_folder={folder}"))
    with pytest.raises(DatasetLayoutError, match=rf"1 background sounds sound like .*{mp3.name} is a near copy "
                                                 rf".* of {test.records[3].path}"):
        prepare_training_data(train, config, held_out=[test], cache=FeatureCache(tmp_path / "c"), progress=False)
    config.leakage.allow_overlap = True
    with caplog.at_level("WARNING", logger="envsound"):
        data = prepare_training_data(train, config, held_out=[test], cache=FeatureCache(tmp_path / "c"),
                                     progress=False)
    assert data.copies.copies and "used anyway" in caplog.text and mp3.name in caplog.text


def test_an_unlabelled_pool_holding_a_copy_of_a_test_clip_is_refused(synthetic_manifest, tmp_path):
    from envsound.data.unlabelled import prepare_unlabelled

    train, test = synthetic_manifest.select_folds([1, 2, 3]), synthetic_manifest.select_folds([4])
    folder = tmp_path / "pool"
    folder.mkdir()
    for record in synthetic_manifest.select_folds([5]).records[:4]:
        shutil.copy(record.path, folder)
    copied = altered(test.records[0].path, folder, "byte-copy")
    config = bare_config(overrides=TINY_OVERRIDES + ("semi.method=fixmatch",))
    with pytest.raises(DatasetLayoutError, match=rf"1 unlabelled clips sound like .*{copied.name} is an exact copy"):
        prepare_training_data(train, config, held_out=[test], unlabelled=prepare_unlabelled(folder), progress=False)


def test_the_guard_does_nothing_without_candidates_or_protected_clips(originals, monkeypatch, caplog):
    """Nothing to guard or nothing to guard against: no clip is decoded or fingerprinted, nothing is logged or
    refused."""
    import envsound.features.fingerprint as fingerprint

    decoded = []
    monkeypatch.setattr(fingerprint, "clip_fingerprints", lambda paths, **_: decoded.append(list(paths)) or [])
    with caplog.at_level("DEBUG", logger="envsound"):
        assert guard_content([], originals, what="background sounds", cache=None) is None
        assert guard_content(originals, [], what="background sounds", cache=None) is None
    assert decoded == [] and not caplog.records


def test_datasets_check_lists_copies_and_flags_a_pair_that_straddles_folds(synthetic_manifest, tmp_path, capsys):
    """A dataset whose fold 3 holds an MP3 of a fold-1 clip: a model can be tested on what it trained on."""
    from envsound.cli.main import main

    records = synthetic_manifest.select_folds([1, 3]).records[:6]
    mp3 = altered(records[0].path, tmp_path, "mp3")
    rows = [f"{r.path},{r.label},{r.fold}" for r in records] + [f"{mp3},{records[0].label},3"]
    (tmp_path / "m.csv").write_text("path,label,fold\n" + "\n".join(rows) + "\n")
    assert main(["datasets", "check", "--dataset", "csv", "--root", str(tmp_path / "m.csv"), "--no-cache"]) == 1
    out = capsys.readouterr().out
    assert f"{records[0].path} ~ {mp3}: a near copy" in out and "folds 1 and 3: STRADDLES FOLDS" in out
    assert out.strip().endswith("7 clips, 1 pair(s) of copies or near copies, 1 straddling folds")
    assert main(["datasets"]) == 0 and "esc50" in capsys.readouterr().out


def test_excerpt_ber_gives_the_numbers_of_ber_matrix():
    """The content check's matrix-product form (evaluate against thousands of training clips) and the word loop of
    training's guard are one rule: the same bit error rates on excerpts with quiet frames and shifted copies."""
    from envsound.features.fingerprint import ber_matrix, excerpt_ber

    rng = np.random.default_rng(3)
    rows = rng.integers(1, 2 ** 32, size=(5, 64), dtype=np.uint32)
    rows[:, :7] = 0  # quiet frames are never compared
    cols = np.concatenate([rng.integers(1, 2 ** 32, size=(3, 64), dtype=np.uint32),
                           np.roll(rows[:2], 2, axis=1) ^ np.uint32(1)])  # two shifted near-copies
    np.testing.assert_allclose(excerpt_ber(rows, cols), ber_matrix(list(rows), list(cols)), atol=1e-6)
    assert (excerpt_ber(rows, cols)[[0, 1], [3, 4]] < 0.05).all()
