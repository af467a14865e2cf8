"""Content fingerprints: whether two files hold the same sound, whatever their names, formats or levels.

Two fingerprints per clip:

- **exact**: sha256 of the decoded mono samples rounded to 16 bits, and their sample rate. A byte copy under another
  name, or a lossless re-encode (FLAC <-> WAV), gives the same hash.
- **robust**: one 32-bit word per 32-ms frame (Haitsma & Kalker, "A highly robust audio fingerprinting system",
  ISMIR 2002). The clip is resampled to 8 kHz and cut into 33 mel bands between 300 and 3,000 Hz; bit ``b`` of frame
  ``t`` is the sign of ``(E[b,t] - E[b+1,t]) - (E[b,t-1] - E[b+1,t-1])``, a difference of differences of log
  energies. A gain change adds the same constant to every log energy and cancels; resampling and lossy coding barely
  move band energies below 3 kHz; what changes is the sign of the few differences near zero. Two clips match when
  the share of differing bits (bit error rate, BER), at the best of the time shifts within ``max_shift_frames``
  (0.26 s), is below :data:`MATCH_BER`: distinct sounds differ in about half their bits, copies in a few percent.
  Only frames loud in both clips are compared (within :data:`QUIET_DB` of each clip's loudest frame): silence, and
  the digital zeros that pad ESC-style clips, would otherwise make any two padded clips look alike.

Fingerprints are cached in the feature store beside the features (:func:`clip_fingerprints`), so a clip is decoded
for them once.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import soxr
import torch

from envsound.audio.load import audio_info, load_audio
from envsound.data.records import ClipRecord
from envsound.features.cache import FeatureCache
from envsound.features.mel import LogMel
from envsound.features.parallel import chunk_size, worker_count, worker_pool

log = logging.getLogger(__name__)

FINGERPRINT_VERSION = 1  # bump when the fingerprint maths changes, to drop cached ones
RATE = 8000  # Hz
N_FFT, HOP = 512, 256  # 64-ms frames every 32 ms
N_BANDS, F_MIN, F_MAX = 33, 300.0, 3000.0
MATCH_BER = 0.30  # bit error rate below which two clips are the same sound (distinct sounds: about 0.5)
MAX_SHIFT_FRAMES = 8  # +-0.26 s of misalignment searched
MIN_OVERLAP = 0.5  # of the shorter clip's compared frames, for a shift to count
MIN_FRAMES = 8  # compared frames (0.26 s of sound) below which two clips are never called the same
QUIET_DB = 60.0  # frames this far below the clip's loudest frame are not compared
_DIGEST_WORDS = 8  # a sha256 digest is 8 uint32 words
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


@dataclass(frozen=True)
class Fingerprint:
    """A clip's exact hash (hex) and robust words ``(frames,)`` uint32."""

    path: Path
    exact: str
    words: np.ndarray


def fingerprint_waveform(mono: np.ndarray, sample_rate: int) -> tuple[str, np.ndarray]:
    """``(exact hash, robust words)`` of a mono float32 waveform in [-1, 1] at ``sample_rate`` Hz."""
    quantised = np.round(np.clip(mono, -1.0, 1.0) * 32767.0).astype("<i2")
    exact = hashlib.sha256(quantised.tobytes() + str(int(sample_rate)).encode()).hexdigest()
    low = soxr.resample(mono.astype(np.float32), sample_rate, RATE, quality="HQ") if sample_rate != RATE else mono
    return exact, robust_words(np.ascontiguousarray(low, dtype=np.float32))


