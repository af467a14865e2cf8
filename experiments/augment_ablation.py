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
from pathlib import Path

from envsound.config import OFFLINE_TRANSFORMS
from esc10_cv import esc10_cv, result_cells

NOTHING = ["augment.copies=0", "augment.time_roll=false", "augment.spec_augment=false", "augment.mixup_alpha=0"]
OFFLINE_OFF = [f"augment.{name}=0" for name in OFFLINE_TRANSFORMS]  # whatever the defaults switch on


def offline_alone(transform: str) -> list[str]:
    return [*NOTHING, "augment.copies=4", *OFFLINE_OFF, f"augment.{transform}=1"]


ROWS: dict[str, list[str]] = {
    "none": NOTHING,
    "pitch_shift": offline_alone("pitch_shift"),
    "time_stretch": offline_alone("time_stretch"),
    "gain": offline_alone("gain"),
    "noise": offline_alone("noise"),
    "background": offline_alone("background"),
    "time_roll": [*NOTHING, "augment.time_roll=true"],
    "spec_augment": [*NOTHING, "augment.spec_augment=true"],
    "mixup": [*NOTHING, "augment.mixup_alpha=0.2"],
    "all": [],  # the default
}


def run(row: str, root: Path, out: Path, overrides: list[str]) -> dict:
    return esc10_cv(out / row, root, [a for o in [*overrides, *ROWS[row]] for a in ("--set", o)])


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
        sets = " ".join(ROWS[row]) or "(default)"
        print(f"| {row} | `{sets}` | {result_cells(run(row, args.root, args.out, args.overrides))} |", flush=True)


if __name__ == "__main__":
    main()
