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

from envsound.data.esc50 import esc50_root, prepare_esc10

RATE = 22050


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, required=True, help="the ESC-50 folder (meta/esc50.csv, audio/)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--folds", type=int, nargs="+", default=[1, 2, 3, 4])
    args = parser.parse_args()
    root = esc50_root(args.root)
    wanted = {r.path.name: r.path for r in prepare_esc10(root).records if r.fold in args.folds}  # as the loader reads
    with open(root / "meta" / "esc50.csv", newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.DictReader(handle) if row["filename"] in wanted]
    (args.out / "meta").mkdir(parents=True, exist_ok=True)
    (args.out / "audio").mkdir(exist_ok=True)
    for row in rows:
        audio, rate = sf.read(wanted[row["filename"]], dtype="float32")
        row["filename"] = str(Path(row["filename"]).with_suffix(".flac"))  # FLAC, named so
        sf.write(args.out / "audio" / row["filename"], soxr.resample(audio, rate, RATE), RATE, subtype="PCM_16",
                 format="FLAC")
    with open(args.out / "meta" / "esc50.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"{len(rows)} clips -> {args.out}")


if __name__ == "__main__":
    main()