def robust_words(waveform: np.ndarray) -> np.ndarray:
    """The robust fingerprint of a waveform at :data:`RATE`: ``(frames - 1,)`` uint32 words (see module docstring)."""
    if len(waveform) < N_FFT:
        waveform = np.pad(waveform, (0, N_FFT - len(waveform)))
    with torch.inference_mode():
        energy = _frontend()(torch.from_numpy(waveform)[None])[0, 0].numpy().astype(np.float64)  # (bands, frames)
    band_diff = energy[:-1] - energy[1:]  # (32, frames)
    bits = (band_diff[:, 1:] - band_diff[:, :-1]) > 0  # (32, frames - 1)
    weights = (np.uint64(1) << np.arange(N_BANDS - 1, dtype=np.uint64))[:, None]
    words = (bits.astype(np.uint64) * weights).sum(axis=0).astype(np.uint32)
    loudness = energy.max(axis=0)
    # Silence carries no fingerprint: ESC-style clips are padded with digital zeros, whose words are all alike, and
    # the faint parts are what lossy coding changes most. Word 0 marks a frame that is not compared.
    quiet = np.minimum(loudness[1:], loudness[:-1]) < loudness.max() - QUIET_DB
    words[quiet] = 0
    return words


_FRONTENDS: list[LogMel] = []  # built on first use (nothing happens at import)


def _frontend() -> LogMel:
    if not _FRONTENDS:
        _FRONTENDS.append(LogMel(sample_rate=RATE, n_fft=N_FFT, hop_length=HOP, n_mels=N_BANDS, f_min=F_MIN,
                                 f_max=F_MAX).eval())
    return _FRONTENDS[0]


def fingerprint_file(path: str | Path) -> Fingerprint:
    """Decode ``path`` at its own sample rate and fingerprint it.

    Raises:
        AudioLoadError: the file is not usable audio (the message names it).
    """
    rate = audio_info(path).sample_rate
    exact, words = fingerprint_waveform(load_audio(path, sample_rate=rate), rate)
    return Fingerprint(path=Path(path), exact=exact, words=words)


def clip_fingerprints(paths: Sequence[str | Path], *, cache: FeatureCache | None = None) -> list[Fingerprint]:
    """Fingerprints of ``paths``, from ``cache`` where stored (keyed like features: file identity + version);
    computed (over processes when many are missing) and stored otherwise. A damaged entry is removed and recomputed
    (as features are)."""
    settings = {"fingerprint": FINGERPRINT_VERSION}
    prints: list[Fingerprint | None] = [None] * len(paths)
    missing: list[tuple[int, str | None]] = []
    for i, path in enumerate(paths):
        key = cache.key(path, settings) if cache is not None else None
        stored = cache.load(key) if cache is not None else None
        if stored is not None and stored.dtype == np.uint32 and len(stored) >= _DIGEST_WORDS:
            exact = stored[:_DIGEST_WORDS].astype("<u4").tobytes().hex()
            prints[i] = Fingerprint(path=Path(path), exact=exact, words=stored[_DIGEST_WORDS:])
        else:
            missing.append((i, key))
    workers = worker_count(0, len(missing))
    with worker_pool(workers) as pool:
        jobs = [paths[i] for i, _ in missing]
        made = pool.map(fingerprint_file, jobs, chunksize=chunk_size(len(jobs), workers)) if pool is not None \
            else map(fingerprint_file, jobs)
        for (i, key), fingerprint in zip(missing, made):
            if cache is not None:
                digest = np.frombuffer(bytes.fromhex(fingerprint.exact), dtype="<u4")
                cache.save(key, np.concatenate([digest, fingerprint.words]).astype(np.uint32), dtype=np.uint32)
            prints[i] = fingerprint
    return prints


def exact_ids(fingerprints: Sequence[Fingerprint]) -> np.ndarray:
    """``(n,)`` int64: the first 8 bytes of each exact hash, what a checkpoint keeps of the clips it trained on
    (8 bytes a clip; two distinct clips share one with probability about n^2 / 2^64)."""
    return np.asarray([int.from_bytes(bytes.fromhex(f.exact[:16]), "little", signed=True) for f in fingerprints],
                      dtype=np.int64)


TRAINED_WORDS = 64  # robust words a checkpoint keeps of each training clip: 2 s of its sound, 260 bytes a clip


