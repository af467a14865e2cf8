"""experiments/semi_supervised.py end to end on a tiny synthetic ESC-50-like root (1 epoch per run, 2 folds)."""

import importlib.util
import json
from pathlib import Path

import pytest

from semi_helpers import make_tiny_esc50

SCRIPT = Path(__file__).resolve().parents[2] / "experiments" / "semi_supervised.py"
TINY = ["features.sample_rate=16000", "features.n_fft=512", "features.hop_length=256", "features.n_mels=32",
        "features.window_seconds=1.0", "features.eval_hop_seconds=0.5", "model.filters=4", "train.max_epochs=1",
        "train.min_steps=0", "train.patience=0", "train.batch_size=8", "semi.mu=1"]


def _script():
    spec = importlib.util.spec_from_file_location("semi_supervised", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_semi_supervised_experiment_end_to_end(tmp_path, capsys):
    root = make_tiny_esc50(tmp_path / "esc")
    script = _script()
    args = ["--root", str(root), "--out", str(tmp_path / "out"), "--models", "dtu2018", "cnn", "--fractions", "0.5",
            "--folds", "1", "2", "--methods", "supervised", "cae_unpool", "fixmatch",
            "--pool", "esc50", "--cache-dir", str(tmp_path / "cache"), "--semi-set", "semi.fixmatch.threshold=0.5",
            "--pretrain-set", "train.patience=1"] + [a for o in TINY for a in ("--set", o)]
    assert script.main(args) == 0
    printed = capsys.readouterr().out
    assert "cnn has no cae_unpool row" in printed
    assert "| dtu2018 | cae_unpool | " in printed and "| cnn | fixmatch | " in printed
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["semi_overrides"] == ["semi.fixmatch.threshold=0.5"]
    assert results["pretrain_overrides"] == ["train.patience=1"]
    rows = {(r["model"], r["method"]): r for r in results["rows"]}
    assert set(rows) == {("dtu2018", "supervised"), ("dtu2018", "cae_unpool"), ("dtu2018", "fixmatch"),
                         ("cnn", "supervised"), ("cnn", "fixmatch")}
    entry = rows[("dtu2018", "fixmatch")]["by_fraction"]["0.5"]
    assert len(entry["folds"]) == 2 and set(entry["vs_supervised"]) == {"mean_diff", "std_diff", "p_value"}
    out = tmp_path / "out"
    for fold in (1, 2):  # one autoencoder per fold, pre-trained without it: 3 folds' ESC-50 clips minus that fold
        meta = json.loads((out / "dtu2018" / "cae_unpool-esc50" / f"fold_{fold}" / "pretrain.json").read_text())
        assert meta["n_train"] + meta["n_val"] == 20  # the other fold's 20 clips (all 10 classes)
    cv = json.loads((out / "dtu2018" / "p0.5" / "fixmatch-esc50" / "cv.json").read_text())
    assert [f["n_unlabelled_pool"] for f in cv["folds"]] == [20, 20]
    assert cv["config"]["model"]["name"] == "dtu" and cv["config"]["train"]["label_fraction"] == 0.5
    assert cv["config"]["features"]["n_mels"] == 32  # --set over the preset
    assert cv["config"]["semi"]["fixmatch"]["threshold"] == 0.5  # --semi-set: the semi rows only
    supervised = json.loads((out / "dtu2018" / "p0.5" / "supervised" / "cv.json").read_text())
    assert supervised["config"]["semi"]["fixmatch"]["threshold"] == 0.95

    stamp = (out / "dtu2018" / "p0.5" / "supervised" / "cv.json").stat().st_mtime_ns
    assert script.main(args) == 0  # resumable: every part finished, nothing reruns
    assert (out / "dtu2018" / "p0.5" / "supervised" / "cv.json").stat().st_mtime_ns == stamp
    assert capsys.readouterr().out.count("| dtu2018 | supervised |") == 1


def test_the_esc10_pool_is_the_training_clips_left_unlabelled(tmp_path, capsys):
    # 5 "ESC-10" classes x 2 clips a fold of one source: two training folds give each class 2 sources, one labelled
    root = make_tiny_esc50(tmp_path / "esc", n_folds=3)
    args = ["--root", str(root), "--out", str(tmp_path / "out"), "--models", "cnn", "--fractions", "0.5", "1.0",
            "--folds", "1", "2", "3", "--methods", "supervised", "mixmatch", "--cache-dir", str(tmp_path / "cache")]
    assert _script().main(args + [a for o in TINY for a in ("--set", o)]) == 0
    assert "| cnn | mixmatch | n/a | n/a |" not in (printed := capsys.readouterr().out)
    assert printed.count("| cnn | mixmatch | ") == 2 and " | n/a |" in printed  # at p = 1 nothing is unlabelled
    from envsound.models.checkpoint import load_checkpoint

    for fold in (1, 2, 3):  # the other folds' 20 ESC-10 clips: the labelled half and the rest, no ESC-50-only clip
        meta = load_checkpoint(tmp_path / "out" / "cnn" / "p0.5" / "mixmatch" / f"fold_{fold}" / "model.ckpt").meta
        assert (meta["n_train_clips"], meta["n_unlabelled_clips"]) == (10, 10)


@pytest.mark.parametrize("pool", ["esc10", "esc50"])
def test_self_training_row_and_its_rounds(tmp_path, capsys, pool):
    root = make_tiny_esc50(tmp_path / "esc", clips=4)  # 2 recordings a class and fold: half stay unlabelled
    args = ["--root", str(root), "--out", str(tmp_path / "out"), "--models", "cnn", "--fractions", "0.5",
            "--folds", "1", "2", "--methods", "supervised", "self_training", "--cache-dir", str(tmp_path / "cache"),
            "--semi-set", "semi.self_training.rounds=1", "--pool", pool] + [a for o in TINY for a in ("--set", o)]
    assert _script().main(args) == 0
    assert "| cnn | self_training | " in capsys.readouterr().out
    run = tmp_path / "out" / "cnn" / "p0.5" / ("self_training" if pool == "esc10" else "self_training-esc50")
    spec = importlib.util.spec_from_file_location("self_training_rounds", SCRIPT.parent / "self_training_rounds.py")
    rounds = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rounds)
    assert rounds.main(["--root", str(root), "--cv", str(run), "--folds", "1", "2", "--pool", pool]) == 0
    rows = json.loads((run / "rounds.json").read_text())
    assert [(r["fold"], r["round"]) for r in rows] == [(1, 0), (1, 1), (2, 0), (2, 1)]
    assert all(r["pseudo_labelled"] == 0 for r in rows if r["round"] == 0)
    # each pool: the other fold's 10 unlabelled clips; with esc50 also its 10 labelled and 20 other-class clips
    size = 10 if pool == "esc10" else 40
    assert all(0 < r["pseudo_labelled"] <= size and r["right"] + r["other_class"] <= r["pseudo_labelled"]
               for r in rows if r["round"] == 1)
    assert (sum(r["other_class"] for r in rows) > 0) == (pool == "esc50")
    assert "round 1: test accuracy" in capsys.readouterr().out
    if pool == "esc50":  # read as the wrong pool, the clip counts disagree
        with pytest.raises(SystemExit, match="pass the --pool the run had"):
            rounds.main(["--root", str(root), "--cv", str(run), "--folds", "1", "2"])
