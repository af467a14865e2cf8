"""Choosing the agile loop's settings on classes that are not reported: the 40 ESC-50 classes outside ESC-10, on the
archive of ``agile_review.py`` (run it first: it writes the recordings and the store).

For each of these classes (or a seeded ``--classes-n`` of them, or ``--classes``) the example is a clip of the class
inside the archive: its window aligned with the clip is the query, and the windows centred in that clip are never
reviewed and left out of the average precision. The loop is ``learn_verdicts``'s, by its parts (``fit_head``, the
weak-negative sample's rule: windows centred inside a yes window are not weak negatives, ``calibrate`` and
``suggest``), without writing a model each round, so a setting costs a minute, not a quarter of an hour.

The windows' vectors are the store's (``embed``, 1-s hop) or, with ``--features`` (``agile_review_features.py``), the
``--layer`` of that file (``embed``, ``pooled``, ``logits``, or two joined by ``+``), at that file's hop. Settings
(``KEY=VALUE,...``):

- ``C``: the learner's inverse regularisation (on standardised vectors);
- ``weak``: the weak negatives' weight (0: none), ``weakmin`` / ``weakper``: how many (max(weakmin, weakper x yes));
- ``balance``: ``1`` the two sides weighted to equal totals (learn's), ``0`` as they come;
- ``rule``: ``mix`` (``suggest``'s default since issue 77: uncertain windows by maximal marginal relevance and a
  few well below; its ``mmr`` weight and ``lowevery`` as settings; the store only), ``store-half`` (``suggest``'s
  nearest 0.5, reviewed windows' neighbours left out; the store only), ``threshold`` (``suggest``: nearest the
  calibrated threshold; the store only), ``half`` (nearest 0.5, learn's before issue 77), ``top`` (the highest
  scores), each with one window a file;
- ``smooth``: seconds; a window's logit averaged with those of its file's windows starting within that distance
  (0: none), for both the ranking and the suggestions;
- ``context``: seconds; a window's vector replaced by the mean of its file's windows' starting within that distance,
  for learning too (0: none). With a linear head the scores are ``smooth``'s; only the fit differs.

    .venv/bin/python experiments/agile_review_tune.py --out experiments/out/agile-review --classes-n 5 \\
        --settings C=0.1,rule=half C=0.1,rule=half,weak=0.3 [--features F.npz --layer pooled]

Figures: docs/results.md, "From one example to a detector (issue 67)".
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score

import envsound.agile.learn as learn
from envsound.agile.calibrate import MIN_REVIEWED, calibrate
import envsound.agile.suggest as suggest_module
from envsound.agile.suggest import suggest
from envsound.inference.embeddings import EmbeddingsStore

from agile_review import CLIP_SECONDS, centre_truth, similarity, window_truth

DEFAULTS = {"C": learn.C, "weak": learn.WEAK_WEIGHT, "weakmin": learn.WEAK_MIN, "weakper": learn.WEAK_PER_YES,
            "balance": 1.0, "rule": "half", "smooth": 0.0, "context": 0.0, "mmr": suggest_module.MMR_LAMBDA,
            "lowevery": float(suggest_module.LOW_EVERY)}


def one_a_file(order: np.ndarray, files: np.ndarray, k: int) -> list[int]:
    chosen, seen = [], set()
    for i in order:
        if files[i] not in seen:
            chosen.append(int(i))
            seen.add(files[i])
        if len(chosen) == k:
            break
    return chosen


def fit(x: np.ndarray, truth: np.ndarray, weak: np.ndarray, setting: dict) -> tuple[np.ndarray, float]:
    """``learn.fit_head`` under ``setting`` (C, weak weight, balance): learn's own code at its defaults."""
    if setting["balance"] == 1.0:
        saved = learn.C, learn.WEAK_WEIGHT
        learn.C, learn.WEAK_WEIGHT = setting["C"], setting["weak"]
        try:
            return learn.fit_head(x, truth, weak)
        finally:
            learn.C, learn.WEAK_WEIGHT = saved
    data = np.concatenate([x, weak])
    target = np.r_[truth, np.zeros(len(weak), bool)]
    weight = np.r_[np.ones(len(truth)), np.full(len(weak), setting["weak"])]
    mean, scale = data.mean(axis=0), data.std(axis=0)
    scale[scale < 1e-6] = 1.0
    regression = LogisticRegression(C=setting["C"], max_iter=2000)
    regression.fit((data - mean) / scale, target, sample_weight=weight / weight.mean())
    coef = regression.coef_[0] / scale
    return coef, float(regression.intercept_[0] - coef @ mean)