def trained_excerpts(fingerprints: Sequence[Fingerprint]) -> np.ndarray:
    """What a checkpoint keeps of its training clips for the content check (:func:`seen_in_training`):
    ``(n, 1 + TRAINED_WORDS)`` uint32, each row the frame where the clip's first loud word is, then that many robust
    words from there (word 0: not compared). Bounded per clip, so a checkpoint of 20,000 clips grows by 5 MB."""
    out = np.zeros((len(fingerprints), 1 + TRAINED_WORDS), dtype=np.uint32)
    for row, fingerprint in zip(out, fingerprints):
        loud = np.flatnonzero(fingerprint.words)
        start = int(loud[0]) if len(loud) else 0
        excerpt = fingerprint.words[start:start + TRAINED_WORDS]
        row[0], row[1:1 + len(excerpt)] = start, excerpt
    return out


def seen_in_training(paths: Sequence[str | Path], trained_on: np.ndarray | None, *,
                     excerpts: np.ndarray | None = None, cache: FeatureCache | None = None,
                     threshold: float = MATCH_BER) -> list[Path]:
    """The clips of ``paths`` a checkpoint was trained on: exact copies (their exact id is in ``trained_on``) and,
    given ``excerpts`` (:func:`trained_excerpts`), re-encoded, resampled or re-levelled ones (a robust fingerprint
    within ``threshold`` bit error rate of a training clip's: the test training's content guard applies,
    :func:`find_overlaps`). Without ``excerpts`` (a checkpoint from before they were kept) only exact copies."""
    if not len(paths) or trained_on is None or not len(trained_on):
        return []
    prints = clip_fingerprints(paths, cache=cache)
    exact = np.isin(exact_ids(prints), trained_on)
    near = np.zeros(len(paths), dtype=bool)
    rest = np.flatnonzero(~exact)
    if excerpts is not None and len(excerpts) and len(rest):
        mine = trained_excerpts([prints[i] for i in rest])[:, 1:]
        near[rest] = excerpt_ber(mine, np.asarray(excerpts)[:, 1:]).min(axis=1) < threshold
    return [Path(p) for p, seen in zip(paths, exact | near) if seen]


def excerpt_ber(rows: np.ndarray, cols: np.ndarray, *, max_shift: int = MAX_SHIFT_FRAMES,
                chunk: int = 256) -> np.ndarray:
    """:func:`ber_matrix` of word excerpts ``(n, W)`` and ``(m, W)`` uint32, each aligned at its clip's first loud
    frame: ``(n, m)`` float32, the same rule (frames loud in both, :data:`MIN_FRAMES`, :data:`MIN_OVERLAP`). Written
    as matrix products (bits as +-1, quiet frames 0: agreements minus disagreements is a dot product), which BLAS
    does for a test set against thousands of training clips in seconds where the word loop takes minutes."""
    width = rows.shape[1] + 2 * max_shift  # a at [max_shift, ...); b at [2 max_shift, ...) of a wider array
    loud_b = np.zeros((len(cols), width + 2 * max_shift), np.float32)
    sign_b = np.zeros((len(cols), width + 2 * max_shift, 32), np.float32)
    loud_b[:, 2 * max_shift:2 * max_shift + cols.shape[1]] = cols != 0
    sign_b[:, 2 * max_shift:2 * max_shift + cols.shape[1]] = _signs(cols)
    best = np.ones((len(rows), len(cols)), dtype=np.float32)
    for start in range(0, len(rows), chunk):
        part = rows[start:start + chunk]
        loud_a = np.zeros((len(part), width), np.float32)
        loud_a[:, max_shift:max_shift + part.shape[1]] = part != 0
        sign_a = np.zeros((len(part), width, 32), np.float32)
        sign_a[:, max_shift:max_shift + part.shape[1]] = _signs(part)
        need = np.maximum(MIN_FRAMES, MIN_OVERLAP * np.minimum(loud_a.sum(1)[:, None], (cols != 0).sum(1)[None]))
        for shift in range(-max_shift, max_shift + 1):  # b[t - shift] against a[t]
            lo = max_shift - shift
            both = loud_a @ loud_b[:, lo:lo + width].T
            agree = sign_a.reshape(len(part), -1) @ sign_b[:, lo:lo + width].reshape(len(cols), -1).T
            rate = np.where(both >= need, (32 * both - agree) / np.maximum(64 * both, 1), 1.0)
            np.minimum(best[start:start + chunk], rate, out=best[start:start + chunk])
    return best


