"""Training from Python in one import, on a dataset value: :func:`train`, :func:`cross_validate` and
:func:`evaluate` take a :class:`~envsound.recipes.dataset.Dataset` (:func:`envsound.dataset`) and do what
``envsound train``, ``cv`` and ``evaluate`` do (the CLI calls them), each returning a :class:`RunResult` with the
model's path and the numbers the command prints.

>>> import envsound
>>> data = envsound.dataset("folder", root="my_sounds")
>>> run = envsound.train(data, init="efficientat-mn04", out="runs/mine")
>>> run.model_path, run.metrics["n_train"]
>>> envsound.cross_validate(envsound.dataset("esc10", root="data/esc50", folds=[1, 2, 3, 4]), out="runs/cv").metrics
"""

from __future__ import annotations

import difflib
import inspect
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from envsound.config import Config
from envsound.data.records import Manifest
from envsound.errors import ConfigError
from envsound.recipes.config import check_keywords, resolve
from envsound.recipes.context import RunOptions
from envsound.recipes.dataset import Dataset, dataset

Settings = Mapping[str, Any]
Unlabelled = Dataset | Manifest | None

# The keyword form of the release before the Dataset value (dataset="folder", root=..., cache_dir=..., resume=...):
# still taken for one more release, with a DeprecationWarning, and turned into the values the functions take now
_DATASET_KEYWORDS = ("dataset", "root", "folds", "skip_bad", "classes", "exclude_classes", "subset", "group_by")
_RUN_KEYWORDS = ("cache_dir", "cache", "resume", "overwrite", "progress")


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


def train(data: Dataset | None = None, *, out: str | Path, init: str | Path | None = None, model: str | None = None,
          preset: str | None = None, config: str | Path | Config | None = None, settings: Settings | None = None,
          options: RunOptions | None = None, unlabelled: Unlabelled = None, **flags: Any) -> RunResult:
    """Train one model on ``data``'s folds (every clip when it names none) and write ``out/model.ckpt``, as
    ``envsound train`` does; the folds left out are the ones to test it on (:func:`evaluate`).

    Args:
        data: the clips (:func:`envsound.dataset`: name, root, classes, folds, ``skip_bad`` ...).
        out: the run folder (``model.ckpt``, ``config.yaml``, logs, ``curves.png``).
        init: anything ``--init`` takes: a model.ckpt, an autoencoder.ckpt, an AudioSet release ``.pt`` or an
            installed name such as ``efficientat-mn04``.
        model: a model name (``cnn``, ``piczak`` ...).
        preset: a shipped preset (``sed``, ``dtu2018`` ...).
        config: a YAML file of config keys (``--config``), or a resolved :class:`~envsound.config.Config`
            (:func:`envsound.resolve`, with ``init`` given there too), used as it is: then no ``model``,
            ``preset``, ``settings`` or flags.
        settings: config keys, ``{"train.max_epochs": 30}`` or ``{"train": {"max_epochs": 30}}`` (``--set``).
        options: the feature cache, ``resume``, ``overwrite``, progress bars (:class:`~envsound.recipes.context.
            RunOptions`; default: cache on, no progress bars).
        unlabelled: extra unlabelled clips for ``semi.method`` (:func:`envsound.dataset`, its folds taken).
        flags: the keywords of the CLI's flags that stand for keys (``shots=5``, ``transfer="full"`` ...).

    The keyword form before the dataset value (``train(dataset="folder", root=..., skip_bad=True, resume=True, ...)``)
    still works for one more release, with a DeprecationWarning.

    ``metrics``: ``n_train``, ``n_val``, ``n_unlabelled``, ``epochs``, ``seconds``, ``best_score`` (the validation
    metric at the kept epoch when ``train.val_fraction`` > 0, else ``None``), ``events_tuned`` (a frame model's
    ``events.tune`` choice on the validation clips, with its event F1 there, else ``None``), ``held_out_folds``.

    Raises:
        EnvsoundError: a bad setting (ConfigError), dataset (DatasetLayoutError), audio file (AudioLoadError) or
            ``init`` (CheckpointError), or ``out`` already holding a model (unless ``overwrite`` or ``resume``).

    >>> run = envsound.train(envsound.dataset("folder", root="my_sounds"), init="efficientat-mn04", out="runs/mine")
    >>> run.model_path, run.metrics["n_train"]
    """
    from envsound.recipes.crossval import plot_run_curves
    from envsound.recipes.fit_paths import hint_noisy_strong
    from envsound.recipes.train import train_model

    data, options = _legacy(train, data, options, flags)
    resolved = _config(train, model=model, preset=preset, init=init, config=config, settings=settings, flags=flags)
    manifest = data.load()
    hint_noisy_strong(resolved, manifest, init=init)
    held_out = []
    if data.folds:
        left_out = [f for f in manifest.folds if f not in set(data.folds)]
        held_out = [manifest.select_folds(left_out)] if left_out else []  # the folds to test it on
        manifest = manifest.select_folds(data.folds)
    result = train_model(manifest, resolved, out_dir=out, context=options.context(on_error=data.on_error),
                         meta={"train_folds": list(data.folds or manifest.folds)}, init=init, held_out=held_out,
                         unlabelled=_clips(unlabelled))
    if result.written:  # not in the other processes of a multi-process run
        plot_run_curves(Path(out))
    metrics = {key: value for key, value in result.to_dict().items() if key not in ("checkpoint", "skipped")}
    metrics["held_out_folds"] = held_out[0].folds if held_out else []
    return RunResult(model_path=result.checkpoint if result.written else None, metrics=metrics, out=Path(out),
                     skipped=_dedup(_files(manifest.skipped + result.skipped)), config=resolved)


