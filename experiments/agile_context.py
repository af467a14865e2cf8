"""Context as a model setting (issue 77, item 2), decided by measurement before any product code: is a window's
neighbours' evidence worth shipping, and does it hold on classes it was not chosen on?

The archive, its store for ``--model`` (mn04 by default), the truth and the held-out ESC-10 examples are
``agile_review.py``'s (written by it, or here with ``--root`` when missing; a store that exists is never embedded
again). The loop is the shipped one
(``learn_verdicts``'s parts: :class:`~envsound.agile.head.LinearHead` at learn's C and weak weight, learn's own
weak-negative sample, :func:`~envsound.agile.calibrate.calibrate` for precision ``--precision`` out of fold, and
:func:`~envsound.agile.suggest.suggest`'s shipped rule: nearest 0.5, windows from below while a label lacks the no its
calibration needs, none overlapping a reviewed window), 10 reviews a round, 5 rounds, answers from the truth. Each
variant changes what a window's score is, everywhere the loop reads one:

- ``none``: the head on the window's embedding (shipped);
- ``mean``: the head's logit averaged over the window and its file's windows starting within ``--seconds`` (at
  mn04's 1-s hop: itself and its two neighbours). For a linear head this is the head on the neighbours' mean
  embedding, so ``predict`` on audio and on a store can apply it alike;
- ``max``: the highest of those logits;
- ``context``: the head learned and scored on the neighbours' mean embedding (``agile_review.py --context``);
- ``concat``: the head learned and scored on the window's embedding joined with its neighbours' mean (2 x d).

The score so made ranks the archive (the AP), orders the suggestions (``suggest`` reads it from a store of one
column, the smoothed logit: :class:`agile_review.ContextStore`), and is the score the calibration's out-of-fold
windows get (each fold's head scores every window, then the smoothing, then the held-out windows are read), so the
threshold for ``--precision`` is chosen on the score it will be applied to.

Classes: the 10 ESC-10 classes (their held-out example searched, as ``agile_review.py``: where the +0.035 of
docs/results.md was measured), the 5 classes outside ESC-10 the smoothing and context were chosen on in issue 67
(:data:`TUNED`), and the other 35 outside ESC-10 (never used to choose them). Outside ESC-10 the example is a seeded
clip of the class inside the archive: its aligned window is the query, the windows centred in that clip are never
reviewed, never weak negatives and left out of the AP and the threshold's figures (as ``agile_review_tune.py``).
Reported after 20 and 50 reviews: AP per class and mean, each variant paired against ``none`` (mean difference,
classes higher, Wilcoxon signed-rank and sign-test p), and the calibrated threshold's precision and recall on the
windows no one reviewed, against the truth (the clip under a window's centre) and counting as right a window the
sound fills for :data:`TOUCHING` of its length or more (an edge window a reviewer could call yes). ``--seeds``: the
loop's seeds (weak negatives, folds, the example clip outside ESC-10); a class's figure is its mean over them.

    ENVSOUND_MODELS=DIR .venv/bin/python experiments/agile_context.py --out experiments/out/agile-review \\
        [--sets esc10 tuned outside] [--variants none mean max context concat] [--seeds 0 1 2] [--name context] \\
        [--model yamnet --seconds 0.48 --name context-yamnet]
    .venv/bin/python experiments/agile_context.py --out experiments/out/agile-review --report   # the tables only

Rows are appended to ``--out``/NAME/rounds.csv a class at a time (a stopped run resumes where it stopped); the report
goes to ``--out``/NAME/report.md. Figures: docs/results.md, "Context as a model setting".
"""

from __future__ import annotations

import argparse
import json
import logging
import time
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import binomtest, wilcoxon
from sklearn.metrics import average_precision_score
from threadpoolctl import threadpool_limits

import envsound
import envsound.agile.learn as learn
from agile_review import (CLIP_SECONDS, ContextStore, archive, neighbours, next_unreviewed, similarity, store_name,
                          window_truth)
from envsound.agile.calibrate import MIN_REVIEWED, calibrate
from envsound.agile.head import LinearHead, sigmoid
from envsound.agile.suggest import suggest
from envsound.inference.embeddings import EmbeddingsStore

