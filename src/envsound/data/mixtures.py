"""Scaper-like multi-label mixtures with a curated part (true labels) and a noisy part (corrupted labels).

:func:`build_mixtures` turns a single-label dataset with folds (ESC-10, ESC-50, a CSV manifest) into a multi-label set
in the FSDKaggle2019 layout, so multi-label training and learning from noisy labels can be tested on data whose truth
is known. Each mixture lays 1..3 events of *different* classes, all cut from clips of *one* fold, at random times over a
coloured-noise background; the fold of a mixture is the fold of its clips, so cross-validation on the official folds
stays leakage-free. Curated and noisy mixtures of one fold may reuse the same source clips: both stay in that fold.

Layout written under ``out_dir``::

    train_curated/<fname>.wav   mono 16-bit PCM WAV at ``settings.sample_rate``
    train_noisy/<fname>.wav
    train_curated.csv           fname,labels,fold   labels comma-separated (quoted when several), the truth
    train_noisy.csv             fname,labels,fold   labels corrupted as set by the rates of MixSettings
    strong_labels.csv           fname,subset,label,onset,offset,source_clip,snr_db   every true event (seconds)
    mix.json                    settings, seed, vocabulary, counts per fold, corruption statistics; written last

``mix.json`` is the completion marker: a folder without it is unfinished. The CSVs hold no ``source_id`` column: each
mixture is its own recording (a loader uses ``fname``), and the ``fold`` column keeps every source clip on one side.

Determinism: every mixture draws from its own generator seeded by ``(seed, subset, fold, index)`` (numpy
``SeedSequence``), so the same manifest and settings give byte-identical files whatever the order of work.

>>> summary = build_mixtures(load_dataset("esc10", root).select_folds([1, 2, 3, 4]), "data/esc10-mix",
...                          settings=MixSettings(seed=0))
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
import shutil
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile as sf
from tqdm.auto import tqdm

from envsound.audio.load import AUDIO_EXTENSIONS, load_audio
from envsound.data.mix_settings import MixSettings
from envsound.data.records import ClipRecord, Manifest
from envsound.data.strong_labels import STRONG_NAME
from envsound.errors import ConfigError, DatasetLayoutError, EnvsoundError
from envsound.fileio import run_lock, write_json_atomic, write_text_atomic

logger = logging.getLogger(__name__)

FORMAT_NAME, FORMAT_VERSION = "envsound-mixtures", 1
CURATED, NOISY = "curated", "noisy"
SUBSETS = (CURATED, NOISY)
CSV_NAMES = {CURATED: "train_curated.csv", NOISY: "train_noisy.csv"}
AUDIO_DIRS = {CURATED: "train_curated", NOISY: "train_noisy"}
MARKER_NAME = "mix.json"
CSV_HEADER = ("fname", "labels", "fold")
STRONG_HEADER = ("fname", "subset", "label", "onset", "offset", "source_clip", "snr_db")
BACKGROUND_EXPONENT = (1.0, 2.0)  # background spectra fall as 1/f**e, e drawn per mixture: pink (1) .. brown (2)
BACKGROUND_LOW_CUT_HZ = 20.0  # sub-audible rumble of brown noise is removed before its level is set
CLIP_TARGET_PEAK = 0.99  # a mixture whose peak exceeds 1.0 is scaled down to this peak (about -0.1 dBFS)
_SUBSET_CODE = {CURATED: 0, NOISY: 1}
_FNAME = {subset: re.compile(rf"{subset}_f\d+_\d+\.wav") for subset in SUBSETS}  # the names _fname writes


@dataclass
class MixSummary:
    """What :func:`build_mixtures` wrote.

    ``per_fold[fold]`` counts ``clips``, ``classes``, ``curated`` and ``noisy`` mixtures. ``corruption`` counts the
    noisy part's true labels and what happened to them: ``kept``, ``dropped``, ``swapped``, ``restored`` (drawn for
    dropping but kept so that the clip has a label), and ``extra`` labels added. ``changed_fraction`` is the share of
    noisy mixtures whose label set differs from the truth; ``precision``/``recall`` compare noisy labels with true
    ones over all noisy mixtures (micro), ``class_precision``/``class_recall`` per class (``None`` where undefined).
    ``normalised`` counts mixtures scaled down to avoid clipping.
    """

    out_dir: Path
    curated_csv: Path
    noisy_csv: Path
    strong_csv: Path
    marker: Path
    n_curated: int
    n_noisy: int
    per_fold: dict[int, dict[str, int]]
    corruption: dict[str, int]
    changed_fraction: float
    precision: float | None
    recall: float | None
    class_precision: dict[str, float | None] = field(default_factory=dict)
    class_recall: dict[str, float | None] = field(default_factory=dict)
    normalised: int = 0
    seconds: float = 0.0

    def lines(self) -> list[str]:
        """A short human-readable report (what the CLI prints)."""
        c = self.corruption
        return [f"{self.n_curated} curated + {self.n_noisy} noisy mixtures in {self.out_dir}",
                "folds: " + ", ".join(f"{k}: {v['curated']}+{v['noisy']}" for k, v in self.per_fold.items()),
                f"noisy labels: {self.changed_fraction:.1%} of mixtures differ from the truth; "
                f"precision {_fmt(self.precision)}, recall {_fmt(self.recall)} "
                f"(of {c['true_labels']} true labels: {c['dropped']} dropped, {c['swapped']} swapped; "
                f"{c['extra']} extra added)",
                f"{self.normalised} mixtures scaled down to avoid clipping; built in {self.seconds:.1f} s"]


def build_mixtures(manifest: Manifest, out_dir: str | os.PathLike, *, settings: MixSettings | None = None,
                   overwrite: bool = False, progress: bool = True) -> MixSummary:
    """Write a curated + noisy multi-label mixture set built from the single-label clips of ``manifest``.

    Every fold of the manifest gets ``settings.n_curated`` curated and ``settings.n_noisy`` noisy mixtures made only
    of its own clips. Each source clip is decoded once per fold (resampled to ``settings.sample_rate`` and trimmed),
    and kept in memory while that fold is mixed. The layout, the label noise and the determinism are described in
    the module docstring and :class:`MixSettings`. Events are mixed in float; a mixture is scaled down only when its
    peak would exceed full scale (then to a peak of 0.99; counted in ``normalised``).

    Args:
        manifest: single-label clips, every one with a fold (>= 0). Class names must not contain ``,`` or ``"``.
        out_dir: folder to write into (created if needed). ``train_curated/`` and ``train_noisy/`` inside it belong to
            this function and are replaced with ``overwrite`` (only when everything under our names was written by
            this module: a real FSDKaggle2019 folder is never deleted).
        settings: see :class:`MixSettings`; ``None`` uses its defaults.
        overwrite: replace a mixture set already in ``out_dir`` (else its presence is an error).
        progress: show a tqdm bar (only when stderr is a terminal).

    Returns:
        A :class:`MixSummary` with the counts, the paths of the CSVs and the realised label-noise statistics.

    Raises:
        DatasetLayoutError: an empty manifest, a multi-label clip, a clip without a fold, a class name with a comma or
            quote, a fold with fewer classes than ``settings.max_events``, an empty ``background_folder``.
        EnvsoundError: ``out_dir`` already holds a mixture set (or an unfinished one) and ``overwrite`` is False;
            it holds files of another origin under our names (even with ``overwrite``); another envsound run is
            writing there.
        AudioLoadError: a source clip or background file that cannot be decoded.
        ConfigError: ``settings`` is not a :class:`MixSettings`.

    >>> summary = build_mixtures(manifest.select_folds([1, 2, 3, 4]), "data/esc10-mix", settings=MixSettings(seed=1))
    >>> summary.n_curated, summary.n_noisy    # (240, 960)
    """
    settings = MixSettings() if settings is None else settings
    if not isinstance(settings, MixSettings):
        raise ConfigError(f"settings={settings!r} is not a MixSettings")
    folds = _check_manifest(manifest, settings)
    backgrounds = _Backgrounds(_background_files(settings.background_folder), sample_rate=settings.sample_rate)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise DatasetLayoutError(f"{out_dir}: exists and is not a folder; choose another output folder")
    started = time.perf_counter()
    with run_lock(out_dir):
        _prepare_out_dir(out_dir, overwrite=overwrite)
        rows: dict[str, list[tuple[str, str, int]]] = {CURATED: [], NOISY: []}
        strong: list[tuple] = []
        truth_and_noisy: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
        corruption: Counter = Counter(true_labels=0, kept=0, dropped=0, swapped=0, restored=0, extra=0)
        per_fold: dict[int, dict[str, int]] = {}
        normalised = 0
        total = len(folds) * (settings.n_curated + settings.n_noisy)
        show = progress and sys.stderr.isatty()
        with tqdm(total=total, desc="mixtures", unit="mix", disable=not show) as bar:
            for fold, records in folds.items():
                pool = _FoldPool.load(records, settings=settings)
                per_fold[fold] = {"clips": len(records), "classes": len(pool.classes),
                                  CURATED: settings.n_curated, NOISY: settings.n_noisy}
                for subset, count in ((CURATED, settings.n_curated), (NOISY, settings.n_noisy)):
                    for index in range(count):
                        fname = _fname(subset, fold, index)
                        scene_seq, label_seq = np.random.SeedSequence(
                            [settings.seed, _SUBSET_CODE[subset], fold, index]).spawn(2)
                        wave, events, scaled = _make_scene(np.random.default_rng(scene_seq), pool, settings,
                                                           backgrounds)
                        normalised += scaled
                        path = out_dir / AUDIO_DIRS[subset] / fname
                        sf.write(str(path), wave, settings.sample_rate, subtype="PCM_16", format="WAV")
                        truth = _in_vocabulary_order({e.label for e in events}, manifest.labels)
                        labels = truth
                        if subset == NOISY:
                            labels, counts = corrupt_labels(
                                truth, manifest.labels, rng=np.random.default_rng(label_seq),
                                missing_rate=settings.missing_rate, swap_rate=settings.swap_rate,
                                extra_rate=settings.extra_rate)
                            corruption.update(counts)
                            truth_and_noisy.append((truth, labels))
                        rows[subset].append((fname, ",".join(labels), fold))
                        strong.extend((fname, subset, e.label, f"{e.onset:.3f}", f"{e.offset:.3f}", e.source_clip,
                                       f"{e.snr_db:.2f}") for e in events)
                        bar.update()
                del pool
        stats = _noise_statistics(truth_and_noisy, manifest.labels)
        summary = MixSummary(
            out_dir=out_dir, curated_csv=out_dir / CSV_NAMES[CURATED], noisy_csv=out_dir / CSV_NAMES[NOISY],
            strong_csv=out_dir / STRONG_NAME, marker=out_dir / MARKER_NAME, n_curated=len(rows[CURATED]),
            n_noisy=len(rows[NOISY]), per_fold=per_fold, corruption=dict(corruption), normalised=normalised,
            seconds=time.perf_counter() - started, **stats)
        for subset in SUBSETS:
            write_text_atomic(out_dir / CSV_NAMES[subset], _csv_text(CSV_HEADER, rows[subset]))
        write_text_atomic(out_dir / STRONG_NAME, _csv_text(STRONG_HEADER, strong))
        write_json_atomic(out_dir / MARKER_NAME, _marker(manifest, settings, summary))  # last: the set is complete
    logger.info("%s: %d curated + %d noisy mixtures in %.1f s (%.1f%% of noisy label sets differ from the truth)",
                out_dir, summary.n_curated, summary.n_noisy, summary.seconds, 100 * summary.changed_fraction)
    return summary


def corrupt_labels(truth: Sequence[str], vocabulary: Sequence[str], *, rng: np.random.Generator,
                   missing_rate: float, swap_rate: float, extra_rate: float) -> tuple[tuple[str, ...], Counter]:
    """Web-style noisy labels for a clip whose true labels are ``truth``.

    Each true label is, independently, replaced by a class outside ``truth`` with probability ``swap_rate``, else
    dropped with probability ``missing_rate``, else kept. If every label was dropped, one of the dropped labels (at
    random) is kept so that the clip has a label. Then, with probability ``extra_rate``, one more class outside
    ``truth`` is added. A swap or extra label with no class left to choose from leaves the labels as they are.

    Args:
        truth: the true labels, at least one, all in ``vocabulary``.
        vocabulary: every class name, in output order.
        rng: the generator to draw from.
        missing_rate, swap_rate: per label, 0..1, summing to at most 1.
        extra_rate: per clip, 0..1.

    Returns:
        ``(labels, counts)``: the noisy labels in ``vocabulary`` order (at least one) and a Counter of
        ``true_labels``, ``kept``, ``dropped``, ``swapped``, ``restored``, ``extra``.

    >>> corrupt_labels(("dog", "rain"), ["dog", "rain", "siren"], rng=np.random.default_rng(0),
    ...                missing_rate=0.2, swap_rate=0.15, extra_rate=0.15)
    """
    counts: Counter = Counter(true_labels=len(truth))
    outside = [name for name in vocabulary if name not in set(truth)]
    noisy: list[str] = []
    dropped: list[str] = []
    for label in truth:
        u = rng.random()
        if u < swap_rate:
            free = [name for name in outside if name not in noisy]
            if free:
                noisy.append(free[int(rng.integers(len(free)))])
                counts["swapped"] += 1
                continue
        elif u < swap_rate + missing_rate:
            dropped.append(label)
            continue
        noisy.append(label)
        counts["kept"] += 1
    if not noisy:
        noisy.append(dropped.pop(int(rng.integers(len(dropped)))))
        counts["restored"] += 1
        counts["kept"] += 1
    counts["dropped"] += len(dropped)
    if rng.random() < extra_rate:
        free = [name for name in outside if name not in noisy]
        if free:
            noisy.append(free[int(rng.integers(len(free)))])
            counts["extra"] += 1
    return _in_vocabulary_order(set(noisy), vocabulary), counts


def trim_silence(wave: np.ndarray, *, sample_rate: int, top_db: float = 40.0,
                 frame_seconds: float = 0.02) -> tuple[int, int]:
    """The ``(start, stop)`` sample range of ``wave`` without its leading and trailing near-silence.

    Frames of ``frame_seconds`` whose mean power is more than ``top_db`` below the loudest frame's count as silence.
    Written here (librosa.effects.trim does the same with overlapping frames) because librosa is no runtime
    dependency of envsound and this is eight lines of numpy.

    Args:
        wave: shape ``(samples,)``, at least one sample.
        sample_rate: Hz, >= 1.
        top_db: > 0 dB.
        frame_seconds: > 0 s.

    Returns:
        ``0 <= start < stop <= len(wave)``; the whole range for an all-zero wave.

    >>> start, stop = trim_silence(wave, sample_rate=22050)
    """
    frame = max(1, int(round(frame_seconds * sample_rate)))
    n_frames = -(-len(wave) // frame)
    padded = np.zeros(n_frames * frame, dtype=np.float64)
    padded[:len(wave)] = wave
    power = np.mean(np.square(padded.reshape(n_frames, frame)), axis=1)
    peak = float(power.max())
    if peak <= 0:
        return 0, len(wave)
    loud = np.flatnonzero(power >= peak * 10 ** (-top_db / 10))
    return int(loud[0]) * frame, min(len(wave), (int(loud[-1]) + 1) * frame)


# ------------------------------------------------------------------------------------------------------ internals

@dataclass(frozen=True)
class _Event:
    label: str
    onset: float  # seconds
    offset: float
    source_clip: str
    snr_db: float


@dataclass
class _FoldPool:
    """The decoded, trimmed clips of one fold: ``clips[label]`` = ``[(clip_id, wave), ...]`` sorted by clip id."""

    classes: list[str]
    clips: dict[str, list[tuple[str, np.ndarray]]]

    @classmethod
    def load(cls, records: list[ClipRecord], *, settings: MixSettings) -> "_FoldPool":
        clips: dict[str, list[tuple[str, np.ndarray]]] = {}
        for record in sorted(records, key=lambda r: r.clip_id):
            wave = load_audio(record.path, sample_rate=settings.sample_rate)
            start, stop = trim_silence(wave, sample_rate=settings.sample_rate, top_db=settings.trim_top_db)
            clips.setdefault(record.labels[0], []).append((record.clip_id, wave[start:stop].copy()))
        return cls(classes=sorted(clips), clips=clips)


def _make_scene(rng: np.random.Generator, pool: _FoldPool, settings: MixSettings,
                backgrounds: "_Backgrounds") -> tuple[np.ndarray, list[_Event], bool]:
    """One mixture: ``(wave (samples,) float32, events, scaled_down)``."""
    sr = settings.sample_rate
    n = max(1, int(round(rng.uniform(settings.min_seconds, settings.max_seconds) * sr)))
    bg_rms = 10 ** (settings.background_dbfs / 20)
    mix = backgrounds.draw(rng, n) * bg_rms
    k = int(rng.integers(settings.min_events, settings.max_events + 1))
    events = []
    for c in rng.choice(len(pool.classes), size=k, replace=False):
        label = pool.classes[int(c)]
        clips = pool.clips[label]
        clip_id, wave = clips[int(rng.integers(len(clips)))]
        if len(wave) >= n:  # a longer event is cut to the mixture's length at a random offset
            start = int(rng.integers(len(wave) - n + 1))
            segment, onset = wave[start:start + n], 0
        else:
            segment, onset = wave, int(rng.integers(n - len(wave) + 1))
        snr = float(rng.uniform(*settings.snr_db))
        gain = bg_rms * 10 ** (snr / 20) / max(_rms(segment), 1e-9)
        mix[onset:onset + len(segment)] += gain * segment
        events.append(_Event(label, onset / sr, (onset + len(segment)) / sr, clip_id, snr))
    peak = float(np.max(np.abs(mix)))
    scaled = peak > 1.0
    if scaled:
        mix *= CLIP_TARGET_PEAK / peak
    return mix.astype(np.float32), sorted(events, key=lambda e: (e.onset, e.label)), scaled


class _Backgrounds:
    """Unit-RMS backgrounds: random excerpts of ``files`` (decoded files cached per build), else coloured noise."""

    def __init__(self, files: list[Path], *, sample_rate: int) -> None:
        self.files, self.sample_rate = files, sample_rate
        self._load = lru_cache(maxsize=8)(lambda path: load_audio(path, sample_rate=sample_rate))

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` samples, float64, RMS 1 (unless the source is silent)."""
        if self.files:
            wave = self._load(self.files[int(rng.integers(len(self.files)))]).astype(np.float64)
            if len(wave) < n:
                wave = np.tile(wave, -(-n // len(wave)))
            start = int(rng.integers(len(wave) - n + 1))
            out = wave[start:start + n]
        else:
            size = 1 << max(0, (n - 1).bit_length())  # a power of two keeps the FFT fast whatever n is
            spectrum = np.fft.rfft(rng.standard_normal(size))
            freqs = np.fft.rfftfreq(size, 1 / self.sample_rate)
            scale = np.zeros_like(freqs)
            audible = freqs >= BACKGROUND_LOW_CUT_HZ
            scale[audible] = freqs[audible] ** (-rng.uniform(*BACKGROUND_EXPONENT) / 2)
            out = np.fft.irfft(spectrum * scale, size)[:n]
        rms = _rms(out)
        return out / rms if rms > 1e-9 else out


def _background_files(folder: str | None) -> list[Path]:
    if folder is None:
        return []
    root = Path(folder)
    if not root.is_dir():
        raise DatasetLayoutError(f"{root}: background folder not found; pass a folder of audio files")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
    if not files:
        raise DatasetLayoutError(f"{root}: no audio files in the background folder (looked for "
                                 f"{', '.join(sorted(AUDIO_EXTENSIONS)[:4])}, ...)")
    return files


def _check_manifest(manifest: Manifest, settings: MixSettings) -> dict[int, list[ClipRecord]]:
    """The records grouped by fold (sorted), after checking what mixing needs."""
    if not manifest.records:
        raise DatasetLayoutError(f"dataset {manifest.name!r} has no clips to mix")
    bad = [name for name in manifest.labels if "," in name or '"' in name]
    if bad:
        raise DatasetLayoutError(f"dataset {manifest.name!r}: class name {bad[0]!r} contains ',' or '\"', which the "
                                 "labels cell of train_curated.csv cannot hold; rename the class")
    folds: dict[int, list[ClipRecord]] = {}
    for record in manifest.records:
        if len(record.labels) != 1:
            raise DatasetLayoutError(f"{record.path}: mixtures are built from single-label clips, this one has "
                                     f"labels {list(record.labels)}")
        if record.fold is None or record.fold < 0:
            raise DatasetLayoutError(f"{record.path}: fold={record.fold!r}; every clip needs a fold >= 0 so that "
                                     "each mixture stays inside one fold")
        folds.setdefault(record.fold, []).append(record)
    for fold in sorted(folds):
        n_classes = len({r.labels[0] for r in folds[fold]})
        if n_classes < settings.max_events:
            raise DatasetLayoutError(
                f"fold {fold} has {n_classes} classes; max_events={settings.max_events} (--max-events) needs at least "
                f"{settings.max_events}: lower max_events or leave that fold out")
    return {fold: folds[fold] for fold in sorted(folds)}


def _prepare_out_dir(out_dir: Path, *, overwrite: bool) -> None:
    """Refuse a folder holding a (possibly unfinished) mixture set unless ``overwrite``; then empty our entries.

    Even with ``overwrite``, files that this module did not write (a real FSDKaggle2019 download has the same
    names) are never deleted: such a folder is refused.
    """
    ours = [MARKER_NAME, *CSV_NAMES.values(), STRONG_NAME, *AUDIO_DIRS.values()]
    present = [name for name in ours if (out_dir / name).exists()]
    if not present:
        _make_audio_dirs(out_dir)
        return
    if not overwrite:
        state = "a mixture set" if MARKER_NAME in present else "an unfinished mixture set"
        raise EnvsoundError(f"{out_dir}: already holds {state} ({', '.join(present)}); pass overwrite=True "
                            "(--overwrite) to replace it, or choose another output folder")
    foreign = _foreign_entry(out_dir)
    if foreign is not None:
        raise EnvsoundError(f"{out_dir}: {foreign} was not written by envsound's mixture builder; not replacing it "
                            "even with overwrite: choose another output folder")
    for name in ours:  # the marker goes first, so from here on the folder reads as unfinished
        path = out_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    _make_audio_dirs(out_dir)


def _make_audio_dirs(out_dir: Path) -> None:
    for subset in SUBSETS:
        (out_dir / AUDIO_DIRS[subset]).mkdir(parents=True)


def _foreign_entry(out_dir: Path) -> str | None:
    """The first of our names in ``out_dir`` that another program wrote, or None when all are ours."""
    marker = out_dir / MARKER_NAME
    if marker.exists():
        try:
            if json.loads(marker.read_text(encoding="utf-8")).get("format") != FORMAT_NAME:
                return MARKER_NAME
        except (OSError, ValueError, AttributeError):
            return MARKER_NAME
    for name, header in [*((n, CSV_HEADER) for n in CSV_NAMES.values()), (STRONG_NAME, STRONG_HEADER)]:
        path = out_dir / name
        if path.exists():
            try:
                with path.open(newline="", encoding="utf-8") as fh:
                    if tuple(next(csv.reader(fh), ())) != header:
                        return name
            except (OSError, UnicodeDecodeError):
                return name
    for subset in SUBSETS:
        folder = out_dir / AUDIO_DIRS[subset]
        if folder.exists():
            if not folder.is_dir():
                return AUDIO_DIRS[subset]
            stranger = next((p for p in folder.iterdir() if not _FNAME[subset].fullmatch(p.name)), None)
            if stranger is not None:
                return f"{AUDIO_DIRS[subset]}/{stranger.name}"
    return None


def _noise_statistics(pairs: list[tuple[tuple[str, ...], tuple[str, ...]]], vocabulary: Sequence[str]) -> dict:
    hits, noisy_n, true_n = Counter(), Counter(), Counter()
    changed = 0
    for truth, noisy in pairs:
        changed += set(truth) != set(noisy)
        true_n.update(truth)
        noisy_n.update(noisy)
        hits.update(set(truth) & set(noisy))
    total_hits = sum(hits.values())
    return {
        "changed_fraction": changed / len(pairs) if pairs else 0.0,
        "precision": _ratio(total_hits, sum(noisy_n.values())),
        "recall": _ratio(total_hits, sum(true_n.values())),
        "class_precision": {name: _ratio(hits[name], noisy_n[name]) for name in vocabulary},
        "class_recall": {name: _ratio(hits[name], true_n[name]) for name in vocabulary},
    }


def _marker(manifest: Manifest, settings: MixSettings, summary: MixSummary) -> dict:
    return {
        "format": FORMAT_NAME, "format_version": FORMAT_VERSION, "envsound_version": _package_version(),
        "source": {"dataset": manifest.name, "clips": len(manifest.records)},
        "labels": list(manifest.labels),
        "settings": asdict(settings),
        "files": {"curated": CSV_NAMES[CURATED], "noisy": CSV_NAMES[NOISY], "strong": STRONG_NAME,
                  "curated_audio": AUDIO_DIRS[CURATED], "noisy_audio": AUDIO_DIRS[NOISY]},
        "counts": {"curated": summary.n_curated, "noisy": summary.n_noisy,
                   "per_fold": {str(fold): counts for fold, counts in summary.per_fold.items()},
                   "normalised": summary.normalised},
        "corruption": {**summary.corruption, "changed_fraction": summary.changed_fraction,
                       "precision": summary.precision, "recall": summary.recall,
                       "class_precision": summary.class_precision, "class_recall": summary.class_recall},
    }


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("envsound")
    except PackageNotFoundError:
        from envsound._version import __version__

        return __version__


def _fname(subset: str, fold: int, index: int) -> str:
    return f"{subset}_f{fold}_{index:05d}.wav"


def _csv_text(header: Sequence[str], rows: list[tuple]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")  # quotes a cell only when it holds a comma, as FSDKaggle2019
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def _in_vocabulary_order(labels: set[str] | Sequence[str], vocabulary: Sequence[str]) -> tuple[str, ...]:
    wanted = set(labels)
    return tuple(name for name in vocabulary if name in wanted)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
