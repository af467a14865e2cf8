"""Self-training (``semi.method=self_training``): supervised rounds, each on the labelled clips plus the unlabelled
clips the previous round's model is surest of, with its guesses as their labels (curriculum labelling: Cascante-Bonilla
et al., "Curriculum Labeling: Revisiting Pseudo-Labeling for Semi-Supervised Learning", AAAI 2021).

Round 0 trains on the labelled clips alone. Before round r >= 1 the last model scores every unlabelled clip as it scores
a test clip (its windows' probabilities averaged), and in each class it predicts keeps its ``semi.self_training.rounds[r
- 1]`` share of the pool, the clips it is most confident of (class-balanced: a class keeps at most share x pool /
classes clips, so a class the model over-predicts cannot fill the set). Every round trains a fresh network for the run's
step budget, the optimizer steps round 0 made (a round on more clips makes fewer epochs, not more steps; a run without
``train.min_steps`` trains every round ``train.max_epochs``): the paper restarts from scratch so that a round does not
inherit its teacher's mistakes; ``semi.self_training.round_init=previous`` goes on from the previous round's weights
instead (with a fresh optimizer and schedule). With ``semi.self_training.round_budget=split`` the rounds share that
budget instead (each its ``1 / (len(rounds) + 1)`` part), so the run makes a supervised run's optimizer steps, not
``len(rounds) + 1`` times as many. The last round's model is the run's. Pseudo-labelled clips bring their offline
copies, as labelled ones do, and are clips of origin ``noisy``: the ``noisy`` section's loss (``noisy.noisy_loss``, e.g.
``lq``, a loss that tolerates wrong labels) and window share (``noisy.noisy_share``) apply to them, the labelled clips
keep ``noisy.curated_loss``.

A finished round's weights and pseudo-labels are kept in ``round_<r>/round.pt``, so ``--resume`` after an interruption
goes on from the round that was running.
"""

from __future__ import annotations

import copy
import logging
import math
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from envsound.config import Config
from envsound.errors import ConfigError
from envsound.fileio import atomic_path
from envsound.models.checkpoint import Checkpoint
from envsound.models.clip import ClipModel
from envsound.task import Task
from envsound.training.loop.clips import ClipSet
from envsound.training.loop.fit import FitResult, min_steps, saved_fit
from envsound.transfer.source import InitPlan, plan_from_weights

log = logging.getLogger(__name__)

ROUND_STATE = "round.pt"


def confident_subset(probs: np.ndarray, share: float) -> np.ndarray:
    """Indices of the rows of ``probs`` ``(n_clips, n_classes)`` to pseudo-label: in each predicted class the most
    confident, at most ``round(share * n_clips / n_classes)`` of them; sorted."""
    n_clips, n_classes = probs.shape
    per_class = int(round(share * n_clips / n_classes))
    guess, confidence = probs.argmax(axis=1), probs.max(axis=1)
    kept: list[int] = []
    for c in range(n_classes):
        members = np.flatnonzero(guess == c)
        kept += members[np.argsort(-confidence[members], kind="stable")][:per_class].tolist()
    return np.array(sorted(kept), dtype=np.int64)


def round_config(config: Config, *, rounds: int = 1, steps: int = 0, pseudo: bool = True) -> Config:
    """The config each of ``rounds`` rounds trains with: a supervised run of the same network (``pseudo`` False: round
    0, which has no pseudo-labelled clips to draw ``noisy.noisy_share`` of its windows from). With
    ``semi.self_training.round_budget=full`` and a step budget (``train.min_steps``), a round after the first makes
    ``steps`` optimizer steps, those of round 0 (0: as configured); with ``split`` every round makes the ``1 / rounds``
    part of the run's step budget. Either way ``train.max_epochs`` is 1, raised to reach those steps in whole epochs, so
    that a round on more clips does not make more. Without a step budget every round trains ``train.max_epochs`` (and
    early stopping decides, as in a supervised run)."""
    supervised = copy.deepcopy(config)
    supervised.semi.method = "none"
    if not pseudo:
        supervised.noisy.noisy_share = 0.0
    budget = min_steps(config)
    if config.semi.self_training.round_budget == "split":
        if not budget:
            raise ConfigError("semi.self_training.round_budget=split shares the run's train.min_steps between its "
                              "rounds, and this run has none: set train.min_steps")
        steps = math.ceil(budget / rounds)
    if steps and budget:
        supervised.train.min_steps, supervised.train.max_epochs = steps, 1
    return supervised


