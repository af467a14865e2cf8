"""What a fit makes, in memory, before a checkpoint is written (:class:`FitResult`); free of Lightning, so the fit paths
that train no network (a probe, a baseline) return it without importing the loop."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from envsound.hardware import Runtime


@dataclass
class FitResult:
    """The model one fit made: a network's weights (``state_dict``) or a scikit-learn baseline's bytes
    (``sklearn_bytes``), and ``meta``, what the checkpoint records of how it was fitted.

    ``from_loop``: a training loop made it (one network, an ensemble, self-training rounds); then ``epochs``,
    ``best_score`` (the monitored metric at the kept epoch), ``runtime`` (``None`` when read back from a finished part
    of a run), ``steps`` (optimizer steps; 0 where not known) and ``is_global_zero`` (False in the other processes of a
    multi-process run: they write nothing) say how it ran. A probe or a baseline keeps the defaults.
    """

    state_dict: dict[str, torch.Tensor] | None = None
    sklearn_bytes: bytes | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    from_loop: bool = False
    epochs: int = 0
    best_score: float | None = None
    runtime: Runtime | None = None
    is_global_zero: bool = True
    steps: int = 0
