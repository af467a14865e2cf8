"""Call density measured (issue 77, "Measured": the estimate's interval holding the true share for >= 9 classes of
10, over 3 seeds): ``envsound check MODEL DB --density`` on the archive of ``experiments/agile_review.py`` (ESC-50
clips joined into recordings, embedded by mn04 into ``archive.db``), answered from the truth.

For each ESC-10 class, the detector is the one ``agile_review.py``'s simulated loop learned from its 50 reviews
(``--models``/CLASS/loop-weak/model.ckpt, copied beside this run's sheets). For each seed, ``check --density`` draws
``--sample`` windows stratified over score bins into CLASS.density.csv; a reviewer who is never wrong fills it in
from the truth (a window holds the class of the clip under its centre, as agile_review.py says), ``envsound label``
stores it (a labels store of this run's own), and ``check --density`` again gives the share of windows and of
recording time holding the class and the recall at the detector's threshold, each with its 95 % interval. Each is
compared with the truth over every window of the store: the share of windows, the share of time (each window
weighted by the time it alone covers, as the estimate weighs it) and the share of the class's windows at or above
the threshold.

    .venv/bin/python experiments/agile_density.py --out experiments/out/agile-review [--seeds 0 1 2] [--sample 50] \\
        [--store archive-yamnet.db --models experiments/out/agile-review/yamnet/models --name density-yamnet]

Tables: ``--out``/NAME/density.csv (one row a class and seed) and report.md. Each row also has the share under
Jeffreys' symmetric prior, Beta(1/2, 1/2) a bin (``jeffreys*``), from the same answers.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from agile_review import window_truth  # noqa: E402  (the archive's truth, as the loop was measured on it)

from envsound.agile.check import check  # noqa: E402
from envsound.agile.density import estimate, own_seconds  # noqa: E402
from envsound.agile.labels import label  # noqa: E402
from envsound.inference.embeddings import EmbeddingsStore  # noqa: E402


def model_scores(model: Path, store: EmbeddingsStore, ids: np.ndarray, name: str) -> np.ndarray:
    """The learned model's scores of ``name`` on the windows ``ids``, as check scores them (its head)."""
    from envsound.inference.predictor import Predictor

    predictor = Predictor.from_checkpoint(model, device="cpu", precision="32")
    return predictor.model.head_probs(store.vectors(ids))[:, list(predictor.labels).index(name)]


def one(c: str, seed: int, *, db: Path, source: Path, work: Path, windows: pd.DataFrame, seconds: np.ndarray,
        sample: int) -> dict:
    """One class, one seed: draw, answer from the truth, store, estimate; the estimate against the truth."""
    work.mkdir(parents=True, exist_ok=True)
    model = Path(shutil.copy(source, work / "model.ckpt"))
    labels = work / "labels.sqlite"
    labels.unlink(missing_ok=True)
    for old in work.glob("*.density.csv"):
        old.unlink()
    drawn = check(model, db, labels=c, sample=sample, seed=seed, store=str(labels), density=True).densities[0]
    sheet = pd.read_csv(drawn.sheet, keep_default_na=False)
    holds = (windows.set_index("window").loc[sheet["window"], "category"] == c).to_numpy()
    sheet["verdict"] = np.where(holds, "yes", "no")
    sheet.to_csv(work / "answered.csv", index=False)
    stored = label(db, work / "answered.csv", store=labels)
    if stored.problems:
        raise SystemExit(f"{c}: label refused the answered sheet: {stored.problems[:3]}")
    found = check(model, db, labels=c, sample=sample, seed=seed, store=str(labels), density=True).densities[0]
    truth = (windows["category"] == c).to_numpy()
    scores = model_scores(model, EmbeddingsStore(db), windows["window"].to_numpy(), c)
    true = {"windows_share": float(truth.mean()), "time_share": float(seconds[truth].sum() / seconds.sum()),
            "recall": float((scores[truth] >= found.threshold).mean())}
    row = {"class": c, "seed": seed, "threshold": found.threshold, "bins": len(found.bins), "drawn": found.drawn,
           "yes": sum(b.yes for b in found.bins)}
    for name, value in true.items():
        said = getattr(found, name)
        row.update({f"{name}_true": value, f"{name}": said.value, f"{name}_low": said.low, f"{name}_high": said.high,
                    f"{name}_holds": bool(said.low <= value <= said.high)})
    # the same answers under Jeffreys' symmetric prior, Beta(1/2, 1/2), for comparison
    bins = found.bins
    jeffreys = estimate(np.array([b.windows for b in bins]), np.array([b.seconds for b in bins]),
                        np.array([b.yes for b in bins]), np.array([b.no for b in bins]),
                        np.array([b.low >= found.threshold for b in bins]), seed=seed, prior=(0.5, 0.5))[0]
    row.update(jeffreys=jeffreys.value, jeffreys_low=jeffreys.low, jeffreys_high=jeffreys.high,
               jeffreys_holds=bool(jeffreys.low <= true["windows_share"] <= jeffreys.high))
    print(found.line(), flush=True)
    return row


