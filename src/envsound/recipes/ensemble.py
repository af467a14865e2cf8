"""Training an ensemble (``train.ensemble`` = N > 1): N ordinary fits, one after another, then one set of weights.

Member ``i`` (1-based) is trained with ``train.seed + i - 1`` in ``out_dir/member_<i>/`` (its own Lightning log and
checkpoints). A finished member's weights are kept in ``member_<i>/member.pt``, so ``--resume`` after an interruption
skips the members that are done and continues the one that was running.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Callable

import torch

from envsound.config import Config
from envsound.fileio import atomic_path
from envsound.training.loop.fit import FitResult, saved_fit

log = logging.getLogger(__name__)

MEMBER_WEIGHTS = "member.pt"


def member_config(config: Config, index: int) -> Config:
    """The config member ``index`` (0-based) trains with: a single network, seed ``train.seed + index``."""
    member = copy.deepcopy(config)
    member.train.ensemble = 1
    member.train.seed = config.train.seed + index
    return member


def fit_ensemble(config: Config, fit_member: Callable[[Config, Path], FitResult], *, out_dir: Path,
                 resume: bool) -> FitResult:
    """Fit ``config.train.ensemble`` members with ``fit_member(member_config, member_dir)`` and return the weights of
    the :class:`~envsound.models.ensemble.Ensemble` (``members.<i>.*``); ``epochs`` and ``steps`` are the longest
    member's, ``best_score`` the members' mean (None if any member has none)."""
    results: list[FitResult] = []
    for index in range(config.train.ensemble):
        member_dir = out_dir / f"member_{index + 1}"
        done = member_dir / MEMBER_WEIGHTS
        if resume and done.exists():
            log.info("ensemble member %d of %d: already trained (%s)", index + 1, config.train.ensemble, done)
            results.append(saved_fit(torch.load(done, map_location="cpu", weights_only=True)))
            continue
        log.info("ensemble member %d of %d (seed %d)", index + 1, config.train.ensemble, config.train.seed + index)
        member_dir.mkdir(parents=True, exist_ok=True)
        fit = fit_member(member_config(config, index), member_dir)
        if fit.is_global_zero:  # the weights are the same in every process of a multi-process run; one writes
            with atomic_path(done) as tmp:
                torch.save({"state_dict": fit.state_dict, "epochs": fit.epochs, "best_score": fit.best_score,
                            "steps": fit.steps}, tmp)
        results.append(fit)
    state = {f"members.{i}.{key}": value for i, fit in enumerate(results) for key, value in fit.state_dict.items()}
    scores = [fit.best_score for fit in results]
    return FitResult(state_dict=state, from_loop=True, epochs=max(fit.epochs for fit in results),
                     best_score=None if None in scores else sum(scores) / len(scores),
                     runtime=next((fit.runtime for fit in results if fit.runtime is not None), None),
                     is_global_zero=results[-1].is_global_zero, steps=max(fit.steps for fit in results))
