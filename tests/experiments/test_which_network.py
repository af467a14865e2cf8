"""experiments/esc50_fold4.py's per-class comparison and experiments/two_networks.py's probes (issue 76)."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]


def _script(name):
    sys.path.insert(0, str(REPO / "experiments"))  # two_networks imports esc50_fold4 as the script run would
    try:
        spec = importlib.util.spec_from_file_location(name, REPO / "experiments" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(REPO / "experiments"))


def _predictions(path, rows):
    path.mkdir()
    lines = ["file,fold,label,predicted,score", *(f"{f},{k},{label},{guess},0.9" for f, k, label, guess in rows)]
    (path / "predictions.csv").write_text("\n".join(lines) + "\n")
    return path


def test_esc50_categories_are_esc50s_fifty_classes_ten_a_category():
    fold4 = _script("esc50_fold4")
    assert [len(names) for names in fold4.ESC50_CATEGORIES.values()] == [10] * 5
    assert len(fold4.CATEGORY_OF) == 50 and set(fold4.ESC10_CLASSES) <= set(fold4.CATEGORY_OF)


def test_compare_counts_each_runs_clips_right_per_class_and_category(tmp_path):
    fold4 = _script("esc50_fold4")
    clips = [(f"{label}{i}.flac", 1 + i % 2, label) for label in ("dog", "rain") for i in range(4)]
    a = _predictions(tmp_path / "a", [(f, k, label, label) for f, k, label in clips])
    b = _predictions(tmp_path / "b", [(f, k, label, "rain") for f, k, label in clips])
    table = fold4.compare_runs({"a": str(a), "b": str(b)})
    assert "| animals | dog (ESC-10) | **4**/4 | 0/4 |" in table
    assert "| natural soundscapes & water | rain (ESC-10) | 4/4 | 4/4 |" in table
    assert "| animals | 4 | 100.0 % | 0.0 % | b 0.125 |" in table  # 4 discordant clips: 2 / 2^4
    per_class = fold4.per_class_csv(b / "predictions.csv").splitlines()
    assert per_class[1] == 'dog,"animals",0/2,0/2,0,4,0.0'


def test_compare_refuses_runs_of_other_clips(tmp_path):
    fold4 = _script("esc50_fold4")
    a = _predictions(tmp_path / "a", [("x.flac", 1, "dog", "dog")])
    b = _predictions(tmp_path / "b", [("y.flac", 1, "dog", "dog")])
    with pytest.raises(SystemExit, match="other clips"):
        fold4.compare_runs({"a": str(a), "b": str(b)})


def test_two_networks_rows_are_tested_only_on_clips_their_fold_did_not_train_on():
    two = _script("two_networks")
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 8)
    folds = np.tile([1, 2, 3, 4], 6)
    folds[y == 2] = 1  # class 2 is never trained on when fold 1 is tested: it cannot be predicted
    embedded = {"one": [rng.normal(size=(1, 5)) + 3 * k for k in y], "two": [rng.normal(size=(3, 4)) for _ in y]}
    probs = two.cross_validate(embedded, y, folds, 3, 1.0)
    assert set(probs) == {"one window", "two window", "one clip", "two clip", "one+two concat", "one+two late"}
    assert (probs["one window"][y == 2].argmax(axis=1) != 2).all()
    np.testing.assert_allclose(probs["one window"], probs["one clip"])  # one window a clip: its mean is itself
    np.testing.assert_allclose(probs["one+two late"], (probs["one window"] + probs["two window"]) / 2)
    assert (two.scores(probs, y, folds, ["a", "b", "c"])["one window"]["per_class"]["c"]) == 0
