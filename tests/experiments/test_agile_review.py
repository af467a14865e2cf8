"""experiments/agile_review.py: the archive holds out one clip of each ESC-10 class and joins the others 10 to a
recording; a window's truth is the clip under its centre."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

SCRIPT = Path(__file__).resolve().parents[2] / "experiments" / "agile_review.py"


def _module():
    spec = importlib.util.spec_from_file_location("agile_review", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("agile_review", module)
    spec.loader.exec_module(module)
    return module


def _checkout(root: Path) -> pd.DataFrame:
    """An ESC-50-like checkout: two ESC-10 classes of 6 clips and one other class of 10, 1-s sines at 8 kHz."""
    (root / "audio").mkdir(parents=True)
    rows = []
    for category, esc10, n in (("dog", True, 6), ("rain", True, 6), ("cow", False, 10)):
        for i in range(n):
            name = f"1-{len(rows)}-A-{category}.flac"
            t = np.arange(8000) / 8000
            sf.write(root / "audio" / name, 0.1 * np.sin(2 * np.pi * (200 + 50 * len(rows)) * t), 8000)
            rows.append({"filename": name, "fold": 1, "target": 0, "category": category, "esc10": esc10,
                         "src_file": len(rows), "take": "A"})
    (root / "meta").mkdir()
    meta = pd.DataFrame(rows)
    meta.to_csv(root / "meta" / "esc50.csv", index=False)
    return meta


def test_the_held_out_examples_are_not_in_the_archive_and_recordings_hold_10_clips(tmp_path):
    module = _module()
    meta = _checkout(tmp_path / "esc50")
    held, truth = module.archive(meta, tmp_path / "esc50", tmp_path / "out", seed=0)
    assert sorted(held) == ["dog", "rain"]
    assert not set(Path(p).name for p in held.values()) & set(truth.filename)
    assert len(truth) == len(meta) - 2 and truth.file.value_counts().tolist() == [10, 10]
    info = sf.info(tmp_path / "out" / "archive" / "rec-000.wav")
    assert info.samplerate == module.RATE and info.frames == 10 * 5 * module.RATE  # 1-s clips padded to 5 s


def test_a_window_is_the_class_of_the_clip_under_its_centre(tmp_path):
    module = _module()
    truth = pd.DataFrame({"file": ["a.wav"] * 3, "clip": [0, 1, 2], "category": ["dog", "rain", "cow"]})
    clip, category = module.centre_truth(["a.wav"] * 5, [0.0, 2.4, 2.5, 7.5, 12.0], 5.0, truth)
    assert clip.tolist() == [0, 0, 1, 2, 2]  # centres 2.5, 4.9, 5.0, 10.0, 14.5 (past the end: the last clip)
    assert category.tolist() == ["dog", "dog", "rain", "cow", "cow"]


def test_smoothing_averages_a_windows_logit_with_its_files_neighbours_only(tmp_path):
    module = _module()
    windows = pd.DataFrame({"file": ["a.wav"] * 3 + ["b.wav"], "start": [0.0, 1.0, 2.0, 1.0]})
    smoother = module.neighbours(windows, 1.0)
    dense = smoother.toarray()
    assert np.allclose(dense[1], [1 / 3, 1 / 3, 1 / 3, 0]) and np.allclose(dense[0], [0.5, 0.5, 0, 0])
    assert dense[3].tolist() == [0, 0, 0, 1]
    scores = module.smoothed(np.array([0.5, 0.5, 0.5, 0.9]), smoother)  # logits 0, 0, 0: b's window is alone
    assert np.allclose(scores, [0.5, 0.5, 0.5, 0.9])
    assert module.neighbours(windows, 0.0) is None


def test_the_tuning_harness_fits_with_learns_own_code_at_its_defaults_and_restores_them():
    _module()  # agile_review, which the harness imports
    spec = importlib.util.spec_from_file_location("agile_review_tune", SCRIPT.with_name("agile_review_tune.py"))
    tune = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tune)
    import envsound.agile.learn as learn

    rng = np.random.default_rng(0)
    x, weak = rng.normal(size=(12, 4)), rng.normal(size=(30, 4))
    truth = np.arange(12) < 4
    w, b = tune.fit(x, truth, weak, tune.parse(""))
    expected_w, expected_b = learn.fit_head(x, truth, weak)
    assert np.allclose(w, expected_w) and np.isclose(b, expected_b)
    tune.fit(x, truth, weak, tune.parse("C=3,weak=1"))
    assert (learn.C, learn.WEAK_WEIGHT) == (tune.DEFAULTS["C"], tune.DEFAULTS["weak"])
    w, _ = tune.fit(x, truth, weak, tune.parse("balance=0"))
    assert w.shape == (4,)
