"""Evaluate a frozen network (BirdNET V2.4, YAMNet: LiteRT runs it), a head learned over one (``envsound learn``,
``train``/``cv --init NAME``), or the network zero-shot through a label map (``Dog_Dog,dog``).

:class:`FrozenClips` answers what :func:`~envsound.evaluation.evaluate.evaluate_model` asks of a model (labels,
task, config, the windows of a clip, their probabilities), from the network's outputs and embeddings of each window
(computed once per process: :mod:`envsound.transfer.frozen_windows`), as logits: BirdNET's as they are, YAMNet's
scores turned back into the logits they are the sigmoid of. A window's probabilities are the task's activation of its
logits (softmax for a single-label set, a sigmoid per class for a multi-label one), a clip's the mean of its
windows', as :class:`~envsound.models.clip.ClipModel` scores a network's.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from scipy.special import expit, softmax

from envsound.config import Config
from envsound.data.records import Manifest
from envsound.errors import CheckpointError, ConfigError
from envsound.features.windows import eval_windows
from envsound.models.checkpoint import Checkpoint
from envsound.models.litert import LiteRTNetwork, check_cpu_float32, frozen_config, is_learned, learned_trunk
from envsound.models.frozen import labels_beside, read_frozen_labels
from envsound.task import MULTI_LABEL, Task
from envsound.transfer.frozen_windows import frozen_network, output_logits, window_outputs

Logits = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (outputs (n, C), embeddings (n, d)) -> logits (n, K)


class FrozenClips:
    """A frozen network scoring clips as :func:`~envsound.evaluation.evaluate.evaluate_model` asks: ``logits`` maps
    each window's (outputs, embedding) to its ``K`` logits, one per label."""

    has_frames = False
    frame_seconds = 0.0
    open_set = None

    def __init__(self, network: LiteRTNetwork, *, labels: Sequence[str], task: Task, config: Config, logits: Logits,
                 meta: dict[str, Any], trained_on: Any = None, trained_prints: Any = None) -> None:
        self.network, self.labels, self.task, self.config = network, list(labels), task, config
        self.logits, self.meta = logits, meta
        self.trained_on, self.trained_prints = trained_on, trained_prints

    @property
    def n_classes(self) -> int:
        return len(self.labels)

    def deciding_at(self, threshold: float) -> "FrozenClips":
        """A copy deciding at ``threshold``, 0 < T < 1, for every class and the events (else ConfigError), as
        :meth:`~envsound.models.clip.ClipModel.deciding_at`."""
        other = copy.copy(self)
        other.task = self.task.with_threshold(threshold)
        other.config = self.config.with_overrides(["events.threshold=null"])  # the events follow the task's
        return other

    def clip_windows(self, features: np.ndarray) -> tuple[np.ndarray, list[int]]:
        """One clip's waveform ``(1, samples)`` at the network's rate -> its evaluation windows
        ``(n, 1, window_samples)`` and their starts in samples."""
        return eval_windows(features, self.config.features)

    def window_probs(self, windows: np.ndarray) -> np.ndarray:
        """Windows ``(n, 1, window_samples)`` -> ``(n, K)`` float32 probabilities: the task's activation of the
        windows' logits."""
        if len(windows) == 0:
            return np.zeros((0, self.n_classes), dtype=np.float32)
        logits = self.logits(*window_outputs(self.network, windows))
        probs = expit(logits) if self.task.multi_label else softmax(logits, axis=1)
        return probs.astype(np.float32)

    def clip_probs(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """One clip -> (mean probabilities ``(K,)``, per-window probabilities ``(n, K)``, window starts)."""
        windows, starts = self.clip_windows(features)
        probs = self.window_probs(windows)
        return probs.mean(axis=0), probs, starts

    def predict_clips(self, features: Sequence[np.ndarray]) -> np.ndarray:
        """Clip probabilities ``(n_clips, K)``: the mean of each clip's window probabilities."""
        if not features:
            return np.zeros((0, self.n_classes), dtype=np.float32)
        return np.stack([self.clip_probs(clip)[0] for clip in features])


def frozen_scorer(path: Path, checkpoint: Checkpoint | None, *, manifest: Manifest | None = None,
                  label_map: str | Path | None = None, device: str = "auto", precision: str = "auto") -> FrozenClips:
    """What ``evaluate`` scores for a frozen network's file ``path`` (``checkpoint`` ``None``) or a head learned
    over one (``checkpoint`` such a ``model.ckpt``, ``path`` its file):

    - the network with ``label_map`` (zero-shot): one target per class of ``manifest`` (required then), its logit
      the mean of its source classes' logits (BirdNET's logits; YAMNet's scores turned back into the logits they are
      the sigmoid of), so its probability is the sigmoid of that mean (multi-label) or its softmax among the targets
      (single-label), as :func:`~envsound.transfer.zero_shot.zero_shot_checkpoint` does for an AudioSet network's
      head;
    - the network alone: its own classes, a multi-label tagger (BirdNET: sigmoid of its logits; YAMNet's scores);
    - a learned head: ``embedding @ W.T + b`` with the checkpoint's labels and task (softmax over the classes of a
      single-label head, as ``cv --init`` fits it).

    Raises:
        ConfigError: the network without a label map on a single-label ``manifest``; a label map with a learned head
            (map the dataset's classes at training instead); a map naming a class the network lacks (the closest
            names given) or a target the dataset lacks, or a dataset class without a source; another device or
            precision than the CPU in float32; LiteRT is not installed.
        CheckpointError: the file is no known network; a learned head's trunk is not here.
    """
    check_cpu_float32(path, device, precision)
    if checkpoint is not None:
        return _learned(path, checkpoint, label_map)
    network = frozen_network(path)
    release = network.release
    labels = read_frozen_labels(release, labels_beside(release, path))
    meta = {"kind": "frozen", "network": release.name, "licence": release.licence, "file": str(path)}
    config = frozen_config(release)
    if label_map is None:
        if manifest is not None and not manifest.multi_label:
            raise ConfigError(f"{path}: {release.name} tags its own {release.n_classes} classes (multi-label); dataset "
                              f"{manifest.name!r} is single-label: score it zero-shot with --label-map FILE "
                              "(source,target rows, e.g. Dog_Dog,dog), or train a head: cv --init "
                              f"{release.name}")
        return FrozenClips(network, labels=labels, task=Task(MULTI_LABEL), config=config, meta=meta,
                           logits=lambda outputs, _: output_logits(network, outputs))
    from envsound.transfer.zero_shot import mapped_rows

    mapping, rows = mapped_rows(label_map, labels, manifest.labels)
    meta["zero_shot"] = {"label_map": str(label_map), "pairs": {t: [s for s, u in mapping.items() if u == t]
                                                                for t in manifest.labels}}

    def mapped(outputs: np.ndarray, _: np.ndarray) -> np.ndarray:
        logits = output_logits(network, outputs)
        return np.stack([logits[:, row].mean(axis=1) for row in rows], axis=1)

    return FrozenClips(network, labels=manifest.labels, task=manifest.task, config=config, meta=meta, logits=mapped)


def _learned(path: Path, checkpoint: Checkpoint, label_map: str | Path | None) -> FrozenClips:
    """A head learned over a frozen network, scored on the windows it was fitted on (its checkpoint's features)."""
    if label_map is not None:
        raise ConfigError(f"{path}: a head learned over a frozen network; --label-map maps the network's own classes "
                          f"(evaluate {checkpoint.meta.get('network', 'NAME')} --label-map FILE)")
    state = checkpoint.state_dict or {}
    if "head.weight" not in state or "head.bias" not in state:
        raise CheckpointError(f"{path}: a learned head without head.weight and head.bias; learn it again")
    network = frozen_network(learned_trunk(checkpoint, given=path))
    weight, bias = state["head.weight"].double().numpy(), state["head.bias"].double().numpy()
    return FrozenClips(network, labels=checkpoint.labels, task=checkpoint.task, config=checkpoint.config,
                       meta={**checkpoint.meta, "file": str(path)},
                       logits=lambda _, embeddings: embeddings.astype(np.float64) @ weight.T + bias,
                       trained_on=checkpoint.trained_on, trained_prints=checkpoint.trained_prints)


def scoring_model(checkpoint: Checkpoint, *, path: Path, device: str = "auto", precision: str = "auto"):
    """The model that scores ``checkpoint`` (a ``model.ckpt`` at ``path``): a :class:`FrozenClips` for a head
    learned over a frozen network, else a :class:`~envsound.models.clip.ClipModel`."""
    if is_learned(checkpoint):
        return frozen_scorer(path, checkpoint, device=device, precision=precision)
    from envsound.models.clip import ClipModel

    return ClipModel.from_checkpoint(checkpoint, source=str(path), device=device, precision=precision)