def cross_validate(data: Dataset | None = None, *, out: str | Path, init: str | Path | None = None,
                   model: str | None = None, preset: str | None = None, config: str | Path | Config | None = None,
                   settings: Settings | None = None, options: RunOptions | None = None,
                   unlabelled: Unlabelled = None, on_fold: Callable[[dict[str, Any], str], None] | None = None,
                   **flags: Any) -> RunResult:
    """Leave-one-fold-out cross-validation over ``data``'s folds (default: every fold; a set without folds gets
    ``min(5, recordings in its smallest class)``, stratified and grouped by recording), as ``envsound cv`` does:
    each fold's model in ``out/fold_<k>/``, the summary in ``out/cv.json``. The keywords are :func:`train`'s (and
    its old keyword form, deprecated); ``on_fold(fold, score_name)`` is called as each fold finishes.

    ``metrics``: the ``out/cv.json`` summary: ``score`` (the main score's name: ``accuracy``, or ``lwlrap`` for a
    multi-label set), ``mean_<score>``, ``std_<score>``, ``n_folds``, ``folds`` (each fold's scores), ``seconds``.

    Raises:
        DatasetLayoutError: fewer than 2 folds, or a class with fewer than 2 recordings in a set without folds.
        EnvsoundError: as :func:`train`.

    >>> cv = envsound.cross_validate(envsound.dataset("folder", root="my_sounds"), init="efficientat-mn04", out="cv")
    >>> cv.metrics["mean_accuracy"], cv.metrics["std_accuracy"]
    """
    from envsound.recipes.crossval import run_cv

    data, options = _legacy(cross_validate, data, options, flags)
    resolved = _config(cross_validate, model=model, preset=preset, init=init, config=config, settings=settings,
                       flags=flags)
    manifest = data.load(rotate=True)
    context = options.context(on_error=data.on_error)
    summary = run_cv(manifest, resolved, folds=data.folds, out_dir=out, context=context, init=init,
                     unlabelled=_clips(unlabelled), on_fold=on_fold)
    skipped = _files(manifest.skipped) + [(s["file"], s["reason"]) for s in summary.get("skipped", [])]
    return RunResult(model_path=None, metrics=summary, out=Path(out), skipped=_dedup(skipped), config=resolved)


