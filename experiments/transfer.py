"""Transfer from our own models on ESC-50: source = the 40 classes that are not ESC-10, target = ESC-10, few-shot.

    .venv/bin/python experiments/transfer.py --root ../shared/data/esc50 --out experiments/out/transfer \
        [--shots 1 5] [--seeds 0 1 2] [--rows scratch cae probe full gradual] [--folds 1 2 3 4] \
        [--epochs 1=100 5=60] [--source-set key=value ...] [--pretrain-set key=value ...] [--set key=value ...]

1. The source model: the default ``cnn`` trained on every clip of the 40 non-ESC-10 classes in ``--folds``
   (``--source-set`` on top, e.g. fewer epochs) -> ``OUT/source/model.ckpt``. It never hears an ESC-10 class, so no
   target test clip can leak (``train_model`` checks it anyway, by audio content, for every fold).
2. The CAE source: the ``cnn`` autoencoder (``upsample`` decoder) pre-trained on the same clips -> ``OUT/cae/``.
3. For every K in ``--shots`` and seed in ``--seeds``: ESC-10 leave-one-fold-out CV over ``--folds`` with K labelled
   clips per class from the training folds (``train.shots``, grouped by source, the same clips for every row of one
   seed), one cv folder per row ``OUT/k<K>/seed<s>/<row>/``:
   ``scratch`` (no --init), ``cae`` (full fine-tuning from the autoencoder's encoder), ``probe``, ``full``, ``gradual``
   (``transfer.mode`` from the source classifier). ``--epochs K=N`` sets ``train.max_epochs`` per K for every row.
   K = 0 means every training clip (24 a class).

A finished run (``cv.json``) is read, not rerun. Writes ``OUT/results.md`` and ``results.json``: per K and row the
accuracy mean ± std over all (seed, fold) runs, the paired difference to ``scratch`` over the same (seed, fold) pairs
(mean ± std) with a paired t-test p-value (scipy), and the summed wall time of the row's cv runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats

from envsound.config import Config
from envsound.data.registry import load_dataset
from envsound.features.cache import FeatureCache
from envsound.fileio import write_json_atomic, write_text_atomic
from envsound.recipes.config import resolve
from envsound.recipes.context import RunContext
from envsound.recipes.crossval import run_cv
from envsound.recipes.pretrain import pretrain_autoencoder
from envsound.recipes.train import train_model

log = logging.getLogger("transfer")

ROWS = ("scratch", "cae", "probe", "full", "gradual")


def source_model(esc40, overrides: list[str], out: Path, cache) -> Path:
    path = out / "source" / "model.ckpt"
    if not path.exists():
        log.info("training the source model on %d clips of %d classes", len(esc40), len(esc40.labels))
        train_model(esc40, resolve(overrides=overrides), out_dir=path.parent,
                    context=RunContext(cache=cache, resume=path.parent.exists(), progress=False))
    return path


def cae_model(esc40, overrides: list[str], out: Path, cache) -> Path:
    path = out / "cae" / "autoencoder.ckpt"
    if not path.exists():
        log.info("pre-training the cnn autoencoder on the same %d clips", len(esc40))
        context = RunContext(cache=cache, resume=path.parent.exists(), progress=False)
        pretrain_autoencoder(esc40, resolve(model="cnn", overrides=overrides), decoder="upsample",
                             out_dir=path.parent, context=context)
    return path


def row_config(row: str, source: Path, cae: Path, base: list[str]) -> tuple[Config, Path | None]:
    """The config and --init of one row, as ``envsound cv [--init SOURCE] --set ...`` makes them: from a source, the
    features and model are the source's."""
    if row == "scratch":
        return resolve(overrides=base), None
    if row == "cae":
        return resolve(init=cae, overrides=base + ["transfer.mode=full"]), cae
    return resolve(init=source, overrides=base + [f"transfer.mode={row}"]), source