def _signs(words: np.ndarray) -> np.ndarray:
    """``(n, W)`` uint32 -> ``(n, W, 32)`` float32: each bit as +1 / -1, every bit of a quiet word (0) as 0."""
    bits = ((words[..., None] >> np.arange(32, dtype=np.uint32)) & 1).astype(np.float32) * 2 - 1
    return bits * (words != 0)[..., None]


def bit_error_rate(a: np.ndarray, b: np.ndarray, *, max_shift: int = MAX_SHIFT_FRAMES) -> float:
    """The lowest share of differing bits between words ``a`` and ``b`` over shifts of ``-max_shift..max_shift``
    frames, counting frames loud in both (at least :data:`MIN_FRAMES`, and :data:`MIN_OVERLAP` of the quieter
    clip's loud frames); 1.0 when no shift qualifies."""
    return float(ber_matrix([a], [b], max_shift=max_shift)[0, 0])


def ber_matrix(rows: Sequence[np.ndarray], cols: Sequence[np.ndarray], *,
               max_shift: int = MAX_SHIFT_FRAMES, chunk: int = 16) -> np.ndarray:
    """:func:`bit_error_rate` of every pair: ``(len(rows), len(cols))`` float32, vectorised (clips of any length,
    padded with word 0, which is never compared)."""
    width = max([len(w) for w in (*rows, *cols)] + [1]) + max_shift
    a, b = _padded(rows, width), _padded(cols, width)
    loud_a, loud_b = (a != 0).sum(axis=1), (b != 0).sum(axis=1)
    need = np.maximum(MIN_FRAMES, MIN_OVERLAP * np.minimum(loud_a[:, None], loud_b[None, :]))
    best = np.ones((len(rows), len(cols)), dtype=np.float32)
    for shift in range(-max_shift, max_shift + 1):
        shifted = np.roll(b, shift, axis=1)  # b[t - shift] against a[t]; the padding keeps wrapped words at 0
        for start in range(0, len(a), chunk):
            x = a[start:start + chunk, None, :]
            both = (x != 0) & (shifted[None] != 0)
            differing = _POPCOUNT[np.bitwise_xor(x, shifted[None]).view(np.uint8)].reshape(*both.shape, 4)
            n = both.sum(axis=2)
            bits = np.where(both, differing.sum(axis=3, dtype=np.uint16), 0).sum(axis=2)
            rate = np.where(n >= need[start:start + chunk], bits / np.maximum(32 * n, 1), 1.0)
            np.minimum(best[start:start + chunk], rate, out=best[start:start + chunk])
    return best


def _padded(words: Sequence[np.ndarray], width: int) -> np.ndarray:
    out = np.zeros((len(words), width), dtype=np.uint32)
    for i, w in enumerate(words):
        out[i, :len(w)] = w
    return out


@dataclass(frozen=True)
class Overlap:
    """``candidate`` (audio entering from outside the split) sounds like ``protected`` (a validation or test clip)."""

    candidate: Path
    protected: Path
    how: str  # "the same samples (exact)" or "a near copy (bit error rate 0.05)"

    def describe(self) -> str:
        return f"{self.candidate} is {self.how} of {self.protected}"


