"""Figures of an evaluation, written as PNG files: confusion matrix, training curves, prediction timeline.

Figures are built with ``matplotlib.figure.Figure`` on an Agg canvas, never through ``pyplot``: no global backend is
chosen, no window opens, and nothing is imported before a plotting function is called. Every file is written
atomically (:func:`envsound.fileio.atomic_path`).
"""

from __future__ import annotations

import csv
import logging
import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from envsound.errors import EnvsoundError
from envsound.fileio import atomic_path

logger = logging.getLogger(__name__)

__all__ = ["plot_confusion_matrix", "plot_training_curves", "plot_segments", "read_metrics_csv", "epoch_series"]

_DPI = 100


def _new_figure(width: float, height: float, **kwargs: Any):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=_DPI, **kwargs)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str | os.PathLike) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=_DPI)
    logger.info("wrote %s", path)
    return path


# --------------------------------------------------------------------------------------------------- per-class scores


def plot_class_scores(report: Mapping[str, Any], *, path: str | os.PathLike, title: str | None = None) -> Path:
    """Horizontal bars of each class's average precision in a multi-label report (best first; classes without a
    positive clip are left out), the mAP as a dotted line: what a confusion matrix is to a single-label report.

    >>> plot_class_scores(multilabel_report(y_true, y_prob, labels=names), path="runs/cv/per_class_ap.png")
    """
    rows = sorted((r for r in report["per_class"] if r.get("average_precision") is not None),
                  key=lambda r: -r["average_precision"])
    fig = _new_figure(6.5, 1.2 + 0.28 * max(len(rows), 1), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    ax.barh(range(len(rows)), [r["average_precision"] for r in rows], color="tab:blue")
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"{r['label']} ({r['support']})" for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.axvline(report["mAP"], color="0.3", linestyle=":", label=f"mAP {report['mAP']:.3f}")
    ax.set_xlabel("average precision (clips with the label)")
    ax.legend(loc="lower right")
    ax.set_title(title or f"lwlrap {report['lwlrap']:.3f}, mAP {report['mAP']:.3f}", fontsize=9)
    return _save(fig, path)


# --------------------------------------------------------------------------------------------------- confusion matrix


def plot_confusion_matrix(
    cm: np.ndarray | Sequence[Sequence[int]],
    *,
    labels: Sequence[str],
    path: str | os.PathLike,
    title: str | None = None,
    normalize: bool = True,
) -> Path:
    """Draw a confusion matrix as a PNG.

    Colours show the row-normalised fraction (recall per true class, rows with no clips stay 0) when ``normalize``,
    else raw counts. Cells carry their counts when there are at most 20 classes; beyond that the colour scale is
    square-root so that a single confusion is still visible. The figure grows with the class count so that 50 labels
    stay legible.

    Args:
        cm: ``(C, C)`` non-negative counts, rows = true class, columns = predicted class.
        labels: ``C`` class names in index order.
        path: output PNG file (parent directories are created).
        title: figure title; default "Confusion matrix (N clips)".
        normalize: colour by row fraction (True) or count (False).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: when ``cm`` is not square, has negative entries or does not match ``labels``.

    >>> plot_confusion_matrix(report["confusion_matrix"], labels=report["labels"], path="run/cm.png")  # doctest: +SKIP
    """
    cm = np.asarray(cm, dtype=np.int64)
    n = len(labels)
    if cm.ndim != 2 or cm.shape != (n, n):
        raise ValueError(f"plot_confusion_matrix: cm has shape {cm.shape}, expected ({n}, {n}) for {n} labels")
    if (cm < 0).any():
        raise ValueError("plot_confusion_matrix: cm has negative counts")

    row_sums = cm.sum(axis=1, keepdims=True)
    if normalize:
        values = np.divide(cm, row_sums, out=np.zeros(cm.shape, dtype=np.float64), where=row_sums > 0)
        vmax, bar_label = 1.0, "fraction of true class"
    else:
        values = cm.astype(np.float64)
        vmax, bar_label = max(float(cm.max(initial=0)), 1.0), "clips"

    side = max(5.0, 2.6 + 0.24 * n)  # inches of the matrix area; ~0.24 in per cell keeps 50 labels readable
    longest = max([len(str(lab)) for lab in labels] + [1])
    tick_fs = 10 if n <= 10 else 9 if n <= 20 else 8 if n <= 40 else 7
    margin = 0.8 + longest * tick_fs * 0.55 / 72  # room for the longest tick label (inches)
    fig = _new_figure(side + margin + 1.2, side + margin + 0.4, layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    from matplotlib.colors import Normalize, PowerNorm

    # with many classes, counts are not printed: a square-root colour scale keeps single confusions visible
    norm = Normalize(vmin=0.0, vmax=vmax) if n <= 20 else PowerNorm(gamma=0.5, vmin=0.0, vmax=vmax)
    image = ax.imshow(values, cmap="Blues", norm=norm, interpolation="nearest", aspect="equal")
    cbar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02, shrink=0.8)
    cbar.set_label(bar_label)

    ticks = np.arange(n)
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    ax.set_xticklabels([str(lab) for lab in labels], rotation=60, ha="right", rotation_mode="anchor", fontsize=tick_fs)
    ax.set_yticklabels([str(lab) for lab in labels], fontsize=tick_fs)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    # thin grid between cells makes rows and columns easy to follow in large matrices
    ax.set_xticks(ticks - 0.5, minor=True)
    ax.set_yticks(ticks - 0.5, minor=True)
    ax.grid(which="minor", color="0.85", linewidth=0.5)
    ax.tick_params(which="minor", length=0)

    if n <= 20:
        fs = 10 if n <= 10 else 8
        for i in range(n):
            for j in range(n):
                if cm[i, j] == 0:
                    continue
                colour = "white" if norm(values[i, j]) > 0.6 else "black"
                ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=fs, color=colour)

    total = int(cm.sum())
    correct = int(np.trace(cm))
    acc = correct / total if total else 0.0
    ax.set_title(title if title is not None else f"Confusion matrix ({total} clips, accuracy {acc:.3f})")
    return _save(fig, path)


