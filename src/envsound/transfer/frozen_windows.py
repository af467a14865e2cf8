"""A frozen network's outputs and embeddings of a clip's windows, computed once per process: the windows of a clip
do not depend on the fold, so a cross-validation's probe and evaluation of every fold read one computation (a
clip of ESC-10 trains in three folds and is tested in the fourth).

Kept in memory (up to :data:`CACHE_BYTES`, oldest first out), keyed by the network file (path, size, modification
time) and the windows' bytes: whatever cuts the windows, the same samples give the same answer.
"""

from __future__ import annotations

import functools
import hashlib
from collections import OrderedDict
from pathlib import Path

import numpy as np

from envsound.config import FeatureConfig
from envsound.features.windows import eval_windows
from envsound.models.litert import LiteRTNetwork, open_network

CACHE_BYTES = 1 << 30  # 1 GiB: ESC-10 (320 clips of 5 s) takes 17 MB with BirdNET, 20 MB with YAMNet
_CACHE: OrderedDict[tuple, tuple[np.ndarray, np.ndarray]] = OrderedDict()
_SIZE = [0]  # bytes held by _CACHE
LOGIT_EDGE = 1e-7  # a score of exactly 0 or 1 (a quantized output) read as this far inside (logit +-16.1)


def frozen_network(path: str | Path) -> LiteRTNetwork:
    """The network in the file ``path`` (a TFLite file, or a spec member's: :func:`~envsound.models.litert.
    open_network`), opened once per process (and again when the file changes), keeping
    its tensors so :func:`window_outputs` reads the embedding.

    Raises:
        CheckpointError: not BirdNET V2.4's or YAMNet's network (see :meth:`LiteRTNetwork.open`).
        ConfigError: LiteRT is not installed.
    """
    stat = Path(path).stat()
    return _opened(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=2)
def _opened(path: str, size: int, mtime_ns: int) -> LiteRTNetwork:
    return open_network(path, embedding=True)


def window_outputs(network: LiteRTNetwork, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Windows ``(n, input_samples)`` or ``(n, 1, input_samples)`` float32 at the network's rate -> (its outputs
    ``(n, n_classes)``: BirdNET's logits, YAMNet's scores; the embeddings ``(n, embedding_width)``), both float32,
    computed once per process for the same windows of the same file (read-only arrays: copy before changing)."""
    windows = np.ascontiguousarray(np.asarray(windows, dtype=np.float32).reshape(len(windows), -1))
    stat = network.path.stat()
    key = (str(network.path), stat.st_size, stat.st_mtime_ns, windows.shape,
           hashlib.blake2b(windows.tobytes(), digest_size=16).digest())
    found = _CACHE.get(key)
    if found is not None:
        _CACHE.move_to_end(key)
        return found
    outputs, embeddings = network.run(windows)
    for array in (outputs, embeddings):
        array.flags.writeable = False
    _CACHE[key] = (outputs, embeddings)
    _SIZE[0] += outputs.nbytes + embeddings.nbytes
    while _SIZE[0] > CACHE_BYTES and len(_CACHE) > 1:
        _, (old_out, old_emb) = _CACHE.popitem(last=False)
        _SIZE[0] -= old_out.nbytes + old_emb.nbytes
    return outputs, embeddings


def clip_outputs(network: LiteRTNetwork, features: np.ndarray, cfg: FeatureConfig) -> tuple[np.ndarray, np.ndarray]:
    """One clip's waveform ``(1, samples)`` (its features under ``cfg``, the network's rate) -> :func:`window_outputs`
    of its evaluation windows (:func:`~envsound.features.windows.eval_windows`: every ``eval_hop_seconds``, one
    aligned to the end, a clip shorter than a window zero-padded; the windows ``predict`` scores)."""
    windows, _ = eval_windows(features, cfg)
    return window_outputs(network, windows)


def output_logits(network: LiteRTNetwork, outputs: np.ndarray) -> np.ndarray:
    """A network's outputs ``(n, n_classes)`` as logits, float64: BirdNET's as they are; YAMNet's scores (a sigmoid
    of its logits) turned back, ``log(p / (1 - p))``, ``p`` kept within :data:`LOGIT_EDGE` of 0 and 1."""
    outputs = np.asarray(outputs, dtype=np.float64)
    if network.release.activation == "sigmoid":  # the file outputs logits, the sigmoid is ours
        return outputs
    scores = np.clip(outputs, LOGIT_EDGE, 1 - LOGIT_EDGE)
    return np.log(scores) - np.log1p(-scores)


def cache_entries() -> int:
    """How many window sets (one a clip, as :func:`clip_outputs` asks) are held now."""
    return len(_CACHE)


def clear_cache() -> None:
    """Forget every window computed (tests; a long-lived process that embedded a corpus and moves on)."""
    _CACHE.clear()
    _SIZE[0] = 0
