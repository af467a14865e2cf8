"""Semi-supervised comparison on ESC-10: supervised only vs autoencoder pre-training vs FixMatch, per labelled share.

    .venv/bin/python experiments/semi_supervised.py --root ../shared/data/esc50 --out experiments/out/semi \
        [--models dtu2018 cnn] [--fractions 0.1 0.25 0.5 1.0] [--folds 1 2 3 4] \
        [--methods supervised cae_unpool cae_upsample fixmatch mixmatch] [--pool esc10 | esc50] \
        [--set key=value ...] [--cache-dir DIR] [--pretrain-set key=value ...] [--semi-set key=value ...]

ESC-10 leave-one-fold-out cross-validation over ``--folds`` of an ESC-50 root. For each test fold k and labelled
share p: labelled = a stratified share p of the ESC-10 clips of the other folds (grouped by source recording, the same
clips for every method: ``train.label_fraction``, seeded by ``train.seed``); unlabelled (labels ignored) = with
``--pool esc10`` (the default, the published protocol) the ESC-10 clips of those folds left unlabelled, with ``--pool
esc50`` every clip of those folds, all 50 classes. Rows:

- ``supervised``: the labelled clips only;
- ``cae_unpool`` / ``cae_upsample``: a convolutional autoencoder pre-trained on every clip of the other folds (all
  50 classes, whatever ``--pool``), then fine-tuned on the labelled ones (``--init``). Pre-training does not depend
  on p: one autoencoder per model x decoder x test fold (``OUT/<model>/cae_<decoder>/fold_<k>/``), pre-trained
  without fold k, reused for every p. The ``cnn`` trunk average-pools, so it has no ``unpool`` row;
- ``fixmatch``, ``mixmatch``: labelled and unlabelled batches together (``semi.method``; ``--semi-set semi.*`` tunes
  them); ``remixmatch`` and ``mean_teacher`` likewise, when asked for with ``--methods``;
- ``self_training`` (with ``--methods``): supervised rounds on the labelled clips plus the pool clips the last round's
  model is surest of, each round the budget of a supervised run.

Every row at p < 1 makes at least ``train.min_steps`` optimizer steps (unset: 1,500, the same for every method; the
CAE's pre-training is not counted); ``--set train.min_steps=0`` gives ``train.max_epochs`` as it is.
A model is a registered model name or a preset (``dtu2018`` = the original study's features, model and training).
Every run is an ordinary ``cross_validate`` folder ``OUT/<model>/p<p>/<method>/`` (``<method>-esc50`` for the esc50
pool); a finished one (``cv.json``) is read, an interrupted one resumes its finished folds. Prints, and writes to
``OUT/results.md`` / ``results.json``: accuracy mean ± std over the test folds, and each method's paired difference to
``supervised`` (same model, p and folds): mean ± std of the per-fold differences and a paired t-test p-value (scipy;
n = number of folds, so read it with care for 4 folds).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
from scipy import stats

from envsound.config import Config, preset_names
from envsound.data.records import Manifest
from envsound.data.registry import load_dataset
from envsound.errors import ConfigError
from envsound.features.cache import FeatureCache
from envsound.fileio import write_json_atomic, write_text_atomic
from envsound.models.autoencoder import CHECKPOINT_NAME, check_decoder
from envsound.recipes.config import resolve
from envsound.recipes.context import RunContext
from envsound.recipes.crossval import run_cv
from envsound.recipes.pretrain import pretrain_autoencoder

log = logging.getLogger("semi_supervised")

SEMI_METHODS = ("fixmatch", "mixmatch", "remixmatch", "mean_teacher", "self_training")
METHODS = ("supervised", "cae_unpool", "cae_upsample", *SEMI_METHODS)
DEFAULT_METHODS = METHODS[:4]
POOLS = ("esc10", "esc50")


def model_config(spec: str, overrides: list[str]) -> Config:
    """The config of ``spec`` (a preset name such as ``dtu2018``, or a model name) with ``overrides`` on top, layered
    as the CLI's ``--preset`` / ``--model`` are."""
    if spec in preset_names():
        return resolve(preset=spec, overrides=overrides)
    return resolve(model=spec, overrides=overrides)