def neighbours(windows: pd.DataFrame, seconds: float):
    """A sparse ``(n, n)`` row-normalised average over each window's file's windows starting within ``seconds`` of
    it, or None for 0."""
    if not seconds:
        return None
    from scipy.sparse import csr_matrix

    rows, cols = [], []
    for _, group in windows.groupby("file"):
        ids, starts = group.index.to_numpy(), group.start.to_numpy()
        near = np.abs(starts[:, None] - starts[None, :]) <= seconds + 1e-6
        a, b = np.nonzero(near)
        rows.append(ids[a])
        cols.append(ids[b])
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    counts = np.bincount(rows, minlength=len(windows))
    return csr_matrix((1.0 / counts[rows], (rows, cols)), shape=(len(windows), len(windows)))


def weak_sample(rng: np.random.Generator, free: np.ndarray, yes: np.ndarray, windows: pd.DataFrame,
                wanted: int) -> np.ndarray:
    """``wanted`` of ``free`` (sorted), leaving out those centred inside a ``yes`` window of the same file (learn's
    rule)."""
    files, starts, ends = (windows[c].to_numpy() for c in ("file", "start", "end"))
    centre = (starts + ends) / 2
    inside = np.zeros(len(windows), bool)
    for i in yes:
        inside |= (files == files[i]) & (centre >= starts[i]) & (centre < ends[i])
    free = free[~inside[free]]
    return np.sort(rng.choice(free, size=min(wanted, len(free)), replace=False))


def run(setting: dict, *, store: EmbeddingsStore | None, x: np.ndarray, windows: pd.DataFrame, label: str,
        query: int | np.ndarray, excluded: np.ndarray, rounds: int, k: int, seed: int, smoother) -> list[float]:
    """AP after each round for one dev class under ``setting``; ``query`` a window of the archive, or the
    similarity ``(n,)`` of every window to an example outside it."""
    rng = np.random.default_rng(seed)
    truth = (windows.category == label).to_numpy()
    files = windows.file.to_numpy()
    keep = np.ones(len(truth), bool)
    keep[excluded] = False
    unit = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    similarity = unit @ unit[query] if np.ndim(query) == 0 else np.asarray(query, dtype=np.float64)
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
            wanted = int(max(setting["weakmin"], setting["weakper"] * int(said.sum())))
            weak = weak_sample(rng, free, ids[said], windows, wanted) if setting["weak"] else np.zeros(0, np.int64)
            weight, bias = fit(x[ids], said, x[weak], setting)
            logits = x @ weight + bias
            scores = 1 / (1 + np.exp(-(smoother @ logits if smoother is not None else logits)))
            rule = setting["rule"]
            if rule == "threshold":
                if store is None:
                    raise SystemExit("rule=threshold needs the store (no --features)")

                def fitted(xt, tt, wx=x[weak]):
                    w, b = fit(xt, tt, wx, setting)
                    return lambda xh: 1 / (1 + np.exp(-(xh @ w + b)))
                threshold = calibrate(label, x[ids], said, files[ids], fitted, seed=seed).threshold
                hits = suggest(store, weight[None, :], np.array([bias]), [label], thresholds=[threshold],
                               labelled={label: np.r_[ids, excluded]}, top=k)
                next_ids = [h.window for h in hits]
            elif rule in ("mix", "store-half"):  # envsound's suggest itself: learn's rule (mix) or its nearest 0.5
                if store is None:
                    raise SystemExit(f"rule={rule} needs the store (no --features)")
                lacking = max(0, MIN_REVIEWED - int((~said).sum()))
                suggest_module.MMR_LAMBDA, suggest_module.LOW_EVERY = setting["mmr"], int(setting["lowevery"])
                hits = suggest(store, weight[None, :], np.array([bias]), [label], top=k,
                               labelled={label: np.r_[ids, excluded]}, rule="mix" if rule == "mix" else "half",
                               wanted_no={label: lacking})
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
    setting = dict(DEFAULTS)
    for part in filter(None, text.split(",")):
        key, value = part.split("=")
        if key not in setting:
            raise SystemExit(f"setting {key!r} is unknown; valid: {', '.join(setting)}")
        setting[key] = value if key == "rule" else float(value)
    return setting


