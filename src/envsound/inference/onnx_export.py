"""Export a trained checkpoint to one ONNX file that classifies raw audio without PyTorch.

The graph takes one block of waveform and the starts of the evaluation windows to score in it, and returns their
probabilities; everything between is inside: the log-mel frontend (the windowed DFT as a product with a fixed basis,
see :class:`~envsound.features.onnx_frontends.OnnxFrontend`, and the same mel filters), delta channel, padding of a
clip shorter than a window, cutting the windows, the network and the task's activation (softmax, or sigmoid for
multi-label models). Inputs and output:

- ``waveform``: float32 ``(1, samples)``, mono, in [-1, 1], at the model's sample rate (at least one sample);
- ``starts``: int64 ``(n,)``, window starts in frames (log-mel) or samples (waveform models), as
  :func:`~envsound.features.windows.eval_starts` gives them for the block;
- ``probs``: float32 ``(n, n_classes)``;
- ``frame_probs`` (a frame model, ``model.options.frame_head``, only): float32 ``(n, steps, n_classes)``, each
  window's frame probabilities, step ``m`` centred ``m x frame_seconds`` after the window's start (the metadata's
  ``frames`` says ``frame_seconds``); ``probs`` is then their linear-softmax pooling, as the checkpoint computes it.

Decoding, resampling, trimming and padding a clip's edges (``features.trim_zeros``, ``features.edge_pad``), cutting
long files into blocks and averaging the windows stay outside, in the torch-free
:class:`~envsound.inference.predictor.Predictor` (:class:`~envsound.inference.onnx_model.OnnxModel` feeds the graph),
so a clip gets the same windows from the ``.onnx`` file as from the checkpoint. Labels, the config (feature settings
included), the task and the checkpoint's training metadata travel in the file's ``metadata_props``
(:data:`~envsound.inference.onnx_model.METADATA`): the ``.onnx`` file alone is enough.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import logging
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from envsound._version import __version__
from envsound.config import FeatureConfig
from envsound.config.frontends import frontend_spec
from envsound.errors import ConfigError
from envsound.features.windows import window_length, window_pad_value
from envsound.fileio import atomic_path
from envsound.inference.frozen_export import folder_form
from envsound.events.context import context_seconds
from envsound.inference.onnx_model import (CONTEXT_VERSION, FORMAT, FORMAT_VERSION, METADATA, NO_CONTEXT_VERSION,
                                           OUTPUTS, OnnxModel)
from envsound.models.files import CLASSIFIER, RELEASE, open_model_file
from envsound.models.clip import ClipModel
from envsound.models.frames import linear_softmax_logit
from envsound.models.litert import is_learned
from envsound.models.open_set import OpenSet

log = logging.getLogger(__name__)

# moved to envsound.features.onnx_frontends (beside the frontends they export); found here for one release
_MOVED = {"OnnxFrontend", "OnnxEfficientATFrontend"}

OPSET = 18  # the lowest torch's exporter writes


class OnnxGraph(nn.Module):
    """``(waveform (1, samples), starts (n,))`` -> window probabilities ``(n, n_classes)``, and for a frame model
    (``network.has_frames``) their frame probabilities ``(n, steps, n_classes)`` too: what the file holds."""

    def __init__(self, network: nn.Module, features: FeatureConfig, *, multi_label: bool,
                 open_set: OpenSet | None = None) -> None:
        super().__init__()
        self.open_set = open_set is not None  # the "none of these" gate, as ClipModel.scored_windows applies it
        if open_set is not None:
            self.register_buffer("prototypes", torch.from_numpy(open_set.prototypes.T.copy()))
            self.register_buffer("gates", torch.from_numpy(open_set.thresholds.copy()))
        self.frontend = None if features.kind != "logmel" else frontend_spec(features.frontend).part("onnx_module")(
            features)
        self.network = network
        self.multi_label = multi_label
        self.frames = bool(getattr(network, "has_frames", False))
        width = window_length(features)
        channels = 2 if self.frontend is not None and features.deltas else 1
        rows = (features.n_mels,) if self.frontend is not None else ()
        pad = torch.tensor(window_pad_value(features), dtype=torch.float32).reshape(channels, *[1] * len(rows), 1)
        # A window past the end of the block reads this padding, as eval_windows pads a clip shorter than a window.
        self.register_buffer("padding", pad.expand(channels, *rows, width).clone())
        self.register_buffer("offsets", torch.arange(width))

    def forward(self, waveform: torch.Tensor, starts: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        features = self.frontend(waveform) if self.frontend is not None else waveform  # (C, n_mels, T) or (1, S)
        features = torch.cat([features, self.padding], dim=-1)
        windows = features[..., starts[:, None] + self.offsets].movedim(-2, 0)  # (n, C, n_mels, W) or (n, 1, W)
        if self.frames:  # the network once: its frames, and the clip probabilities pooled from them
            frame_logits = self.network.frame_logits(windows).float()
            return torch.sigmoid(linear_softmax_logit(frame_logits)), torch.sigmoid(frame_logits)
        if self.open_set:
            embedding = self.network.embed(windows).float()
            probs = torch.softmax(self.network.head(embedding).float(), dim=-1)
            unit = embedding / embedding.norm(dim=1, keepdim=True).clamp_min(1e-12)
            return torch.where(unit @ self.prototypes >= self.gates, probs, -probs)  # OpenSet.gate's encoding
        logits = self.network(windows).float()
        return torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=-1)


def export_onnx(checkpoint: str | Path, out: str | Path) -> Path:
    """Write ``checkpoint`` (an envsound ``model.ckpt``, an AudioSet release ``.pt`` or installed name) as an ONNX file
    at ``out`` (atomically) and return ``out``.

    Raises:
        CheckpointError: ``checkpoint`` is not a usable model file (an ONNX file is already exported).
        ConfigError: the model cannot be exported (a scikit-learn baseline; a head learned over a frozen network,
            which exports to a folder: :func:`~envsound.inference.frozen_export.export_frozen_head`), or the
            ``onnx`` packages are missing.
    """
    missing = [name for name in ("onnx", "onnxscript") if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(f"ONNX export needs the {' and '.join(missing)} package(s): pip install {' '.join(missing)}")
    source = str(checkpoint)
    model = _fp32_model(checkpoint)
    if model.network is None:
        raise ConfigError(f"{source}: model {model.config.model.name!r} is a scikit-learn baseline; only neural "
                          "networks export to ONNX")
    features = model.config.features
    graph = OnnxGraph(model.network.float().eval(), features, multi_label=model.task.multi_label,
                      open_set=model.open_set).eval()
    proto = _export(graph, features)
    for key, value in metadata(model).items():
        proto.metadata_props.add(key=key, value=value)
    proto.producer_name, proto.producer_version = "envsound", __version__
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        tmp.write_bytes(proto.SerializeToString())
    return out


def _fp32_model(checkpoint: str | Path) -> ClipModel:
    opened = open_model_file(checkpoint).require(CLASSIFIER, RELEASE, purpose="ONNX export")
    if is_learned(opened.checkpoint):  # its trunk is a TFLite network: a folder (envsound.inference.frozen_export)
        raise ConfigError(folder_form(checkpoint, opened.checkpoint.meta.get("network", "a frozen network")))
    return ClipModel.from_checkpoint(opened.checkpoint, source=str(checkpoint), device="cpu", precision="32")


def parity_check(checkpoint: str | Path, exported: str | Path, *, seconds: float = 3.0) -> float:
    """The largest difference between the window probabilities (and a frame model's frame probabilities) of
    ``checkpoint`` (torch, fp32, CPU) and of ``exported`` (onnxruntime) on ``seconds`` of seeded noise at the model's
    rate."""
    model = _fp32_model(checkpoint)
    rate = model.config.features.sample_rate
    noise = np.random.default_rng(0).uniform(-0.5, 0.5, int(seconds * rate)).astype(np.float32)
    frames = model.has_frames
    expected = model.waveform_probs(noise, frames=frames)
    got = OnnxModel.load(exported, device="cpu").waveform_probs(noise, frames=frames)
    outputs = (0, 2) if frames else (0,)  # window probabilities, frame probabilities (the window starts are equal)
    return max(float(np.abs(expected[i] - got[i]).max()) for i in outputs)


def metadata(model: ClipModel) -> dict[str, str]:
    """The ``metadata_props`` of an exported model (JSON strings; keys in :data:`METADATA`)."""
    # the oldest format that reads the file right, so that older sensors run what they can
    version = FORMAT_VERSION if model.open_set is not None else \
        CONTEXT_VERSION if context_seconds(model.meta) > 0 else NO_CONTEXT_VERSION
    values = {"format": FORMAT, "format_version": version, "version": __version__, "labels": model.labels,
              "config": model.config.to_dict(), "task": model.task.to_dict(), "meta": model.meta,
              "frames": {"frame_seconds": model.frame_seconds} if model.has_frames else None,
              "open_set": None if model.open_set is None else {"share": model.open_set.share}}
    return {METADATA[name]: json.dumps(value, default=str) for name, value in values.items()}


@contextlib.contextmanager
def _quiet():
    """Keep the exporter's progress lines, optimizer notes and warnings (e.g. that torchvision is absent) off the
    console: they describe torch's internals, not the user's model. Its errors still raise."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript", "onnx_ir")]
    levels = [logger.level for logger in loggers]
    chatter = io.StringIO()
    try:
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(chatter):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
        log.debug("torch.onnx.export said: %s", chatter.getvalue())


def _export(graph: OnnxGraph, features: FeatureConfig):
    """The ONNX ``ModelProto`` of ``graph``, with a dynamic number of samples and of windows."""
    samples = features.window_samples * 2
    example = (torch.zeros(1, samples), torch.tensor([0, 1], dtype=torch.int64))
    dims = {"waveform": {1: torch.export.Dim("samples", min=2, max=2 ** 31 - 1)},
            "starts": {0: torch.export.Dim("windows", min=1, max=2 ** 31 - 1)}}
    with _quiet():
        program = torch.onnx.export(graph, example, dynamo=True, opset_version=OPSET, dynamic_shapes=dims,
                                    input_names=["waveform", "starts"], output_names=OUTPUTS[:1 + graph.frames],
                                    verbose=False)
    return program.model_proto


def __getattr__(name: str):
    if name in _MOVED:
        warnings.warn(f"envsound.inference.onnx_export.{name} moved to envsound.features.onnx_frontends.{name}; "
                      "the old name goes in the next release", DeprecationWarning, stacklevel=2)
        from envsound.features import onnx_frontends

        return getattr(onnx_frontends, name)
    raise AttributeError(f"module 'envsound.inference.onnx_export' has no attribute {name!r}")
