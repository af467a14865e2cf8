"""Pre-train a convolutional autoencoder on unlabelled clips; its encoder later initialises a classifier (``--init``).

``pretrain_autoencoder`` is what ``envsound pretrain`` calls. Labels are ignored: any dataset, a plain folder of
audio files (``unlabelled``), or a mix. Training draws one random window per clip per epoch (as classifier training
does); early stopping and best-checkpoint selection use the reconstruction error on every evaluation window of a
held-out ``train.pretrain_val_fraction`` of the clips, grouped by source recording.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from envsound.config import Config
from envsound.data.records import ClipRecord, Manifest
from envsound.data.splits import train_val_split
from envsound.errors import CheckpointError, ConfigError, EnvsoundError
from envsound.features.extract import extract_features
from envsound.features.fingerprint import clip_fingerprints, exact_ids, trained_excerpts
from envsound.features.windows import eval_windows
from envsound.fileio import write_json_atomic
from envsound.models.autoencoder import CHECKPOINT_NAME, autoencoder_checkpoint, build_autoencoder, check_decoder
from envsound.recipes.context import RunContext
from envsound.recipes.run_folder import RunFolder
from envsound.training.prepare import features_of

log = logging.getLogger(__name__)


@dataclass
class PretrainResult:
    """What ``pretrain_autoencoder`` returns (and writes to ``pretrain.json``): where the autoencoder went, how
    training ended, and a few held-out windows to show reconstructions of. Kept apart from
    :class:`~envsound.recipes.train.TrainResult`: another checkpoint kind, a decoder, a reconstruction error
    (``best_val_loss``) rather than a classifier's score, and example windows.

    ``examples``: ``(n, C, n_mels, window_frames)`` float32, the first evaluation window of up to ``n_examples``
    held-out clips (training clips when nothing is held out).
    """

    checkpoint: Path
    decoder: str
    n_train: int
    n_val: int
    epochs: int = 0
    best_val_loss: float | None = None
    seconds: float = 0.0
    fit_seconds: float = 0.0  # the Lightning loop alone (no feature extraction)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    examples: np.ndarray | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"checkpoint": str(self.checkpoint), "decoder": self.decoder, "n_train": self.n_train,
                "n_val": self.n_val, "epochs": self.epochs, "best_val_loss": self.best_val_loss,
                "seconds": round(self.seconds, 1), "fit_seconds": round(self.fit_seconds, 1),
                "train_clips_per_second": round(self.n_train * self.epochs / self.fit_seconds, 1)
                if self.fit_seconds > 0 else None,
                "skipped": [[str(p), reason] for p, reason in self.skipped]}


def pretrain_autoencoder(
    manifest_or_records: Manifest | Sequence[ClipRecord],
    config: Config,
    *,
    decoder: str,
    out_dir: str | Path,
    context: RunContext = RunContext(),
    n_examples: int = 6,
) -> PretrainResult:
    """Train the autoencoder of ``config.model`` (``dtu`` or ``cnn``) with ``decoder`` on the clips given.

    Writes ``out_dir/autoencoder.ckpt`` (self-describing: config, ``meta["kind"] = "autoencoder"``, ``decoder``,
    ``trunk``; written last, atomically), ``config.yaml``, ``pretrain.json``, ``logs/metrics.csv`` and Lightning's
    ``lightning/last.ckpt`` (what ``context.resume`` continues from after an interruption).

    Args:
        manifest_or_records: the clips; labels and folds are ignored (select or exclude folds before).
        config: resolved config; ``features`` must be log-mel, ``train`` sets the loop (epochs, batch, optimiser,
            ``patience`` on the held-out reconstruction error, ``pretrain_val_fraction``, ``seed``), ``runtime``
            where it runs.
        decoder: ``"unpool"`` (``dtu`` only) or ``"upsample"``.
        out_dir: run folder.
        context: how it runs (:class:`~envsound.recipes.context.RunContext`): the feature cache; ``resume``
            continues from ``out_dir/lightning/last.ckpt``; ``overwrite`` replaces a finished ``autoencoder.ckpt``;
            progress bars; ``on_error`` ``"raise"`` or ``"skip"`` unusable audio (skipped files are listed in the
            result).
        n_examples: held-out windows returned for :func:`~envsound.evaluation.reconstructions.plot_reconstructions`.

    Raises:
        ConfigError: a model without an autoencoder, a decoder it does not support, waveform features.
        CheckpointError: ``context.resume`` from a run made with another decoder or model.
        EnvsoundError: ``autoencoder.ckpt`` exists (without ``context.overwrite``/``resume``), fewer than 2 usable
            clips, bad audio with ``context.on_error="raise"``.

    >>> result = pretrain_autoencoder(load_dataset("unlabelled", "recordings"), config, decoder="unpool",
    ...                               out_dir="runs/cae")
    """
    start = time.perf_counter()
    config.validate()
    check_decoder(config.model.name, decoder)
    if config.features.kind != "logmel":
        raise ConfigError(f"features.kind={config.features.kind!r}: pre-training needs log-mel features; "
                          "set features.kind=logmel")
    out_dir = Path(out_dir)
    folder = RunFolder(out_dir, checkpoint_name=CHECKPOINT_NAME, context=context)
    folder.check_free()
    ckpt_path = folder.checkpoint
    if isinstance(manifest_or_records, Manifest):
        name, records = manifest_or_records.name, manifest_or_records.records
    else:
        name, records = "clips", list(manifest_or_records)
    unlabelled = Manifest(name=name, records=[replace(r, labels=()) for r in records], labels=[])
    if len(unlabelled) < 2:
        raise EnvsoundError(f"only {len(unlabelled)} clip(s) in {name!r} to pre-train on; need at least 2")
    with folder.writing(config, same_input=False):  # a resumed run's input is checked on its Lightning checkpoint
        train_set, val_set = train_val_split(unlabelled, val_fraction=config.train.pretrain_val_fraction,
                                             seed=config.train.seed)
        kept, features, skipped = extract_features(train_set.records + val_set.records, config.features,
                                                   cache=context.cache, on_error=context.on_error,
                                                   progress=context.progress)
        train_feats = features_of(train_set.records, kept, features)
        val_feats = features_of(val_set.records, kept, features)
        if len(train_feats) < 2:
            raise EnvsoundError(f"only {len(train_feats)} usable clip(s) in {name!r} to pre-train on; need at least 2")
        log.info("pre-training the %s autoencoder (%s) on %d clips, holding out %d", config.model.name, decoder,
                 len(train_feats), len(val_feats))

        from envsound.training.loop.fit import training_runtime  # Lightning only when training
        from envsound.training.pretrain.module import AutoencoderModule

        runtime = training_runtime(config, lambda: build_autoencoder(config, decoder=decoder))
        module = AutoencoderModule(build_autoencoder(config, decoder=decoder), config.train, features=config.features,
                                   model=config.model, channels_last=runtime.channels_last)
        fit_start = time.perf_counter()
        loop = _fit(module, config, train_feats, val_feats, runtime=runtime, out_dir=out_dir,
                    resume=context.resume, progress=context.progress)
        epochs, best = loop.epochs, loop.best_score
        fit_seconds = time.perf_counter() - fit_start
        if not loop.is_global_zero:  # the other processes of a multi-process run: process 0 writes the results
            return PretrainResult(checkpoint=ckpt_path, decoder=decoder, n_train=len(train_feats), n_val=len(val_feats),
                                  epochs=epochs, best_val_loss=best, skipped=skipped)
        meta = {"dataset": name, "n_train_clips": len(train_feats), "n_val_clips": len(val_feats), "epochs": epochs,
                "best_val_loss": best, "runtime": runtime.to_dict()}
        folder.note_runtime(config, runtime)
        checkpoint = autoencoder_checkpoint(module.model, config, meta=meta)
        prints = clip_fingerprints([r.path for r in kept], cache=context.cache)
        checkpoint.trained_on, checkpoint.trained_prints = exact_ids(prints), trained_excerpts(prints)
        folder.save(checkpoint)
        source = val_feats or train_feats
        picks = np.unique(np.linspace(0, len(source) - 1, num=min(n_examples, len(source))).round().astype(int))
        examples = np.stack([eval_windows(source[i], config.features)[0][0] for i in picks]).astype(np.float32)
        result = PretrainResult(checkpoint=ckpt_path, decoder=decoder, n_train=len(train_feats), n_val=len(val_feats),
                                epochs=epochs, best_val_loss=best, skipped=skipped, examples=examples,
                                seconds=time.perf_counter() - start, fit_seconds=fit_seconds)
        write_json_atomic(out_dir / "pretrain.json", result.to_dict())
        log.info("wrote %s (%.1f s)", ckpt_path, result.seconds)
        return result


def _fit(module, config: Config, train_feats: Sequence[np.ndarray], val_feats: Sequence[np.ndarray], *, runtime,
         out_dir: Path, resume: bool, progress: bool):
    """Run Lightning; load the best (lowest held-out error) weights into ``module``; return how the loop ran (a
    :class:`~envsound.training.loop.result.FitResult` without weights: they are ``module``'s)."""
    from envsound.training.loop.clips import ClipSet, FitData
    from envsound.training.loop.data import ClipDataModule
    from envsound.training.loop.fit import LoopRun, run_lightning

    data = ClipDataModule(config, FitData(ClipSet.unlabelled(train_feats), ClipSet.unlabelled(val_feats)))
    return run_lightning(module, config, data, runtime=runtime, monitor=("val_loss", "min"),
                         run=LoopRun(out_dir, resume=resume, progress=progress),
                         check_resumable=lambda last: _check_resumable(last, module))


def _check_resumable(last: Path, module) -> None:
    """Refuse to resume a run made with another decoder, model or feature settings (it would fail deep in torch)."""
    import torch

    try:
        saved = torch.load(last, map_location="cpu", weights_only=True).get("hyper_parameters", {})
    except Exception as exc:  # a damaged Lightning checkpoint
        raise CheckpointError(f"{last}: cannot be read to resume ({exc}); delete it to start afresh") from exc
    mine = module.hparams
    theirs = saved.get("config", saved)  # runs interrupted before the module took its settings kept the whole config
    if saved.get("decoder") != mine["decoder"]:
        raise CheckpointError(f"{last}: the interrupted run used decoder={saved.get('decoder')!r}, not "
                              f"{mine['decoder']!r}; resume with the same --decoder or use another --out")
    for section in ("features", "model"):
        if theirs.get(section) != mine[section]:
            raise CheckpointError(f"{last}: the interrupted run used other {section} settings; resume with the same "
                                  "settings or use another --out")
