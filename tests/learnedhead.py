"""A head learned over a tiny frozen network (tests/tinytflite.py), made in a second without a store: the member
installed into ``$ENVSOUND_MODELS`` (set by the caller) as ``envsound download --from`` installs it, the head
written by :func:`envsound.models.litert.write_learned` (what ``envsound learn`` calls). The tiny network's embedding
is the mean of its window's 1,024-sample segments, so a waveform with an offset of 0.3 reads as ``bird`` (p ~ 0.95)
and noise around 0 as ``rain``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
from tinytflite import birdnet_folder, yamnet_files

LABELS = ["bird", "rain"]
THRESHOLDS = [0.5, 0.4]


def learned_head(folder: Path, member: str = "birdnet-v2.4") -> Path:
    """Install the tiny ``member`` and write a head over it at ``folder/learned/model.ckpt`` (returned)."""
    from envsound.models.litert import write_learned
    from envsound.transfer.install_frozen import install_frozen

    copy = birdnet_folder(folder / "copy") if member == "birdnet-v2.4" else yamnet_files(folder / "copy")
    trunk = install_frozen(member, source=copy, progress=False).path
    weight = np.zeros((2, 1024), np.float32)
    weight[0], weight[1] = 20 / 1024, -20 / 1024  # 20 x the embedding's mean, against it
    return write_learned(trunk, LABELS, weight, np.array([-3.0, 3.0], np.float32), THRESHOLDS,
                         folder / "learned" / "model.ckpt", meta={"learned": {"labels": {}}})


def recording(path: Path, rate: int, window_seconds: float, pattern: str = "rbbr", seed: int = 0) -> Path:
    """A recording of one window per letter of ``pattern``: ``b`` bird (noise + 0.3), ``r`` rain (noise)."""
    rng = np.random.default_rng(seed)
    width = int(round(rate * window_seconds))
    parts = [rng.uniform(-0.2, 0.2, width) + (0.3 if letter == "b" else 0.0) for letter in pattern]
    sf.write(path, np.concatenate(parts).astype(np.float32), rate, subtype="FLOAT")
    return path


def light_install(code: str) -> str:
    """A ``python -c`` script running ``code`` (``json`` and ``sys`` imported) where every package ``pip install
    envsound`` lacks cannot be imported (torch and the train, export, scan and cluster extras), nor onnxruntime: an
    exported head needs neither torch nor a second runtime beside LiteRT."""
    return f"""
import json, sys

ABSENT = {{"torch", "lightning", "torchmetrics", "sklearn", "scipy", "skops", "matplotlib", "audiomentations",
          "librosa", "pandas", "onnx", "onnxscript", "onnxruntime", "pyarrow", "ray"}}

class Absent:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ABSENT:
            raise ImportError(f"{{name}} is blocked: not in the light install")

sys.meta_path.insert(0, Absent())
{code}
"""
