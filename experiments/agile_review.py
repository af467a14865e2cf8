"""From one example to a detector: the agile loop (search, review, learn, suggest) measured with a simulated reviewer
who answers from known labels, on an archive of ESC-50 clips joined into long recordings (issue 67, "Measured").

The archive: every clip of the ESC-50 checkout (686 here) except one held-out example of each ESC-10 class, in a
seeded order, joined 10 clips a recording (5 s each, 32 kHz, 16-bit WAVs under ``--out``/archive; the last
recording shorter), embedded once by ``envsound.embed_archive`` with the release's defaults (mn04: 5-s windows at a
1-s hop) into a store of its own a network (``--model``: ``archive.db`` for mn04, ``archive-NAME.db`` for another).
A window's truth is the class of the clip under its centre.

For each ESC-10 class, the held-out example is searched (``envsound.search``, cosine) and its top 10 reviewed; then,
round after round (10 windows a round, 5 rounds):

- ``loop``: ``learn_verdicts`` on the verdicts so far, its ``suggest`` gives the next 10 (uncertainty with
  diversity, the learner's defaults);
- ``random``: the same first 10 (from search), then 10 random unreviewed windows a round, learned the same way;
- ``search``: the ranking by similarity to the example alone (it does not change with the rounds: the issue's
  "top-K of search alone");
- ``search+yes``: the next 10 unreviewed windows of that ranking a round, each reviewed yes window added to the
  query as another example.

Each learned variant runs with the unreviewed windows as weak negatives (``weak``, the default) and without
(``none``). Until a round has given a yes (or, for ``none``, also a no), nothing can be learned: that round's
method reviews the next search hits and its AP is the search's. After each round: the average precision of the
learned head's scores (the written model.ckpt's head over every stored embedding) over all archive windows against
the truth. After the last round: the threshold ``learn`` calibrated for precision ``--precision``, and the
precision it reaches on the windows not reviewed.

    ENVSOUND_MODELS=DIR .venv/bin/python experiments/agile_review.py --root ../shared/data/esc50 \\
        --out experiments/out/agile-review [--classes ...] [--methods loop/weak random/weak ...] \\
        [--C 0.1] [--suggest-at half] [--name NAME]
    .venv/bin/python experiments/agile_review.py ... --merge NAME[=SUFFIX] ...    # one report of several runs

``--C`` sets the learner's C for the run (``envsound.agile.learn.C``, 0.1 by default, 1.0 when these figures were
first made), ``--weak-weight`` and ``--weak-min`` its weak negatives' weight and least number (``WEAK_WEIGHT``,
``WEAK_MIN``); ``--smooth S`` adds each learned method's scores with a window's logit averaged over its file's
windows within S seconds (a post-processing of the ranking); ``--context S`` learns and scores on each window's mean
embedding over those windows (:class:`ContextStore`); ``--suggest-at half`` makes the loop suggest (``suggest``,
the same diversity) the windows nearest 0.5 (learn's suggestions now) instead of nearest the calibrated threshold
(then learn's); ``--by-clip`` also reports each method's AP over the archive's clips, a clip scored by its best
window (a network's windows shorter than a clip are each held to the clip's class, silence included);
``--rule mix`` suggests by learn's rule since issue 77 (uncertain windows in the order of maximal marginal
relevance, and a few scoring well below, more while a label lacks the no its calibration needs), ``half`` (the
default here, so older figures rerun as they were) the nearest 0.5 only; ``--query loudest`` searches with the
example's windows centred in its loudest second only (search's start and end:
a query of short windows is otherwise their mean, mostly silence for a dog's bark). A run's
tables go to ``--out``/NAME (ap_rounds.csv, thresholds.csv, report.md); the archive and a network's store are shared
by the runs (one embedding at a time: the store's lock refuses a second).

Figures: docs/results.md, "From one example to a detector (issue 67)".
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
from sklearn.metrics import average_precision_score

import envsound
import envsound.agile.learn as learn_module
import envsound.agile.suggest as suggest_module
from envsound.agile.calibrate import MIN_REVIEWED
from envsound.agile.learn import learn_verdicts
from envsound.agile.suggest import suggest
from envsound.audio.load import load_audio
from envsound.errors import ConfigError
from envsound.inference.embeddings import EmbeddingsStore
from envsound.models.checkpoint import load_checkpoint
from envsound.transfer.source import head_keys

CLIP_SECONDS = 5.0
RATE = 32000
PER_RECORDING = 10
LEARNED = ("loop", "random")


def archive(meta: pd.DataFrame, root: Path, out: Path, seed: int) -> tuple[dict[str, str], pd.DataFrame]:
    """Hold out one clip of each ESC-10 class (seeded), write the others as recordings of 10 clips in a seeded
    order; the held-out clips' paths by class and the truth ``(file, clip, start, end, category)``."""
    rng = np.random.default_rng(seed)
    classes = sorted(meta[meta.esc10].category.unique())
    held = {c: str(root / "audio" / meta[meta.category == c].sample(1, random_state=seed + i).filename.iloc[0])
            for i, c in enumerate(classes)}
    clips = meta[~meta.filename.isin([Path(p).name for p in held.values()])].reset_index(drop=True)
    clips = clips.iloc[rng.permutation(len(clips))].reset_index(drop=True)
    (out / "archive").mkdir(parents=True, exist_ok=True)
    size = int(CLIP_SECONDS * RATE)
    rows = []
    for n, at in enumerate(range(0, len(clips), PER_RECORDING)):
        group = clips.iloc[at:at + PER_RECORDING]
        name = f"rec-{n:03d}.wav"
        path = out / "archive" / name
        if not path.exists():
            wave = np.concatenate([np.pad(c := load_audio(root / "audio" / f, sample_rate=RATE)[:size],
                                          (0, size - len(c))) for f in group.filename])
            sf.write(path, wave, RATE, subtype="PCM_16")
        rows += [{"file": name, "clip": i, "start": i * CLIP_SECONDS, "end": (i + 1) * CLIP_SECONDS,
                  "category": r.category, "filename": r.filename} for i, r in enumerate(group.itertuples())]
    return held, pd.DataFrame(rows)