def evaluate(model: str | Path, data: Dataset | None = None, *, out: str | Path | None = None,
             label_map: str | Path | None = None, threshold: float | None = None, device: str = "auto",
             precision: str = "auto", options: RunOptions | None = None, **legacy: Any) -> RunResult:
    """Score ``model`` on ``data``'s folds (every clip when it names none), as ``envsound evaluate`` does; with
    ``out``, write ``report.*`` and ``predictions.csv`` there.

    Args:
        model: a model.ckpt (a head learned over a frozen network too), an AudioSet release ``.pt``, a frozen
            network's .tflite, or an installed name such as ``efficientat-mn04``, ``birdnet-v2.4``, ``yamnet``.
        data: the clips (:func:`envsound.dataset`; :meth:`~envsound.recipes.dataset.Dataset.with_folds` picks the
            folds a trained model never saw: ``run.metrics["held_out_folds"]``).
        label_map: a CSV of ``source_label,dataset_label`` rows (``Dog,dog``; BirdNET's ``Dog_Dog,dog``): an
            AudioSet or frozen network scored zero-shot (:func:`~envsound.evaluation.frozen.frozen_scorer`).
        threshold: the decision threshold, 0 < T < 1, over the model's own (a multi-label model's labels).
        device: where the model runs: ``auto``, ``cpu``, ``cuda``, ``mps``, ``gpu``.
        precision: its numeric precision: ``auto`` (what this machine runs fast), ``32`` ...
        options: the feature cache and progress bars (:class:`~envsound.recipes.context.RunOptions`).
        legacy: the keyword form before the dataset value (``dataset=``, ``root=``, ``folds=`` ...; deprecated).

    ``metrics``: the report (``accuracy`` or ``lwlrap`` ..., per-class scores, the confusion matrix, ``leakage``:
    the test clips the model was trained on, when its checkpoint records them).

    Raises:
        CheckpointError: ``model`` is not a classifier, AudioSet or frozen network (an ONNX file cannot be
            evaluated).
        EnvsoundError: as :func:`train`.

    >>> test = envsound.evaluate(run.model_path, data.with_folds(run.metrics["held_out_folds"]))
    >>> test.metrics["accuracy"]
    """
    from envsound.evaluation.evaluate import evaluate_model
    from envsound.models.files import open_model_file

    data, options = _legacy(evaluate, data, options, legacy)
    if legacy:
        _refuse_unknown(evaluate, legacy)
    manifest = data.load()
    if data.folds:
        manifest = manifest.select_folds(data.folds)
    context = options.context(on_error=data.on_error)
    clip_model = _scorer(open_model_file(model), manifest, label_map=label_map, device=device, precision=precision)
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


def _scorer(source, manifest: Manifest, *, label_map: str | Path | None, device: str, precision: str):
    """What ``evaluate`` scores ``source`` (a :class:`~envsound.models.files.ModelFile`) with: a ClipModel, or for a
    frozen network or a head learned over one :class:`~envsound.evaluation.frozen.FrozenClips`; zero-shot through
    ``label_map`` (the dataset's classes) when given."""
    from envsound.evaluation.frozen import frozen_scorer, scoring_model
    from envsound.models.files import CLASSIFIER, FROZEN, RELEASE
    from envsound.models.litert import is_learned

    source.require(CLASSIFIER, RELEASE, FROZEN, purpose="evaluate")
    if source.kind == FROZEN or is_learned(source.checkpoint):
        return frozen_scorer(source.path, source.checkpoint, manifest=manifest, label_map=label_map, device=device,
                             precision=precision)
    checkpoint = source.checkpoint
    if label_map is not None:
        from envsound.transfer.zero_shot import zero_shot_checkpoint

        checkpoint = zero_shot_checkpoint(checkpoint, label_map, manifest.labels, task=manifest.task)
    return scoring_model(checkpoint, path=source.given, device=device, precision=precision)


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
    """resolve() for ``function`` (train, cross_validate): a keyword it does not take is named in its words; a
    resolved Config is used as it is."""
    own = [name for name, p in inspect.signature(function).parameters.items() if p.kind is p.KEYWORD_ONLY]
    check_keywords(function.__name__, flags, own=own)
    if isinstance(config, Config):
        given = [name for name, value in (("model", model), ("preset", preset), ("settings", settings)) if value]
        if given or flags:
            raise ConfigError(f"{function.__name__}(): config is a resolved Config, used as it is; give "
                              f"{', '.join([*given, *flags])} to envsound.resolve(...) that made it instead")
        return config
    return resolve(model=model, preset=preset, init=init, config_file=config,
                   overrides=settings_overrides(settings), **flags)


