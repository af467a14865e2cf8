"""Self-describing checkpoints: weights plus the resolved config, label names and versions.

A checkpoint is one ``torch.save`` file holding only plain containers and tensors, so it loads with
``weights_only=True`` (no code runs on load). Scikit-learn baselines are stored as skops bytes in a uint8 tensor.
Written atomically: an interrupted save never leaves a file that looks complete.
"""

from __future__ import annotations

import datetime as _dt
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from envsound._version import __version__
from envsound.config import Config
from envsound.errors import CheckpointError, ConfigError
from envsound.fileio import atomic_path
from envsound.task import Task

FORMAT = "envsound-checkpoint"
# 2: config gains train.accelerator/devices/num_nodes/strategy and a leakage section, precision and channels_last
#    may be "auto", meta["runtime"] records the choice they resolved to, and "trained_on" holds the exact ids of the
#    clips the model was fitted on. Version 1 files load unchanged (their values stay valid; trained_on is None).
# 3: config gains a transfer section (train.freeze_encoder_epochs and train.encoder_lr_scale moved into it; the old
#    keys still load, see config.RENAMED_KEYS) and train.shots; meta["transfer"] records the source, mode and which
#    head rows were copied. Version 2 files load unchanged.
# 4: "task" (kind single_label | multi_label, decision threshold(s)) replaces the "multi_label" flag, which older
#    files still load through; config.model gains per-model options (model.options) and config a noisy section
#    (losses per label origin, noisy-clip sampling). Version 3 files load unchanged.
# 5: config gains features.eval_crops (the test-time protocol of a paper preset) and train.windows,
#    train.lr_milestones, train.lr_gamma (scheduler "step"). Version 4 files load unchanged (their defaults are the
#    old behaviour); an older envsound refuses a version 5 file as newer instead of failing on an unknown key.
# 6: config gains semi.labelled_mixup, distribution_alignment, views, temperature, mix_alpha (semi.method mixmatch),
#    semi.lambda_u may be unset (the method's default) and train.scheduler may be "cosine". Version 5 files load
#    with the semi behaviour they were trained with (labelled windows mixed, no alignment: OLD_SEMI).
# 7: semi.rampup (a share of the run's optimizer steps) replaces semi.rampup_epochs, which was 5 steps when an epoch
#    is one step; older files load with rampup = rampup_epochs / train.max_epochs, the same ramp. semi.method may be
#    remixmatch; semi gains strong_speed and strong_shift_bins (their defaults are the old strong view).
# 8: semi gains threshold_mode (fixed | adaptive: FreeMatch's self-adaptive threshold). Version 7 files load with
#    fixed, the threshold they were trained with.
# 9: train gains min_steps (unset: at least 1,500 optimizer steps for a run on a labelled share, semi or not),
#    semi gains guesser (student | ema: who makes FixMatch's pseudo-labels). Version 8 files load with
#    min_steps 0 (train.max_epochs as they were trained with) and the student guessing.
# 10: semi.method may be self_training, semi gains rounds (its pool shares), meta["self_training"] holds each round's
#    pseudo-labelled clips per class. Version 9 files load unchanged (rounds only matters to self_training).
# 11: semi gains round_budget (self_training: full = each round the run's step budget, split = the budget shared by
#    the rounds). Version 10 files load unchanged (full, what they were trained with).
# 12: config.features gains trim_zeros and edge_pad (EnvNet-v2's trimmed and padded clip edges). Version 11 files
#     load unchanged (off: the clip as read, what they were trained with).
# 13: train's 33 keys split by concern: accelerator, devices, num_nodes, strategy, precision, channels_last and
#     num_workers move to a runtime section; time_roll, spec_augment, mixup_alpha and between_class to augment
#     (config.RENAMED_KEYS reads the old places); augment gains bc_gain (a_weighting: between-class mixing weighs
#     loudness as the BC paper). Version 12 files load with rms, the plain loudness they were trained with (as any
#     config in the old layout does: Config.update).
# 14: semi gains round_init (self_training: scratch = every round a fresh network, previous = a round goes on from the
#     previous round's weights). Version 13 files load unchanged (scratch, what they were trained with).
# 15: config.features gains frontend (envsound | efficientat: EfficientAT's AudioSet log-mel) and win_length;
#     model.name may be efficientat. Version 14 files load unchanged (frontend envsound, what they were trained with).
# 16: each semi-supervised method's own settings move into a sub-section of semi: semi.fixmatch (threshold,
#     threshold_mode, guesser), semi.mixmatch (views, temperature, mix_alpha: mixmatch and remixmatch) and
#     semi.self_training (rounds, round_budget, round_init). Version 15 files load unchanged (config.RENAMED_KEYS
#     reads the flat keys into their sub-sections, as any config in the old layout does).
# 17: config gains an events section (threshold, median_seconds, min_seconds: predict --events). Version 16 files
#     load with its defaults.
# 18: events gains train_on (what a frame head trains on), and efficientat's model.options frame_head (a frame-level
#     event head: frame_head.* tensors, --preset sed). Version 17 files load unchanged (no frame head).
# 19: efficientat's model.options gains frame_skips (the frame head also reads two early layers; its input is wider).
#     Version 18 files load unchanged (frame_skips false: a head that reads the last layer only).
# 20: augment gains fmin_shift_hz and fmax_shift_hz (the mel bank's edges jittered in training; efficientat's preset
#     sets 10 and 2000); crnn and resnet gain model.options frame_head (frame_head.* tensors). Version 19 files load
#     unchanged (0: no jitter and no frame head, what they were trained with).
# 21: "trained_prints" (64 robust fingerprint words of each training clip, 260 bytes a clip) beside "trained_on", so
#     evaluate counts re-encoded, resampled or re-levelled copies of training clips too. Version 20 files load
#     unchanged (no prints: evaluate finds the exact copies only).
# 22: events gains finetune_epochs (a frame head's trunk trained too) and tune (its decoding chosen on the validation
#     clips; meta["events_tuned"] records the choice); efficientat's model.options gain frame_step (4: 40-ms frames,
#     a stride-4 layer read too) and frame_stitch (false: one run of the trunk, coarse layers interpolated). Version 21
#     files load unchanged (0, false, 8 and true: what they were trained with).
# 23: an ensemble of frame models (train.ensemble > 1 with model.options.frame_head: now a detector's N probes,
#     members.<i>.*) scores frames, the mean of its members' frame logits, and pools its clip logits from them; an
#     envsound of format 22 would build it without frames. Version 22 files load; the rare format-22 ensemble of frame
#     models (trained whole: auto chose full for ensembles then) now scores that way too, its clip scores pooled from
#     the mean frames rather than the mean of its members' pooled logits, and its events from frames.
# 24: config.events gains gap_seconds (events of one class this close joined) and hysteresis (an event held down to
#     threshold x this), both tuned by events.tune. Version 23 files load with 0 and 1: how they decoded.
# 25: config.events gains open_set (the share of its classes' windows a single-label network's "none of these" gate
#     rejects) and the checkpoint "open_set" (each class's embedding prototype and similarity threshold, calibrated on
#     the training clips: envsound.models.open_set). Version 24 files load with open_set 0 and none: every window is
#     one of their classes, as they predicted.
# 26: meta["trunk"] ({"digest": the SHA-256 of the model file whose network.embed the head reads, "layer": "embed"})
#     marks a head learned on an embeddings store (envsound learn: envsound.agile.learn), and meta["learned"] what it
#     learned from and its calibrated thresholds. Version 25 files load unchanged (no trunk: a model trained whole).
# 27: a head learned over a frozen network (meta kind frozen-head: train/cv --init yamnet|birdnet-v2.4|a spec member)
#     may hold "open_set", its single-label probe's gate on the network's embeddings, which an envsound of format 26
#     would not apply (every window one of its classes). Version 26 files load unchanged (no gate).
# 28: meta["learned"] may hold context_seconds (envsound learn --context, 1 s by default): every scorer averages a
#     window's logit with those of its file's windows starting within that of it (envsound.events.context), which
#     an envsound of format 27 would not (each window alone, below the calibrated scores). Version 27 files load
#     unchanged (no key: 0, each window alone, as they were calibrated).
FORMAT_VERSION = 28
# What a semi section written before format 6 meant by the keys it did not have.
OLD_SEMI = {"labelled_mixup": True, "distribution_alignment": False}


