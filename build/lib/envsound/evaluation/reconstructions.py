"""What a pre-trained autoencoder makes of a few clips: ``reconstructions.png`` (row 1 inputs, row 2 reconstructions).

Built on a ``matplotlib.figure.Figure`` with an Agg canvas (no pyplot), written atomically like every other figure.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

from envsound.errors import ConfigError
from envsound.evaluation.plots import _new_figure, _save
from envsound.models.autoencoder import load_autoencoder
from envsound.models.checkpoint import Checkpoint

logger = logging.getLogger(__name__)


def reconstruct(checkpoint: str | os.PathLike | Checkpoint, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run the autoencoder of ``checkpoint`` (eval mode) on ``windows`` ``(n, C, n_mels, frames)`` float32 dB.

    Returns:
        ``(targets, reconstructions)``, both ``(n, C, n_mels, frames)`` float32: the standardised inputs the model
        was trained to reproduce, and what it produced. Their mean squared difference is the reconstruction error.

    Raises:
        CheckpointError: not an autoencoder checkpoint.
        ConfigError: windows of another shape than the checkpoint's features describe.
    """
    targets, recons, _ = _reconstruct(checkpoint, windows)
    return targets, recons


def _reconstruct(checkpoint, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray, Checkpoint]:
    model, loaded = load_autoencoder(checkpoint, source=None if isinstance(checkpoint, Checkpoint) else str(checkpoint))
    windows = np.asarray(windows, dtype=np.float32)
    if windows.ndim != 4:
        raise ConfigError(f"reconstruct: windows of shape {windows.shape} are not (n, channels, n_mels, frames)")
    with torch.inference_mode():
        x = torch.from_numpy(np.ascontiguousarray(windows))
        return model.target(x).numpy(), model(x).float().numpy(), loaded


def plot_reconstructions(checkpoint: str | os.PathLike | Checkpoint, windows: np.ndarray, *,
                         path: str | os.PathLike, title: str | None = None) -> Path:
    """Draw each window's (first channel) standardised input above its reconstruction, one column per window.

    Args:
        checkpoint: an ``autoencoder.ckpt`` (path or loaded).
        windows: ``(n, C, n_mels, frames)`` float32 log-mel windows, n >= 1 (e.g. ``PretrainResult.examples``).
        path: the PNG to write.
        title: figure title; default names the decoder and the mean squared error.

    Returns:
        ``path``.

    Raises:
        CheckpointError, ConfigError: as :func:`reconstruct`; ``windows`` empty.

    >>> plot_reconstructions("runs/cae/autoencoder.ckpt", result.examples, path="runs/cae/reconstructions.png")
    """
    windows = np.asarray(windows, dtype=np.float32)
    if windows.ndim != 4 or len(windows) == 0:
        raise ConfigError(f"plot_reconstructions: need (n >= 1, channels, n_mels, frames) windows, got "
                          f"shape {windows.shape}")
    targets, recons, loaded = _reconstruct(checkpoint, windows)
    n = len(windows)
    mse = float(np.mean((targets - recons) ** 2))
    if title is None:
        title = f"{loaded.config.model.name} autoencoder ({loaded.meta.get('decoder')}): inputs (top) and reconstructions (bottom), MSE {mse:.3f}"
    fig = _new_figure(max(4.0, 2.2 * n), 4.6, layout="constrained")
    axes = fig.subplots(2, n, squeeze=False)
    lo = float(np.percentile(targets[:, 0], 1))
    hi = float(np.percentile(targets[:, 0], 99))
    for col in range(n):
        for row, (image, label) in enumerate(((targets[col, 0], "input"), (recons[col, 0], "reconstruction"))):
            ax = axes[row][col]
            ax.imshow(image, origin="lower", aspect="auto", vmin=lo, vmax=hi, cmap="magma", interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(f"{label}\n(mel bin)")
            if row == 1:
                ax.set_xlabel(f"MSE {float(np.mean((targets[col] - recons[col]) ** 2)):.3f}")
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)
