"""The feature store: whole-clip features on disk, keyed by the audio file's identity and the settings that shape
the output, and read back lazily (memory-mapped) so training needs memory for a batch, not for the corpus.

A key is the sha256 of the resolved path, the file's size and ``mtime_ns``, the JSON of the output-changing feature
settings (:func:`cache_settings`) and :data:`FEATURE_VERSION`; editing, replacing or touching a file, or changing any of
those settings, gives a new key, so a stale entry is never served. Entries are ``.npy`` files written atomically
(temporary file + ``os.replace``), so an interrupted run leaves no half-written entry.

One ``.npy`` file per clip (or augmented copy), not shards: an entry is complete or absent (so a killed run resumes
without redoing finished clips and never reads a half-written one), any length fits, entries are shared by every
run, fold and dataset that uses the same file and settings, and a clip is read by ``mmap`` without an index to keep
consistent. :class:`ClipFeatures` holds store paths (or in-memory arrays when there is no store) and opens one clip
when it is indexed; a training window is copied out of the mapping, which is then dropped, so resident memory stays
bounded by the batch. A 5-s log-mel (128 x 216 float32) is 110.7 kB plus a 128-byte header.

Storage is float32. float16 was measured and rejected: log-mel values span about -100..+40 dB, and float16's spacing
is 1/32 dB between 32 and 64 dB and 1/16 dB between 64 and 128 dB, so rounding adds up to 0.03 dB (> the 0.01 dB
budget).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from envsound.config import FeatureConfig
from envsound.errors import AudioLoadError
from envsound.features.edges import edge_pad_samples
from envsound.fileio import atomic_open, write_text_atomic

logger = logging.getLogger(__name__)

FEATURE_VERSION = 1  # bump when the feature maths changes, to invalidate every cached entry
CACHE_ENV = "ENVSOUND_CACHE"


def default_cache_root() -> Path:
    """``$ENVSOUND_CACHE`` if set, else ``~/.cache/envsound/features`` (read when called, not at import)."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "envsound" / "features"


def cache_settings(cfg: FeatureConfig) -> dict[str, Any]:
    """The feature settings that change what :func:`~envsound.features.extract.extract_features` stores for a clip.

    Window lengths, hops, ``n_mfcc`` and ``min_seconds`` are left out: entries hold whole-clip features, and those
    settings only act after the cache (or decide whether a clip loads at all); a clip's trimmed and padded edges
    (``trim_zeros``, ``edge_pad``, :mod:`~envsound.features.edges`) are in it when set.
    """
    settings: dict[str, Any] = {"kind": cfg.kind, "sample_rate": cfg.sample_rate}
    if cfg.kind == "logmel":
        settings.update(n_fft=cfg.n_fft, hop_length=cfg.hop_length, n_mels=cfg.n_mels, f_min=float(cfg.f_min),
                        f_max=float(cfg.sample_rate / 2 if cfg.f_max is None else cfg.f_max), deltas=cfg.deltas)
    if cfg.frontend != "envsound":  # only then, as below
        settings.update(frontend=cfg.frontend, win_length=cfg.win_length)
    if cfg.trim_zeros or cfg.edge_pad:  # only then, so that the keys of every other entry stay as they were
        settings.update(trim_zeros=cfg.trim_zeros, edge_pad_samples=edge_pad_samples(cfg))
    return settings


