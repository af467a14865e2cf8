"""The embedded default dataset: ten classes of synthetic environmental sounds, written as real WAV files.

It needs no download, so ``envsound demo`` and the tests run anywhere. Each clip draws its own random parameters
(pitch, rate, timing, level) and sits on coloured background noise at a random SNR of 5-20 dB, so the classes are
learnable but not identical copies: a small CNN reaches roughly 80-100 %, a nearest-centroid on mean log-spectra less.

Layout under ``root`` (written by :func:`generate_synthetic`)::

    audio/<fold>-<label>-<index>.wav    PCM_16 mono, ``seconds`` long
    synthetic.csv                      path,label,fold,source_id  (path relative to root; source_id = clip id)
    .complete                          JSON of the generation parameters, written last

Every clip is its own recording (``source_id`` = clip id). Generation is deterministic: each clip's random generator is
seeded from ``(seed, class, fold, index)``, so the same parameters give byte-identical files.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf
from tqdm import tqdm

from envsound.data.records import ClipRecord, Manifest
from envsound.data.validate import check_on_error, check_records, drop_missing, finish_manifest, parse_int, read_table
from envsound.errors import ConfigError, DatasetLayoutError
from envsound.fileio import write_json_atomic, write_text_atomic

logger = logging.getLogger(__name__)

CLASSES: tuple[str, ...] = ("siren", "dog_bark", "rain", "wind", "clock_tick", "engine", "bird_chirp", "door_knock",
                            "alarm_beep", "water_drip")
GENERATOR_VERSION = 1  # bump when the synthesis changes, so cached datasets are regenerated
MANIFEST_NAME = "synthetic.csv"
MARKER_NAME = ".complete"
AUDIO_DIR = "audio"
SNR_DB = (5.0, 20.0)

Synth = Callable[[np.random.Generator, int, int], np.ndarray]


def generate_synthetic(root: str | os.PathLike, *, clips_per_class_per_fold: int = 6, n_folds: int = 5,
                       seconds: float = 3.0, sample_rate: int = 22050, seed: int = 0) -> Path:
    """Write the synthetic dataset under ``root`` (reusing it when a complete one with these parameters is there).

    Args:
        root: directory to write into (created if needed); ``audio/`` inside it belongs to this function.
        clips_per_class_per_fold: >= 1; the default gives 10 classes x 5 folds x 6 = 300 clips.
        n_folds: number of folds, >= 1 (folds are numbered 1..n_folds, balanced per class).
        seconds: clip length, 0.5..60 seconds.
        sample_rate: Hz, 8000..96000.
        seed: any integer; the same parameters give byte-identical files.

    Returns:
        ``root`` as a :class:`~pathlib.Path`.

    Raises:
        ConfigError: a parameter out of range.
        DatasetLayoutError: ``root`` exists and is not a directory.

    >>> root = generate_synthetic("data/synthetic")
    >>> (root / "synthetic.csv").exists()
    """
    params = _params(clips_per_class_per_fold=clips_per_class_per_fold, n_folds=n_folds, seconds=seconds,
                     sample_rate=sample_rate, seed=seed)
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise DatasetLayoutError(f"{root}: exists and is not a directory; pass a directory for the synthetic dataset")
    if _read_marker(root) == params and (root / MANIFEST_NAME).is_file():
        logger.debug("%s: complete synthetic dataset found, reusing it", root)
        return root

    marker = root / MARKER_NAME
    marker.unlink(missing_ok=True)  # from here on the directory is incomplete until the marker is rewritten
    audio = root / AUDIO_DIR
    audio.mkdir(parents=True, exist_ok=True)
    n = int(round(seconds * sample_rate))
    rows = []
    jobs = [(c, fold, i) for fold in range(1, n_folds + 1) for c in range(len(CLASSES))
            for i in range(clips_per_class_per_fold)]
    logger.info("%s: generating %d synthetic clips", root, len(jobs))
    for c, fold, i in tqdm(jobs, desc="synthetic clips", unit="clip", disable=None, leave=False):
        clip_id = f"{fold}-{CLASSES[c]}-{i:03d}"
        wave = synthesize_clip(CLASSES[c], n_samples=n, sample_rate=sample_rate,
                               rng=np.random.default_rng([seed, c, fold, i]))
        sf.write(str(audio / f"{clip_id}.wav"), wave, sample_rate, subtype="PCM_16", format="WAV")
        rows.append((f"{AUDIO_DIR}/{clip_id}.wav", CLASSES[c], fold, clip_id))
    wanted = {Path(r[0]).name for r in rows}
    for stale in audio.glob("*.wav"):  # clips of an earlier generation with other parameters
        if stale.name not in wanted:
            stale.unlink()
    lines = ["path,label,fold,source_id"] + [",".join(map(str, row)) for row in rows]
    write_text_atomic(root / MANIFEST_NAME, "\n".join(lines) + "\n")
    write_json_atomic(marker, params)
    return root


def prepare_synthetic(root: str | os.PathLike, *, on_error: str = "raise") -> Manifest:
    """The synthetic dataset as a :class:`Manifest`, generating it with default parameters if ``root`` lacks one.

    A complete dataset already under ``root`` is read whatever parameters made it. Labels are :data:`CLASSES` in that
    order; ``clip_id`` is the file stem and ``source_id`` the clip id. Every clip's header is checked
    (:func:`envsound.data.validate.check_records`): ``on_error="raise"`` raises on the first bad clip, ``"skip"``
    leaves bad clips out, lists them in ``Manifest.skipped`` and logs their count.

    Raises:
        ConfigError: ``on_error`` is not ``"raise"`` or ``"skip"``.
        DatasetLayoutError: a malformed ``synthetic.csv`` (missing column, unknown label, bad fold, missing file).
        AudioLoadError: an unreadable, empty or truncated clip with ``on_error="raise"``.

    >>> manifest = prepare_synthetic("data/synthetic")
    >>> len(manifest), manifest.labels[:2]   # (300, ['siren', 'dog_bark'])
    """
    check_on_error(on_error)
    root = Path(root)
    if _read_marker(root) is None or not (root / MANIFEST_NAME).is_file():
        generate_synthetic(root)
    csv_path = root / MANIFEST_NAME
    listed: list[tuple[int, ClipRecord]] = []
    for line, row in read_table(csv_path, required=("path", "label", "fold", "source_id")):
        if row["label"] not in CLASSES:
            raise DatasetLayoutError(f"{csv_path}: line {line}: unknown label {row['label']!r}; valid: "
                                     f"{', '.join(CLASSES)}; delete {root} to regenerate the dataset")
        path = root / row["path"]
        listed.append((line, ClipRecord(path=path, labels=(row["label"],), source_id=row["source_id"],
                                        fold=parse_int(row["fold"], csv_path=csv_path, line=line, column="fold"),
                                        clip_id=path.stem)))
    present, missing = drop_missing(listed, csv_path=csv_path, on_error=on_error)
    good, bad = check_records(present, on_error=on_error)
    return finish_manifest("synthetic", good, list(CLASSES), skipped=missing + bad, where=root)


# ------------------------------------------------------------------------------------------------------- synthesis

def synthesize_clip(label: str, *, n_samples: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """One clip of class ``label``: shape ``(n_samples,)`` float64, peak in [0.3, 0.9], on noise at 5-20 dB SNR.

    Raises:
        ConfigError: ``label`` is not one of :data:`CLASSES`.
    """
    if label not in _SYNTHS:
        raise ConfigError(f"unknown synthetic class {label!r}; valid: {', '.join(CLASSES)}")
    fg = _SYNTHS[label](rng, n_samples, sample_rate)
    fg = fg / (_rms(fg) + 1e-12)
    bg = _coloured_noise(rng, n_samples, exponent=rng.uniform(0.5, 1.5))
    snr_db = rng.uniform(*SNR_DB)
    mix = fg + bg / (_rms(bg) + 1e-12) * 10 ** (-snr_db / 20)
    return mix * (rng.uniform(0.3, 0.9) / np.max(np.abs(mix)))


def _siren(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    t = np.arange(n) / sr
    f0, depth, rate = rng.uniform(500, 900), rng.uniform(0.2, 0.45), rng.uniform(0.25, 1.2)
    freq = f0 * (1 + depth * np.sin(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi)))
    phase = 2 * np.pi * np.cumsum(freq) / sr
    return sum(rng.uniform(0.3, 1.0) / k * np.sin(k * phase) for k in (1, 2, 3))


def _dog_bark(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    out = np.zeros(n)
    for _ in range(rng.integers(2, 6)):
        length = int(rng.uniform(0.1, 0.25) * sr)
        t = np.arange(length) / sr
        f0 = rng.uniform(300, 600)
        freq = f0 * (0.6 + 0.4 * np.exp(-t / rng.uniform(0.03, 0.08)))  # pitch falls through the bark
        phase = 2 * np.pi * np.cumsum(freq) / sr
        tone = sum(np.sin(k * phase) / k for k in range(1, 7))
        env = (1 - np.exp(-t / 0.005)) * np.exp(-t / rng.uniform(0.04, 0.1))
        growl = 0.3 * rng.standard_normal(length)
        _place(out, (tone + growl) * env, int(rng.integers(0, max(1, n - length))))
    return out


def _rain(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    clicks = np.zeros(n)
    count = int(rng.uniform(200, 600) * n / sr)
    clicks[rng.integers(0, n, count)] = rng.uniform(-1, 1, count)
    kernel = rng.standard_normal(int(0.002 * sr)) * np.exp(-np.arange(int(0.002 * sr)) / (0.0005 * sr))
    drops = np.convolve(clicks, kernel, mode="same")
    hiss = _band_noise(rng, n, sr, lo=rng.uniform(1000, 2500), hi=sr / 2)
    return drops / (_rms(drops) + 1e-12) + rng.uniform(0.5, 1.5) * hiss / (_rms(hiss) + 1e-12)


def _wind(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    t = np.arange(n) / sr
    noise = _band_noise(rng, n, sr, lo=20.0, hi=rng.uniform(250, 800))
    rate, depth = rng.uniform(0.1, 0.6), rng.uniform(0.5, 0.9)
    gust = 1 + depth * np.sin(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi))
    return noise * gust


def _clock_tick(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    out = np.zeros(n)
    period, freq = rng.uniform(0.25, 1.0), rng.uniform(2000, 5000)
    length = int(0.004 * sr)
    t = np.arange(length) / sr
    click = np.sin(2 * np.pi * freq * t) * np.exp(-t / 0.0008)
    start = rng.uniform(0, period)
    for k, at in enumerate(np.arange(start, n / sr, period)):
        _place(out, click * (1.0 if k % 2 == 0 else rng.uniform(0.5, 0.8)), int(at * sr))  # tick, tock
    return out


def _engine(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    f0 = rng.uniform(30, 80)
    jitter = np.cumsum(rng.standard_normal(n)) / np.sqrt(n) * 0.3  # slow random walk, a few per cent
    freq = f0 * (1 + 0.05 * jitter)
    phase = 2 * np.pi * np.cumsum(freq) / sr
    hum = sum(rng.uniform(0.2, 1.0) / np.sqrt(k) * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
              for k in range(1, 11))
    hum = hum * (1 + 0.1 * np.cumsum(rng.standard_normal(n)) / np.sqrt(n))  # slow level wander
    rumble = _band_noise(rng, n, sr, lo=20.0, hi=400.0)
    return hum / (_rms(hum) + 1e-12) + rng.uniform(0.1, 0.4) * rumble / (_rms(rumble) + 1e-12)


def _bird_chirp(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    out = np.zeros(n)
    for _ in range(rng.integers(3, 9)):
        length = int(rng.uniform(0.05, 0.15) * sr)
        t = np.arange(length) / sr
        f_start = rng.uniform(2000, 3500)
        freq = f_start + rng.uniform(1000, 3000) * (t / t[-1]) ** rng.uniform(0.7, 2.0)
        chirp = np.sin(2 * np.pi * np.cumsum(freq) / sr) * np.hanning(length)
        _place(out, chirp, int(rng.integers(0, max(1, n - length))))
    return out


def _door_knock(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    out = np.zeros(n)
    freq, tau = rng.uniform(80, 200), rng.uniform(0.03, 0.08)
    length = int(5 * tau * sr)
    t = np.arange(length) / sr
    knock = np.sin(2 * np.pi * freq * t) * np.exp(-t / tau)
    knock[: int(0.003 * sr)] += 0.5 * rng.standard_normal(int(0.003 * sr))  # knuckle impact
    at = rng.uniform(0.1, 0.5) * sr
    for _ in range(rng.integers(2, 6)):
        _place(out, knock * rng.uniform(0.7, 1.0), int(at))
        at += rng.uniform(0.15, 0.35) * sr
    return out


def _alarm_beep(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    t = np.arange(n) / sr
    freq, period = rng.uniform(800, 2500), rng.uniform(0.2, 0.6)
    square = np.sign(np.sin(2 * np.pi * freq * t))
    gate = (((t + rng.uniform(0, period)) % period) < period * rng.uniform(0.35, 0.65)).astype(float)
    return square * np.convolve(gate, np.hanning(int(0.004 * sr)) / (0.002 * sr), mode="same")  # soft edges


def _water_drip(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    out = np.zeros(n)
    count = max(2, int(rng.uniform(1, 4) * n / sr))
    for _ in range(count):
        tau = rng.uniform(0.02, 0.06)
        length = int(5 * tau * sr)
        t = np.arange(length) / sr
        f0 = rng.uniform(800, 2000)
        freq = f0 * (1 + rng.uniform(0.2, 0.5) * (1 - np.exp(-t / 0.01)))  # the "plink" rises
        drop = np.sin(2 * np.pi * np.cumsum(freq) / sr) * np.exp(-t / tau)
        _place(out, drop * rng.uniform(0.5, 1.0), int(rng.integers(0, max(1, n - length))))
    return out


_SYNTHS: dict[str, Synth] = {
    "siren": _siren, "dog_bark": _dog_bark, "rain": _rain, "wind": _wind, "clock_tick": _clock_tick,
    "engine": _engine, "bird_chirp": _bird_chirp, "door_knock": _door_knock, "alarm_beep": _alarm_beep,
    "water_drip": _water_drip,
}


# --------------------------------------------------------------------------------------------------------- helpers

def _place(out: np.ndarray, event: np.ndarray, start: int) -> None:
    """Add ``event`` into ``out`` from ``start``, cutting whatever falls past the end."""
    stop = min(len(out), start + len(event))
    if stop <= start:
        return
    out[start:stop] += event[: stop - start]


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x))))


def _band_noise(rng: np.random.Generator, n: int, sr: int, *, lo: float, hi: float) -> np.ndarray:
    """White noise band-limited to ``[lo, hi]`` Hz by zeroing FFT bins (cheap; fine for synthetic data)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / sr)
    spectrum[(freqs < lo) | (freqs > hi)] = 0
    return np.fft.irfft(spectrum, n)


