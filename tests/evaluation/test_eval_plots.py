"""Figures: valid PNG files of plausible size, sparse CSVLogger input, atomic writes, no pyplot."""

from __future__ import annotations

import csv
import subprocess
import sys
import warnings

import numpy as np
import pytest

from envsound.errors import EnvsoundError
from envsound.evaluation.plots import epoch_series, plot_confusion_matrix, plot_segments, plot_training_curves

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _png_shape(path):
    import matplotlib.image as mpimg

    assert path.read_bytes()[:8] == PNG_MAGIC
    return mpimg.imread(path).shape


def _confusion(n_classes, per_class, seed):
    rng = np.random.default_rng(seed)
    cm = np.zeros((n_classes, n_classes), dtype=int)
    for i in range(n_classes):
        preds = np.where(rng.random(per_class) < 0.7, i, rng.integers(0, n_classes, per_class))
        np.add.at(cm[i], preds, 1)
    return cm


def test_confusion_matrix_png_grows_with_classes(tmp_path):
    cm10 = _confusion(10, 40, seed=0)
    cm50 = _confusion(50, 8, seed=1)
    p10 = plot_confusion_matrix(cm10, labels=[f"class_{k}" for k in range(10)], path=tmp_path / "cm10.png")
    p50 = plot_confusion_matrix(cm50, labels=[f"long_label_{k:02d}" for k in range(50)], path=tmp_path / "a/cm50.png")
    h10, w10, _ = _png_shape(p10)
    h50, w50, _ = _png_shape(p50)
    assert 500 <= w10 <= 1400 and 500 <= h10 <= 1400
    assert w50 >= 1400 and h50 >= 1400  # ~0.24 inch per cell at 100 dpi
    assert sorted(x.name for x in tmp_path.rglob("*")) == ["a", "cm10.png", "cm50.png"]  # no temp files left


def test_confusion_matrix_absent_class_and_raw_counts(tmp_path):
    cm = np.array([[3, 1, 0], [0, 2, 0], [0, 0, 0]])  # class 2 never occurs: its row must not divide by zero
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = plot_confusion_matrix(cm, labels=["a", "b", "c"], path=tmp_path / "n.png", title="t")
        raw = plot_confusion_matrix(cm, labels=["a", "b", "c"], path=tmp_path / "r.png", normalize=False)
    assert _png_shape(out)[2] == 4 and _png_shape(raw)[2] == 4


def test_confusion_matrix_rejects_mismatch_and_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match=r"expected \(3, 3\)"):
        plot_confusion_matrix(np.zeros((2, 2), dtype=int), labels=["a", "b", "c"], path=tmp_path / "x.png")
    with pytest.raises(ValueError, match="negative"):
        plot_confusion_matrix(-np.ones((2, 2), dtype=int), labels=["a", "b"], path=tmp_path / "x.png")
    assert list(tmp_path.iterdir()) == []


def _write_lightning_csv(path, *, with_acc=True, n_epochs=4, steps=3):
    """Rows as Lightning's CSVLogger writes them: one metric group per row, other cells empty."""
    cols = ["epoch", "step", "train_loss_step", "train_loss_epoch", "val_loss"] + (["val_acc"] if with_acc else [])
    step = 0
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=cols)
        writer.writeheader()
        for e in range(n_epochs):
            for k in range(steps):
                writer.writerow({"epoch": e, "step": step, "train_loss_step": 2.0 - 0.3 * e + 0.1 * k})
                step += 1
            val = {"epoch": e, "step": step - 1, "val_loss": 2.5 - 0.2 * e}
            if with_acc:
                val["val_acc"] = 0.2 * e + (0.15 if e == 2 else 0.0)
            writer.writerow(val)
            writer.writerow({"epoch": e, "step": step - 1, "train_loss_epoch": 2.05 - 0.3 * e})