def find_overlaps(candidates: Sequence[Fingerprint], protected: Sequence[Fingerprint], *,
                  threshold: float = MATCH_BER) -> list[Overlap]:
    """Every candidate that is an exact or near copy of a protected clip (each candidate reported once)."""
    by_exact = {p.exact: p for p in protected}
    rates = ber_matrix([c.words for c in candidates], [p.words for p in protected]) if protected else None
    found = []
    for i, candidate in enumerate(candidates):
        twin = by_exact.get(candidate.exact)
        if twin is not None:
            found.append(Overlap(candidate.path, twin.path, "an exact copy (the same decoded samples)"))
        elif rates is not None and rates[i].min() < threshold:
            j = int(rates[i].argmin())
            found.append(Overlap(candidate.path, protected[j].path,
                                 f"a near copy (robust fingerprint, bit error rate {rates[i, j]:.2f})"))
    return found


def guard_content(candidates: Sequence[str | Path], protected: Sequence[str | Path], *, what: str,
                  cache: FeatureCache | None, allow_overlap: bool = False, threshold: float = MATCH_BER) -> None:
    """Refuse ``candidates`` (audio entering the run from outside its split: a background folder, an unlabelled
    pool) that are exact or near copies of ``protected`` clips (the validation and test clips).

    Raises:
        DatasetLayoutError: an overlap, naming both files and how they matched (up to 5 pairs, and the count),
            unless ``allow_overlap``, which logs the same as a warning.
    """
    from envsound.errors import DatasetLayoutError

    if not candidates or not protected:
        return
    start = time.perf_counter()
    overlaps = find_overlaps(clip_fingerprints(candidates, cache=cache), clip_fingerprints(protected, cache=cache),
                             threshold=threshold)
    log.info("content guard: %d %s checked against %d validation/test clips in %.1f s", len(candidates), what,
             len(protected), time.perf_counter() - start)
    if not overlaps:
        return
    listed = "; ".join(o.describe() for o in overlaps[:5]) + (f"; and {len(overlaps) - 5} more"
                                                               if len(overlaps) > 5 else "")
    if allow_overlap:
        log.warning("leakage.allow_overlap: %d %s sound like validation or test clips, used anyway: %s",
                    len(overlaps), what, listed)
        return
    raise DatasetLayoutError(f"{len(overlaps)} {what} sound like validation or test clips of this split: {listed}; "
                             "remove them, or pass --allow-overlap (leakage.allow_overlap=true) if you mean it")


@dataclass(frozen=True)
class Duplicate:
    """Two clips of one dataset that hold the same sound; ``straddles`` when they sit in different folds (then a
    model can be tested on a clip it was trained on, whatever the folds say)."""

    first: ClipRecord
    second: ClipRecord
    how: str
    straddles: bool

    def describe(self) -> str:
        where = (f"folds {self.first.fold} and {self.second.fold}: STRADDLES FOLDS" if self.straddles
                 else f"fold {self.first.fold}")
        return f"{self.first.path} ~ {self.second.path}: {self.how} ({where})"


def find_duplicates(records: Sequence[ClipRecord], *, cache: FeatureCache | None = None,
                    threshold: float = MATCH_BER) -> list[Duplicate]:
    """Every pair of ``records`` that are exact or near copies of each other, closest first. Compares all pairs
    (memory ``4 n^2`` bytes: fine for tens of thousands of clips, not for hundreds of thousands)."""
    prints = clip_fingerprints([r.path for r in records], cache=cache)
    by_exact: dict[str, list[int]] = {}
    for i, fingerprint in enumerate(prints):
        by_exact.setdefault(fingerprint.exact, []).append(i)
    exact_pairs = {pair for group in by_exact.values() for pair in itertools.combinations(group, 2)}
    pairs = [(0.0, records[i], records[j], "an exact copy") for i, j in sorted(exact_pairs)]
    rates = ber_matrix([p.words for p in prints], [p.words for p in prints])
    for i in range(len(records)):
        for j in np.flatnonzero(rates[i, i + 1:] < threshold) + i + 1:
            if (i, int(j)) not in exact_pairs:
                pairs.append((float(rates[i, j]), records[i], records[j],
                              f"a near copy (bit error rate {rates[i, j]:.2f})"))
    pairs.sort(key=lambda p: p[0])
    return [Duplicate(a, b, how, straddles=a.fold != b.fold) for _, a, b, how in pairs]