def pretrained_encoders(spec: str, config: Config, decoder: str, clips: Manifest, folds: list[int], out: Path,
                        cache: FeatureCache | None, *, suffix: str = "") -> dict[int, Path]:
    """``{test fold: autoencoder.ckpt}``, each pre-trained on ``clips`` of the other folds (resumable)."""
    paths = {}
    for fold in folds:
        run = out / spec / f"cae_{decoder}{suffix}" / f"fold_{fold}"
        if not (run / CHECKPOINT_NAME).exists():
            pool = clips.select_folds([f for f in folds if f != fold])
            log.info("%s: pre-training the %s autoencoder without fold %d (%d clips)", spec, decoder, fold, len(pool))
            pretrain_autoencoder(pool, config, decoder=decoder, out_dir=run,
                                 context=RunContext(cache=cache, resume=run.exists(), progress=False))
        paths[fold] = run / CHECKPOINT_NAME
    return paths


def run_method(spec: str, method: str, p: float, config: Config, esc10: Manifest, esc50: Manifest,
               folds: list[int], out: Path, cache: FeatureCache | None, *, pretrain_overrides: list[str] = (),
               semi_overrides: list[str] = (), pool: str = "esc10") -> dict | None:
    """The ``cv.json`` summary of one row and labelled share (``None`` for a method the model cannot do, or a
    semi-supervised row with nothing left unlabelled).

    ``pretrain_overrides`` apply to autoencoder pre-training only, ``semi_overrides`` to the semi-supervised rows
    only. ``pool``: ``esc10`` = the clips of the training folds left unlabelled; ``esc50`` = every clip of the other
    folds (autoencoders pre-train on the same clips).
    """
    config = config.with_overrides([f"train.label_fraction={p}"])
    init = unlabelled = None
    suffix = "" if pool == "esc10" or method == "supervised" else f"-{pool}"
    if method.startswith("cae_"):
        decoder = method.removeprefix("cae_")
        try:
            check_decoder(config.model.name, decoder)
        except ConfigError as exc:  # cnn + unpool: the trunk average-pools
            log.warning("%s: skipping %s (%s)", spec, method, exc)
            return None
        init = pretrained_encoders(spec, config.with_overrides(pretrain_overrides), decoder,
                                   esc10 if pool == "esc10" else esc50, folds, out, cache, suffix=suffix)
    elif method in SEMI_METHODS:
        if pool == "esc10" and p >= 1:
            log.warning("%s: no %s row at p=%g: nothing is left unlabelled in the esc10 pool", spec, method, p)
            return None
        config = config.with_overrides([*semi_overrides, f"semi.method={method}"])
        # esc10: the training folds' clips left unlabelled by train.label_fraction are the pool; esc50 adds the other
        # 40 classes (cross_validate leaves out each test fold's clips and sources)
        unlabelled = esc50 if pool == "esc50" else None
    run = out / spec / f"p{p:g}" / f"{method}{suffix}"
    if (run / "cv.json").exists():
        return json.loads((run / "cv.json").read_text())
    log.info("%s, p=%g, %s%s: cross-validating", spec, p, method, suffix)
    return run_cv(esc10, config.validate(), folds=folds, out_dir=run,
                  context=RunContext(cache=cache, resume=run.exists(), progress=False), init=init,
                  unlabelled=unlabelled)


def paired(method_acc: list[float], base_acc: list[float]) -> dict:
    """Mean ± std (ddof=1) of the per-fold differences and the paired t-test p-value (NaN when undefined)."""
    diff = np.asarray(method_acc) - np.asarray(base_acc)
    std = float(diff.std(ddof=1)) if len(diff) > 1 else float("nan")
    with np.errstate(all="ignore"):
        p_value = float(stats.ttest_rel(method_acc, base_acc).pvalue) if len(diff) > 1 else float("nan")
    return {"mean_diff": float(diff.mean()), "std_diff": std, "p_value": p_value}


