"""Training from Python in one import: :func:`train`, :func:`cross_validate` and :func:`evaluate` take the keywords
of ``envsound train``, ``cv`` and ``evaluate`` and do what those commands do (the CLI calls them), each returning a
:class:`RunResult` with the model's path and the numbers the command prints.

>>> import envsound
>>> run = envsound.train(dataset="folder", root="my_sounds", init="efficientat-mn04", out="runs/mine")
>>> run.model_path, run.metrics["n_train"]
>>> envsound.cross_validate(dataset="esc10", root="data/esc50", folds=[1, 2, 3, 4], out="runs/cv").metrics
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from envsound.config import Config
from envsound.data.records import Manifest
from envsound.errors import ConfigError, DatasetLayoutError
from envsound.features.cache import FeatureCache
from envsound.recipes.config import check_keywords, resolve
from envsound.recipes.context import RunContext

Settings = Mapping[str, Any]


@dataclass
class RunResult:
    """What a run made: ``model_path`` (the checkpoint to use; ``None`` for a cross-validation, whose fold models
    lie in ``out/fold_<k>/``), ``metrics`` (the numbers the command prints: see each function), ``skipped`` (the
    files left out with ``skip_bad=True``, ``(path, reason)``: non-empty is what the CLI's exit status 1 means)."""

    model_path: Path | None
    metrics: dict[str, Any]
    out: Path | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)
    config: Config | None = None


def train(*, dataset: str, out: str | Path, root: str | Path | None = None, folds: Sequence[int] | None = None,
          init: str | Path | None = None, model: str | None = None, preset: str | None = None,
          config: str | Path | None = None, settings: Settings | None = None, skip_bad: bool = False,
          classes: Sequence[str] | None = None, exclude_classes: Sequence[str] | None = None,
          subset: str | None = None, group_by: str | None = None, cache_dir: str | Path | None = None,
          cache: bool = True, resume: bool = False, overwrite: bool = False, progress: bool = False,
          unlabelled: Manifest | None = None, **flags: Any) -> RunResult:
    """Train one model on ``folds`` of ``dataset`` (every clip when ``None``) and write ``out/model.ckpt``, as
    ``envsound train`` does; the folds left out are the ones to test it on (:func:`evaluate`).

    Args:
        dataset: a dataset name (``folder``, ``esc10``, ``esc50``, ``urbansound8k`` ...; ``envsound datasets``).
        out: the run folder (``model.ckpt``, ``config.yaml``, logs, ``curves.png``).
        root: the dataset's folder (default: ``$ENVSOUND_DATA_<NAME>`` or ``$ENVSOUND_DATA/<name>``).
        init: anything ``--init`` takes: a model.ckpt, an autoencoder.ckpt, an AudioSet release ``.pt`` or an
            installed name such as ``efficientat-mn04``.
        model: a model name (``cnn``, ``piczak`` ...).
        preset: a shipped preset (``sed``, ``dtu2018`` ...).
        config: a YAML file of config keys (``--config``).
        settings: config keys, ``{"train.max_epochs": 30}`` or ``{"train": {"max_epochs": 30}}`` (``--set``).
        skip_bad: leave out unreadable audio (listed in ``skipped``) instead of raising :class:`AudioLoadError`.
        group_by: ``folder``: a regular expression whose first group, searched in a file's name, is its recording
            (takes of one recording share a fold); default ESC-50's ``fold-source-take`` names (``--group-by``).
        unlabelled: extra unlabelled clips for ``semi.method`` (``envsound.data.registry.load_dataset(...)``).
        flags: the keywords of the CLI's flags that stand for keys (``shots=5``, ``transfer="full"`` ...).

    ``metrics``: ``n_train``, ``n_val``, ``n_unlabelled``, ``epochs``, ``seconds``, ``best_score`` (the validation
    metric at the kept epoch when ``train.val_fraction`` > 0, else ``None``), ``events_tuned`` (a frame model's
    ``events.tune`` choice on the validation clips, with its event F1 there, else ``None``).

    Raises:
        EnvsoundError: a bad setting (ConfigError), dataset (DatasetLayoutError), audio file (AudioLoadError) or
            ``init`` (CheckpointError), or ``out`` already holding a model (unless ``overwrite`` or ``resume``).
    """
    resolved = _config(train, model=model, preset=preset, init=init, config=config, settings=settings, flags=flags)
    context = _context(skip_bad=skip_bad, cache_dir=cache_dir, cache=cache, resume=resume, overwrite=overwrite,
                       progress=progress)
    manifest = load_run_dataset(dataset, root, on_error=context.on_error, subset=subset, classes=classes,
                                exclude_classes=exclude_classes, folds=folds, group_by=group_by)
    return train_on(manifest, resolved, out=out, folds=folds, init=init, context=context, unlabelled=unlabelled)