def report(table: pd.DataFrame) -> list[str]:
    """Markdown: per class and seed the share (truth, estimate, interval), and how often each interval holds."""
    lines = ["| class | seed | true share | estimate (95 %) | holds | true recall | recall (95 %) | holds |",
             "|---|---|---|---|---|---|---|---|"]
    for r in table.itertuples():
        share_holds, recall_holds = ("yes" if held else "NO" for held in (r.windows_share_holds, r.recall_holds))
        lines.append(f"| {r._1} | {r.seed} | {r.windows_share_true:.3f} | {r.windows_share:.3f} "
                     f"({r.windows_share_low:.3f}-{r.windows_share_high:.3f}) | {share_holds} | {r.recall_true:.2f} "
                     f"| {r.recall:.2f} ({r.recall_low:.2f}-{r.recall_high:.2f}) | {recall_holds} |")
    lines.append("")
    lines.append("jeffreys: the share of windows under a Beta(1/2, 1/2) prior per bin instead (the same answers)")
    for name in ("windows_share", "time_share", "recall", "jeffreys"):
        per_seed = ", ".join(f"{int(v)}/{(table.seed == s).sum()}"
                             for s, v in table.groupby("seed")[f"{name}_holds"].sum().items())
        width = (table[f"{name}_high"] - table[f"{name}_low"]).mean()
        lines.append(f"- {name}: the interval holds the truth for {int(table[f'{name}_holds'].sum())} of "
                     f"{len(table)} (class, seed); per seed {per_seed}"
                     f"; classes held on every seed {int(table.groupby('class')[f'{name}_holds'].all().sum())}"
                     f" of {table['class'].nunique()}; mean interval width {width:.3f}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="agile_review.py's --out (archive.db, truth.csv)")
    parser.add_argument("--models", type=Path, default=None,
                        help="the loop's models, CLASS/loop-weak/model.ckpt (default: --out/mn04/models)")
    parser.add_argument("--store", default="archive.db",
                        help="the store under --out the models read (archive.db: mn04's; archive-yamnet.db, ...)")
    parser.add_argument("--name", default="density", help="the results' folder under --out")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--sample", type=int, default=50)
    parser.add_argument("--classes", nargs="*", help="ESC-10 classes (default: those with a model)")
    args = parser.parse_args()
    started = time.monotonic()
    models = args.models or args.out / "mn04" / "models"
    db = args.out / args.store
    store = EmbeddingsStore(db)
    windows = window_truth(store, pd.read_csv(args.out / "truth.csv"))
    seconds = own_seconds(store, windows["window"].to_numpy())
    classes = args.classes or sorted(p.parent.parent.name for p in models.glob("*/loop-weak/model.ckpt"))
    rows = [one(c, seed, db=db, source=models / c / "loop-weak" / "model.ckpt",
                work=args.out / args.name / f"seed-{seed}" / c, windows=windows, seconds=seconds, sample=args.sample)
            for seed in args.seeds for c in classes]
    table = pd.DataFrame(rows)
    table.to_csv(args.out / args.name / "density.csv", index=False)
    lines = report(table)
    (args.out / args.name / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wall {time.monotonic() - started:.0f} s; {len(windows)} windows, {len(classes)} classes, "
          f"sample {args.sample}")


if __name__ == "__main__":
    main()
