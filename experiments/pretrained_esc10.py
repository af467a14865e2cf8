"""ESC-10 from EfficientAT's AudioSet network: zero-shot, frozen probe, fine-tuning, few shots, against scratch.

    .venv/bin/python experiments/pretrained_esc10.py --root ../shared/data/esc50 \
        --weights ../shared/pretrained/efficientat/mn04_as_mAP_432.pt --out experiments/out/pretrained-esc10 \
        [--rows zero_shot probe full gradual scratch] [--shots 0 5 1] [--seeds 0] [--folds 1 2 3 4] [--set k=v ...]

Leave-one-fold-out over ``--folds`` (official folds), one cv folder per (K, seed, row) under ``OUT/k<K>/seed<s>/``:
- ``zero_shot``: no training: the tagger scored on each test fold through ``--label-map`` (default the package's
  ``audioset-esc10`` map, one AudioSet class per ESC-10 class; ``audioset_to_esc10_multi.csv`` maps every AudioSet
  class that names one, their logits averaged); the decision among the mapped classes; the same for every K and seed.
- ``probe``, ``full``, ``gradual``: ``--init WEIGHTS`` with that ``transfer.mode`` and the network's fine-tuning
  recipe (its model preset: 30 epochs, lr 3e-4, mixup 0.3, SpecAugment, no offline copies).
- ``scratch``: the default ``cnn`` at its own default schedule (no --init).
K = 0 is every training clip; K > 0 keeps K clips a class (``train.shots``, grouped by source recording, the same
clips for every row of a seed). A finished cv (``cv.json``) is read back, not rerun. Writes ``OUT/results.md``: per K
and row the accuracy mean ± std over the (seed, fold) runs, the paired difference to ``scratch`` (mean ± std, paired
t-test) where both exist, and the wall time of the row's runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
from scipy import stats

from envsound.data.registry import load_dataset
from envsound.evaluation.evaluate import evaluate_model
from envsound.features.cache import FeatureCache
from envsound.fileio import write_text_atomic
from envsound.models.clip import ClipModel
from envsound.models.files import open_model_file
from envsound.recipes.config import resolve
from envsound.recipes.context import RunContext
from envsound.recipes.crossval import run_cv
from envsound.transfer.maps import label_map_path
from envsound.transfer.zero_shot import zero_shot_checkpoint

MAP = label_map_path("audioset-esc10")  # shipped in the package (src/envsound/transfer/maps)
log = logging.getLogger("pretrained_esc10")


def zero_shot(manifest, weights: str, label_map: Path, folds: list[int], out: Path, cache) -> dict:
    path = out / "cv.json"
    if path.exists():
        return json.loads(path.read_text())
    start = time.perf_counter()
    checkpoint = zero_shot_checkpoint(open_model_file(weights).checkpoint, label_map, manifest.labels, task=manifest.task)
    model = ClipModel.from_checkpoint(checkpoint, source=weights, device="cpu")
    scores = []
    for fold in folds:
        result = evaluate_model(model, manifest.select_folds([fold]), cache=cache, progress=False)
        scores.append({"fold": fold, "accuracy": result.report["accuracy"]})
    summary = {"folds": scores, "seconds": time.perf_counter() - start}
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(summary, indent=1))
    return summary


def run_row(row: str, manifest, args, k: int, seed: int, cache) -> dict:
    out = args.out / f"k{k}" / f"seed{seed}" / row
    if row == "zero_shot":
        name = "zero_shot" if args.label_map == MAP else f"zero_shot_{args.label_map.stem}"
        return zero_shot(manifest, args.weights, args.label_map, args.folds, args.out / name, cache)
    if (out / "cv.json").exists():
        return json.loads((out / "cv.json").read_text())
    sets = [f"train.shots={k}", f"train.seed={seed}"]
    if row == "scratch":
        config, init = resolve(overrides=sets), None
    else:
        config = resolve(init=args.weights, transfer=row, overrides=[*sets, *args.overrides])
        init = args.weights
    log.info("K=%d seed %d %s", k, seed, row)
    return run_cv(manifest, config, folds=args.folds, out_dir=out, init=init,
                  context=RunContext(cache=cache, resume=out.exists(), progress=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--weights", required=True, help="the AudioSet weight file (or efficientat-mn04)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rows", nargs="+", default=["zero_shot", "probe", "full"])
    parser.add_argument("--shots", nargs="+", type=int, default=[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--folds", nargs="+", type=int, default=[1, 2, 3, 4])
    parser.add_argument("--label-map", type=Path, default=MAP, help="zero_shot: AudioSet -> ESC-10 pairs")
    parser.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    manifest = load_dataset("esc10", args.root)
    cache = FeatureCache()
    results: dict = {}
    for k in args.shots:
        for seed in args.seeds:
            for row in args.rows:
                summary = run_row(row, manifest, args, k, seed, cache)
                results.setdefault((k, row), []).append(summary)
    lines = ["| K | row | accuracy mean ± std (%) | folds | vs scratch (points) | p (paired t) | minutes |",
             "|---|---|---|---|---|---|---|"]
    for (k, row), runs in results.items():
        acc = [100 * f["accuracy"] for run in runs for f in run["folds"]]
        base = [100 * f["accuracy"] for run in results.get((k, "scratch"), []) for f in run["folds"]]
        diff, p = "", ""
        if row != "scratch" and len(base) == len(acc) > 1:
            d = np.subtract(acc, base)
            diff = f"{d.mean():+.1f} ± {d.std(ddof=1):.1f}"
            p = f"{stats.ttest_rel(acc, base).pvalue:.3g}" if d.std() > 0 else "n/a"
        minutes = sum(run.get("seconds", 0) for run in runs) / 60
        lines.append(f"| {k or 'all'} | {row} | {np.mean(acc):.2f} ± {np.std(acc, ddof=1):.2f} | "
                     f"{' / '.join(f'{a:.2f}' for a in acc)} | {diff} | {p} | {minutes:.1f} |")
    table = "\n".join(lines) + "\n"
    write_text_atomic(args.out / "results.md", table)
    print(table)


if __name__ == "__main__":
    main()
