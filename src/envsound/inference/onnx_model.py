"""A model exported by ``envsound export`` (an ``.onnx`` file), run by onnxruntime with numpy: no torch import.

:class:`OnnxModel` answers what :class:`~envsound.inference.predictor.Predictor` asks of a
:class:`~envsound.models.clip.ClipModel` (labels, task, config, ``waveform_probs``; a frame model's ``has_frames``,
``frame_seconds`` and frame probabilities), so files, waveforms, long recordings, ``envsound predict``, ``envsound
serve`` and :func:`envsound.load_model` work on either. The graph's inputs and outputs are described in
:mod:`envsound.inference.onnx_export`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from envsound.config import Config
from envsound.errors import CheckpointError, ConfigError
from envsound.features.windows import eval_starts
from envsound.models.runtimes import EngineRuntime
from envsound.task import Task

FORMAT = "envsound-onnx"
# 2: the config may hold features.trim_zeros and features.edge_pad (checkpoint format 12), which the Predictor
#    applies before the graph; an envsound that reads only format 1 says "upgrade" instead of refusing the keys.
# 3: the config has a runtime section and the on-the-fly augmentation under augment (checkpoint format 13); format
#    1-2 files load through config.RENAMED_KEYS.
# 4: the config's semi section has a sub-section per method (checkpoint format 16) and the config an events section
#    (format 17); format 1-3 files load through config.RENAMED_KEYS and the events defaults.
# 5: a frame model's file has a second output, frame_probs, and the metadata key frames (its frame_seconds); an
#    envsound that reads only format 4 says "upgrade" rather than decode its events from windows.
# 6: the config's events section may hold gap_seconds and hysteresis (checkpoint format 24); an envsound that reads
#    only format 5 says "upgrade" instead of refusing the keys. Format 1-5 files load with their defaults.
# 7: a single-label model's graph may gate its probabilities ("none of these": checkpoint format 25), said by the
#    metadata key open_set ({"share": s}), and the config's events section holds open_set; an envsound that reads
#    only format 6 says "upgrade" instead of refusing the key. Format 1-6 files load with no gate.
# 8: a learned model's meta may hold learned.context_seconds > 0 (checkpoint format 28): each window is scored with its
#    neighbours (envsound.events.context); an envsound that reads only 7 would score each alone, so it says "upgrade".
#    A model without context is still written as 7 (every older sensor reads it).
# 9: a gated graph gives a ruled-out class its probability negated, not 0 (envsound.models.open_set.OpenSet.gate), so
#    that a file the gate rejects can still be ranked; an envsound that reads only 8 would average the negative values,
#    so it says "upgrade". A format 7 gated file loads as it was (its rejected files have no closed-set ranking).
FORMAT_VERSION = 9
CONTEXT_VERSION = 8  # the format of an export with context and no gate
NO_CONTEXT_VERSION = 7  # the format of an export with neither
METADATA = {name: f"envsound.{name}" for name in
            ("format", "format_version", "version", "labels", "config", "task", "meta", "frames", "open_set")}
"""Our keys in the file's ``metadata_props``; every value is JSON."""
OUTPUTS = ["probs", "frame_probs"]
"""The graph's outputs: window probabilities, and (a frame model only) the windows' frame probabilities."""


OnnxRuntime = EngineRuntime  # where an ONNX model runs (its engine "onnxruntime"); the name kept for its users