# --------------------------------------------------------------------------------------------------- training curves

def read_metrics_csv(metrics_csv: str | os.PathLike) -> list[dict[str, str]]:
    """Read a Lightning ``CSVLogger`` ``metrics.csv`` into a list of row dicts (empty cells are ``""``).

    Raises:
        EnvsoundError: when the file is missing or is not a CSV with a header.
    """
    path = Path(metrics_csv)
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            rows = [dict(r) for r in reader]
            header = reader.fieldnames
    except OSError as exc:
        raise EnvsoundError(
            f"{path}: cannot read training metrics ({exc.strerror}); pass the run's metrics.csv"
        ) from exc
    if not header:
        raise EnvsoundError(f"{path}: empty metrics file; was the run logged with a CSVLogger?")
    return rows


def _to_float(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _per_epoch(rows: Iterable[Mapping[str, Any]], column: str) -> dict[int, float]:
    """Mean of the non-empty values of ``column`` per epoch (an ``*_epoch`` column has one value per epoch)."""
    sums: dict[int, list[float]] = {}
    for row in rows:
        epoch, value = _to_float(row.get("epoch")), _to_float(row.get(column))
        if epoch is None or value is None:
            continue
        sums.setdefault(int(epoch), []).append(value)
    return {e: float(np.mean(v)) for e, v in sorted(sums.items())}


_SERIES = {
    "train_loss": ("train_loss_epoch", "train_loss", "train_loss_step"),
    "val_loss": ("val_loss_epoch", "val_loss"),
    "train_acc": ("train_acc_epoch", "train_acc", "train_accuracy"),
    "val_acc": ("val_acc_epoch", "val_acc", "val_accuracy"),
    "val_lwlrap": ("val_lwlrap_epoch", "val_lwlrap"),  # multi-label runs score lwlrap instead of accuracy
}


def epoch_series(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[int, float]]:
    """Per-epoch curves from sparse CSVLogger rows: ``{"train_loss"|"val_loss"|"train_acc"|"val_acc"|"val_lwlrap":
    {epoch: value}}``.

    For each curve the first column found in this order is used, averaged per epoch over its non-empty cells:
    ``train_loss_epoch``, ``train_loss``, ``train_loss_step``; ``val_loss_epoch``, ``val_loss``;
    ``train_acc_epoch``, ``train_acc``, ``train_accuracy``; ``val_acc_epoch``, ``val_acc``, ``val_accuracy``.
    Curves with no values are absent from the result; rows without an epoch are ignored.
    """
    out: dict[str, dict[int, float]] = {}
    for name, candidates in _SERIES.items():
        for column in candidates:
            series = _per_epoch(rows, column)
            if series:
                out[name] = series
                break
    return out


def plot_training_curves(
    metrics_csv: str | os.PathLike | Sequence[Mapping[str, Any]], *, path: str | os.PathLike, title: str | None = None
) -> Path:
    """Plot loss (train, validation) and accuracy (validation, and training if logged) per epoch; a multi-label run's
    validation lwlrap takes the accuracy's panel.

    Reads Lightning ``CSVLogger`` output, where rows are sparse (a step row has ``train_loss``, a validation row has
    ``val_loss``/``val_acc``, other cells empty). Per epoch it takes ``train_loss_epoch`` if present, else the mean of
    the step values of ``train_loss`` (or ``train_loss_step``); likewise for validation loss and accuracy (see
    :func:`epoch_series`). Missing columns are left out of the figure; no accuracy column drops the accuracy panel.
    The best validation accuracy (star) and the lowest validation loss (dotted line) are marked.

    Args:
        metrics_csv: path to ``metrics.csv``, or the rows themselves as dicts (values numbers, strings or empty).
        path: output PNG file.
        title: figure title (default: the CSV's parent directory name, or "Training curves").

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        EnvsoundError: when the file cannot be read, has no ``epoch`` column, or holds no loss/accuracy values.

    >>> plot_training_curves("runs/esc50/fold1/metrics.csv", path="runs/esc50/fold1/curves.png")  # doctest: +SKIP
    """
    if isinstance(metrics_csv, (str, os.PathLike)):
        source = str(metrics_csv)
        rows = read_metrics_csv(metrics_csv)
        default_title = f"Training curves - {Path(metrics_csv).parent.name}" if Path(metrics_csv).parent.name else None
    else:
        source = "metrics rows"
        rows = [dict(r) for r in metrics_csv]
        default_title = None
    if rows and not any("epoch" in r for r in rows):
        raise EnvsoundError(
            f"{source}: no 'epoch' column (columns: {sorted(rows[0])}); expected a CSVLogger metrics.csv"
        )

    curves = epoch_series(rows)
    if not curves:
        raise EnvsoundError(
            f"{source}: no loss or accuracy values per epoch (looked for {[c for v in _SERIES.values() for c in v]}); "
            "did training run for at least one epoch?"
        )
    loss_keys = [k for k in ("train_loss", "val_loss") if k in curves]
    acc_keys = [k for k in ("val_acc", "train_acc", "val_lwlrap") if k in curves]
    best_key = next((k for k in ("val_acc", "val_lwlrap") if k in curves), None)
    score_name = "accuracy" if "val_acc" in curves or "train_acc" in curves else "lwlrap"
    n_panels = int(bool(loss_keys)) + int(bool(acc_keys))
    fig = _new_figure(5.0 * n_panels + 1.0, 4.2, layout="constrained")
    axes = [fig.add_subplot(1, n_panels, k + 1) for k in range(n_panels)]
    fig.suptitle(title or default_title or "Training curves")
    style = {"train_loss": ("train", "-o"), "val_loss": ("validation", "-s"),
             "train_acc": ("train", "-o"), "val_acc": ("validation", "-s"), "val_lwlrap": ("validation", "-s")}

    def draw(ax, key):
        epochs = list(curves[key])
        ax.plot(epochs, [curves[key][e] for e in epochs], style[key][1], label=style[key][0], markersize=3)

    if loss_keys:
        ax = axes[0]
        for key in loss_keys:
            draw(ax, key)
        if "val_loss" in curves:
            best = min(curves["val_loss"], key=curves["val_loss"].get)
            ax.axvline(best, color="0.6", linestyle=":", linewidth=1)
        ax.set_ylabel("loss")
        ax.set_title("loss")
        ax.legend()
    if acc_keys:
        ax = axes[-1]
        for key in acc_keys:
            draw(ax, key)
        if best_key:
            series = curves[best_key]
            best = max(series, key=series.get)
            right_half = best > (min(series) + max(series)) / 2
            ax.plot([best], [series[best]], "*", color="tab:red", markersize=12, zorder=5)
            ax.annotate(f"best {series[best]:.3f} (epoch {best})", (best, series[best]), textcoords="offset points",
                        xytext=(0, -22), ha="right" if right_half else "left", fontsize=9,
                        bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "0.7", "alpha": 0.9})
        ax.set_ylabel(score_name)
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(score_name)
        ax.legend(loc="lower right")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    return _save(fig, path)


