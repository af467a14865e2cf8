"""A frozen trunk's frame steps of each clip, kept in memory for the next frame head trained on the same trunk and
clip in this process: a cross-validation's folds share two thirds of their training clips (k-fold, k = 4), and every
point of a grid over the head's settings shares all of them, so the trunk's shift-and-stitched steps (the cost of
``--preset sed``: four runs of the network per window) are computed once per clip rather than once per fit.

A clip's entry is keyed by what its steps depend on: the trunk's tensors (the ``--init`` weights a frame probe loads;
the head and the frame head are not read), the model's settings other than the frame head's size, the feature
settings (they cut the windows), the precision the trunk ran in, and the clip's features themselves. Entries are
evicted least recently used past :data:`MAX_BYTES`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import OrderedDict
from typing import Callable

import numpy as np
import torch

from envsound.config import Config

MAX_BYTES = 2 * 2 ** 30
"""What the cache may hold (float32 steps: about 0.5 MB a 10-s window of ``--preset sed``; 240 mixtures of 4-12 s a
fold, four folds: 0.8 GB)."""


class StepCache:
    """A least-recently-used map from a clip's key to its windows' steps ``(n, steps, D)``, at most ``max_bytes``."""

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self.entries: OrderedDict[str, np.ndarray] = OrderedDict()
        self.bytes = 0
        self.hits = self.misses = 0

    def get(self, key: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
        """The steps stored under ``key``, else ``compute()``'s, stored."""
        if key in self.entries:
            self.hits += 1
            self.entries.move_to_end(key)
            return self.entries[key]
        self.misses += 1
        steps = compute()
        if steps.nbytes <= self.max_bytes:
            self.entries[key] = steps
            self.bytes += steps.nbytes
            while self.bytes > self.max_bytes:
                self.bytes -= self.entries.popitem(last=False)[1].nbytes
        return steps

    def clear(self) -> None:
        self.entries.clear()
        self.bytes = self.hits = self.misses = 0


STEPS = StepCache()
"""The process's cache, read by :func:`~envsound.transfer.frame_probe.fit_frame_head`."""


def trunk_key(trunk: dict[str, torch.Tensor], config: Config, *, precision: str) -> str:
    """What a clip's steps depend on besides the clip: ``trunk`` (the tensors loaded into the network before its frame
    head is trained), the model settings but the frame head's size, the feature settings, the precision."""
    digest = hashlib.sha256()
    for name in sorted(trunk):
        tensor = trunk[name].detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())  # any dtype, bf16 too
    model = dataclasses.asdict(config.model)
    model["options"] = {k: v for k, v in model["options"].items() if k != "frame_head"}
    settings = {"model": model, "features": dataclasses.asdict(config.features), "precision": precision}
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def clip_key(trunk: str, features: np.ndarray) -> str:
    """One clip's key under a :func:`trunk_key`."""
    features = np.ascontiguousarray(features)
    digest = hashlib.blake2b(f"{trunk}:{features.shape}:{features.dtype}".encode(), digest_size=20)
    digest.update(features.tobytes())
    return digest.hexdigest()
