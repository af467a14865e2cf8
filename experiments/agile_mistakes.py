"""Mistakes caught (issue 77, "Measured"): with 2 of 50 answers flipped, are both among the 5 reviewed windows
``learn --disagreements 5`` lists?

The archive, its mn04 store and the simulated reviewer are ``agile_review.py``'s (run it first: it writes
``--out``/truth.csv, held_out.csv and the store). For each ESC-10 class the loop runs as there (the held-out example
searched, its top 10 reviewed, then 4 rounds of learn's 10 suggestions: 50 answers from the truth); then, for each of
``--draws`` seeded draws, 2 of the 50 answers are flipped and learned again with ``disagreements=5``. Reported per
class: how often both flipped answers are listed, how often at least one, their ranks, and how many windows the head
disagrees with when no answer is flipped (the count learn prints on honest reviews).

    ENVSOUND_MODELS=DIR .venv/bin/python experiments/agile_mistakes.py --out experiments/out/agile-review

Figures: docs/results.md, "Mistakes caught".
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from agile_review import head_of, next_unreviewed, similarity, store_name, window_truth
from envsound.agile.learn import learn_verdicts  # context=0.0 below: each window alone, as the figures recorded
from envsound.agile.suggest import suggest
from envsound.errors import ConfigError
from envsound.inference.embeddings import EmbeddingsStore


def fifty_reviews(store: EmbeddingsStore, db: Path, example: str, truth: np.ndarray, label: str, *, rounds: int,
                  k: int, work: Path) -> np.ndarray:
    """The windows the loop reviews (search's first ``k``, then learn's suggestions), ``rounds * k`` ids."""
    ranking = np.argsort(-similarity(db, example, len(truth)), kind="stable")
    reviewed = next_unreviewed(ranking, set(), k)
    while len(reviewed) < rounds * k:
        ids = np.array(reviewed, dtype=np.int64)
        try:
            result = learn_verdicts(store, {label: (ids, np.where(truth[ids], "yes", "no"))}, out=work,
                                    progress=False, context=0.0)
        except ConfigError:  # no yes yet: the next search hits
            reviewed += next_unreviewed(ranking, set(reviewed), k)
            continue
        weight, bias = head_of(result.model)
        reviewed += [hit.window for hit in suggest(store, weight, bias, [label], labelled={label: ids}, top=k)]
    return np.array(reviewed[:rounds * k], dtype=np.int64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="agile_review.py's --out (archive, store, truth)")
    parser.add_argument("--model", default="efficientat-mn04")
    parser.add_argument("--draws", type=int, default=5, help="seeded draws of the 2 flipped answers a class")
    parser.add_argument("--listed", type=int, default=5, help="learn --disagreements K")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--per-round", type=int, default=10)
    args = parser.parse_args()
    started = time.monotonic()
    db = args.out / store_name(args.model)
    store = EmbeddingsStore(db)
    windows = window_truth(store, pd.read_csv(args.out / "truth.csv"))
    held = pd.read_csv(args.out / "held_out.csv")
    rows = []
    for c, example in zip(held.category, held.example):
        truth = (windows.category == c).to_numpy()
        work = args.out / "mistakes" / c
        ids = fifty_reviews(store, db, example, truth, c, rounds=args.rounds, k=args.per_round, work=work)
        honest = np.where(truth[ids], "yes", "no")
        clean = learn_verdicts(store, {c: (ids, honest)}, out=work, progress=False, context=0.0).labels[0]
        rng = np.random.default_rng(0)
        for draw in range(args.draws):
            flip = rng.choice(len(ids), size=2, replace=False)
            said = honest.copy()
            said[flip] = np.where(said[flip] == "yes", "no", "yes")
            got = learn_verdicts(store, {c: (ids, said)}, out=work, disagreements=args.listed, progress=False,
                                context=0.0)
            listed = [d.window for d in got.labels[0].disagreements]
            ranks = [listed.index(int(ids[i])) + 1 if int(ids[i]) in listed else None for i in flip]
            rows.append({"class": c, "draw": draw, "yes": int(truth[ids].sum()),
                         "flipped": "/".join(honest[flip]), "ranks": ranks,
                         "both": all(r is not None for r in ranks), "any": any(r is not None for r in ranks),
                         "disagreeing_flipped": got.labels[0].disagreeing, "disagreeing_honest": clean.disagreeing})
            print(json.dumps(rows[-1]), flush=True)
    table = pd.DataFrame(rows)
    table.to_csv(args.out / "mistakes" / "mistakes.csv", index=False)
    summary = table.groupby("class").agg(yes=("yes", "first"), both=("both", "mean"), any=("any", "mean"),
                                         disagreeing_honest=("disagreeing_honest", "first"),
                                         disagreeing_flipped=("disagreeing_flipped", "mean"))
    print(summary.to_string())
    print(f"both listed: {table.both.mean():.2f} of draws; classes where both are listed in most draws: "
          f"{int((summary.both > 0.5).sum())} of {len(summary)}; wall {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
