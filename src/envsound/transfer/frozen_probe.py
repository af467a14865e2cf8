"""``--init birdnet-v2.4`` or ``--init yamnet`` (or a path to its .tflite): the frozen-embedding probe.

A frozen network (:mod:`envsound.models.frozen`, run by LiteRT) has no torch trunk to load or train: ``train`` and
``cv`` from it embed every evaluation window of the training clips with it (once per clip and process:
:mod:`envsound.transfer.frozen_windows`), fit the probe's logistic regression on the embeddings
(:mod:`envsound.transfer.linear_head`, standardised inside the training clips) and write the head as the
learned-head checkpoint ``envsound learn`` writes (``meta["kind"] == "frozen-head"``, the trunk named by digest, the
network's licence), which ``predict``, ``listen``, ``serve`` and ``evaluate`` open. The run's config is the
network's (:func:`~envsound.models.litert.frozen_config`: its rate, window and hop; ``model.name`` the network's
name), with no offline copies by default (each copy would be embedded too). A single-label probe with
``events.open_set`` > 0 also gets its "none of these" gate (:func:`frozen_open_set`), calibrated on the network's
embeddings of its training clips, which :class:`~envsound.models.litert.FrozenModel` applies as
:class:`~envsound.models.clip.ClipModel` applies a torch network's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from envsound.config import Config
from envsound.errors import CheckpointError, ConfigError
from envsound.features.windows import eval_windows
from envsound.fileio import file_digest
from envsound.models.files import model_path
from envsound.models.frozen import FROZEN, FrozenRelease, is_tflite
from envsound.models.litert import LEARNED_KIND, frozen_config
from envsound.models.open_set import OpenSet, calibrate
from envsound.models.spec import spec_beside
from envsound.task import Task
from envsound.transfer.frozen_windows import clip_outputs, frozen_network, window_outputs
from envsound.transfer.linear_head import fit_probe_head
from envsound.transfer.notes import note

log = logging.getLogger(__name__)

FROZEN_SOURCE = "frozen"
"""The ``kind`` of a :class:`FrozenPlan` (an :class:`~envsound.transfer.source.InitPlan` is a ``classifier`` or an
``autoencoder``)."""

FROZEN_DEFAULTS = {"augment": {"copies": 0}}  # the probe's recipe (as efficientat's preset): no offline copies


def frozen_init(init: str | Path | None) -> Path | None:
    """The file ``init`` stands for when it is a frozen network (``birdnet-v2.4``, ``yamnet`` or a spec member
    installed, or a path to a .tflite or to a spec member's file), else ``None`` (another model file, or none: :func:`~envsound.transfer.source.read_source`
    says what is wrong with it).

    Raises:
        CheckpointError: a frozen network's name whose file is not installed (the download command).
    """
    if init is None:
        return None
    path = model_path(init)
    return path if path.is_file() and (is_tflite(path) or spec_beside(path) is not None) else None


def is_frozen_name(name: str) -> bool:
    """True when ``name`` (a ``model.name``) is a frozen network's: a run over it is a probe from ``--init``."""
    return name in FROZEN


def frozen_sections(path: Path) -> dict[str, dict[str, Any]]:
    """The config sections a run from the frozen network in ``path`` starts from: its features and model
    (:func:`~envsound.models.litert.frozen_config`) and :data:`FROZEN_DEFAULTS`, under ``--preset``, ``--config``
    and ``--set`` (an override of the network's input is refused by :func:`plan_frozen`).

    Raises:
        CheckpointError: not BirdNET V2.4's or YAMNet's network.
        ConfigError: LiteRT is not installed.
    """
    data = frozen_config(frozen_network(path).release).to_dict()
    return {"features": data["features"], "model": data["model"], **FROZEN_DEFAULTS}


@dataclass(frozen=True)
class FrozenPlan:
    """What a run from a frozen network starts from: ``source`` as given, the network's file (``path``) and
    ``release``, the new label set; no tensor is loaded (the probe reads the network's embeddings)."""

    source: str
    path: Path
    release: FrozenRelease
    labels: list[str]
    kind: str = FROZEN_SOURCE

    def describe(self) -> list[str]:
        """What the run makes of the source, one line each (as :meth:`InitPlan.describe`)."""
        return [f"frozen network {self.release.name} ({self.path}, LiteRT): its {self.release.embedding_width}-d "
                f"embedding of every window; a new head for {len(self.labels)} classes ({self.release.licence})"]

    def to_meta(self) -> dict[str, Any]:
        """For the new checkpoint's ``meta["transfer"]``."""
        return {"source": self.source, "kind": self.kind, "network": self.release.name, "loaded": [],
                "copied_rows": {}, "new_rows": list(self.labels)}


