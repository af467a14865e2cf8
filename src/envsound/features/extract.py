"""Whole-clip features for a list of records: decode, compute (log-mel or raw waveform), cache.

Windows are cut later (:mod:`envsound.features.windows`), so one cached entry serves every window length and hop.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from envsound.audio.load import load_audio
from envsound.config import FeatureConfig
from envsound.data.records import ClipRecord
from envsound.data.validate import check_on_error
from envsound.errors import AudioLoadError
from envsound.features.cache import ClipFeatures, FeatureCache, cache_settings
from envsound.features.edges import prepare_clip
from envsound.features.mel import logmel_frontend
from envsound.features.windows import eval_windows
from envsound.features.parallel import chunk_size, frontend_for, worker_count, worker_pool
from envsound.fileio import launched_rank

logger = logging.getLogger(__name__)

def compute_features(waveform: np.ndarray, cfg: FeatureConfig, *, frontend: torch.nn.Module | None = None) -> np.ndarray:
    """Features of one whole clip.

    Args:
        waveform: ``(samples,)`` float32 in [-1, 1] at ``cfg.sample_rate``.
        cfg: ``kind='logmel'`` -> log-mel; ``kind='waveform'`` -> the waveform itself.
        frontend: the module :func:`~envsound.features.mel.logmel_frontend` builds from ``cfg``, reused across
            clips (built here when ``None``).

    Returns:
        ``(C, n_mels, frames)`` float32 dB for log-mel (``C`` = 2 with deltas), ``(1, samples)`` float32 for waveform.
    """
    waveform = np.ascontiguousarray(waveform, dtype=np.float32)
    if cfg.kind == "waveform":
        return waveform[None, :]
    frontend = frontend if frontend is not None else logmel_frontend(cfg)
    with torch.inference_mode():
        return frontend(torch.from_numpy(waveform)[None, :])[0].numpy()


def waveform_windows(samples: np.ndarray, cfg: FeatureConfig, *, frontend: torch.nn.Module | None = None,
                     before: int | None = None) -> tuple[np.ndarray, list[int]]:
    """A waveform ``(samples,)`` at ``cfg.sample_rate`` -> its evaluation windows and their starts (frames or samples,
    :func:`~envsound.features.windows.eval_windows`) that start before ``before`` (all: ``None``): what a model
    scores of each block of a file."""
    windows, starts = eval_windows(compute_features(samples, cfg, frontend=frontend), cfg)
    if before is not None:
        keep = [i for i, s in enumerate(starts) if s < before]
        windows, starts = windows[keep], [starts[i] for i in keep]
    return windows, starts


def extract_features(
    records: Sequence[ClipRecord],
    cfg: FeatureConfig,
    *,
    cache: FeatureCache | None = None,
    on_error: str = "raise",
    progress: bool = True,
    workers: int = 0,
) -> tuple[list[ClipRecord], ClipFeatures, list[tuple[Path, str]]]:
    """Compute (or find in ``cache``) the whole-clip features of every record.

    Audio is read with :func:`envsound.audio.load.load_audio` at ``cfg.sample_rate`` (clips shorter than
    ``cfg.min_seconds`` are an :class:`AudioLoadError`). A cache hit skips decoding and reads nothing but the entry's
    header. Missing clips are computed in ``workers`` processes of one torch thread each (0 = one per core; in this
    process when only a few are missing) and written to ``cache`` as each one is done, so an interrupted run keeps
    what it finished.

    Args:
        records: the clips, in order.
        cfg: the feature settings; :func:`~envsound.features.cache.cache_settings` of it go into the cache key.
        cache: where to store / find features; ``None`` computes everything and keeps it in memory.
        on_error: ``"raise"`` re-raises the first :class:`AudioLoadError`; ``"skip"`` leaves the record out, lists it
            in ``skipped`` and logs a warning with the count.
        progress: show a tqdm bar (only when stderr is a terminal).
        workers: processes for the missing clips, >= 0 (0 = one per CPU core).

    Returns:
        ``(kept_records, features, skipped)``: ``features[i]`` belongs to ``kept_records[i]`` and is
        ``(C, n_mels, frames)`` float32 dB (log-mel) or ``(1, samples)`` float32 (waveform), memory-mapped from the
        cache when there is one (:class:`~envsound.features.cache.ClipFeatures`); ``skipped`` lists
        ``(path, reason)`` of the records left out.

    Raises:
        AudioLoadError: an unusable file with ``on_error="raise"``.
        ConfigError: ``on_error`` not one of ``"raise"``, ``"skip"``; an invalid ``cfg``.

    >>> kept, feats, skipped = extract_features(manifest.records, cfg, cache=FeatureCache(), on_error="skip")
    >>> feats[0].shape   # (1, 128, 216) for a 5 s clip at 22050 Hz
    """
    check_on_error(on_error)
    cfg.validate()
    settings = cache_settings(cfg)
    entries: list[np.ndarray | Path | AudioLoadError | None] = [None] * len(records)
    missing: list[tuple[int, str | None]] = []
    for i, record in enumerate(records):
        try:
            key = cache.key(record.path, settings) if cache is not None else None
        except AudioLoadError as exc:
            entries[i] = exc
            if on_error == "raise":  # nothing after it is needed: the first bad file in order is raised
                break
            continue
        found = cache.find(key) if cache is not None else None
        if found is not None:
            entries[i] = found
        else:
            missing.append((i, key))
    if cache is not None and missing and launched_rank() > 0:  # process 0 extracts; this one reads its entries
        for (i, _), entry in zip(missing, cache.wait_for([key for _, key in missing], what="clip features")):
            entries[i] = entry
        missing = []
    jobs = [(str(records[i].path), key, cfg, cache) for i, key in missing]
    n_workers = worker_count(workers, len(jobs))
    show = progress and sys.stderr.isatty()
    with tqdm(total=len(jobs), desc="features", unit="clip", disable=not show) as bar, \
            worker_pool(n_workers) as pool:
        outputs = pool.map(_extract_one, jobs, chunksize=chunk_size(len(jobs), n_workers)) if pool is not None \
            else map(_extract_one, jobs)
        for (i, _), output in zip(missing, outputs):
            entries[i] = output
            bar.update()
            if isinstance(output, AudioLoadError) and on_error == "raise":
                raise output
    kept: list[ClipRecord] = []
    features = ClipFeatures()
    skipped: list[tuple[Path, str]] = []
    for record, entry in zip(records, entries):
        if isinstance(entry, AudioLoadError):
            if on_error == "raise":
                raise entry
            skipped.append((Path(record.path), str(entry)))
            continue
        kept.append(record)
        features.append(entry)
    if skipped:
        logger.warning("skipped %d of %d clips with unusable audio (on_error='skip')",  # the caller names them
                       len(skipped), len(records))
    return kept, features, skipped


def _extract_one(job: tuple[str, str | None, FeatureConfig, FeatureCache | None]) -> np.ndarray | Path | AudioLoadError:
    """One clip's features, saved to the cache when there is one (then its path is returned, not the array: it
    crosses back from a worker process as a few bytes). An unusable file is returned as its error."""
    path, key, cfg, cache = job
    try:
        waveform = load_audio(path, sample_rate=cfg.sample_rate, min_seconds=cfg.min_seconds)
    except AudioLoadError as exc:
        if cache is not None:
            cache.mark_bad(key, str(exc))
        return exc
    array = compute_features(prepare_clip(waveform, cfg), cfg, frontend=frontend_for(cfg))
    return cache.save(key, array) if cache is not None else array