class FeatureCache:
    """Feature arrays on disk under ``root`` (default :func:`default_cache_root`).

    ``hits`` and ``misses`` count :meth:`load` results since construction.

    >>> cache = FeatureCache(Path("/tmp/features"))
    >>> key = cache.key("dog.flac", cache_settings(cfg))
    >>> cache.load(key) is None   # True until cache.save(key, array)
    """

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_cache_root()
        self.hits = 0
        self.misses = 0

    def key(self, path: str | os.PathLike, config_dict: Mapping[str, Any]) -> str:
        """sha256 hex digest of the file's resolved path, size, ``mtime_ns`` and ``config_dict`` (JSON, sorted keys).

        Raises:
            AudioLoadError: the file cannot be stat'ed (missing, permissions).
        """
        resolved = Path(path).expanduser().resolve()
        try:
            stat = resolved.stat()
        except OSError as exc:
            raise AudioLoadError(f"{path}: cannot read file ({exc.strerror or exc}); check the path or the dataset "
                                 "root") from exc
        payload = json.dumps({"path": str(resolved), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                              "settings": dict(config_dict), "version": FEATURE_VERSION}, sort_keys=True)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def path_for(self, key: str) -> Path:
        """Where the entry of ``key`` lives: ``root/<key[:2]>/<key>.npy``."""
        return self.root / key[:2] / f"{key}.npy"

    def find(self, key: str) -> Path | None:
        """The entry's path if it is present and readable (its header and length are checked, its data not read),
        else ``None``; a damaged entry is logged and removed. Counts as a hit or a miss."""
        path = self.path_for(key)
        try:
            open_entry(path)
        except FileNotFoundError:
            self.misses += 1
            return None
        except (OSError, ValueError, EOFError) as exc:
            logger.warning("%s: unreadable feature cache entry (%s); recomputing it", path, exc)
            path.unlink(missing_ok=True)
            self.misses += 1
            return None
        self.hits += 1
        return path

    def mark_bad(self, key: str, reason: str) -> None:
        """Record that the clip of ``key`` is unusable (``<key>.bad``, the reason as text), so the other processes of
        a multi-process run waiting in :meth:`wait_for` learn it instead of waiting for an entry that never comes."""
        write_text_atomic(self.path_for(key).with_suffix(".bad"), reason)

    def wait_for(self, keys: Sequence[str], *, what: str, timeout: float = 6 * 3600.0,
                 poll: float = 2.0) -> list[Path | AudioLoadError]:
        """Wait until process 0 of a multi-process run has stored every entry of ``keys`` (the other processes read
        what it extracts instead of extracting it again); returns their paths in order, or the
        :class:`AudioLoadError` process 0 recorded for an unusable clip (:meth:`mark_bad`).

        Raises:
            EnvsoundError: the entries did not all appear within ``timeout`` seconds (process 0 stopped?).
        """
        from envsound.errors import EnvsoundError

        deadline = time.monotonic() + timeout
        pending = dict(enumerate(keys))
        found: dict[int, Path | AudioLoadError] = {}
        logger.info("waiting for process 0 to store %d %s in %s", len(pending), what, self.root)
        while pending:
            for i, key in list(pending.items()):
                path = self.path_for(key)
                bad = path.with_suffix(".bad")
                if path.exists():
                    found[i] = path
                elif bad.exists():
                    found[i] = AudioLoadError(bad.read_text(encoding="utf-8"))
                else:
                    continue
                del pending[i]
            if pending:
                if time.monotonic() > deadline:
                    raise EnvsoundError(f"{self.root}: {len(pending)} {what} never appeared while waiting for process "
                                        "0 of this multi-process run; check that it is running and shares this cache")
                time.sleep(poll)
        return [found[i] for i in range(len(keys))]

    def load(self, key: str) -> np.ndarray | None:
        """The stored array read into memory, or ``None`` when absent or unreadable (as :meth:`find`)."""
        path = self.find(key)
        return None if path is None else np.load(path, allow_pickle=False)

    def save(self, key: str, array: np.ndarray, *, dtype: type = np.float32) -> Path:
        """Store ``array`` as ``dtype`` (float32: features) under ``key`` atomically; returns the entry's path."""
        path = self.path_for(key)
        with atomic_open(path) as fh:
            np.save(fh, np.ascontiguousarray(array, dtype=dtype), allow_pickle=False)
        return path


def open_entry(path: str | os.PathLike) -> np.ndarray:
    """A stored clip, memory-mapped read-only: only the parts that are indexed are read from disk.

    Raises:
        OSError, ValueError: a missing, truncated or malformed entry.
    """
    return np.load(path, mmap_mode="r", allow_pickle=False)


def open_stored(path: Path) -> np.ndarray:
    """:func:`open_entry` for a training read: the entry's header is parsed once per process and remembered.

    A store entry keeps its layout once written (its key names one file's features under fixed settings, so an entry
    that :meth:`FeatureCache.find` removes as damaged is written again with the same shape). Why: parsing the
    ``.npy`` header on every read was most of what a window's read cost, and a ``piczak`` batch reads 1,000 of them
    (benchmarks/bench_kernels.py, docs/benchmarks.md).

    Raises:
        OSError, ValueError: a missing, truncated or malformed entry.
    """
    shape, fortran, dtype, offset = _entry_layout(str(path))
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")


@functools.lru_cache(maxsize=1 << 17)
def _entry_layout(path: str) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """``(shape, fortran_order, dtype, data offset)`` of a ``.npy`` file, from its header."""
    with open(path, "rb") as fh:
        version = np.lib.format.read_magic(fh)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(fh)
        return shape, fortran, dtype, fh.tell()


class ClipFeatures(Sequence[np.ndarray]):
    """Features of many clips, each an array in memory or a :class:`FeatureCache` entry opened when indexed.

    ``features[i]`` is ``(C, n_mels, frames)`` or ``(1, samples)`` float32 (a read-only memory map for a stored
    entry); :meth:`select` makes a sub-list without reading anything, so lists of corpus size stay a list of paths.

    >>> feats = ClipFeatures([cache.path_for(key) for key in keys])
    >>> feats[0].shape
    """

    def __init__(self, items: Sequence[np.ndarray | Path] = ()) -> None:
        self._items = list(items)

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return ClipFeatures(self._items[index])
        item = self._items[index]
        return open_stored(item) if isinstance(item, Path) else item

    def select(self, indices: Sequence[int]) -> "ClipFeatures":
        """The clips at ``indices``, in that order (nothing is read)."""
        return ClipFeatures([self._items[i] for i in indices])

    def append(self, item: np.ndarray | Path) -> None:
        self._items.append(item)

    def __setitem__(self, index: int, item: np.ndarray | Path) -> None:
        self._items[index] = item

    @property
    def in_memory_bytes(self) -> int:
        """Bytes of the clips held in memory (stored entries count 0)."""
        return sum(item.nbytes for item in self._items if isinstance(item, np.ndarray))