def test_epoch_series_from_sparse_csv(tmp_path):
    from envsound.evaluation.plots import read_metrics_csv

    path = tmp_path / "metrics.csv"
    _write_lightning_csv(path)
    curves = epoch_series(read_metrics_csv(path))
    assert sorted(curves) == ["train_loss", "val_acc", "val_loss"]
    assert curves["train_loss"] == pytest.approx({0: 2.05, 1: 1.75, 2: 1.45, 3: 1.15})  # the *_epoch column wins
    assert curves["val_acc"] == pytest.approx({0: 0.0, 1: 0.2, 2: 0.55, 3: 0.6})
    # without an *_epoch column the step values are averaged per epoch
    steps_only = epoch_series([{"epoch": "0", "train_loss": "1.0"}, {"epoch": "0", "train_loss": "3.0"},
                               {"epoch": "1", "train_loss": ""}, {"epoch": "1", "train_loss": "0.5"}])
    assert steps_only == {"train_loss": {0: 2.0, 1: 0.5}}


def test_training_curves_png_with_and_without_accuracy(tmp_path):
    full, loss_only = tmp_path / "full.csv", tmp_path / "loss.csv"
    _write_lightning_csv(full)
    _write_lightning_csv(loss_only, with_acc=False)
    _, w_full, _ = _png_shape(plot_training_curves(full, path=tmp_path / "full.png"))
    _, w_loss, _ = _png_shape(plot_training_curves(loss_only, path=tmp_path / "loss.png"))
    assert w_full > w_loss  # the accuracy panel is dropped when no accuracy was logged
    rows = [{"epoch": e, "val_acc": 0.1 * e} for e in range(3)]  # rows given directly, accuracy only
    assert _png_shape(plot_training_curves(rows, path=tmp_path / "rows.png"))[1] == w_loss
    multi_label = [{"epoch": e, "train_loss": 1.0 / (e + 1), "val_lwlrap": 0.2 * e} for e in range(3)]
    assert epoch_series(multi_label)["val_lwlrap"] == pytest.approx({0: 0.0, 1: 0.2, 2: 0.4})
    assert _png_shape(plot_training_curves(multi_label, path=tmp_path / "lwlrap.png"))[1] == w_full  # its own panel


def test_training_curves_errors(tmp_path):
    with pytest.raises(EnvsoundError, match="cannot read training metrics"):
        plot_training_curves(tmp_path / "missing.csv", path=tmp_path / "x.png")
    no_epoch = tmp_path / "no_epoch.csv"
    no_epoch.write_text("step,train_loss\n0,1.0\n")
    with pytest.raises(EnvsoundError, match="no 'epoch' column"):
        plot_training_curves(no_epoch, path=tmp_path / "x.png")
    nothing = tmp_path / "nothing.csv"
    nothing.write_text("epoch,step,lr\n0,0,0.1\n")
    with pytest.raises(EnvsoundError, match="no loss or accuracy values"):
        plot_training_curves(nothing, path=tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_plot_segments(tmp_path):
    timeline = [
        {"start": 0.0, "end": 2.5, "label": "dog", "score": 0.9},
        {"start": 2.5, "end": 4.0, "label": "rain", "score": 0.4},
        {"start": 4.0, "end": 9.0, "label": "dog", "score": 0.7},
    ]
    h, w, _ = _png_shape(plot_segments(timeline, path=tmp_path / "seg.png", title="street.wav"))
    assert w >= 500 and h >= 100
    assert _png_shape(plot_segments([], path=tmp_path / "empty.png"))[2] == 4
    with pytest.raises(ValueError, match="end 1.0 <= start 2.0"):
        plot_segments([{"start": 2.0, "end": 1.0, "label": "x", "score": 0.5}], path=tmp_path / "bad.png")


def test_plots_do_not_touch_pyplot_or_import_matplotlib_early(tmp_path):
    code = (
        "import sys\n"
        "import envsound.evaluation.plots as p, envsound.evaluation.report, envsound.evaluation.metrics\n"
        "assert 'matplotlib' not in sys.modules, 'matplotlib imported at import time'\n"
        f"p.plot_confusion_matrix([[1, 0], [0, 1]], labels=['a', 'b'], path={str(tmp_path / 'cm.png')!r})\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "cm.png").read_bytes()[:8] == PNG_MAGIC