def _legacy(function: Callable, data: Dataset | None, options: RunOptions | None,
            keywords: dict[str, Any]) -> tuple[Dataset, RunOptions]:
    """``data`` and ``options``, or the ones the old keyword form in ``keywords`` describes (taken out of it,
    with a DeprecationWarning): ``dataset=``, ``root=``, ``folds=`` ... make the Dataset, ``cache_dir=``,
    ``resume=`` ... the RunOptions."""
    name = function.__name__
    old = {key: keywords.pop(key) for key in (*_DATASET_KEYWORDS, *_RUN_KEYWORDS) if key in keywords}
    on_data = {key: value for key, value in old.items() if key in _DATASET_KEYWORDS}
    on_run = {key: value for key, value in old.items() if key in _RUN_KEYWORDS}
    if old:
        warnings.warn(f"{name}({'=..., '.join(old)}=...) is deprecated and goes after the next release: pass "
                      "envsound.dataset(NAME, root=..., folds=..., skip_bad=...) as the data and "
                      "options=envsound.RunOptions(cache=..., resume=..., overwrite=..., progress=...)",
                      DeprecationWarning, stacklevel=3)
    if on_data:
        if data is not None:
            raise ConfigError(f"{name}(): {', '.join(on_data)} given beside a dataset value: give them to "
                              "envsound.dataset(...)")
        if "dataset" not in on_data:
            raise ConfigError(f"{name}(): {', '.join(on_data)} without the dataset's name: "
                              f"{name}(envsound.dataset(NAME, root=...), ...)")
        data = dataset(on_data.pop("dataset"), **on_data)
    if on_run:
        if options is not None:
            raise ConfigError(f"{name}(): {', '.join(on_run)} given beside options=: give them to RunOptions(...)")
        cache = (on_run.get("cache_dir") or True) if on_run.get("cache", True) else False
        options = RunOptions(cache=cache, **{key: on_run[key] for key in ("resume", "overwrite", "progress")
                                             if key in on_run})
    if not isinstance(data, Dataset):
        raise ConfigError(f"{name}(): data={data!r}: expected the clips as envsound.dataset(NAME, root=...)")
    return data, options or RunOptions()


def _refuse_unknown(function: Callable, keywords: Mapping[str, Any]) -> None:
    own = [name for name, p in inspect.signature(function).parameters.items()
           if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
    unknown = sorted(keywords)[0]
    near = difflib.get_close_matches(unknown, own, n=1)
    hint = f" (did you mean {near[0]}=?)" if near else ""
    raise ConfigError(f"{function.__name__}(): unknown keyword {unknown!r}{hint}; it takes {', '.join(own)}")


def _clips(unlabelled: Unlabelled) -> Manifest | None:
    """The unlabelled pool: a Dataset's clips of its folds, or a Manifest as it is."""
    if not isinstance(unlabelled, Dataset):
        return unlabelled
    manifest = unlabelled.load()
    return manifest.select_folds(unlabelled.folds) if unlabelled.folds else manifest


def _files(skipped) -> list[tuple[str, str]]:
    return [(str(path), reason) for path, reason in skipped]


def _dedup(skipped: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return list(dict.fromkeys(skipped))