def train_on(manifest: Manifest, config: Config, *, out: str | Path, folds: Sequence[int] | None = None,
             init: str | Path | None = None, context: RunContext = RunContext(),
             unlabelled: Manifest | None = None) -> RunResult:
    """:func:`train` on a listed dataset and a resolved config (what the CLI builds from its flags): trains on
    ``folds`` (every clip when ``None``), keeps the others as the clips it must never see, plots the run's curves."""
    from envsound.recipes.crossval import plot_run_curves
    from envsound.recipes.fit_paths import hint_noisy_strong
    from envsound.recipes.train import train_model

    hint_noisy_strong(config, manifest, init=init)
    held_out = []
    if folds:
        left_out = [f for f in manifest.folds if f not in set(folds)]
        held_out = [manifest.select_folds(left_out)] if left_out else []  # the folds to test it on
        manifest = manifest.select_folds(folds)
    result = train_model(manifest, config, out_dir=out, context=context,
                         meta={"train_folds": list(folds or manifest.folds)}, init=init, held_out=held_out,
                         unlabelled=unlabelled)
    if result.written:  # not in the other processes of a multi-process run
        plot_run_curves(Path(out))
    metrics = {key: value for key, value in result.to_dict().items() if key not in ("checkpoint", "skipped")}
    metrics["held_out_folds"] = held_out[0].folds if held_out else []
    return RunResult(model_path=result.checkpoint if result.written else None, metrics=metrics, out=Path(out),
                     skipped=_dedup(_files(manifest.skipped + result.skipped)), config=config)


def cross_validate(*, dataset: str, out: str | Path, root: str | Path | None = None,
                   folds: Sequence[int] | None = None, init: str | Path | None = None, model: str | None = None,
                   preset: str | None = None, config: str | Path | None = None, settings: Settings | None = None,
                   skip_bad: bool = False, classes: Sequence[str] | None = None,
                   exclude_classes: Sequence[str] | None = None, subset: str | None = None,
                   group_by: str | None = None, cache_dir: str | Path | None = None, cache: bool = True,
                   resume: bool = False, overwrite: bool = False, progress: bool = False,
                   unlabelled: Manifest | None = None,
                   on_fold: Callable[[dict[str, Any], str], None] | None = None, **flags: Any) -> RunResult:
    """Leave-one-fold-out cross-validation over ``folds`` (default: every fold; a set without folds gets
    ``min(5, recordings in its smallest class)``, stratified and grouped by recording), as ``envsound cv`` does.
    The keywords are :func:`train`'s; ``on_fold(fold, score_name)`` is called as each fold finishes.

    ``metrics``: the ``out/cv.json`` summary: ``score`` (the main score's name: ``accuracy``, or ``lwlrap`` for a
    multi-label set), ``mean_<score>``, ``std_<score>``, ``n_folds``, ``folds`` (each fold's scores), ``seconds``.

    Raises:
        DatasetLayoutError: fewer than 2 folds, or a class with fewer than 2 recordings in a set without folds.
        EnvsoundError: as :func:`train`.
    """
    from envsound.recipes import crossval

    resolved = _config(cross_validate, model=model, preset=preset, init=init, config=config, settings=settings,
                       flags=flags)
    context = _context(skip_bad=skip_bad, cache_dir=cache_dir, cache=cache, resume=resume, overwrite=overwrite,
                       progress=progress)
    manifest = load_run_dataset(dataset, root, on_error=context.on_error, subset=subset, classes=classes,
                                exclude_classes=exclude_classes, folds=folds, rotate=True, group_by=group_by)
    summary = crossval.cross_validate(manifest, resolved, folds=folds, out_dir=out, context=context, init=init,
                                      unlabelled=unlabelled, on_fold=on_fold)
    skipped = _files(manifest.skipped) + [(s["file"], s["reason"]) for s in summary.get("skipped", [])]
    return RunResult(model_path=None, metrics=summary, out=Path(out), skipped=_dedup(skipped), config=resolved)