class OnnxModel:
    """An exported model ready to score waveforms (see :meth:`load`)."""

    scores_windows = False  # cuts its own windows from the waveform (the graph holds the frontend)

    def __init__(self, session, *, config: Config, labels: list[str], task: Task, meta: dict[str, Any],
                 runtime: OnnxRuntime, frames: dict[str, float] | None = None,
                 open_set: dict[str, float] | None = None) -> None:
        self.session = session
        self.open_set = open_set  # {"share": s} when the graph gates its probabilities (a class ruled out: <= 0), else None
        self.frames = frames  # {"frame_seconds": s} for a frame model's file (format 5), else None
        self.config = config
        self.labels = list(labels)
        self.task = task
        self.meta = meta
        self.runtime = runtime

    @classmethod
    def load(cls, path: str | os.PathLike, *, device: str = "auto", precision: str = "auto") -> "OnnxModel":
        """Open the ``.onnx`` file at ``path`` on ``device`` (``auto`` or ``cpu``; ``cuda`` with onnxruntime-gpu).

        Raises:
            CheckpointError: missing file, not an ONNX model, or one without envsound's metadata (or a newer format).
            ConfigError: onnxruntime is not installed; ``device`` or ``precision`` this model cannot run at.
        """
        path = Path(path)
        if precision not in ("auto", "32"):
            raise ConfigError(f"--precision {precision}: an ONNX model runs in float32; use auto or 32")
        if not path.is_file():
            raise CheckpointError(f"{path}: ONNX model file not found")
        try:
            import onnxruntime
        except ImportError as exc:
            raise ConfigError(f"{path}: running an ONNX model needs onnxruntime ({exc}); pip install onnxruntime") \
                from exc
        provider = _provider(device, onnxruntime.get_available_providers())
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only: its warnings about unused initializers are not the user's
        try:
            session = onnxruntime.InferenceSession(str(path), options, providers=[provider])
        except Exception as exc:  # onnxruntime raises its own exception types for a file that is not a model
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise CheckpointError(f"{path}: not a readable ONNX model ({reason[:160]})") from exc
        fields = _metadata(path, session.get_modelmeta().custom_metadata_map)
        try:
            config = Config.from_dict(fields["config"])
            task = Task.from_dict(fields["task"])
        except (ConfigError, TypeError, KeyError) as exc:
            raise CheckpointError(f"{path}: the envsound metadata is invalid: {exc}") from exc
        frames = fields.get("frames")
        if frames is not None and OUTPUTS[1] not in [output.name for output in session.get_outputs()]:
            raise CheckpointError(f"{path}: the envsound metadata announces frames but the graph has no "
                                  f"{OUTPUTS[1]} output")
        return cls(session, config=config, labels=fields["labels"], task=task, meta=dict(fields.get("meta") or {}),
                   runtime=OnnxRuntime(accelerator="cuda" if provider.startswith("CUDA") else "cpu", provider=provider),
                   frames=frames, open_set=fields.get("open_set"))

    @property
    def n_classes(self) -> int:
        return len(self.labels)

    @property
    def has_frames(self) -> bool:
        """True for an exported frame model: its events come from its frames, as the checkpoint's do."""
        return self.frames is not None

    @property
    def frame_seconds(self) -> float:
        """Seconds between two frames of ``frame_probs`` (a frame model only)."""
        return float(self.frames["frame_seconds"])

    def waveform_probs(self, samples: np.ndarray, *, before: int | None = None, frames: bool = False) -> tuple:
        """A waveform ``(samples,)`` float32 at ``config.features.sample_rate`` -> (window probabilities ``(n, K)``,
        window starts): the evaluation windows of the whole waveform that start before ``before`` (all: ``None``).
        ``frames`` (a frame model): a third item, the windows' frame probabilities ``(n, steps, K)``."""
        features = self.config.features
        samples = np.ascontiguousarray(samples, dtype=np.float32)
        length = len(samples) if features.kind == "waveform" else features.frames(len(samples))
        starts = [s for s in eval_starts(length, features) if before is None or s < before]
        if not starts:
            empty = np.zeros((0, self.n_classes), dtype=np.float32)
            return (empty, [], np.zeros((0, 0, self.n_classes), dtype=np.float32)) if frames else (empty, [])
        outputs = self.session.run(OUTPUTS[:1 + frames], {"waveform": samples[None, :],
                                                         "starts": np.asarray(starts, dtype=np.int64)})
        outputs = [output.astype(np.float32, copy=False) for output in outputs]
        return (outputs[0], starts, outputs[1]) if frames else (outputs[0], starts)


def _provider(device: str, available: list[str]) -> str:
    wanted = {"auto": ["CUDAExecutionProvider", "CPUExecutionProvider"], "cpu": ["CPUExecutionProvider"],
              "cuda": ["CUDAExecutionProvider"]}.get(device)
    if wanted is None:
        raise ConfigError(f"--device {device}: an ONNX model runs on auto, cpu or cuda")
    for name in wanted:
        if name in available:
            return name
    raise ConfigError(f"--device {device}: this onnxruntime offers {', '.join(available)}; "
                      "install onnxruntime-gpu for CUDA")


def _metadata(path: Path, props: dict[str, str]) -> dict[str, Any]:
    if props.get(METADATA["format"]) != json.dumps(FORMAT):
        raise CheckpointError(f"{path}: an ONNX model without envsound's metadata; make one with "
                              "'envsound export MODEL.ckpt --format onnx'")
    try:
        fields = {name: json.loads(props[key]) for name, key in METADATA.items() if key in props}
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: the envsound metadata is not valid JSON: {exc}") from exc
    if fields.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{path}: ONNX export format {fields['format_version']} is newer than this envsound "
                              f"reads ({FORMAT_VERSION}); upgrade envsound")
    missing = [name for name in ("labels", "config", "task") if name not in fields]
    if missing:
        raise CheckpointError(f"{path}: the envsound metadata lacks {', '.join(missing)}")
    return fields