def plan_frozen(init: str | Path, path: Path, config: Config, labels: Sequence[str]) -> FrozenPlan:
    """Check a run from the frozen network in ``path`` (``init`` as the user gave it) before any audio is decoded.

    Raises:
        CheckpointError: not BirdNET V2.4's or YAMNet's network; ``config.model`` is another model.
        ConfigError: what a frozen trunk cannot do, in one line: ``transfer.mode`` ``full``, ``gradual`` or
            ``probe_full`` (its trunk is not trained), a semi-supervised method, an ensemble, a frame head,
            ``events.tune``, or features other than the network's input (kind, rate, window).
    """
    release = frozen_network(path).release
    if config.model.name != release.name:
        raise CheckpointError(f"{init}: the frozen network {release.name}, and model.name is {config.model.name!r} "
                              "here; drop --model/--preset (the model and features come from the network)")
    name = f"--init {init} (a frozen network run by LiteRT)" if str(init) == release.name else \
        f"--init {init} (the frozen network {release.name}, run by LiteRT)"
    refused = [(config.transfer.mode not in ("auto", "probe"),
                f"transfer.mode={config.transfer.mode}: its trunk cannot be trained; use transfer.mode=probe (auto)"),
               (config.semi.method != "none", f"semi.method={config.semi.method}: a probe fits on the labelled clips "
                                              "only; set semi.method=none"),
               (config.train.ensemble > 1, f"train.ensemble={config.train.ensemble}: one probe is fitted; set "
                                           "train.ensemble=1"),
               (bool(config.model.options.get("frame_head")), "a frame head needs a torch trunk's frames; drop "
                                                             "model.options.frame_head"),
               (config.events.tune, "events.tune chooses a frame model's decoding; set events.tune=false")]
    refused += [(ours != theirs, f"features.{key}={ours!r}: the network takes {theirs!r}; drop the override")
                for key, ours, theirs in _input_settings(config, release)]
    for bad, why in refused:
        if bad:
            raise ConfigError(f"{name}: {why}")
    return FrozenPlan(source=str(init), path=Path(path), release=release, labels=list(labels))


def _input_settings(config: Config, release: FrozenRelease) -> list[tuple[str, Any, Any]]:
    """(key, this run's value, the network's) of every feature setting its input is fixed by."""
    feats = config.features
    return [("kind", feats.kind, "waveform"), ("sample_rate", feats.sample_rate, release.sample_rate),
            ("window_seconds", feats.window_seconds, release.window_seconds)]


def fit_frozen_probe(plan: FrozenPlan, config: Config, features: Sequence[np.ndarray], targets: np.ndarray, *,
                     variants: Sequence[Sequence[np.ndarray]] = (), task: Task) -> tuple[np.ndarray, np.ndarray]:
    """The probe's head over ``plan``'s network: weights ``(K, embedding_width)`` and bias ``(K,)`` float32, fitted
    on the embeddings of every evaluation window of ``features`` (each clip's waveform ``(1, samples)`` at the
    network's rate) and of their copies ``variants[i]``, with ``targets`` ``(n_clips, K)``: softmax regression for a
    single-label ``task``, one binary regression a class for a multi-label one; ``logits = embedding @ W.T + b``.

    >>> weight, bias = fit_frozen_probe(plan, config, train_features, targets, task=Task())
    """
    for line in plan.describe():
        note(log, "%s", line)  # once per run: a cross-validation fits a probe a fold
    network = frozen_network(plan.path)
    weight, bias = fit_probe_head(lambda clip: clip_outputs(network, clip, config.features)[1], features, targets,
                                  variants=variants, multi_label=task.multi_label, c=config.transfer.probe_c,
                                  trunk=plan.release.name)
    return weight.astype(np.float32), bias.astype(np.float32)


def frozen_open_set(plan: FrozenPlan, config: Config, features: Sequence[np.ndarray],
                    targets: np.ndarray) -> OpenSet:
    """The "none of these" gate of a single-label probe over ``plan``'s network
    (:func:`~envsound.models.open_set.calibrate` at share ``config.events.open_set``): its training clips
    ``features`` (waveforms ``(1, samples)`` at the network's rate; ``targets`` ``(n_clips, K)``) cut into the windows
    prediction cuts (the network's window, ``config.features.eval_hop_seconds``), compared by the embedding the head
    reads: each clip's windows as the probe's fit embedded them (kept once per process), the clips end to end
    (windows across two clips, read once) not kept."""
    network = frozen_network(plan.path)
    return calibrate(features, np.asarray(targets).argmax(axis=1), embed=lambda w: window_outputs(network, w)[1],
                     cut=lambda clip: eval_windows(clip, config.features), share=config.events.open_set,
                     n_classes=len(plan.labels), embed_stream=network.embed)


def learned_meta(plan: FrozenPlan) -> dict[str, Any]:
    """The ``meta`` that makes a checkpoint a head learned over ``plan``'s network, as ``envsound learn`` writes it
    (:func:`~envsound.models.litert.write_learned`): the kind, the network and its licence, the trunk by digest,
    so :meth:`~envsound.models.litert.FrozenModel.from_checkpoint` finds it."""
    release = plan.release
    return {"kind": LEARNED_KIND, "network": release.name, "licence": release.licence,
            "trunk": {"network": release.name, "digest": file_digest(plan.path), "file": str(plan.path),
                      "layer": "embed"}}
