"""Would another labeller have pseudo-labelled better? For each round of a cross-validated self-training run, how
many of the labels ``confident_subset`` would keep are right when the pool is scored by:

- ``last``: the previous round's model on each clip (what the run did);
- ``tta``: the same model, its probabilities averaged over the clip and its offline copies (test-time augmentation);
- ``rounds``: the mean of every earlier round's model (an ensemble of the rounds so far);
- ``rounds+tta``: both.

    .venv/bin/python experiments/self_training_labellers.py --root ../shared/data/esc50 \
        --cv experiments/out/semi-s37-prev/cnn/p0.1/self_training [--folds 1 2 3 4]

``--cv`` is an ESC-10 self-training row of ``experiments/semi_supervised.py`` (``--pool esc10``) with its
``fold_<k>/round_<r>/round.pt``. Diagnostic only: it reads the pool's labels, which no run sees; it trains nothing
(each labeller scores the rounds the run trained, so from round 2 on they are judged on another labeller's rounds).
Prints one line per fold and round and the totals per round.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch

from envsound.data.registry import load_dataset
from envsound.features.cache import FeatureCache
from envsound.models.checkpoint import load_checkpoint
from envsound.recipes.self_training import ROUND_STATE, confident_subset, round_model
from envsound.training.prepare import prepare_training_data

LABELLERS = ("last", "tta", "rounds", "rounds+tta")


def with_copies(model, features, variants) -> np.ndarray:
    """Each clip's probabilities averaged over the clip and its offline copies."""
    flat = [v for clip in variants for v in clip]
    owner = np.repeat(np.arange(len(variants)), [len(clip) for clip in variants])
    total = model.predict_clips(list(features))
    np.add.at(total, owner, model.predict_clips(flat))
    return total / (1 + np.bincount(owner, minlength=len(variants)))[:, None]


def fold_labellers(cv: Path, fold: int, folds: list[int], manifest, cache: FeatureCache) -> dict:
    """``{(round, labeller): (right, kept)}`` for test fold ``fold``."""
    checkpoint = load_checkpoint(cv / f"fold_{fold}" / "model.ckpt")
    config = checkpoint.config
    train = manifest.select_folds([f for f in folds if f != fold])
    # the run's pool and its copies, as train_model built them (the same seed, the cached copies)
    data = prepare_training_data(train, config, held_out=[manifest.select_folds([fold])], cache=cache,
                                 progress=False)
    label_of = {os.path.abspath(r.path): r.labels[0] for r in train.records}
    truth = np.array([checkpoint.labels.index(label_of[os.path.abspath(r.path)]) for r in data.unlabelled])
    plain, augmented, counts = [], [], {}
    for index, share in enumerate([0.0, *config.semi.self_training.rounds]):
        if index:
            scores = {"last": plain[-1], "tta": augmented[-1], "rounds": np.mean(plain, axis=0),
                      "rounds+tta": np.mean(augmented, axis=0)}
            for name, probs in scores.items():
                kept = confident_subset(probs, share)
                counts[index, name] = (int((probs.argmax(1)[kept] == truth[kept]).sum()), len(kept))
            print(f"fold {fold} round {index}: " + ", ".join(f"{n} {counts[index, n][0]}/{counts[index, n][1]}"
                                                            for n in LABELLERS), flush=True)
        state = torch.load(cv / f"fold_{fold}" / f"round_{index}" / ROUND_STATE, map_location="cpu",
                           weights_only=True)
        model = round_model(state["fit"]["state_dict"], config, checkpoint.labels, checkpoint.task, device="cpu")
        plain.append(model.predict_clips(list(data.unlabelled_features)))
        augmented.append(with_copies(model, data.unlabelled_features, data.unlabelled_variants))
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--cv", type=Path, required=True)
    parser.add_argument("--folds", type=int, nargs="+", default=[1, 2, 3, 4])
    args = parser.parse_args(argv)
    manifest, cache = load_dataset("esc10", args.root), FeatureCache()
    totals: dict = {}
    for fold in args.folds:
        for key, (right, kept) in fold_labellers(args.cv, fold, args.folds, manifest, cache).items():
            totals[key] = np.add(totals.get(key, (0, 0)), (right, kept))
    print("\n| round | " + " | ".join(LABELLERS) + " |\n|---|" + "---|" * len(LABELLERS))
    for index in sorted({r for r, _ in totals}):
        print(f"| {index} | " + " | ".join(f"{totals[index, n][0]}/{totals[index, n][1]} = "
                                          f"{totals[index, n][0] / totals[index, n][1]:.1%}" for n in LABELLERS) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