@dataclass
class Checkpoint:
    """What a checkpoint file holds. ``state_dict`` for torch models, ``sklearn_bytes`` for baselines."""

    config: Config
    labels: list[str]
    task: Task = field(default_factory=Task)
    state_dict: dict[str, torch.Tensor] | None = None
    sklearn_bytes: bytes | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    # int64 exact ids of the clips the model was fitted on (features.fingerprint.exact_ids); None: not recorded
    trained_on: np.ndarray | None = None
    # (n, 1 + 64) uint32 robust-fingerprint excerpts of the same clips (features.fingerprint.trained_excerpts), so
    # evaluate finds re-encoded copies too; None: not recorded (an older envsound ignores the payload key)
    trained_prints: np.ndarray | None = None
    # the single-label network's "none of these" gate (envsound.models.open_set.OpenSet.to_payload); None: none
    open_set: dict | None = None


def save_checkpoint(path: str | Path, checkpoint: Checkpoint) -> Path:
    """Write ``checkpoint`` to ``path`` atomically; adds package/torch versions and a UTC timestamp to ``meta``."""
    meta = {
        "envsound_version": __version__,
        "torch_version": str(torch.__version__),
        "python_version": platform.python_version(),
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **checkpoint.meta,
    }
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": checkpoint.config.to_dict(),
        "labels": list(checkpoint.labels),
        "task": checkpoint.task.to_dict(),
        "state_dict": checkpoint.state_dict,
        "sklearn_skops": None if checkpoint.sklearn_bytes is None
        else torch.frombuffer(bytearray(checkpoint.sklearn_bytes), dtype=torch.uint8),
        "meta": meta,
        "trained_on": None if checkpoint.trained_on is None
        else torch.from_numpy(np.ascontiguousarray(checkpoint.trained_on, dtype=np.int64)),
        # int32 view: torch keeps no uint32 tensors in every version
        "trained_prints": None if checkpoint.trained_prints is None
        else torch.from_numpy(np.ascontiguousarray(checkpoint.trained_prints, dtype=np.uint32).view(np.int32)),
        "open_set": None if checkpoint.open_set is None else
        {key: torch.from_numpy(np.ascontiguousarray(value)) if isinstance(value, np.ndarray) else value
         for key, value in checkpoint.open_set.items()},
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint` (envsound's own format: a ``model.ckpt`` or an
    ``autoencoder.ckpt``). Any other model file - an AudioSet release ``.pt``, an installed name such as
    ``efficientat-mn04``, a ``model.onnx`` - opens with :func:`envsound.models.files.open_model_file`.

    Raises:
        CheckpointError: missing file, not a torch file, not an envsound checkpoint, a newer format, a bad config.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    expected = (f"load_checkpoint reads envsound's own {FORMAT} (a model.ckpt or autoencoder.ckpt); any other model "
                "file opens with envsound.models.files.open_model_file")
    return checkpoint_from_payload(read_payload(path, expected=expected), path, expected=expected)


def read_payload(path: Path, *, expected: str) -> Any:
    """What ``torch.load`` finds in ``path`` (``weights_only``: no code runs), for :func:`load_checkpoint` and
    :func:`envsound.models.files.open_model_file`, the two readers of torch model files.

    Raises:
        CheckpointError: ``path`` cannot be read as a torch file: the message says what it looks like (empty, text,
            truncated, other bytes), then ``expected``.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a file that is not a checkpoint
        raise CheckpointError(f"{path}: not a model file ({_unreadable(path, exc)}); {expected}") from exc


def is_envsound_payload(payload: Any) -> bool:
    """Whether a loaded torch file carries this format's marker (``format: envsound-checkpoint``)."""
    return isinstance(payload, dict) and payload.get("format") == FORMAT


def checkpoint_from_payload(payload: Any, path: Path, *, expected: str) -> Checkpoint:
    """The :class:`Checkpoint` a loaded envsound file holds (older formats upgraded).

    Raises:
        CheckpointError: no envsound marker (``expected`` ends the message), a newer format, a bad config.
    """
    if not is_envsound_payload(payload):
        bare = isinstance(payload, Mapping) and bool(payload) and all(isinstance(v, torch.Tensor)
                                                                      for v in payload.values())
        what = "bare weights, such as an EfficientAT AudioSet release" if bare else f"no '{FORMAT}' marker"
        raise CheckpointError(f"{path}: not an envsound checkpoint ({what}); {expected}")
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format {payload['format_version']} is newer than this envsound "
                              f"({__version__}) reads; upgrade envsound")
    missing = [key for key in ("config", "labels") if key not in payload]
    if missing:  # the marker without what every checkpoint holds: a file cut short or written by something else
        raise CheckpointError(f"{path}: an envsound checkpoint without its {' and '.join(missing)}; train or "
                              "download the model again")
    try:
        config = Config.from_dict(_upgraded(payload["config"], payload.get("format_version", 0)))
    except ConfigError as exc:
        raise CheckpointError(f"{path}: checkpoint config is invalid: {exc}") from exc
    skops = payload.get("sklearn_skops")
    return Checkpoint(
        config=config,
        labels=list(payload["labels"]),
        task=Task.from_dict(payload["task"]) if "task" in payload
        else Task.from_flag(bool(payload.get("multi_label", False))),  # format <= 3
        state_dict=payload.get("state_dict"),
        sklearn_bytes=None if skops is None else skops.numpy().tobytes(),
        meta=dict(payload.get("meta", {})),
        trained_on=None if payload.get("trained_on") is None else payload["trained_on"].numpy(),
        trained_prints=None if payload.get("trained_prints") is None
        else payload["trained_prints"].numpy().view(np.uint32),
        open_set=None if payload.get("open_set") is None else
        {key: value.numpy() if isinstance(value, torch.Tensor) else value for key, value in payload["open_set"].items()},
    )


def _unreadable(path: Path, exc: Exception) -> str:
    """Why torch could not read ``path``, in the user's terms: what the file looks like, not torch's internals."""
    with path.open("rb") as handle:
        head = handle.read(8)
    if not head:
        return "an empty file"
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":  # a torch zip or pickle: damaged
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"a damaged or truncated torch file, cannot be read: {reason[:120]}"
    if all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return f"a text file, starting {head.decode('ascii', 'replace')!r}"
    return f"not a torch file (it starts with bytes {head.hex(' ')})"


def _upgraded(config: dict, version: int) -> dict:
    """A checkpoint's config dict with the keys an older format lacked set to what that format did."""
    semi = dict(config.get("semi", {}))
    if version < 6:
        semi = {**OLD_SEMI, **semi}
    if version < 7 and "rampup_epochs" in semi:
        epochs = max(int(config.get("train", {}).get("max_epochs", 1)), 1)
        semi["rampup"] = min(int(semi.pop("rampup_epochs")) / epochs, 1.0)
    train = dict(config.get("train", {}))
    if version < 9:
        train.setdefault("min_steps", 0)
    model = dict(config.get("model", {}))
    if version < 19 and model.get("name") == "efficientat":
        model["options"] = {"frame_skips": False, **model.get("options", {})}
    if version < 22 and model.get("name") == "efficientat":
        model["options"] = {"frame_step": 8, "frame_stitch": True, **model.get("options", {})}
    events = dict(config.get("events", {}))
    if version < 22:
        events = {"finetune_epochs": 0, "tune": False, **events}
    if version < 25:
        events = {"open_set": 0.0, **events}
    return {**config, "semi": semi, "train": train, "model": model, "events": events}
