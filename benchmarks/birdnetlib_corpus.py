"""The clips both BirdNET comparisons read (benchmarks/birdnetlib_parity.py and birdnetlib_speed.py): one flat folder,
as birdnetlib's ``DirectoryMultiProcessingAnalyzer`` globs it (no subfolders).

- every ESC-50 clip of :data:`CLASSES` in ``../shared/data/esc50`` (5 s, 44.1 kHz FLAC), copied byte for byte;
- ``long_NN.wav``: ``clips_per_long`` of those clips joined end to end (44.1 kHz 16-bit WAV; 12 clips: 60 s, twenty
  whole 3-s chunks, so every chunk of birdnetlib's starts where an envsound window does).
"""

from __future__ import annotations

import argparse
import csv
import shutil
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

ESC50 = Path(__file__).resolve().parents[2] / "shared" / "data" / "esc50"
CLASSES = ("dog", "rooster", "hen", "crow", "chirping_birds", "insects", "crickets", "frog", "cat", "siren")


def esc50_clips(classes: tuple[str, ...] = CLASSES, root: Path = ESC50) -> list[Path]:
    """The ESC-50 clips of ``classes``, sorted by name. Raises SystemExit when the shared copy is absent."""
    meta = root / "meta" / "esc50.csv"
    if not meta.is_file():
        raise SystemExit(f"{meta}: not found; these benchmarks read ESC-50 from ../shared/data/esc50")
    with meta.open(newline="") as handle:
        names = sorted(row["filename"] for row in csv.DictReader(handle) if row["category"] in classes)
    return [root / "audio" / name for name in names]


def build(folder: Path, *, classes: tuple[str, ...] = CLASSES, longs: int = 4, clips_per_long: int = 12) -> list[Path]:
    """Fill ``folder`` (made when absent; files already there of the same size are kept) and return its audio files,
    sorted: the clips of ``classes`` and ``longs`` joined recordings, the n-th made of clips n*k .. n*k+k-1
    (cycling through the clips)."""
    folder.mkdir(parents=True, exist_ok=True)
    clips = esc50_clips(classes)
    made = []
    for clip in clips:
        copy = folder / clip.name
        if not copy.is_file() or copy.stat().st_size != clip.stat().st_size:
            shutil.copyfile(clip, copy)
        made.append(copy)
    for n in range(longs):
        path = folder / f"long_{n:02d}.wav"
        if not path.is_file():
            parts = [clips[(n * clips_per_long + i) % len(clips)] for i in range(clips_per_long)]
            waves = [sf.read(part, dtype="int16")[0] for part in parts]
            rates = {sf.info(part).samplerate for part in parts}
            if len(rates) != 1:
                raise SystemExit(f"{folder}: clips of several rates {sorted(rates)}; cannot join them")
            sf.write(path, np.concatenate(waves), rates.pop(), subtype="PCM_16")
        made.append(path)
    return sorted(made)


def seconds_of(paths: list[Path]) -> float:
    """The total duration of ``paths`` in seconds, from their headers."""
    return sum(sf.info(path).duration for path in paths)


def add_corpus_options(parser: argparse.ArgumentParser) -> None:
    """The options the parity and speed scripts share: birdnetlib's python, the work folder, the corpus, --json."""
    parser.add_argument("--bnl-python", default="/tmp/bnl-venv/bin/python", help="birdnetlib's environment's python")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "bnl-bench",
                        help="the clips' folder is WORK/audio; birdnetlib's and the runs' outputs go to WORK")
    parser.add_argument("--longs", type=int, default=4, help="60-s recordings joined from the clips")
    parser.add_argument("--classes", default=",".join(CLASSES), help="the ESC-50 classes (comma-separated)")
    parser.add_argument("--json", type=Path, help="also write the result here")