def _coloured_noise(rng: np.random.Generator, n: int, *, exponent: float) -> np.ndarray:
    """Noise with power falling as ``1/f**exponent`` (0 white, 1 pink, 2 brown)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spectrum), dtype=float)
    f[0] = 1.0
    return np.fft.irfft(spectrum / f ** (exponent / 2), n)


def _params(*, clips_per_class_per_fold: int, n_folds: int, seconds: float, sample_rate: int, seed: int) -> dict:
    checks = [
        (isinstance(clips_per_class_per_fold, int) and clips_per_class_per_fold >= 1, "clips_per_class_per_fold",
         clips_per_class_per_fold, ">= 1"),
        (isinstance(n_folds, int) and n_folds >= 1, "n_folds", n_folds, ">= 1"),
        (isinstance(seconds, (int, float)) and 0.5 <= seconds <= 60, "seconds", seconds, "0.5..60"),
        (isinstance(sample_rate, int) and 8000 <= sample_rate <= 96000, "sample_rate", sample_rate, "8000..96000 Hz"),
        (isinstance(seed, int), "seed", seed, "an integer"),
    ]
    for ok, key, value, valid in checks:
        if not ok:
            raise ConfigError(f"generate_synthetic: {key}={value!r} is out of range; valid: {valid}")
    return {"version": GENERATOR_VERSION, "clips_per_class_per_fold": clips_per_class_per_fold, "n_folds": n_folds,
            "seconds": float(seconds), "sample_rate": sample_rate, "seed": seed, "classes": list(CLASSES)}


def _read_marker(root: Path) -> dict | None:
    try:
        return json.loads((root / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