def tables(results: list[dict], fractions: list[float]) -> str:
    head = "| model | method | " + " | ".join(f"p = {p:g}" for p in fractions) + " |"
    rule = "|---|---|" + "---|" * len(fractions)
    acc, diff = [head, rule], [head, rule]
    for row in results:
        cells, deltas = [], []
        for p in fractions:
            r = row["by_fraction"].get(f"{p:g}")
            cells.append("n/a" if r is None else f"{r['mean'] * 100:.1f} ± {r['std'] * 100:.1f}")
            d = None if r is None else r.get("vs_supervised")
            deltas.append("n/a" if d is None else f"{d['mean_diff'] * 100:+.1f} ± {d['std_diff'] * 100:.1f} "
                                                  f"(p = {d['p_value']:.2f})")
        acc.append(f"| {row['model']} | {row['method']} | " + " | ".join(cells) + " |")
        if row["method"] != "supervised":
            diff.append(f"| {row['model']} | {row['method']} | " + " | ".join(deltas) + " |")
    return ("Accuracy (%), mean ± std over the test folds:\n\n" + "\n".join(acc) +
            "\n\nPaired difference to `supervised` (percentage points, mean ± std over folds; paired t-test p):\n\n"
            + "\n".join(diff) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, required=True, help="ESC-50 root (meta/esc50.csv, audio/)")
    parser.add_argument("--out", type=Path, required=True, help="results folder (resumable)")
    parser.add_argument("--models", nargs="+", default=["dtu2018", "cnn"], help="model or preset names")
    parser.add_argument("--fractions", nargs="+", type=float, default=[0.1, 0.25, 0.5, 1.0])
    parser.add_argument("--folds", nargs="+", type=int, default=[1, 2, 3, 4])
    parser.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS), choices=METHODS,
                        help="rows (supervised is always run: every row is paired with it)")
    parser.add_argument("--pool", choices=POOLS, default="esc10",
                        help="unlabelled clips: esc10 = the training folds' ESC-10 clips left unlabelled (the "
                             "published protocol); esc50 = every clip of the other folds, the 40 other classes too")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for every run, e.g. train.max_epochs=50 (repeatable)")
    parser.add_argument("--pretrain-set", dest="pretrain_overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override for autoencoder pre-training only, e.g. train.max_epochs=30")
    parser.add_argument("--semi-set", dest="semi_overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override for the fixmatch / mean_teacher rows only, e.g. semi.mu=1")
    parser.add_argument("--cache-dir", type=Path, help="feature cache (default: ~/.cache/envsound/features)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    log.setLevel(logging.INFO)  # this script's progress; the library and Lightning only warn
    import warnings

    import lightning.pytorch  # noqa: F401  (Lightning installs its own handler on import; set its level after)

    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="lightning")
    warnings.filterwarnings("ignore", category=UserWarning, module="torch")

    cache = FeatureCache(args.cache_dir)
    esc50 = load_dataset("esc50", args.root).select_folds(args.folds)
    esc10 = load_dataset("esc10", args.root).select_folds(args.folds)
    methods = ["supervised"] + [m for m in args.methods if m != "supervised"]  # the baseline every row is paired with
    results = []
    for spec in args.models:
        config = model_config(spec, args.overrides)
        base: dict[str, list[float]] = {}
        for method in methods:
            row = {"model": spec, "method": method, "by_fraction": {}}
            for p in args.fractions:
                summary = run_method(spec, method, p, config, esc10, esc50, args.folds, args.out, cache,
                                     pretrain_overrides=args.pretrain_overrides, semi_overrides=args.semi_overrides,
                                     pool=args.pool)
                if summary is None and method in SEMI_METHODS:
                    continue  # nothing left unlabelled at this p: the table says n/a
                if summary is None:
                    row = None
                    break
                accs = [f["accuracy"] for f in summary["folds"]]
                entry = {"mean": summary["mean_accuracy"], "std": summary["std_accuracy"], "folds": accs}
                if method == "supervised":
                    base[f"{p:g}"] = accs
                else:
                    entry["vs_supervised"] = paired(accs, base[f"{p:g}"])
                row["by_fraction"][f"{p:g}"] = entry
            if row is None:
                print(f"note: {spec} has no {method} row (its trunk average-pools: no max-pool switches to unpool)")
                continue
            results.append(row)
    markdown = tables(results, args.fractions)
    write_text_atomic(args.out / "results.md", markdown)
    write_json_atomic(args.out / "results.json", {"folds": args.folds, "fractions": args.fractions,
                                                  "overrides": args.overrides,
                                                  "pretrain_overrides": args.pretrain_overrides,
                                                  "semi_overrides": args.semi_overrides, "pool": args.pool,
                                                  "rows": results})
    print(markdown, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