def summarise(results: dict, shots: list[int], rows: list[str]) -> tuple[str, dict]:
    lines = ["| K (clips a class) | row | accuracy mean ± std (%) | runs | vs scratch (points) | p (paired t) | "
             "minutes |", "|---|---|---|---|---|---|---|"]
    table = {}
    for k in shots:
        base = results.get(f"k{k}", {}).get("scratch", {})
        for row in rows:
            runs = results.get(f"k{k}", {}).get(row, {})
            if not runs:
                continue
            acc = np.array([a for r in runs.values() for a in r["accuracies"]]) * 100
            minutes = sum(r["seconds"] for r in runs.values()) / 60
            diff, p = "", ""
            if row != "scratch":
                pairs = [(a, b) for seed, r in runs.items() if seed in base
                         for a, b in zip(r["accuracies"], base[seed]["accuracies"])]
                if len(pairs) >= 2:
                    d = np.array([(a - b) * 100 for a, b in pairs])
                    diff = f"{d.mean():+.1f} ± {d.std(ddof=0):.1f}"
                    p = f"{stats.ttest_rel([a for a, _ in pairs], [b for _, b in pairs]).pvalue:.3g}" \
                        if d.std() > 0 else "n/a"
            label = "all (24)" if k == 0 else str(k)
            lines.append(f"| {label} | {row} | {acc.mean():.1f} ± {acc.std(ddof=0):.1f} | {len(acc)} | {diff} | {p} | "
                         f"{minutes:.1f} |")
            table[f"k{k}/{row}"] = {"mean": acc.mean(), "std": acc.std(ddof=0), "n": len(acc), "diff": diff, "p": p,
                                    "minutes": minutes}
    return "\n".join(lines) + "\n", table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--shots", type=int, nargs="+", default=[5, 1])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=ROWS)
    parser.add_argument("--folds", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--epochs", nargs="*", default=["1=100", "5=60"], metavar="K=N")
    parser.add_argument("--source-set", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--pretrain-set", nargs="*", default=["train.max_epochs=20"], metavar="KEY=VALUE")
    parser.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--cache-dir", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    cache = FeatureCache(args.cache_dir)
    epochs = {int(k): int(n) for k, n in (item.split("=") for item in args.epochs)}

    esc10_labels = load_dataset("esc10", args.root).labels
    esc50 = load_dataset("esc50", args.root).select_folds(args.folds)
    esc40 = esc50.select_classes(exclude=esc10_labels)
    esc10 = esc50.select_classes(esc10_labels)
    source = source_model(esc40, args.source_set, args.out, cache)
    cae = cae_model(esc40, args.pretrain_set, args.out, cache) if "cae" in args.rows else None

    results_path = args.out / "results.json"
    results = json.loads(results_path.read_text())["runs"] if results_path.exists() else {}
    for seed in args.seeds:  # every K of one seed before the next seed: a cut-off run still has paired rows
        for k in args.shots if seed == args.seeds[0] else [k for k in args.shots if k]:
            for row in args.rows:
                run = args.out / f"k{k}" / f"seed{seed}" / row
                base = [f"train.seed={seed}", f"train.shots={k}", *args.overrides]
                if k in epochs:
                    base.append(f"train.max_epochs={epochs[k]}")
                config, init = row_config(row, source, cae, base)
                if not (run / "cv.json").exists():
                    log.info("K=%d seed %d %s", k, seed, row)
                    start = time.perf_counter()
                    run_cv(esc10, config, folds=args.folds, out_dir=run, init=init,
                           context=RunContext(cache=cache, resume=run.exists(), progress=False))
                    log.info("K=%d seed %d %s: %.0f s", k, seed, row, time.perf_counter() - start)
                summary = json.loads((run / "cv.json").read_text())
                results.setdefault(f"k{k}", {}).setdefault(row, {})[str(seed)] = {
                    "accuracies": [f["accuracy"] for f in summary["folds"]], "seconds": summary["seconds"]}
                markdown, table = summarise(results, args.shots, list(args.rows))
                write_json_atomic(results_path, {"runs": results, "table": table})
                write_text_atomic(args.out / "results.md", markdown)
    print(markdown, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