VARIANTS = ("none", "mean", "max", "context", "concat")
SETS = ("esc10", "tuned", "outside")
# the classes outside ESC-10 that agile_review_tune.py --classes-n 5 drew (seed 0) and smooth/context were chosen on
# (docs/results.md, "Tries, twentieth session (issue 67)")
TUNED = ("coughing", "crickets", "footsteps", "hen", "sheep")
REPORTED_ROUNDS = (2, 5)  # after 20 and 50 reviews
TOUCHING = 0.4  # the share of a window the sound fills that a lenient reviewer calls yes (holding(): 2 s of mn04's 5)
COLUMNS = ("seed", "set", "class", "variant", "round", "reviewed", "yes", "threshold", "calibrated", "reached",
           "expected", "above", "precision", "precision_touching", "recall", "ap", "no_in_first_20")  # rounds.csv
ARCHIVE_SEED = 0  # agile_review.py's: its held-out examples


class Scores:
    """A variant's features and smoothing over the store's windows (``windows`` indexed by window id): ``features``
    ``(n, d)`` what the head reads, :meth:`smooth` what becomes of its logits."""

    def __init__(self, variant: str, vectors: np.ndarray, near) -> None:
        self.variant, self.near = variant, near
        mean = np.asarray(near @ vectors)
        self.features = {"context": mean, "concat": np.hstack([vectors, mean])}.get(variant, vectors)

    def smooth(self, logits: np.ndarray) -> np.ndarray:
        """``(n,)`` logits of every window -> the variant's ``(n,)`` logits (mean or max over the neighbours)."""
        if self.variant == "mean":
            return np.asarray(self.near @ logits)
        if self.variant == "max":
            return np.maximum.reduceat(logits[self.near.indices], self.near.indptr[:-1])
        return logits

    def logits(self, head: LinearHead) -> np.ndarray:
        """Every window's logit under ``head`` (fitted on :attr:`features`), smoothed."""
        return self.smooth(head.decision_function(self.features)[:, 0])


def fitted(scores: Scores, ids: np.ndarray, truth: np.ndarray, weak: np.ndarray) -> LinearHead:
    """learn's head (its C and weak weight, read now) on the windows ``ids`` with ``truth`` and weak negatives."""
    return LinearHead(c=learn.C, weak_weight=learn.WEAK_WEIGHT).fit(scores.features[ids], truth,
                                                                    scores.features[weak])


def one_round(store: EmbeddingsStore, scores: Scores, label: str, ids: np.ndarray, said: np.ndarray,
              excluded: np.ndarray, files: np.ndarray, *, precision: float, seed: int):
    """``learn_verdicts`` for one label on the variant's scores: the weak sample (learn's rule and seed, the
    ``excluded`` windows never drawn), the calibration on smoothed out-of-fold scores, the head on all reviews.
    Returns ``(every window's smoothed logit (n,), calibration)``."""
    yes, no = ids[said], ids[~said]
    rng = np.random.default_rng(seed)
    weak = learn._weak_sample(store, np.r_[ids, excluded], yes, rng)
    order = np.r_[yes, no]  # learn's order, so the folds are learn's
    truth = np.r_[np.ones(len(yes), bool), np.zeros(len(no), bool)]

    def fit(x_train, truth_train):  # x: window ids as a column; the held-out windows are read after the smoothing
        logits = scores.logits(fitted(scores, x_train[:, 0].astype(np.int64), truth_train, weak))
        return lambda x_held: sigmoid(logits[x_held[:, 0].astype(np.int64)])

    calibration = calibrate(label, order[:, None].astype(np.float64), truth, files[order], fit, target=precision,
                            seed=seed)
    return scores.logits(fitted(scores, order, truth, weak)), calibration