def evaluate(model: str | Path, *, dataset: str, root: str | Path | None = None,
             folds: Sequence[int] | None = None, label_map: str | Path | None = None, out: str | Path | None = None,
             skip_bad: bool = False, classes: Sequence[str] | None = None,
             exclude_classes: Sequence[str] | None = None, subset: str | None = None, group_by: str | None = None,
             threshold: float | None = None, device: str = "auto", precision: str = "auto",
             cache_dir: str | Path | None = None, cache: bool = True, progress: bool = False) -> RunResult:
    """Score ``model`` (a model.ckpt, an AudioSet release ``.pt`` or installed name; with ``label_map`` a CSV of
    ``audioset_label,dataset_label`` rows for zero-shot) on ``folds`` of ``dataset``, as ``envsound evaluate`` does;
    with ``out``, write ``report.*`` and ``predictions.csv`` there.

    ``metrics``: the report (``accuracy`` or ``lwlrap`` ..., per-class scores, the confusion matrix, ``leakage``:
    the test clips the model was trained on, when its checkpoint records them).

    Raises:
        CheckpointError: ``model`` is not a classifier or AudioSet network (an ONNX file cannot be evaluated).
        EnvsoundError: as :func:`train`.
    """
    manifest = load_run_dataset(dataset, root, on_error="skip" if skip_bad else "raise", subset=subset,
                                classes=classes, exclude_classes=exclude_classes, folds=folds, group_by=group_by)
    if folds:
        manifest = manifest.select_folds(folds)
    context = _context(skip_bad=skip_bad, cache_dir=cache_dir, cache=cache, progress=progress)
    return evaluate_on(model, manifest, label_map=label_map, out=out, threshold=threshold, device=device,
                       precision=precision, context=context)


def evaluate_on(model: str | Path, manifest: Manifest, *, label_map: str | Path | None = None,
                out: str | Path | None = None, threshold: float | None = None, device: str = "auto",
                precision: str = "auto", context: RunContext = RunContext()) -> RunResult:
    """:func:`evaluate` on a listed dataset (every clip of ``manifest``): what the CLI calls after its flags."""
    from envsound.evaluation.evaluate import evaluate_model
    from envsound.models.clip import ClipModel
    from envsound.models.files import CLASSIFIER, RELEASE, open_model_file

    checkpoint = open_model_file(model).require(CLASSIFIER, RELEASE, purpose="evaluate").checkpoint
    if label_map is not None:
        from envsound.transfer.zero_shot import zero_shot_checkpoint

        checkpoint = zero_shot_checkpoint(checkpoint, label_map, manifest.labels, task=manifest.task)
    clip_model = ClipModel.from_checkpoint(checkpoint, source=str(model), device=device, precision=precision)
    if threshold is not None:
        clip_model = clip_model.deciding_at(threshold)
    result = evaluate_model(clip_model, manifest, cache=context.cache, on_error=context.on_error,
                            progress=context.progress)
    if out is not None:
        from envsound.evaluation.report import write_report
        from envsound.fileio import write_text_atomic

        score = clip_model.task.score_name
        write_report(result.report, out_dir=Path(out), stem="report",
                     title=f"{manifest.name}: {score} {result.report[score]:.3f}")
        write_text_atomic(Path(out) / "predictions.csv", result.predictions_csv(clip_model.labels))
    return RunResult(model_path=Path(model), metrics=result.report, out=None if out is None else Path(out),
                     skipped=_dedup(_files(manifest.skipped + result.skipped)))


