"""Leave-one-fold-out cross-validation over official folds: :func:`run_cv`, the engine of
:func:`envsound.cross_validate` (which lists the dataset and resolves the config first) on a listed Manifest and a
resolved Config.

For each test fold: train on the other folds (validation split taken from inside them), evaluate on the test fold.
Writes ``cv.json`` (per fold and mean ± std), ``predictions.csv`` and ``confusion.png`` (single-label) or
``per_class_ap.png`` (multi-label) of all test folds together.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from envsound.config import Config
from envsound.data.records import Manifest
from envsound.data.splits import check_no_leakage, cv_splits, exclude_clips_of
from envsound.errors import ConfigError, DatasetLayoutError
from envsound.evaluation.evaluate import Evaluation, evaluate_model
from envsound.evaluation.frozen import scoring_model
from envsound.evaluation.metrics import summarize_folds, task_report
from envsound.evaluation.plots import plot_class_scores, plot_confusion_matrix, plot_training_curves
from envsound.fileio import run_lock, write_json_atomic, write_text_atomic
from envsound.models.checkpoint import load_checkpoint
from envsound.recipes.context import RunContext
from envsound.recipes.fit_paths import hint_noisy_strong
from envsound.recipes.run_folder import CV_SUMMARY, check_no_single_run
from envsound.recipes.train import CHECKPOINT_NAME, train_model
from envsound.task import Task
from envsound.transfer.notes import once_per_run

log = logging.getLogger(__name__)

FOLD_SCORES = {"single_label": ("accuracy", "macro_f1"), "multi_label": ("lwlrap", "mAP", "micro_f1", "macro_f1")}
SED_SCORES = ("segment_f1", "event_f1", "psds", "psds2", "sed")  # a set with strong labels (evaluation/sed.py)


def run_cv(
    manifest: Manifest,
    config: Config,
    *,
    folds: Sequence[int] | None = None,
    out_dir: str | Path,
    context: RunContext = RunContext(),
    init: str | Path | Mapping[int, str | Path] | None = None,
    unlabelled: Manifest | None = None,
    on_fold: Callable[[dict[str, Any], str], None] | None = None,
) -> dict[str, Any]:
    """Run leave-one-fold-out CV over ``folds`` (default: every official fold) and return the ``cv.json`` dict.

    ``context`` (:class:`~envsound.recipes.context.RunContext`) reaches every fold's :func:`train_model` as given.
    With ``context.resume``, a fold whose ``fold_<k>/model.ckpt`` is complete is evaluated, not retrained. ``init``: an
    ``autoencoder.ckpt`` whose encoder initialises every fold's model (see :func:`train_model`); pre-train it
    without the test folds' clips (``envsound pretrain --exclude-folds``) or the comparison is not honest; a mapping
    ``{test_fold: path}`` gives each fold its own (pre-trained without that fold).

    ``unlabelled`` (for ``semi.method``; labels ignored): every fold's pool is this manifest minus the test fold's
    clips, any clip sharing a file or source recording with them, and any clip whose fold number is the test fold's
    (the same numbering when it is the same corpus, e.g. ESC-50 beside ESC-10); checked with
    :func:`check_no_leakage`. The training folds' clips left unlabelled by ``train.label_fraction`` join it.

    ``on_fold(fold, score)`` is called with each fold's entry of ``cv.json`` and the name of its main score as the
    fold finishes (the CLI prints it); without it the fold's score is logged. What ``init`` loads is logged once, not
    for every fold.

    Raises:
        DatasetLayoutError: fewer than two folds, a fold the dataset does not have, or a train/test leak.

    >>> summary = run_cv(load_dataset("esc10", root), Config(), folds=[1, 2, 3, 4], out_dir="runs/cv")
    >>> summary["mean_accuracy"]
    """
    folds = _checked_folds(manifest, config, folds=folds, out_dir=Path(out_dir), init=init)
    out_dir, task = Path(out_dir), manifest.task
    fold_run = _FoldRun(config, task=task, folds=folds, out_dir=out_dir, context=context, init=init,
                        unlabelled=unlabelled)
    with run_lock(out_dir), once_per_run():  # a second run into the same out_dir is refused while this one writes
        start = time.perf_counter()
        fold_results, evaluations = [], []
        skipped: dict[str, str] = {str(path): reason for path, reason in manifest.skipped}
        for test_fold, train_set, test_set in cv_splits(manifest, folds):
            entry, evaluation = fold_run.run(test_fold, train_set, test_set, skipped=skipped)
            fold_results.append(entry)
            evaluations.append(evaluation)
            if on_fold is not None:
                on_fold(entry, task.score_name)
            else:
                log.info("fold %d: %s %.4f", test_fold, task.score_name, evaluation.report[task.score_name])
        pooled = task_report(task, np.concatenate([e.targets for e in evaluations]),
                             np.concatenate([e.y_prob for e in evaluations]), labels=manifest.labels)
        summary = summarize_folds(fold_results, key=task.score_name)
        summary.update({
            "dataset": manifest.name, "model": config.model.name, "task": task.kind, "labels": manifest.labels,
            "pooled": {k: pooled[k] for k in (*FOLD_SCORES[task.kind], "per_class", "confusion_matrix") if k in pooled},
            "seconds": round(time.perf_counter() - start, 1), "config": config.to_dict(),
            "skipped": [{"file": path, "reason": reason} for path, reason in sorted(skipped.items())]})
        _write_results(out_dir, manifest, config, summary, pooled=pooled, evaluations=evaluations, n_folds=len(folds))
        return summary


def _checked_folds(manifest: Manifest, config: Config, *, folds: Sequence[int] | None, out_dir: Path,
                   init: str | Path | Mapping[int, str | Path] | None) -> list[int]:
    """The test folds of the run (``folds``, or every official fold), once the request can be served.

    Raises:
        ConfigError: more than one process (cross-validation trains one per fold).
        DatasetLayoutError: fewer than two folds; ``out_dir`` holds a single run.
    """
    hint_noisy_strong(config, manifest, init=init)
    if config.runtime.processes > 1:
        raise ConfigError(f"runtime.devices={config.runtime.devices} (x {config.runtime.num_nodes} nodes): "
                          "cross-validation trains one process per fold; run 'envsound train --devices N' per fold to "
                          "spread a fold over processes, or set runtime.devices=1")
    check_no_single_run(out_dir)
    folds = list(folds) if folds else manifest.folds
    if len(folds) < 2:
        raise DatasetLayoutError(f"cross-validation needs at least 2 folds; dataset {manifest.name!r} "
                                 f"gives {folds or 'none'} (give folds= (--folds), or use a dataset with folds)")
    return folds


@dataclass(frozen=True)
class _FoldRun:
    """What every fold of one cross-validation shares; :meth:`run` trains (or, resumed, reuses) and tests one fold."""

    config: Config
    task: Task
    folds: list[int]
    out_dir: Path
    context: RunContext
    init: str | Path | Mapping[int, str | Path] | None
    unlabelled: Manifest | None

    def run(self, test_fold: int, train_set: Manifest, test_set: Manifest, *,
            skipped: dict[str, str]) -> tuple[dict[str, Any], Evaluation]:
        """Fold ``test_fold``'s entry of ``cv.json`` and its evaluation; the files it left out are added to
        ``skipped``.

        Raises:
            DatasetLayoutError: a clip (or, from ``unlabelled``, a pool clip) shared by training and test.
        """
        check_no_leakage(train_set, test_set)
        pool = None
        if self.unlabelled is not None:
            pool = exclude_clips_of(self.unlabelled, test_set, fold=test_fold)
            check_no_leakage(pool, test_set)
        fold_dir = self.out_dir / f"fold_{test_fold}"
        log.info("fold %d: training on %d clips, testing on %d", test_fold, len(train_set), len(test_set))
        fold_start = time.perf_counter()
        if self.context.resume and (fold_dir / CHECKPOINT_NAME).exists():
            log.info("fold %d: reusing finished %s", test_fold, fold_dir / CHECKPOINT_NAME)
            epochs = None
        else:
            fold_init = self.init.get(test_fold) if isinstance(self.init, Mapping) else self.init
            result = train_model(train_set, self.config, out_dir=fold_dir, context=self.context, init=fold_init,
                                 unlabelled=pool, held_out=[test_set],
                                 meta={"train_folds": [f for f in self.folds if f != test_fold],
                                       "test_fold": test_fold})
            epochs = result.epochs
            skipped.update((str(path), reason) for path, reason in result.skipped)
            plot_run_curves(fold_dir)
        model = scoring_model(load_checkpoint(fold_dir / CHECKPOINT_NAME), path=fold_dir / CHECKPOINT_NAME)
        evaluation = evaluate_model(model, test_set, cache=self.context.cache, on_error=self.context.on_error,
                                    progress=self.context.progress)
        skipped.update((str(path), reason) for path, reason in evaluation.skipped)
        entry = {"fold": test_fold, **{k: evaluation.report[k] for k in FOLD_SCORES[self.task.kind]},
                 **{k: evaluation.report[k] for k in SED_SCORES if k in evaluation.report},
                 "n_train": len(train_set), "n_test": len(evaluation.records), "epochs": epochs,
                 "n_unlabelled_pool": None if pool is None else len(pool),
                 "seconds": round(time.perf_counter() - fold_start, 1)}
        return entry, evaluation


def _write_results(out_dir: Path, manifest: Manifest, config: Config, summary: dict[str, Any], *,
                   pooled: dict[str, Any], evaluations: list[Evaluation], n_folds: int) -> None:
    """``predictions.csv`` and the figure of all test folds together, then ``cv.json`` (last: it marks the run done)."""
    write_text_atomic(out_dir / "predictions.csv", _predictions_csv(evaluations, manifest.labels))
    score = manifest.task.score_name
    title = (f"{manifest.name} {config.model.name}: {n_folds}-fold CV, "
             f"{score} {summary[f'mean_{score}']:.3f} ± {summary[f'std_{score}']:.3f}")
    if manifest.task.multi_label:
        plot_class_scores(pooled, path=out_dir / "per_class_ap.png", title=title)
    else:
        plot_confusion_matrix(np.asarray(pooled["confusion_matrix"]), labels=manifest.labels,
                              path=out_dir / "confusion.png", title=title)
    write_json_atomic(out_dir / CV_SUMMARY, summary)


def _predictions_csv(evaluations: list[Evaluation], labels: list[str]) -> str:
    parts = [e.predictions_csv(labels) for e in evaluations]
    return parts[0] + "".join(p.split("\n", 1)[1] for p in parts[1:])


def plot_run_curves(run_dir: str | Path) -> Path | None:
    """Draw ``run_dir/curves.png`` from the run's Lightning CSV log (an ensemble's: ``member_<i>/curves.png`` for each
    member); ``None`` when the run has no log (baselines)."""
    run_dir = Path(run_dir)
    drawn = [plot_training_curves(d / "logs" / "metrics.csv", path=d / "curves.png")
             for d in [run_dir, *sorted(run_dir.glob("member_*"))] if (d / "logs" / "metrics.csv").exists()]
    return drawn[0] if drawn else None