def fit_self_training(config: Config, fit_round: Callable[[Config, Path, ClipSet, InitPlan | None], FitResult], *,
                      labelled: ClipSet, pool: ClipSet, labels: Sequence[str], task: Task, out_dir: Path,
                      resume: bool) -> tuple[FitResult, list[dict]]:
    """Run round 0 and one round per share of ``config.semi.self_training.rounds`` with ``fit_round(config, round_dir,
    clips, start)``, ``start`` the previous round's weights with ``semi.self_training.round_init=previous`` (else
    ``None``: the run's own start); ``pool``'s targets are ignored (its features and copies are used). Returns the last
    round's fit and one summary per round (``round``, ``share``, ``clips``, ``pseudo_labelled``, ``per_class``)."""
    rounds = [0.0, *config.semi.self_training.rounds]
    fit: FitResult | None = None
    steps = 0  # round 0's optimizer steps, every later round's with semi.self_training.round_budget=full
    summary: list[dict] = []
    for index, share in enumerate(rounds):
        round_dir = out_dir / f"round_{index}"
        done = round_dir / ROUND_STATE
        if resume and done.exists():
            state = torch.load(done, map_location="cpu", weights_only=True)
            fit, kept, guessed = saved_fit(state["fit"]), state["kept"], state["guess"]
            log.info("self-training round %d of %d: already trained (%s)", index, len(rounds) - 1, done)
        else:
            kept, guess = np.zeros(0, np.int64), np.zeros(0, np.int64)
            clips = labelled
            if index:
                probs = _clip_probs(fit, config, labels, task, pool.features)
                kept, guess = confident_subset(probs, share), probs.argmax(axis=1)
                clips = labelled.plus(ClipSet([pool.features[i] for i in kept],
                                              np.eye(len(labels), dtype=np.float32)[guess[kept]],
                                              [pool.variants[i] for i in kept] if pool.variants else (),
                                              np.ones(len(kept), np.float32)))
            log.info("self-training round %d of %d: %d labelled + %d pseudo-labelled clips", index, len(rounds) - 1,
                     len(labelled.features), len(kept))
            round_dir.mkdir(parents=True, exist_ok=True)
            start = plan_from_weights(fit.state_dict, labels, source=f"self-training round {index - 1}") \
                if index and config.semi.self_training.round_init == "previous" else None
            fit = fit_round(round_config(config, rounds=len(rounds), steps=steps, pseudo=bool(index)), round_dir,
                            clips, start)
            guessed = guess[kept]
            if fit.is_global_zero:  # every process of a multi-process run scores the pool alike; one writes
                with atomic_path(done) as tmp:
                    torch.save({"fit": {"state_dict": fit.state_dict, "epochs": fit.epochs,
                                        "best_score": fit.best_score, "steps": fit.steps},
                                "kept": torch.from_numpy(kept), "guess": torch.from_numpy(guessed)}, tmp)
        if not index:
            steps = fit.steps  # 0 from a round 0 saved before FitResult.steps: later rounds train as configured
        summary.append(_round_summary(index, share, labelled, kept, guessed, labels))
    return fit, summary


def round_model(state_dict: dict, config: Config, labels: Sequence[str], task: Task, *,
                device: str = "auto") -> ClipModel:
    """A round's network as a :class:`ClipModel`, scoring clips as ``evaluate`` does."""
    checkpoint = Checkpoint(config=round_config(config), labels=list(labels), task=task, state_dict=state_dict)
    return ClipModel.from_checkpoint(checkpoint, device=device)


def _clip_probs(fit: FitResult, config: Config, labels: Sequence[str], task: Task,
                features: Sequence[np.ndarray]) -> np.ndarray:
    """The clip probabilities of ``fit``'s network on ``features``, on the device it trained on."""
    device = fit.runtime.accelerator if fit.runtime is not None else "auto"
    return round_model(fit.state_dict, config, labels, task, device=device).predict_clips(list(features))


def _round_summary(index: int, share: float, labelled: ClipSet, kept, guess, labels: Sequence[str]) -> dict:
    counts = np.bincount(np.asarray(guess, dtype=np.int64), minlength=len(labels))
    return {"round": index, "share": share, "clips": len(labelled.features) + len(kept),
            "pseudo_labelled": len(kept), "per_class": {label: int(n) for label, n in zip(labels, counts)}}