def vectors(args, store: EmbeddingsStore, truth: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
    """The windows (``window`` = row, ``file``, ``start``, ``end``, ``recording``, ``clip``, ``category``) and their
    vectors ``(n, d)`` float64: the store's, or ``--layer`` of ``--features``."""
    if args.features is None:
        windows = window_truth(store, truth)
        return store.vectors(windows.window.to_numpy()).astype(np.float64), windows
    held = np.load(args.features)
    windows = pd.DataFrame({"window": np.arange(len(held["start"])), "file": held["files"], "start": held["start"],
                            "end": held["end"]})
    windows["recording"] = [Path(f).name for f in windows.file]
    windows["clip"], windows["category"] = centre_truth(windows.recording, windows.start,
                                                        float(held["window_seconds"]), truth)
    x = np.concatenate([held[name] for name in args.layer.split("+")], axis=1).astype(np.float64)
    return x, windows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="agile_review.py's --out")
    parser.add_argument("--settings", nargs="+", default=["C=0.1"], help="KEY=VALUE,...; see the docstring")
    parser.add_argument("--classes-n", type=int, default=40)
    parser.add_argument("--classes", nargs="*", help="these classes (outside ESC-10) instead of a seeded draw")
    parser.add_argument("--esc10", action="store_true",
                        help="the held-out check: the ESC-10 classes, each from agile_review.py's held-out example "
                             "(search's cosine similarity over the store, as agile_review.py's first round)")
    parser.add_argument("--features", type=Path, help="agile_review_features.py's .npz instead of the store")
    parser.add_argument("--layer", default="embed", help="with --features: embed, pooled, logits, or A+B")
    parser.add_argument("--name", default="tune", help="the table: --out/NAME.csv")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.monotonic()
    store = EmbeddingsStore(args.out / "archive.db")
    truth = pd.read_csv(args.out / "truth.csv")
    x, windows = vectors(args, store, truth)
    esc10 = set(pd.read_csv(args.out / "held_out.csv").category)
    dev = sorted(set(truth.category) - esc10)
    rng = np.random.default_rng(args.seed)
    dev = sorted(rng.choice(dev, size=min(args.classes_n, len(dev)), replace=False))
    if args.classes:
        dev = [c for c in args.classes if c not in esc10]
    if args.esc10:
        examples = pd.read_csv(args.out / "held_out.csv").set_index("category").example
        dev = sorted(esc10)
    settings = [parse(text) for text in args.settings]
    smoothers = {s: neighbours(windows, s) for s in {s["smooth"] for s in settings} | {s["context"] for s in settings}}
    contexts = {c: x if not c else np.asarray(smoothers[c] @ x) for c in {s["context"] for s in settings}}
    rows = []
    for label in dev:
        if args.esc10:
            query = similarity(args.out / "archive.db", examples[label], len(windows))
            for text, setting in zip(args.settings, settings):
                aps = run(setting, store=store if args.features is None else None, x=contexts[setting["context"]],
                          windows=windows, label=label, query=query, excluded=np.zeros(0, np.int64),
                          rounds=args.rounds, k=10, seed=args.seed, smoother=smoothers[setting["smooth"]])
                rows += [{"class": label, "setting": text, "round": r + 1, "ap": ap} for r, ap in enumerate(aps)]
                print(json.dumps({"class": label, "setting": text, "ap": [round(a, 3) for a in aps]}), flush=True)
            continue
        clips = truth[truth.category == label]
        clip = clips.iloc[int(rng.integers(len(clips)))]
        mine = windows[(windows.recording == clip["file"]) & (windows["clip"] == clip["clip"])]
        query = int(mine.iloc[(mine.start - clip["clip"] * CLIP_SECONDS).abs().argmin()].window)
        for text, setting in zip(args.settings, settings):
            aps = run(setting, store=store if args.features is None else None, x=contexts[setting["context"]],
                      windows=windows, label=label,
                      query=query, excluded=mine.window.to_numpy(), rounds=args.rounds, k=10, seed=args.seed,
                      smoother=smoothers[setting["smooth"]])
            rows += [{"class": label, "setting": text, "round": r + 1, "ap": ap} for r, ap in enumerate(aps)]
            print(json.dumps({"class": label, "setting": text, "ap": [round(a, 3) for a in aps]}), flush=True)
    table = pd.DataFrame(rows)
    table.to_csv(args.out / f"{args.name}.csv", index=False)
    means = table.pivot_table(index="setting", columns="round", values="ap", aggfunc="mean")
    print(means.round(3).to_string())
    print(f"{len(dev)} classes ({', '.join(dev)}), wall {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
