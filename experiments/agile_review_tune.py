"""Choosing the agile loop's settings on classes that are not reported: the 40 ESC-50 classes outside ESC-10, on the
archive of ``agile_review.py`` (run it first: it writes the recordings and the store).

For each of these classes (or a seeded ``--classes-n`` of them) the example is a clip of the class inside the
archive: its stored window aligned with the clip is the query, and the windows centred in that clip are never
reviewed and left out of the average precision. The loop is ``learn_verdicts``'s, by its parts (``fit_head``, the
weak-negative sample's rule, ``calibrate`` and ``suggest``), without writing a model each round, so a setting costs a
minute, not a quarter of an hour. Settings tried: the learner's C, the weak negatives' weight (0: none), and the
suggestion rule: ``threshold`` (``suggest``: nearest the calibrated threshold), ``half`` (nearest 0.5, the
learner's balanced boundary), ``top`` (the highest scores), each with one window a file.

    .venv/bin/python experiments/agile_review_tune.py --out experiments/out/agile-review \\
        --settings C=1,rule=threshold C=0.1,rule=threshold C=1,rule=half C=1,rule=top

Figures: docs/results.md, "From one example to a detector (issue 67)".
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score

import envsound.agile.learn as learn
from envsound.agile.calibrate import calibrate
from envsound.agile.suggest import suggest
from envsound.inference.embeddings import EmbeddingsStore

from agile_review import CLIP_SECONDS, window_truth


def one_a_file(order: np.ndarray, files: np.ndarray, k: int) -> list[int]:
    chosen, seen = [], set()
    for i in order:
        if files[i] not in seen:
            chosen.append(int(i))
            seen.add(files[i])
        if len(chosen) == k:
            break
    return chosen


def run(setting: dict, *, store: EmbeddingsStore, x: np.ndarray, windows: pd.DataFrame, label: str, query: int,
        excluded: np.ndarray, rounds: int, k: int, seed: int) -> list[float]:
    """AP after each round for one dev class under ``setting``."""
    learn.C, learn.WEAK_WEIGHT = setting["C"], setting["weak"] or learn.WEAK_WEIGHT
    rng = np.random.default_rng(seed)
    truth = (windows.category == label).to_numpy()
    files = windows.file.to_numpy()
    keep = np.ones(len(truth), bool)
    keep[excluded] = False
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    similarity = unit @ unit[query]
    blocked = set(int(i) for i in excluded)
    order = [int(i) for i in np.argsort(-similarity, kind="stable") if int(i) not in blocked]
    reviewed = order[:k]
    aps = []
    for r in range(rounds):
        ids = np.array(reviewed, np.int64)
        said = truth[ids]
        if not said.any() or (not setting["weak"] and said.all()):
            scores, next_ids = similarity, [i for i in order if i not in set(reviewed)][:k]
        else:
            free = np.setdiff1d(np.flatnonzero(keep), ids)
            weak = np.sort(rng.choice(free, size=min(max(learn.WEAK_MIN, learn.WEAK_PER_YES * int(said.sum())),
                                                     len(free)), replace=False)) if setting["weak"] else \
                np.zeros(0, np.int64)
            weight, bias = learn.fit_head(x[ids], said, x[weak])
            scores = 1 / (1 + np.exp(-(x @ weight + bias)))
            rule = setting["rule"]
            if rule == "threshold":
                def fit(xt, tt, wx=x[weak]):
                    w, b = learn.fit_head(xt, tt, wx)
                    return lambda xh: 1 / (1 + np.exp(-(xh @ w + b)))
                threshold = calibrate(label, x[ids], said, files[ids], fit, seed=seed).threshold
                hits = suggest(store, weight[None, :], np.array([bias]), [label], thresholds=[threshold],
                               labelled={label: np.r_[ids, excluded]}, top=k)
                next_ids = [h.window for h in hits]
            else:
                distance = np.abs(scores - 0.5) if rule == "half" else -scores
                distance = distance.astype(np.float64)
                distance[~keep] = np.inf
                distance[ids] = np.inf
                next_ids = one_a_file(np.argsort(distance, kind="stable"), files, k)
        aps.append(float(average_precision_score(truth[keep], scores[keep])))
        reviewed += next_ids
    return aps


def parse(text: str) -> dict:
    setting = {"C": 1.0, "weak": 0.1, "rule": "threshold"}
    for part in text.split(","):
        key, value = part.split("=")
        setting[key] = value if key == "rule" else float(value)
    return setting


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="agile_review.py's --out")
    parser.add_argument("--settings", nargs="+", default=["C=1"], help="KEY=VALUE,...: C, weak (0: none), rule")
    parser.add_argument("--classes-n", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.monotonic()
    store = EmbeddingsStore(args.out / "archive.db")
    truth = pd.read_csv(args.out / "truth.csv")
    windows = window_truth(store, truth)
    x = store.vectors(windows.window.to_numpy()).astype(np.float64)
    esc10 = set(pd.read_csv(args.out / "held_out.csv").category)
    dev = sorted(set(truth.category) - esc10)
    rng = np.random.default_rng(args.seed)
    dev = sorted(rng.choice(dev, size=min(args.classes_n, len(dev)), replace=False))
    rows = []
    for label in dev:
        clips = truth[truth.category == label]
        clip = clips.iloc[int(rng.integers(len(clips)))]
        mine = windows[(windows.recording == clip["file"]) & (windows["clip"] == clip["clip"])]
        query = int(mine.iloc[(mine.start - clip["clip"] * CLIP_SECONDS).abs().argmin()].window)
        for text in args.settings:
            aps = run(parse(text), store=store, x=x, windows=windows, label=label, query=query,
                      excluded=mine.window.to_numpy(), rounds=args.rounds, k=10, seed=args.seed)
            rows += [{"class": label, "setting": text, "round": r + 1, "ap": ap} for r, ap in enumerate(aps)]
            print(json.dumps({"class": label, "setting": text, "ap": [round(a, 3) for a in aps]}), flush=True)
    table = pd.DataFrame(rows)
    table.to_csv(args.out / "tune.csv", index=False)
    means = table.pivot_table(index="setting", columns="round", values="ap", aggfunc="mean")
    print(means.round(3).to_string())
    print(f"{len(dev)} classes, wall {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