def loop(store: EmbeddingsStore, db: Path, scores: Scores, label: str, truth: np.ndarray, query: np.ndarray,
         excluded: np.ndarray, files: np.ndarray, *, rounds: int, k: int, precision: float, seed: int,
         touching: np.ndarray) -> list[dict]:
    """One class, one variant: search's top ``k`` reviewed, then ``rounds - 1`` rounds of ``k`` suggestions; a row
    a round (AP over the windows not ``excluded``, the threshold and what it gives on the unreviewed windows: the
    precision against the truth, and against ``touching`` ``(n,)`` bool, the windows holding some of the sound)."""
    keep = np.ones(len(truth), bool)
    keep[excluded] = False
    blocked = set(int(i) for i in excluded)
    ranking = np.array([i for i in np.argsort(-query, kind="stable") if int(i) not in blocked])
    one_column = ContextStore(db, np.zeros((store.windows, 1), np.float32))  # suggest reads the smoothed logits
    reviewed, out = next_unreviewed(ranking, set(), k), []
    for r in range(rounds):
        ids = np.array(reviewed, dtype=np.int64)
        said = truth[ids]
        row = {"round": r + 1, "reviewed": len(ids), "yes": int(said.sum())}
        if not said.any():  # nothing to learn yet: the next search hits (learn refuses a label with no yes)
            score, suggested = query, next_unreviewed(ranking, set(reviewed), k)
        else:
            logits, calibration = one_round(store, scores, label, ids, said, excluded, files, precision=precision,
                                            seed=seed)
            score = sigmoid(logits)
            one_column.context = logits.astype(np.float32)[:, None]
            lacking = max(0, MIN_REVIEWED - int((~said).sum()))  # as learn passes it
            hits = suggest(one_column, np.ones((1, 1)), np.zeros(1), [label], labelled={label: np.r_[ids, excluded]},
                           top=k, wanted_no={label: lacking})
            suggested = [hit.window for hit in hits]
            unreviewed = keep.copy()
            unreviewed[ids] = False
            above = unreviewed & (score >= calibration.threshold)
            row.update(threshold=calibration.threshold, calibrated=calibration.calibrated, reached=calibration.reached,
                       expected=calibration.precision, above=int(above.sum()),
                       precision=float(truth[above].mean()) if above.any() else np.nan,
                       precision_touching=float(touching[above].mean()) if above.any() else np.nan,
                       recall=float(truth[above].sum() / max(truth[unreviewed].sum(), 1)))
        row["ap"] = float(average_precision_score(truth[keep], score[keep]))
        row["no_in_first_20"] = int((~truth[ids[:20]]).sum())
        out.append(row)
        reviewed += suggested
    return out


def holding(windows: pd.DataFrame, truth_table: pd.DataFrame, label: str, seconds: float) -> np.ndarray:
    """``(n,)`` bool: each window holds at least ``seconds`` of a clip of ``label`` (the truth holds the clip under
    its centre, at 5-s windows and clips 2.5 s of it): a window at the sound's edge that a reviewer could call yes."""
    clips = truth_table[truth_table.category == label]
    overlap = np.zeros(len(windows))
    for recording, start, end in zip(clips.file, clips.start, clips.end):
        mine = (windows.recording == recording).to_numpy()
        overlap[mine] += np.clip(np.minimum(windows.end[mine], end) - np.maximum(windows.start[mine], start), 0, None)
    return overlap >= seconds - 1e-9


def outside_example(windows: pd.DataFrame, truth_table: pd.DataFrame, label: str, seed: int) -> tuple[int, np.ndarray]:
    """A clip of ``label`` inside the archive (seeded by the seed and the name): the id of its aligned window (the
    query) and the ids of the windows centred in it (never reviewed, left out of the figures)."""
    clips = truth_table[truth_table.category == label]
    clip = clips.iloc[int(np.random.default_rng([seed, zlib.crc32(label.encode())]).integers(len(clips)))]
    mine = windows[(windows.recording == clip["file"]) & (windows["clip"] == clip["clip"])]
    return int(mine.iloc[(mine.start - clip["clip"] * CLIP_SECONDS).abs().argmin()].window), mine.window.to_numpy()


