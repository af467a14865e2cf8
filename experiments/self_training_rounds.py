"""Round by round, what a cross-validated self-training run did: how many pool clips each round pseudo-labelled, how
many of those labels were right, and each round's model on the test fold.

    .venv/bin/python experiments/self_training_rounds.py --root ../shared/data/esc50 \
        --cv experiments/out/semi-s28-cv/cnn/p0.1/self_training [--dataset esc10] [--folds 1 2 3 4] \
        [--pool esc10 | esc50]

``--cv`` is the folder of an ``envsound cv ... --semi self_training`` run (or an ``experiments/semi_supervised.py``
row): ``fold_<k>/model.ckpt`` and ``fold_<k>/round_<r>/round.pt``; ``--folds`` are the run's folds (each test fold's
model trained on the others); ``--pool`` is the pool the run had (``semi_supervised.py --pool``: ``esc50`` = the clips
left unlabelled plus every clip of the ESC-50 root's other folds; its clips of the other 40 classes are counted in
``other_class``, a pseudo-label that cannot be right). Diagnostic only: it reads the labels of the pool and of the
test fold, which the run never saw, and nothing here chose the run's settings (a round count picked by these test
accuracies would be tuned on the test folds). Prints a Markdown table and writes ``CV/rounds.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch

from envsound.data.registry import load_dataset
from envsound.data.splits import exclude_clips_of, labelled_subset, merge_unlabelled
from envsound.evaluation.evaluate import evaluate_model
from envsound.features.cache import FeatureCache
from envsound.fileio import write_json_atomic
from envsound.models.checkpoint import load_checkpoint
from envsound.recipes.self_training import ROUND_STATE, round_model


def fold_rounds(cv: Path, fold: int, folds: list[int], manifest, cache: FeatureCache, extra=None) -> list[dict]:
    """One row per finished round of test fold ``fold``: pseudo-labelled clips, how many right, how many of a class
    the run does not know, test accuracy. ``extra``: the manifest the run's pool added (``--pool esc50``), or None."""
    checkpoint = load_checkpoint(cv / f"fold_{fold}" / "model.ckpt")
    config = checkpoint.config
    train = manifest.select_folds([f for f in folds if f != fold])
    test = manifest.select_folds([fold])
    # the pool as cross_validate and train_model built it: the training folds' clips left unlabelled, then the extra
    # manifest's clips outside the test fold, each file once, in order
    _, rest = labelled_subset(train, fraction=config.train.label_fraction, seed=config.train.seed)
    pools = [rest] if extra is None else [rest, exclude_clips_of(extra, test, fold=fold)]
    pool = merge_unlabelled(*pools)
    if len(pool) != checkpoint.meta["n_unlabelled_clips"]:
        raise SystemExit(f"fold {fold}: the run's pool held {checkpoint.meta['n_unlabelled_clips']} clips, this "
                         f"--pool gives {len(pool)}: pass the --pool the run had")
    label_of = {os.path.abspath(r.path): r.labels[0] for m in reversed(pools) for r in m.records}
    truth = [label_of[os.path.abspath(r.path)] for r in pool.records]
    rows = []
    for index in range(len(config.semi.self_training.rounds) + 1):
        path = cv / f"fold_{fold}" / f"round_{index}" / ROUND_STATE
        if not path.exists():
            break
        state = torch.load(path, map_location="cpu", weights_only=True)
        kept, guess = state["kept"].numpy(), state["guess"].numpy()
        right = sum(checkpoint.labels[g] == truth[i] for i, g in zip(kept, guess))
        other_class = sum(truth[i] not in checkpoint.labels for i in kept)
        model = round_model(state["fit"]["state_dict"], config, checkpoint.labels, checkpoint.task)
        evaluation = evaluate_model(model, test, cache=cache, progress=False)
        accuracy = float(np.mean(evaluation.y_prob.argmax(axis=1) == evaluation.y_true))
        rows.append({"fold": fold, "round": index, "pseudo_labelled": len(kept), "right": int(right),
                     "other_class": int(other_class), "test_accuracy": accuracy})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--cv", type=Path, required=True)
    parser.add_argument("--dataset", default="esc10")
    parser.add_argument("--folds", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--pool", choices=("esc10", "esc50"), default="esc10",
                        help="the run's pool: esc50 = with every clip of the ESC-50 root's other folds")
    args = parser.parse_args(argv)
    manifest = load_dataset(args.dataset, args.root)
    extra = load_dataset("esc50", args.root).select_folds(args.folds) if args.pool == "esc50" else None
    done = [k for k in args.folds if (args.cv / f"fold_{k}" / "model.ckpt").exists()]
    rows = [row for fold in done for row in fold_rounds(args.cv, fold, args.folds, manifest, FeatureCache(), extra)]
    print("| fold | round | pseudo-labelled | right | of another class | test accuracy |\n|---|---|---|---|---|---|")
    for r in rows:
        share = f"{r['right']} ({100 * r['right'] / r['pseudo_labelled']:.1f} %)" if r["pseudo_labelled"] else "-"
        print(f"| {r['fold']} | {r['round']} | {r['pseudo_labelled']} | {share} | {r['other_class']} "
              f"| {100 * r['test_accuracy']:.2f} |")
    for index in sorted({r["round"] for r in rows}):
        accs = [100 * r["test_accuracy"] for r in rows if r["round"] == index]
        spread = np.std(accs, ddof=1) if len(accs) > 1 else 0.0
        print(f"round {index}: test accuracy {np.mean(accs):.1f} ± {spread:.1f} % over {len(accs)} fold(s)")
    write_json_atomic(args.cv / "rounds.json", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
