"""experiments/semi_supervised.py end to end on a tiny synthetic ESC-50-like root (1 epoch per run, 2 folds)."""

import importlib.util
import json
from pathlib import Path

from semi_helpers import make_tiny_esc50

SCRIPT = Path(__file__).resolve().parents[2] / "experiments" / "semi_supervised.py"
TINY = ["features.sample_rate=16000", "features.n_fft=512", "features.hop_length=256", "features.n_mels=32",
        "features.window_seconds=1.0", "features.eval_hop_seconds=0.5", "model.filters=4", "train.max_epochs=1",
        "train.patience=0", "train.batch_size=8", "semi.mu=1"]


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
            "--cache-dir", str(tmp_path / "cache"), "--semi-set", "semi.threshold=0.5",
            "--pretrain-set", "train.patience=1"] + [a for o in TINY for a in ("--set", o)]
    assert script.main(args) == 0
    printed = capsys.readouterr().out
    assert "cnn has no cae_unpool row" in printed
    assert "| dtu2018 | cae_unpool | " in printed and "| cnn | fixmatch | " in printed
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["semi_overrides"] == ["semi.threshold=0.5"] and results["pretrain_overrides"] == ["train.patience=1"]
    rows = {(r["model"], r["method"]): r for r in results["rows"]}
    assert set(rows) == {("dtu2018", "supervised"), ("dtu2018", "cae_unpool"), ("dtu2018", "fixmatch"),
                         ("cnn", "supervised"), ("cnn", "fixmatch")}
    entry = rows[("dtu2018", "fixmatch")]["by_fraction"]["0.5"]
    assert len(entry["folds"]) == 2 and set(entry["vs_supervised"]) == {"mean_diff", "std_diff", "p_value"}
    out = tmp_path / "out"
    for fold in (1, 2):  # one autoencoder per fold, pre-trained without it: 3 folds' ESC-50 clips minus that fold
        meta = json.loads((out / "dtu2018" / "cae_unpool" / f"fold_{fold}" / "pretrain.json").read_text())
        assert meta["n_train"] + meta["n_val"] == 20  # the other fold's 20 clips (all 10 classes)
    cv = json.loads((out / "dtu2018" / "p0.5" / "fixmatch" / "cv.json").read_text())
    assert [f["n_unlabelled_pool"] for f in cv["folds"]] == [20, 20]
    assert cv["config"]["model"]["name"] == "dtu" and cv["config"]["train"]["label_fraction"] == 0.5
    assert cv["config"]["features"]["n_mels"] == 32  # --set over the preset
    assert cv["config"]["semi"]["threshold"] == 0.5  # --semi-set: the semi rows only
    supervised = json.loads((out / "dtu2018" / "p0.5" / "supervised" / "cv.json").read_text())
    assert supervised["config"]["semi"]["threshold"] == 0.95

    stamp = (out / "dtu2018" / "p0.5" / "supervised" / "cv.json").stat().st_mtime_ns
    assert script.main(args) == 0  # resumable: every part finished, nothing reruns
    assert (out / "dtu2018" / "p0.5" / "supervised" / "cv.json").stat().st_mtime_ns == stamp
    assert capsys.readouterr().out.count("| dtu2018 | supervised |") == 1
