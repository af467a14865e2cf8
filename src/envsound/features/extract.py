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
from envsound.errors import AudioLoadError, ConfigError
from envsound.features.cache import FeatureCache, cache_settings
from envsound.features.mel import LogMel

logger = logging.getLogger(__name__)

ON_ERROR = ("raise", "skip")


def compute_features(waveform: np.ndarray, cfg: FeatureConfig, *, frontend: LogMel | None = None) -> np.ndarray:
    """Features of one whole clip.

    Args:
        waveform: ``(samples,)`` float32 in [-1, 1] at ``cfg.sample_rate``.
        cfg: ``kind='logmel'`` -> log-mel; ``kind='waveform'`` -> the waveform itself.
        frontend: a :class:`LogMel` built from ``cfg`` to reuse across clips (built here when ``None``).

    Returns:
        ``(C, n_mels, frames)`` float32 dB for log-mel (``C`` = 2 with deltas), ``(1, samples)`` float32 for waveform.
    """
    waveform = np.ascontiguousarray(waveform, dtype=np.float32)
    if cfg.kind == "waveform":
        return waveform[None, :]
    frontend = frontend if frontend is not None else LogMel.from_config(cfg)
    with torch.inference_mode():
        return frontend(torch.from_numpy(waveform)[None, :])[0].numpy()


def extract_features(
    records: Sequence[ClipRecord],
    cfg: FeatureConfig,
    *,
    cache: FeatureCache | None = None,
    on_error: str = "raise",
    progress: bool = True,
) -> tuple[list[ClipRecord], list[np.ndarray], list[tuple[Path, str]]]:
    """Compute (or load from ``cache``) the whole-clip features of every record.

    Audio is read with :func:`envsound.audio.load.load_audio` at ``cfg.sample_rate`` (clips shorter than
    ``cfg.min_seconds`` are an :class:`AudioLoadError`). A cache hit skips decoding.

    Args:
        records: the clips, in order.
        cfg: the feature settings; :func:`~envsound.features.cache.cache_settings` of it go into the cache key.
        cache: where to store / find features; ``None`` computes everything.
        on_error: ``"raise"`` re-raises the first :class:`AudioLoadError`; ``"skip"`` leaves the record out, lists it
            in ``skipped`` and logs a warning with the count.
        progress: show a tqdm bar (only when stderr is a terminal).

    Returns:
        ``(kept_records, features, skipped)``: ``features[i]`` belongs to ``kept_records[i]`` and is
        ``(C, n_mels, frames)`` float32 dB (log-mel) or ``(1, samples)`` float32 (waveform); ``skipped`` lists
        ``(path, reason)`` of the records left out.

    Raises:
        AudioLoadError: an unusable file with ``on_error="raise"``.
        ConfigError: ``on_error`` not one of ``"raise"``, ``"skip"``; an invalid ``cfg``.

    >>> kept, feats, skipped = extract_features(manifest.records, cfg, cache=FeatureCache(), on_error="skip")
    >>> feats[0].shape   # (1, 128, 216) for a 5 s clip at 22050 Hz
    """
    if on_error not in ON_ERROR:
        raise ConfigError(f"on_error={on_error!r} is not valid; use 'raise' or 'skip'")
    cfg.validate()
    settings = cache_settings(cfg)
    frontend = LogMel.from_config(cfg) if cfg.kind == "logmel" else None
    kept: list[ClipRecord] = []
    features: list[np.ndarray] = []
    skipped: list[tuple[Path, str]] = []
    show = progress and sys.stderr.isatty()
    for record in tqdm(records, desc="features", unit="clip", disable=not show):
        try:
            key = cache.key(record.path, settings) if cache is not None else None
            array = cache.load(key) if cache is not None else None
            if array is None:
                waveform = load_audio(record.path, sample_rate=cfg.sample_rate, min_seconds=cfg.min_seconds)
                array = compute_features(waveform, cfg, frontend=frontend)
                if cache is not None:
                    cache.save(key, array)
        except AudioLoadError as exc:
            if on_error == "raise":
                raise
            skipped.append((Path(record.path), str(exc)))
            continue
        kept.append(record)
        features.append(array)
    if skipped:
        logger.warning("skipped %d of %d clips with unusable audio (on_error='skip'); first: %s",
                       len(skipped), len(records), skipped[0][1])
    return kept, features, skipped