def store_name(model: str) -> str:
    """The store's folder under ``--out``: one a network (the archive is shared), mn04's the name it always had."""
    return "archive.db" if model == "efficientat-mn04" else f"archive-{Path(model).name}.db"


def window_truth(store: EmbeddingsStore, truth: pd.DataFrame) -> pd.DataFrame:
    """The store's windows (sorted by id) with the category of the clip under each window's centre."""
    windows = pd.read_parquet(store.path / "windows").sort_values("window").reset_index(drop=True)
    windows["recording"] = [Path(f).name for f in windows.file]
    windows["clip"], windows["category"] = centre_truth(windows["recording"], windows["start"],
                                                        float(store.settings["window_seconds"]), truth)
    return windows


def centre_truth(recordings, starts, window: float, truth: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The clip (index in its recording) and category under the centre of each window (``recordings`` its file's
    name, ``starts`` seconds, ``window`` its length); a centre past the last clip is the last clip's."""
    clips = truth.groupby("file")["clip"].max()
    centre = np.asarray(starts, dtype=np.float64) + window / 2
    clip = np.minimum((centre // CLIP_SECONDS).astype(int), clips.loc[list(recordings)].to_numpy())
    lookup = truth.set_index(["file", "clip"])["category"]
    return clip, lookup.loc[list(zip(recordings, clip))].to_numpy()


def neighbours(windows: pd.DataFrame, seconds: float):
    """A sparse ``(n, n)`` row-normalised mean over each window's file's windows (``windows``: ``file``, ``start``,
    indexed 0..n-1) starting within ``seconds`` of it, or None for 0: ``smoother @ logits`` smooths a window's score
    with its neighbours' (a window's truth, the clip under its centre, is shared by the overlapping windows)."""
    if not seconds:
        return None
    from scipy.sparse import csr_matrix

    rows, cols = [], []
    for _, group in windows.groupby("file"):
        ids, starts = group.index.to_numpy(), group.start.to_numpy()
        a, b = np.nonzero(np.abs(starts[:, None] - starts[None, :]) <= seconds + 1e-6)
        rows.append(ids[a])
        cols.append(ids[b])
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    counts = np.bincount(rows, minlength=len(windows))
    return csr_matrix((1.0 / counts[rows], (rows, cols)), shape=(len(windows), len(windows)))


def by_clip(scores: np.ndarray, truth: np.ndarray, clip_of: np.ndarray) -> float:
    """AP over the archive's clips: a clip's score the highest of its windows' (``clip_of``: ``(n,)`` a window's
    clip, the one under its centre), its truth theirs. Windows shorter than a clip are each scored by the clip's
    class though many hold only its silence: a clip's best window is what a short-window network is judged on."""
    scores = pd.Series(scores).groupby(clip_of)
    return float(average_precision_score(pd.Series(truth).groupby(clip_of).first(), scores.max()))


def smoothed(scores: np.ndarray, smoother) -> np.ndarray:
    """Probabilities ``(n,)`` whose logits are averaged by ``smoother`` (:func:`neighbours`)."""
    logits = np.log(np.clip(scores, 1e-12, None)) - np.log(np.clip(1 - scores, 1e-12, None))
    return 1.0 / (1.0 + np.exp(-(smoother @ logits)))


class ContextStore(EmbeddingsStore):
    """The store at ``path`` read with every window's embedding replaced by ``context`` ``(n, d)`` (the row of its
    window id: :func:`neighbours` times the stored vectors), so that ``learn_verdicts``, its weak negatives,
    calibration and ``suggest`` run unchanged on the averaged vectors. Search still reads the store itself."""

    def __init__(self, path: Path, context: np.ndarray) -> None:
        super().__init__(path)
        self.context = np.asarray(context, dtype=np.float32)

    def embeddings(self, part) -> np.ndarray:
        return self.context[part.first:part.first + part.rows]


def similarity(db: Path, example: str, n: int, yes: np.ndarray = np.zeros(0, np.int64),
               span: tuple[float, float] | tuple[None, None] = (None, None)) -> np.ndarray:
    """``(n,)`` cosine similarity of every window to the query (the example, only its windows centred in ``span``
    seconds when given, and the stored ``yes`` windows)."""
    scores = np.full(n, -np.inf)
    for hit in envsound.search(db, example, top=n, collapse=False, windows=[int(i) for i in yes], device="cpu",
                               start=span[0], end=span[1]):
        scores[hit.window] = hit.score
    return scores


def loudest(path: str, seconds: float = 1.0) -> tuple[float, float]:
    """The example's loudest ``seconds`` (most energy), as search's ``(start, end)``: where the user would point."""
    wave = load_audio(path, sample_rate=RATE)
    n = int(seconds * RATE)
    energy = np.concatenate([[0.0], np.cumsum(wave.astype(np.float64) ** 2)])
    at = int(np.argmax(energy[n:] - energy[:-n])) if len(wave) > n else 0
    return at / RATE, at / RATE + seconds


def head_of(model: Path) -> tuple[np.ndarray, np.ndarray]:
    """The learned model's head: weights ``(n_labels, d)`` and bias ``(n_labels,)``, float64."""
    state = load_checkpoint(model).state_dict
    weight_key, bias_key = head_keys(state)
    return state[weight_key].double().numpy(), state[bias_key].double().numpy()


def head_scores(model: Path, vectors: np.ndarray) -> np.ndarray:
    """The learned model's one label scored on every stored embedding ``(n, d)``: ``(n,)`` in [0, 1]."""
    weight, bias = head_of(model)
    return (1.0 / (1.0 + np.exp(-(vectors @ weight.T + bias))))[:, 0]


def next_unreviewed(ranking: np.ndarray, reviewed: set, k: int) -> list[int]:
    return [int(i) for i in ranking if int(i) not in reviewed][:k]


def learned(method: str, negatives: str, *, store: EmbeddingsStore, vectors: np.ndarray, truth: np.ndarray,
            search_scores: np.ndarray, label: str, rounds: int, k: int, precision: float, seed: int,
            work: Path, suggest_at: str = "threshold", smoother=None, clip_of=None, rule: str = "half") -> dict:
    """One class, one learned method: AP after each round and, at the end, the calibrated threshold and the
    precision it reaches on unreviewed windows."""
    rng = np.random.default_rng(seed)
    ranking = np.argsort(-search_scores, kind="stable")
    reviewed: list[int] = next_unreviewed(ranking, set(), k)
    aps, smooth_aps, clip_aps, result, scores, seconds = [], [], [], None, search_scores, []
    for _ in range(rounds):
        ids = np.array(reviewed, dtype=np.int64)
        said = np.where(truth[ids], "yes", "no")
        started = time.perf_counter()
        try:
            # context=0: each window scored alone, as the figures recorded were (--context S applies its own)
            result = learn_verdicts(store, {label: (ids, said)}, out=work, negatives=negatives, precision=precision,
                                    seed=seed, progress=False, context=0.0)
        except ConfigError:  # no yes yet (or, for negatives="none", no no): the next search hits
            result, scores = None, search_scores
            suggested = next_unreviewed(ranking, set(reviewed), k)
        else:
            scores = head_scores(result.model, vectors)
            if method == "loop":  # nearest 0.5 (learn's suggest since C=0.1) or nearest the calibrated threshold
                weight, bias = head_of(result.model)
                at = [0.5] if suggest_at == "half" else [result.labels[0].threshold]
                lacking = max(0, MIN_REVIEWED - int((said == "no").sum()))  # as learn passes it
                hits = suggest(store, weight, bias, [label], thresholds=at, labelled={label: ids}, top=k, rule=rule,
                               wanted_no={label: lacking})
                suggested = [hit.window for hit in hits]
            else:
                free = np.setdiff1d(np.arange(len(truth)), ids)
                suggested = [int(i) for i in rng.choice(free, size=min(k, len(free)), replace=False)]
        seconds.append(time.perf_counter() - started)
        aps.append(float(average_precision_score(truth, scores)))
        if smoother is not None:  # the same head's scores smoothed over neighbouring windows, not its suggestions
            smooth_aps.append(float(average_precision_score(truth, smoothed(scores, smoother))))
        if clip_of is not None:
            clip_aps.append(by_clip(scores, truth, clip_of))
        if len(aps) < rounds:
            reviewed += suggested
    ids = np.array(reviewed, dtype=np.int64)
    out = {"ap": aps, "ap_smoothed": smooth_aps, "ap_clip": clip_aps, "reviewed": len(ids),
           "yes": int(truth[ids].sum()), "no_in_first_20": int((~truth[ids[:20]]).sum()),
           "learn_seconds": seconds}
    if result is not None:
        label_result = result.labels[0]
        calibration = label_result.calibration
        unreviewed = np.ones(len(truth), bool)
        unreviewed[ids] = False
        above = unreviewed & (scores >= label_result.threshold)
        out.update(threshold=label_result.threshold, calibrated=calibration.calibrated, reached=calibration.reached,
                   expected_precision=calibration.precision, expected_interval=calibration.precision_interval,
                   above=int(above.sum()), precision_unreviewed=float(truth[above].mean()) if above.any() else None,
                   recall_unreviewed=float(truth[above].sum() / max(truth[unreviewed].sum(), 1)))
    return out


def searched(*, db: Path, example: str, truth: np.ndarray, search_scores: np.ndarray, rounds: int, k: int,
             span=(None, None)) -> dict:
    """Search alone, and search with the reviewed yes windows as more examples (the next k of its ranking a round)."""
    reviewed: list[int] = []
    scores, aps = search_scores, []
    for _ in range(rounds):
        reviewed += next_unreviewed(np.argsort(-scores, kind="stable"), set(reviewed), k)
        aps.append(float(average_precision_score(truth, scores)))
        yes = np.array([i for i in reviewed if truth[i]], dtype=np.int64)
        scores = similarity(db, example, len(truth), yes, span) if len(yes) else search_scores
    return {"ap": aps}


def report(rows: pd.DataFrame, finals: pd.DataFrame, rounds: int) -> list[str]:
    """Markdown lines: AP per round (mean ± std over the classes) a method, paired loop - random, per-class APs at
    the last round, the precision-at-threshold figures."""
    methods = list(dict.fromkeys(rows.method))
    lines = ["| reviewed a class | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
    for r in range(rounds):
        cells = [f"{rows[(rows.method == m) & (rows['round'] == r + 1)].ap.mean():.3f} ± "
                 f"{rows[(rows.method == m) & (rows['round'] == r + 1)].ap.std():.3f}" for m in methods]
        lines.append(f"| {(r + 1) * 10} | " + " | ".join(cells) + " |")
    lines.append("")
    pairs = [(m, m.replace("loop", "random", 1)) for m in methods if m.startswith("loop")]
    pairs += [(m, other) for m in methods if m.startswith("loop") for other in ("search+yes", "search")]
    pairs += [(a, b) for i, a in enumerate(methods) for b in methods[i + 1:] if a.startswith("loop")
              and b.startswith("loop") and a.split(" ")[0] == b.split(" ")[0]]  # the same loop, other settings
    for loop, rand in pairs:
        if loop not in methods or rand not in methods:
            continue
        cells = []
        for r in range(rounds):
            a = rows[(rows.method == loop) & (rows["round"] == r + 1)].set_index("class").ap
            b = rows[(rows.method == rand) & (rows["round"] == r + 1)].set_index("class").ap
            d = (a - b.loc[a.index])
            cells.append(f"round {r + 1}: {d.mean():+.3f} ± {d.std():.3f} ({int((d > 0).sum())}/{len(d)} classes)")
        lines.append(f"- {loop} - {rand}, paired: " + "; ".join(cells))
    lines.append("")
    last = rows[rows["round"] == rounds].pivot(index="class", columns="method", values="ap")[methods]
    lines += ["| class | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
    lines += [f"| {c} | " + " | ".join(f"{v:.3f}" for v in last.loc[c]) + " |" for c in last.index]
    lines.append("")
    if len(finals):
        lines += ["| class | method | threshold | calibrated (reached) | expected precision | windows above, "
                  "unreviewed | precision there | recall there |", "|---" * 8 + "|"]
        for f in finals.itertuples():
            expected = "-" if f.expected_precision is None or pd.isna(f.expected_precision) else \
                f"{f.expected_precision:.2f}"
            reached = "-" if f.precision_unreviewed is None or pd.isna(f.precision_unreviewed) else \
                f"{f.precision_unreviewed:.2f}"
            lines.append(f"| {f._1} | {f.method} | {f.threshold:.3f} | {f.calibrated} ({f.reached}) | {expected} | "
                         f"{f.above} | {reached} | {f.recall_unreviewed:.2f} |")
    return lines


def merged(out: Path, specs: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows of several runs: each ``SOURCE[=SUFFIX]``, SOURCE a ``--name`` folder under ``out`` (its
    ap_rounds.csv and thresholds.csv) or a file of this script's printed JSON lines (a run stopped before its
    tables: its learned methods only); SUFFIX is appended to the learned methods' names. Search rows: the first
    source's of each class."""
    tables, finals = [], []
    for spec in specs:
        source, _, suffix = spec.partition("=")
        path = out / source
        if path.is_dir():
            table = pd.read_csv(path / "ap_rounds.csv")
            final = pd.read_csv(path / "thresholds.csv")
        else:
            lines = [json.loads(line) for line in Path(source).read_text().splitlines() if line.startswith("{")]
            table = pd.DataFrame([{"class": r["class"], "method": r["method"], "round": i + 1, "ap": ap}
                                  for r in lines for i, ap in enumerate(r["ap"])])
            final = pd.DataFrame([{k: v for k, v in r.items() if k not in ("ap", "search", "search+yes")}
                                  for r in lines if "threshold" in r])
        learned_rows = ~table.method.isin(["search", "search+yes"])
        table.loc[learned_rows, "method"] = table.loc[learned_rows, "method"] + suffix
        if len(final):
            final["method"] = final["method"] + suffix
        tables.append(table)
        finals.append(final)
    table = pd.concat(tables).drop_duplicates(["class", "method", "round"]).reset_index(drop=True)
    return table, pd.concat(finals).reset_index(drop=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="an ESC-50 checkout (meta/esc50.csv, audio/)")
    parser.add_argument("--model", default="efficientat-mn04", help="the network to embed with")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--per-round", type=int, default=10)
    parser.add_argument("--precision", type=float, default=0.9)
    parser.add_argument("--classes", nargs="*", help="ESC-10 classes to run (default: all ten)")
    parser.add_argument("--methods", nargs="*", default=["loop/weak", "random/weak", "loop/none", "random/none"],
                        help="learned methods, METHOD/NEGATIVES (search and search+yes always run)")
    parser.add_argument("--C", type=float, default=None, help="the learner's C (default: envsound's, learn.C)")
    parser.add_argument("--weak-weight", type=float, default=None,
                        help="the weak negatives' weight (default: envsound's, learn.WEAK_WEIGHT)")
    parser.add_argument("--weak-min", type=int, default=None,
                        help="weak negatives a label at least (default: envsound's, learn.WEAK_MIN)")
    parser.add_argument("--suggest-at", choices=("threshold", "half"), default="threshold",
                        help="the loop's uncertainty: nearest the calibrated threshold or 0.5 (learn's suggest)")
    parser.add_argument("--rule", choices=("half", "mix"), default="half",
                        help="the loop's suggestion rule (envsound.agile.suggest: mix is learn's since issue 77, "
                             "half the rule before it, the default here so that older figures rerun as they were)")
    parser.add_argument("--mmr-lambda", type=float, default=None,
                        help="suggest's MMR_LAMBDA for rule mix (1: the uncertain windows in their order, no MMR)")
    parser.add_argument("--low-every", type=int, default=None,
                        help="suggest's LOW_EVERY for rule mix (0: windows from below only while a label lacks no)")
    parser.add_argument("--smooth", type=float, default=0.0,
                        help="also score each learned method with a window's logit averaged over its file's windows "
                             "starting within this many seconds (method NAME smoothed S s); 0: not")
    parser.add_argument("--context", type=float, default=0.0,
                        help="learn and score on each window's mean embedding over its file's windows starting within "
                             "this many seconds (search unchanged); 0: the stored embeddings")
    parser.add_argument("--by-clip", action="store_true",
                        help="also the AP over clips, a clip scored by its best window (method NAME by clip)")
    parser.add_argument("--query", choices=("whole", "loudest"), default="whole",
                        help="the example's windows searched: all of them, or those centred in its loudest second")
    parser.add_argument("--name", default="default", help="the results' folder under --out (the archive is shared)")
    parser.add_argument("--merge", nargs="+", metavar="SOURCE[=SUFFIX]",
                        help="only report: the tables of runs already made (see merged())")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.merge:
        table, final = merged(args.out, args.merge)
        print("\n".join(report(table, final, args.rounds)))
        return
    if args.C is not None:
        learn_module.C = args.C  # a module setting of the learner, read at each fit
    if args.weak_weight is not None:
        learn_module.WEAK_WEIGHT = args.weak_weight
    if args.weak_min is not None:
        learn_module.WEAK_MIN = args.weak_min
    if args.mmr_lambda is not None:  # module settings of the suggestions, read at each call
        suggest_module.MMR_LAMBDA = args.mmr_lambda
    if args.low_every is not None:
        suggest_module.LOW_EVERY = args.low_every
    started = time.monotonic()
    meta = pd.read_csv(args.root / "meta" / "esc50.csv")
    held, truth_table = archive(meta, args.root, args.out, args.seed)
    truth_table.to_csv(args.out / "truth.csv", index=False)
    pd.DataFrame({"category": list(held), "example": list(held.values())}).to_csv(args.out / "held_out.csv",
                                                                                  index=False)
    db = args.out / store_name(args.model)
    summary = envsound.embed(args.model, args.out / "archive", out=db,
                             options=envsound.ScanOptions(device="cpu", progress=False))
    print(summary.line(), flush=True)
    store = EmbeddingsStore(db)
    windows = window_truth(store, truth_table)
    vectors = store.vectors(windows.window.to_numpy()).astype(np.float64)
    smoother = neighbours(windows, args.smooth)
    if args.context:  # learn and score on each window's mean embedding over its file's windows within --context s
        vectors = np.asarray(neighbours(windows, args.context) @ vectors)
        store = ContextStore(db, vectors)
    print(f"{len(truth_table)} clips in {truth_table.file.nunique()} recordings, {store.windows} windows "
          f"({store.settings['window_seconds']} s), {vectors.shape[1]} dims; held out: "
          f"{', '.join(Path(p).name for p in held.values())}", flush=True)
    clip_of = pd.factorize(windows.recording + "/" + windows["clip"].astype(str))[0] if args.by_clip else None
    rows, finals = [], []
    for c, example in held.items():
        if args.classes and c not in args.classes:
            continue
        truth = (windows.category == c).to_numpy()
        span = loudest(example) if args.query == "loudest" else (None, None)
        base = similarity(db, example, len(truth), span=span)
        found = searched(db=db, example=example, truth=truth, search_scores=base, rounds=args.rounds,
                         k=args.per_round, span=span)
        rows += [{"class": c, "method": "search", "round": r + 1, "ap": found["ap"][0]} for r in range(args.rounds)]
        rows += [{"class": c, "method": "search+yes", "round": r + 1, "ap": ap} for r, ap in enumerate(found["ap"])]
        if clip_of is not None:
            rows += [{"class": c, "method": "search by clip", "round": r + 1, "ap": by_clip(base, truth, clip_of)}
                     for r in range(args.rounds)]
        for spec in args.methods:
            method, negatives = spec.split("/")
            got = learned(method, negatives, store=store, vectors=vectors, truth=truth, search_scores=base, label=c,
                          rounds=args.rounds, k=args.per_round, precision=args.precision, seed=args.seed,
                          work=args.out / args.name / "models" / c / spec.replace("/", "-"),
                          suggest_at=args.suggest_at, smoother=smoother, clip_of=clip_of, rule=args.rule)
            rows += [{"class": c, "method": spec, "round": r + 1, "ap": ap} for r, ap in enumerate(got["ap"])]
            smooth_aps, clip_aps = got.pop("ap_smoothed"), got.pop("ap_clip")
            rows += [{"class": c, "method": f"{spec} by clip", "round": r + 1, "ap": ap}
                     for r, ap in enumerate(clip_aps)]
            rows += [{"class": c, "method": f"{spec} smoothed {args.smooth:g} s", "round": r + 1, "ap": ap}
                     for r, ap in enumerate(smooth_aps)]
            if "threshold" in got:
                finals.append({"class": c, "method": spec, **{k: v for k, v in got.items() if k != "ap"}})
            print(json.dumps({"class": c, "method": spec, "ap": [round(a, 3) for a in got["ap"]],
                              "ap_smoothed": [round(a, 3) for a in smooth_aps],
                              "ap_clip": [round(a, 3) for a in clip_aps],
                              "search": round(found["ap"][0], 3), "search+yes": round(found["ap"][-1], 3),
                              **{k: v for k, v in got.items() if k not in ("ap", "learn_seconds")},
                              "learn_seconds": round(float(np.mean(got["learn_seconds"])), 2)}, default=str),
                  flush=True)
    table, final = pd.DataFrame(rows), pd.DataFrame(finals)
    table.to_csv(args.out / args.name / "ap_rounds.csv", index=False)
    final.to_csv(args.out / args.name / "thresholds.csv", index=False)
    lines = report(table, final, args.rounds)
    (args.out / args.name / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wall {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