def load_run_dataset(dataset: str, root: str | Path | None = None, *, on_error: str = "raise",
                     subset: str | None = None, classes: Sequence[str] | None = None,
                     exclude_classes: Sequence[str] | None = None, folds: Sequence[int] | None = None,
                     rotate: bool = False, group_by: str | None = None) -> Manifest:
    """The dataset a run reads: listed (bad files raised, or left out and kept in ``manifest.skipped``), given folds
    where it has none (:func:`~envsound.data.splits.with_made_folds`), its classes narrowed. ``rotate`` (a
    cross-validation) or ``folds`` on a set that cannot be given folds stops here, naming the classes too small.
    ``subset`` and ``group_by`` (a ``folder``'s recordings, :func:`~envsound.data.folder.prepare_folder`) are passed
    to the dataset when given.

    Raises:
        DatasetLayoutError: a class with fewer than 2 recordings where folds are needed; the dataset's own errors.
    """
    from envsound.data.registry import load_dataset
    from envsound.data.splits import recordings_per_class, with_made_folds

    options = {key: value for key, value in (("subset", subset), ("group_by", group_by)) if value is not None}
    manifest = load_dataset(dataset, root, on_error=on_error, **options)
    # folds of every class, so that narrowing never moves a clip to another fold (train on folds 1-3 of classes
    # a and b, then evaluate fold 4: unseen clips); of the kept classes only where some class was too small for them
    manifest = with_made_folds(manifest)
    if classes or exclude_classes:
        manifest = with_made_folds(manifest.select_classes(classes or (), exclude=exclude_classes or ()))
    if not manifest.folds and (rotate or folds):
        small = {label: n for label, n in recordings_per_class(manifest).items() if n < 2}
        if small:
            where = root if root is not None else f"dataset {dataset!r}"
            counts = ", ".join(f"{label!r} has {n} recording{'' if n == 1 else 's'}" for label, n in small.items())
            names = ",".join(small)
            raise DatasetLayoutError(
                f"{where}: class {counts}; folds need at least 2 recordings in every class, one to test and "
                f"one to train: add recordings, or leave {'it' if len(small) == 1 else 'them'} out (--exclude-classes "
                f"{names}; exclude_classes={list(small)!r} from Python)")
    return manifest


def settings_overrides(settings: Settings | None) -> list[str]:
    """``{"train.lr": 0.01}`` or ``{"train": {"lr": 0.01}}`` -> ``["train.lr=0.01"]`` (values as YAML reads them)."""
    flat: list[str] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping) and not prefix.endswith("options"):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        else:  # JSON is YAML: numbers, booleans, lists and None read back as they were
            flat.append(f"{prefix}={value if isinstance(value, str) else json.dumps(value)}")

    if settings is not None and not isinstance(settings, Mapping):
        raise ConfigError(f"settings: expected a mapping of config keys such as {{'train.lr': 0.01}}, got "
                          f"{settings!r}")
    walk("", settings or {})
    return flat


def _config(function: Callable, *, model, preset, init, config, settings, flags) -> Config:
    """resolve() for ``function`` (train, cross_validate): a keyword it does not take is named in its words."""
    own = [name for name, p in inspect.signature(function).parameters.items() if p.kind is p.KEYWORD_ONLY]
    check_keywords(function.__name__, flags, own=own)
    return resolve(model=model, preset=preset, init=init, config_file=config,
                   overrides=settings_overrides(settings), **flags)


def _context(*, skip_bad: bool, cache_dir, cache: bool, resume: bool = False, overwrite: bool = False,
             progress: bool = False) -> RunContext:
    return RunContext(cache=FeatureCache(cache_dir) if cache else None, resume=resume, overwrite=overwrite,
                      progress=progress, on_error="skip" if skip_bad else "raise")


def _files(skipped) -> list[tuple[str, str]]:
    return [(str(path), reason) for path, reason in skipped]


def _dedup(skipped: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return list(dict.fromkeys(skipped))
