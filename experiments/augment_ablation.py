"""Augmentation ablation on ESC-10 (issue 4): no augmentation, each augmentation alone, and all of them together.

    .venv/bin/python experiments/augment_ablation.py --root ../shared/data/esc50 --out experiments/out/ablation \
        [--rows none pitch ...] [--set key=value ...]

Each row is exactly `envsound cv --dataset esc10 --root ROOT --folds 1,2,3,4 --out OUT/<row>` plus the row's --set
options (and any --set given here, applied to every row first). A row whose OUT/<row>/cv.json exists is not rerun.
"Alone" rows switch every other augmentation off; an offline transform alone is applied to every copy (probability 1)
so that its copies differ from their originals.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

NOTHING = ["augment.copies=0", "train.time_roll=false", "train.spec_augment=false", "train.mixup_alpha=0"]
OFFLINE_OFF = ["augment.pitch_shift=0", "augment.time_stretch=0", "augment.gain=0"]


def offline_alone(transform: str) -> list[str]:
    return [*NOTHING, "augment.copies=4", *OFFLINE_OFF, f"augment.{transform}=1"]


ROWS: dict[str, list[str]] = {
    "none": NOTHING,
    "pitch_shift": offline_alone("pitch_shift"),
    "time_stretch": offline_alone("time_stretch"),
    "gain": offline_alone("gain"),
    "noise": offline_alone("noise"),
    "background": offline_alone("background"),
    "time_roll": [*NOTHING, "train.time_roll=true"],
    "spec_augment": [*NOTHING, "train.spec_augment=true"],
    "mixup": [*NOTHING, "train.mixup_alpha=0.2"],
    "all": [],  # the default
}


def run(row: str, root: Path, out: Path, overrides: list[str]) -> dict:
    target = out / row
    if not (target / "cv.json").exists():
        command = [sys.executable, "-m", "envsound.cli.main", "cv", "--dataset", "esc10", "--root", str(root),
                   "--folds", "1,2,3,4", "--out", str(target), "-q", "--resume"]
        for override in [*overrides, *ROWS[row]]:
            command += ["--set", override]
        subprocess.run(command, check=True)
    return json.loads((target / "cv.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, required=True, help="ESC-50 root (meta/esc50.csv, audio/)")
    parser.add_argument("--out", type=Path, required=True, help="one sub-folder per row")
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    print("| augmentation | `--set` | mean accuracy ± std | folds 1-4 | minutes |")
    print("|---|---|---|---|---|")
    for row in args.rows:
        summary = run(row, args.root, args.out, args.overrides)
        folds = " / ".join(f"{f['accuracy'] * 100:.1f}" for f in summary["folds"])
        sets = " ".join(ROWS[row]) or "(default)"
        print(f"| {row} | `{sets}` | {summary['mean_accuracy'] * 100:.1f} ± {summary['std_accuracy'] * 100:.1f} % "
              f"| {folds} | {summary['seconds'] / 60:.1f} |", flush=True)


if __name__ == "__main__":
    main()