def prepared(args) -> tuple[Path, EmbeddingsStore, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The store, its windows with their truth, the truth and held-out tables: agile_review.py's; written first when
    missing (``--root``), never embedded again when the store exists."""
    db = args.out / store_name(args.model)
    if not (db.exists() and (args.out / "truth.csv").exists() and (args.out / "held_out.csv").exists()):
        if args.root is None:
            raise SystemExit(f"{args.out}: no archive, store or truth; give --root ESC50 (or run agile_review.py)")
        held, truth_table = archive(pd.read_csv(args.root / "meta" / "esc50.csv"), args.root, args.out, ARCHIVE_SEED)
        truth_table.to_csv(args.out / "truth.csv", index=False)
        pd.DataFrame({"category": list(held), "example": list(held.values())}).to_csv(args.out / "held_out.csv",
                                                                                      index=False)
        envsound.embed(args.model, args.out / "archive", out=db,
                       options=envsound.ScanOptions(device="cpu", progress=False))
    store = EmbeddingsStore(db)
    truth_table = pd.read_csv(args.out / "truth.csv")
    return db, store, window_truth(store, truth_table), truth_table, pd.read_csv(args.out / "held_out.csv")


def classes(sets: list[str], held: pd.DataFrame, truth_table: pd.DataFrame) -> list[tuple[str, str]]:
    """``(set, class)`` pairs in run order: ESC-10, the tuning classes, the others outside ESC-10."""
    esc10 = sorted(held.category)
    outside = sorted(set(truth_table.category) - set(esc10) - set(TUNED))
    chosen = {"esc10": esc10, "tuned": list(TUNED), "outside": outside}
    return [(s, c) for s in SETS if s in sets for c in chosen[s]]


def paired(table: pd.DataFrame, column: str, variant: str, at: int) -> str:
    """``variant - none`` on ``column`` at round ``at``, over the classes (``table``: one row a class, variant and
    round): mean ± std, classes higher of those that differ, Wilcoxon signed-rank p and sign-test p (two-sided)."""
    a = table[(table.variant == variant) & (table["round"] == at)].set_index("class")[column]
    b = table[(table.variant == "none") & (table["round"] == at)].set_index("class")[column]
    d = (a - b.reindex(a.index)).dropna()
    if not len(d):
        return "-"
    up, down = int((d > 1e-9).sum()), int((d < -1e-9).sum())
    text = f"{d.mean():+.3f} ± {d.std():.3f} ({up}/{up + down})"
    if up + down >= 2:
        text += f", p {wilcoxon(d[d.abs() > 1e-9]).pvalue:.2g} / {binomtest(up, up + down).pvalue:.2g}"
    return text


def report(rows: pd.DataFrame, variants: list[str]) -> list[str]:
    """Markdown, per set of classes: AP at 20 and 50 reviews per variant and paired against none; the 0.9 threshold's
    precision and recall on the unreviewed windows; AP per class at 50. Over several seeds, a class's figure is its
    mean over the seeds (pairing by class), and each seed's mean difference is listed."""
    seeds = sorted(rows.seed.unique())
    flags = {True: 1.0, False: 0.0, "True": 1.0, "False": 0.0}  # NaN: a round with nothing learned yet
    rows = rows.assign(calibrated=rows.calibrated.map(flags), reached=rows.reached.map(flags))
    table = rows.groupby(["set", "class", "variant", "round"], as_index=False).mean(numeric_only=True)
    first, last = REPORTED_ROUNDS
    lines = [f"Seeds {', '.join(map(str, seeds))}: a class's figure is its mean over them." if len(seeds) > 1 else ""]
    for name in [s for s in SETS if s in set(table.set)]:
        part = table[table.set == name]
        lines += [f"#### {name} ({part['class'].nunique()} classes)", "",
                  "| variant | AP at 20 | AP at 50 | at 20 - none (higher/differing; Wilcoxon p / sign p) | "
                  "at 50 - none |", "|---" * 5 + "|"]
        for v in variants:
            at = {r: part[(part.variant == v) & (part["round"] == r)] for r in REPORTED_ROUNDS}
            cells = [f"{at[r].ap.mean():.3f} ± {at[r].ap.std():.3f}" for r in REPORTED_ROUNDS]
            cells += ["" if v == "none" else paired(part, "ap", v, r) for r in REPORTED_ROUNDS]
            lines.append(f"| {v} | " + " | ".join(cells) + " |")
        if len(seeds) > 1:
            per_seed = rows[(rows.set == name) & (rows["round"] == last)].pivot_table(
                index=["seed", "class"], columns="variant", values="ap")
            lines += ["", "AP at 50 - none, each seed's mean: " + "; ".join(
                f"{v} " + ", ".join(f"{(g[v] - g['none']).mean():+.3f}" for _, g in per_seed.groupby(level="seed"))
                for v in variants if v != "none")]
        lines += ["", "| variant | threshold's precision, unreviewed, at 20 | at 50 | at 50 - none | at 50, a window "
                  f"holding the sound over {TOUCHING:.0%} or more of it counted right | recall at 50 | windows above at 50 | "
                  "classes calibrated, reached at 50 |", "|---" * 8 + "|"]
        for v in variants:
            at = {r: part[(part.variant == v) & (part["round"] == r)] for r in REPORTED_ROUNDS}
            cells = [f"{at[r].precision.mean():.3f} ± {at[r].precision.std():.3f}" for r in REPORTED_ROUNDS]
            cells += ["" if v == "none" else paired(part, "precision", v, last),
                      f"{at[last].precision_touching.mean():.3f}", f"{at[last].recall.mean():.3f}",
                      f"{at[last].above.mean():.0f}",
                      f"{int((at[last].calibrated > 0.5).sum())}, {int((at[last].reached > 0.5).sum())}"]
            lines.append(f"| {v} | " + " | ".join(cells) + " |")
        wide = part[part["round"] == last].pivot(index="class", columns="variant", values="ap")
        lines += ["", "| class (AP at 50) | " + " | ".join(variants) + " |", "|---" * (len(variants) + 1) + "|"]
        lines += [f"| {c} | " + " | ".join(f"{wide.loc[c, v]:.3f}" for v in variants) + " |" for c in wide.index]
        lines.append("")
    return lines


def measure(args, table_path: Path) -> None:
    """Run every seed, class and variant not yet in ``table_path``, appending its rows a class and variant at a time
    (a stopped run resumes where it stopped)."""
    key = ["seed", "set", "class", "variant"]
    done = set(map(tuple, pd.read_csv(table_path)[key].values.tolist())) if table_path.exists() else set()
    db, store, windows, truth_table, held = prepared(args)
    vectors = store.vectors(windows.window.to_numpy()).astype(np.float64)
    near = neighbours(windows, args.seconds)
    variants = {v: Scores(v, vectors, near) for v in args.variants}
    files = windows.recording.to_numpy()
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    examples = held.set_index("category").example
    searched = {}
    for seed in args.seeds:
        for group, label in classes(args.sets, held, truth_table):
            if args.classes and label not in args.classes:
                continue
            truth = (windows.category == label).to_numpy()
            touching = holding(windows, truth_table, label, TOUCHING * float(store.settings["window_seconds"]))
            if group == "esc10":  # the held-out example, searched as agile_review.py searches it
                if label not in searched:
                    searched[label] = similarity(db, examples[label], len(truth))
                query, excluded = searched[label], np.zeros(0, np.int64)
            else:
                window, excluded = outside_example(windows, truth_table, label, seed)
                query = unit @ unit[window]
            for v, scores in variants.items():
                if (seed, group, label, v) in done:
                    continue
                t0 = time.monotonic()
                rows = [{"seed": seed, "set": group, "class": label, "variant": v, **row}
                        for row in loop(store, db, scores, label, truth, query, excluded, files, rounds=args.rounds,
                                        k=args.per_round, precision=args.precision, seed=seed, touching=touching)]
                pd.DataFrame(rows, columns=COLUMNS).to_csv(table_path, mode="a", header=not table_path.exists(),
                                                           index=False)
                done.add((seed, group, label, v))
                print(json.dumps({"seed": seed, "set": group, "class": label, "variant": v,
                                  "ap": [round(r["ap"], 3) for r in rows], "precision": rows[-1].get("precision"),
                                  "seconds": round(time.monotonic() - t0, 1)}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="agile_review.py's --out (archive, store, truth)")
    parser.add_argument("--root", type=Path, help="an ESC-50 checkout, to write the archive and store when missing")
    parser.add_argument("--model", default="efficientat-mn04", help="the store's network (agile_review.py's)")
    parser.add_argument("--sets", nargs="+", choices=SETS, default=list(SETS))
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--classes", nargs="*", help="only these classes (of the sets)")
    parser.add_argument("--seconds", type=float, default=1.0, help="neighbours: windows starting within this")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--per-round", type=int, default=10)
    parser.add_argument("--precision", type=float, default=0.9)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0],
                        help="the loop's seeds (weak negatives, folds, the example clip outside ESC-10)")
    parser.add_argument("--name", default="context", help="the results' folder under --out")
    parser.add_argument("--report", action="store_true", help="only the tables of the rows already made")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # not calibrate's warning at every round that misses its target
    threadpool_limits(1)  # a few-thousand-row regression: BLAS threads only contend (0.18 s a fit, 0.6-0.9 s on 2)
    started = time.monotonic()
    folder = args.out / args.name
    folder.mkdir(parents=True, exist_ok=True)
    table_path = folder / "rounds.csv"
    if not args.report:
        measure(args, table_path)
    rows = pd.read_csv(table_path)
    lines = report(rows, [v for v in VARIANTS if v in set(rows.variant)])
    (folder / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wall {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