# --------------------------------------------------------------------------------------------------- segments


def plot_segments(
    timeline: Sequence[Mapping[str, Any]], *, path: str | os.PathLike, title: str | None = None,
    duration: float | None = None,
) -> Path:
    """Draw a prediction timeline: one row per label, a bar per segment, bar opacity = score.

    Args:
        timeline: segments ``{"start": s, "end": s, "label": str, "score": 0..1}`` with ``end > start >= 0`` (seconds).
        path: output PNG file.
        title: figure title (default "Predicted segments").
        duration: length of the recording in seconds (default: the last segment end).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: when a segment lacks a key or has ``end <= start``.
    """
    segs = []
    for k, seg in enumerate(timeline):
        missing = [key for key in ("start", "end", "label", "score") if key not in seg]
        if missing:
            raise ValueError(f"plot_segments: segment #{k} lacks {missing}")
        start, end, score = float(seg["start"]), float(seg["end"]), float(seg["score"])
        if not end > start:
            raise ValueError(f"plot_segments: segment #{k} has end {end} <= start {start}")
        segs.append((start, end, str(seg["label"]), min(max(score, 0.0), 1.0)))

    names: list[str] = []
    for _, _, lab, _ in segs:
        if lab not in names:
            names.append(lab)
    end_time = duration if duration is not None else max([s[1] for s in segs] + [1.0])
    fig = _new_figure(min(max(6.0, 0.12 * end_time + 4.0), 16.0), 1.4 + 0.45 * max(len(names), 1), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    for start, end, lab, score in segs:
        row = names.index(lab)
        ax.barh(row, end - start, left=start, height=0.7, color=cmap(row % 10), alpha=0.25 + 0.75 * score,
                edgecolor="black", linewidth=0.4)
        if end - start >= 0.06 * end_time:
            ax.text((start + end) / 2, row, f"{score:.2f}", ha="center", va="center", fontsize=8)
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names)
    ax.invert_yaxis()
    ax.set_xlim(0, end_time)
    ax.set_xlabel("time (s)")
    ax.grid(axis="x", alpha=0.3)
    if not segs:
        ax.text(0.5, 0.5, "no segments", transform=ax.transAxes, ha="center", va="center")
    ax.set_title(title if title is not None else "Predicted segments")
    return _save(fig, path)
