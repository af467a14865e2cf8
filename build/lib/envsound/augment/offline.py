"""Offline waveform augmentation: ``augment.copies`` augmented copies of every training clip, made once and cached.

Pitch shift and time stretch cost tenths of a second per clip, far too slow for every batch, so each training clip
gets a few copies made once (audiomentations, in parallel processes) and stored in the feature cache as their final
features. The cheap transforms (gain, Gaussian noise, background noise, circular shift) run in the same pass: they cost
nothing next to decoding and the log-mel, and a copy is then one cache entry, not a recipe re-applied every epoch.

Determinism: copy ``k`` of clip ``c`` draws its parameters from a generator seeded with ``(train.seed, c, k)``
(:func:`draw_params`), so a rerun, or another fold in which ``c`` is a training clip too, asks for the same entry.
The cache key is the source file's identity (as :class:`~envsound.features.cache.FeatureCache` does), the drawn
parameters (including the identity of a background file) and the feature settings.

No leakage: copies are made only from the records passed in, which
:func:`~envsound.training.prepare.prepare_training_data` restricts to the training clips left after the validation
split; every copy carries its source record (provenance) and :func:`~envsound.data.splits.check_augmentation_leakage`
checks them, and the background files, against the held-out clips. A background sound drawn from the split's
training clips never comes from the clip's own source recording.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
from tqdm.auto import tqdm

from envsound.audio.load import AUDIO_EXTENSIONS, audio_info, load_audio
from envsound.config import AugmentConfig, FeatureConfig
from envsound.data.records import ClipRecord
from envsound.errors import AudioLoadError, DatasetLayoutError
from envsound.features.cache import ClipFeatures, FeatureCache, cache_settings
from envsound.features.edges import pad_edges, trim_zeros
from envsound.features.extract import compute_features
from envsound.features.parallel import chunk_size, frontend_for, worker_count, worker_pool
from envsound.fileio import launched_rank

log = logging.getLogger(__name__)

AUGMENT_VERSION = 1  # bump when the transforms change, to invalidate every cached copy
_MIN_NOISE_SECONDS = 0.1
MIN_PARALLEL_JOBS = 16  # fewer missing copies are made in this process


@dataclass(frozen=True)
class NoiseSource:
    """A background sound: its resolved path, file identity, the path it was listed under (a link's own name) and,
    for a dataset clip, its source recording."""

    path: Path
    size: int
    mtime_ns: int
    source_id: str | None = None
    listed: Path | None = None


@dataclass(frozen=True)
class AugmentedCopy:
    """Copy ``index`` (1-based) of ``source``, made with ``params``: the provenance a leakage guard checks."""

    source: ClipRecord
    index: int
    params: dict[str, Any]

    @property
    def source_clip_id(self) -> str:
        return self.source.clip_id

    @property
    def source_id(self) -> str:
        return self.source.source_id

    @property
    def noise_path(self) -> str | None:
        """The background file mixed in, if any."""
        return self.params.get("background", {}).get("path")


@dataclass
class OfflineCopies:
    """The copies of a training set, with their features (``features[i]`` belongs to ``copies[i]``)."""

    copies: list[AugmentedCopy] = field(default_factory=list)
    features: ClipFeatures = field(default_factory=ClipFeatures)  # in memory, or paths in the feature store
    hits: int = 0  # copies found in the cache
    made: int = 0  # copies computed now

    def variants(self, records: Sequence[ClipRecord]) -> list[ClipFeatures]:
        """For each of ``records``, the features of its copies (empty where it has none); nothing is read."""
        by_clip: dict[str, list[int]] = {}
        for i, copy in enumerate(self.copies):
            by_clip.setdefault(copy.source_clip_id, []).append(i)
        return [self.features.select(by_clip.get(r.clip_id, [])) for r in records]


class NoisePool:
    """Background sounds with precomputed hashes, so choosing one for each of thousands of copies is cheap."""

    def __init__(self, sources: Sequence[NoiseSource] = ()) -> None:
        self.sources = list(sources)
        self._keys = np.array([_stable_hash(str(n.path), bits=64) for n in self.sources], dtype=np.uint64)
        self._source_ids = np.array([n.source_id or "" for n in self.sources], dtype=object)

    def __len__(self) -> int:
        return len(self.sources)

    def choose(self, *, seed: int, clip_id: str, index: int, exclude_source: str) -> NoiseSource | None:
        """Rendezvous hashing: the source with the highest mix(hash(file) ^ hash(seed, clip, index)) wins, leaving
        out files of the recording ``exclude_source``. ``None`` when nothing is left."""
        if not self.sources:
            return None
        salt = np.uint64(_stable_hash(f"{seed}\0{clip_id}\0{index}", bits=64))
        scores = _splitmix64(self._keys ^ salt)
        scores[self._source_ids == exclude_source] = 0
        best = int(np.argmax(scores))
        return None if scores[best] == 0 else self.sources[best]


def noise_pool(train_records: Sequence[ClipRecord], aug: AugmentConfig) -> NoisePool:
    """The background sounds copies may mix in: the files of ``aug.background_folder`` (recursively), or else the
    training clips themselves. Empty when ``aug.background`` is 0.

    Raises:
        DatasetLayoutError: the folder is missing or holds no usable audio (each file's header is read).
    """
    if aug.background <= 0:
        return NoisePool()
    if aug.background_folder is None:
        return NoisePool([_noise_source(r.path, r.source_id) for r in train_records])
    folder = Path(aug.background_folder).expanduser()
    if not folder.is_dir():
        raise DatasetLayoutError(f"augment.background_folder={str(folder)!r} is not a folder; give a folder of "
                                 "audio files, or leave it empty to mix in the training clips")
    pool, bad = [], 0
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file()):
        try:
            if audio_info(path).duration >= _MIN_NOISE_SECONDS:
                pool.append(_noise_source(path, None))
                continue
        except AudioLoadError:
            pass
        bad += 1
    if not pool:
        raise DatasetLayoutError(f"augment.background_folder={str(folder)!r} holds no usable audio "
                                 f"({bad} unreadable or shorter than {_MIN_NOISE_SECONDS} s; looked for "
                                 f"{', '.join(sorted(AUDIO_EXTENSIONS))}); add audio files or set "
                                 "augment.background=0")
    if bad:
        log.warning("augment.background_folder %s: ignored %d unreadable or too short file(s)", folder, bad)
    return NoisePool(pool)


def draw_params(record: ClipRecord, index: int, aug: AugmentConfig, *, seed: int,
                pool: NoisePool | None = None) -> dict[str, Any]:
    """The transform parameters of copy ``index`` of ``record``, from a generator seeded by (seed, clip id, index).

    Every transform draws its coin and value whether it applies or not, so changing one probability does not move
    the others' values. A copy that drew no transform draws again (up to 20 times), so copies differ from the original
    whenever any transform is on. The background file is chosen by rendezvous hashing over ``pool`` (the highest
    score of hash(seed, clip, index, file) wins): when the pool changes between folds, the choice changes only if the
    chosen file left, so copies are reused across folds. Files of the clip's own source recording are never chosen.

    Returns:
        JSON-able dict with keys among ``stretch_rate``, ``pitch_semitones``, ``gain_db``, ``noise_snr_db``,
        ``background`` (``path``, ``size``, ``mtime_ns``, ``snr_db``), ``shift_fraction``, and always ``seed`` (for the
        noise samples and the background offset).
    """
    rng = np.random.default_rng([seed & 0xFFFFFFFF, _stable_hash(record.clip_id), index])
    noise = pool.choose(seed=seed, clip_id=record.clip_id, index=index, exclude_source=record.source_id) \
        if pool is not None and aug.background > 0 else None
    params: dict[str, Any] = {}
    for _ in range(20):
        coins, values = rng.random(6), rng.random(6)
        params = {}
        if coins[0] < aug.time_stretch:
            params["stretch_rate"] = _between(values[0], aug.stretch_rate_min, aug.stretch_rate_max)
        if coins[1] < aug.pitch_shift:
            params["pitch_semitones"] = _between(values[1], aug.pitch_semitones_min, aug.pitch_semitones_max)
        if coins[2] < aug.background and noise is not None:
            params["background"] = {"path": str(noise.path), "size": noise.size, "mtime_ns": noise.mtime_ns,
                                    "snr_db": _between(values[2], aug.background_snr_db_min,
                                                       aug.background_snr_db_max)}
        if coins[3] < aug.noise:
            params["noise_snr_db"] = _between(values[3], aug.noise_snr_db_min, aug.noise_snr_db_max)
        if coins[4] < aug.gain:
            params["gain_db"] = _between(values[4], aug.gain_db_min, aug.gain_db_max)
        if coins[5] < aug.shift:
            params["shift_fraction"] = _between(values[5], -aug.shift_max_fraction, aug.shift_max_fraction)
        if params:
            break
    params["seed"] = int(rng.integers(0, 2**31 - 1))
    return params


def apply_params(waveform: np.ndarray, params: dict[str, Any], *, sample_rate: int) -> np.ndarray:
    """Apply the transforms of ``params`` (from :func:`draw_params`) with audiomentations, in a fixed order:
    time stretch (the length changes with the rate), pitch shift, background sound, Gaussian noise, gain, shift.

    Args:
        waveform: ``(samples,)`` float32 in [-1, 1] at ``sample_rate``.

    Returns:
        ``(samples',)`` float32, scaled down to peak 1 if the transforms pushed it above (never clipped).
    """
    import audiomentations as am  # imported here: only runs that make copies pay for it (it pulls in librosa)

    steps = []
    if "stretch_rate" in params:
        rate = params["stretch_rate"]
        steps.append(am.TimeStretch(min_rate=rate, max_rate=rate, leave_length_unchanged=False, p=1.0))
    if "pitch_semitones" in params:
        steps.append(am.PitchShift(min_semitones=params["pitch_semitones"],
                                   max_semitones=params["pitch_semitones"], p=1.0))
    if "background" in params:
        snr = params["background"]["snr_db"]
        steps.append(am.AddBackgroundNoise(sounds_path=[params["background"]["path"]], min_snr_db=snr,
                                           max_snr_db=snr, p=1.0))
    if "noise_snr_db" in params:
        snr = params["noise_snr_db"]
        steps.append(am.AddGaussianSNR(min_snr_db=snr, max_snr_db=snr, p=1.0))
    if "gain_db" in params:
        steps.append(am.Gain(min_gain_db=params["gain_db"], max_gain_db=params["gain_db"], p=1.0))
    if "shift_fraction" in params:
        shift = params["shift_fraction"]
        steps.append(am.Shift(min_shift=shift, max_shift=shift, rollover=True, p=1.0))
    out = np.ascontiguousarray(waveform, dtype=np.float32)
    with _seeded(params.get("seed", 0)):  # audiomentations draws noise and offsets from the global generators
        for step in steps:
            out = step(samples=out, sample_rate=sample_rate)
    peak = float(np.max(np.abs(out))) if out.size else 0.0
    return (out / peak if peak > 1.0 else out).astype(np.float32, copy=False)


def copy_cache_key(cache: FeatureCache, record: ClipRecord, params: dict[str, Any], cfg: FeatureConfig) -> str:
    """The cache key of one copy: source file identity + ``params`` + the feature settings + :data:`AUGMENT_VERSION`."""
    return cache.key(record.path, {**cache_settings(cfg), "augment": params, "augment_version": AUGMENT_VERSION})


def make_copies(
    records: Sequence[ClipRecord],
    aug: AugmentConfig,
    cfg: FeatureConfig,
    *,
    seed: int,
    cache: FeatureCache | None = None,
    pool: NoisePool | None = None,
    progress: bool = True,
) -> OfflineCopies:
    """Make (or load from ``cache``) ``aug.copies`` augmented copies of every record, as final features.

    Pass only training clips (``train_model`` passes those left after the validation split). Missing copies are
    computed in ``aug.workers`` processes (0 = one per core; in this process when fewer than
    :data:`MIN_PARALLEL_JOBS` are missing: starting workers costs seconds), each
    saved atomically to ``cache`` as soon as it is made, so an interrupted run keeps what it finished.

    Returns:
        :class:`OfflineCopies` in (record, index) order, with cache ``hits`` and ``made`` counts.

    Raises:
        AudioLoadError: a source clip cannot be read (``train_model`` has already decoded it once, so this is rare).

    >>> copies = make_copies(train.records, config.augment, config.features, seed=0, cache=FeatureCache())
    >>> copies.hits, copies.made
    """
    result = OfflineCopies()
    if aug.copies == 0 or not records:
        return result
    cfg.validate()
    aug.validate()
    missing: list[tuple[int, str | None]] = []
    for record in records:
        for index in range(1, aug.copies + 1):
            copy = AugmentedCopy(source=record, index=index, params=draw_params(record, index, aug, seed=seed,
                                                                                pool=pool))
            key = copy_cache_key(cache, record, copy.params, cfg) if cache is not None else None
            feats = cache.find(key) if cache is not None else None
            result.copies.append(copy)
            result.features.append(feats)
            if feats is None:
                missing.append((len(result.copies) - 1, key))
            else:
                result.hits += 1
    if cache is not None and missing and launched_rank() > 0:  # process 0 makes the copies; this one reads them
        for (i, _), path in zip(missing, cache.wait_for([key for _, key in missing], what="augmented copies")):
            result.features[i] = path
        missing = []
    jobs = [(str(result.copies[i].source.path), result.copies[i].params, cfg, key, cache) for i, key in missing]
    workers = worker_count(aug.workers, len(jobs), min_jobs=MIN_PARALLEL_JOBS)
    show = progress and sys.stderr.isatty()
    bar = tqdm(total=len(jobs), desc="augmented copies", unit="copy", disable=not show)
    with bar, worker_pool(workers) as pool_exec:
        outputs = pool_exec.map(_make_one, jobs, chunksize=chunk_size(len(jobs), workers)) \
            if pool_exec is not None else map(_make_one, jobs)
        for (i, _), feats in zip(missing, outputs):
            result.features[i] = feats
            result.made += 1
            bar.update()
    log.info("offline augmentation: %d copies of %d training clips (%d from the cache, %d made)",
             len(result.copies), len(records), result.hits, result.made)
    return result


def _make_one(job: tuple[str, dict[str, Any], FeatureConfig, str | None, FeatureCache | None]
              ) -> np.ndarray | Path:
    """One copy's features, saved to the cache when there is one (its path is returned then, not the array)."""
    path, params, cfg, key, cache = job
    waveform = load_audio(path, sample_rate=cfg.sample_rate, min_seconds=cfg.min_seconds)
    # the clip's silent ends are cut before it is augmented (noise would fill them), as the original is
    augmented = apply_params(trim_zeros(waveform, cfg), params, sample_rate=cfg.sample_rate)
    if len(augmented) < cfg.n_fft:  # a short clip sped up: pad with silence so the centred STFT has a frame
        augmented = np.pad(augmented, (0, cfg.n_fft - len(augmented)))
    feats = compute_features(pad_edges(augmented, cfg), cfg, frontend=frontend_for(cfg))
    return cache.save(key, feats) if cache is not None else feats


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed Python's and numpy's global generators for the block, then restore them."""
    py_state, np_state = random.getstate(), np.random.get_state()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


def _noise_source(path: str | os.PathLike, source_id: str | None) -> NoiseSource:
    resolved = Path(path).expanduser().resolve()
    stat = resolved.stat()
    return NoiseSource(path=resolved, size=stat.st_size, mtime_ns=stat.st_mtime_ns, source_id=source_id,
                       listed=Path(path))


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """A bijective 64-bit mixer (splitmix64's finaliser), vectorised; wraps around on overflow by design."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def _stable_hash(text: str, *, bits: int = 32) -> int:
    """A hash of ``text`` that is the same in every process and run (Python's ``hash`` is salted)."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=bits // 8).digest(), "little")


def _between(u: float, low: float, high: float) -> float:
    return round(float(low + u * (high - low)), 4)
