"""A copy of an ESC-50 folder's ESC-10 clips of some folds, resampled to 22.05 kHz (the mix's own rate) as 16-bit
FLAC: about 37 MB for folds 1-4, small enough to send to a lent GPU machine (64 MiB a call), where
experiments/sed_unseen.py then builds its mixtures from it.

    .venv/bin/python experiments/esc10_22k.py --root ../shared/data/esc50 --out .devdata/esc50 --folds 1 2 3 4
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import soundfile as sf
import soxr

RATE = 22050


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, required=True, help="the ESC-50 folder (meta/esc50.csv, audio/)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--folds", nargs="+", default=["1", "2", "3", "4"])
    args = parser.parse_args()
    with open(args.root / "meta" / "esc50.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    kept = [r for r in rows if r["esc10"].lower() in ("true", "1") and r["fold"] in args.folds]
    (args.out / "meta").mkdir(parents=True, exist_ok=True)
    (args.out / "audio").mkdir(exist_ok=True)
    with open(args.out / "meta" / "esc50.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(kept)
    for row in kept:
        audio, rate = sf.read(args.root / "audio" / row["filename"], dtype="float32")
        sf.write(args.out / "audio" / row["filename"], soxr.resample(audio, rate, RATE), RATE, subtype="PCM_16",
                 format="FLAC")
    print(f"{len(kept)} clips -> {args.out}")


if __name__ == "__main__":
    main()
