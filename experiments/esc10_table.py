"""ESC-10 4-fold cross-validation table: one `envsound cv` run per model, summarised as Markdown.

    .venv/bin/python experiments/esc10_table.py --root ../shared/data/esc50 --out experiments/out/esc10 \
        [--models cnn piczak dtu knn random_forest] [--set key=value ...]

Each row is exactly `envsound cv --dataset esc10 --root ROOT --folds 1,2,3,4 --out OUT/<model> --model <model>`
(plus any --set); a model whose OUT/<model>/cv.json exists is not rerun (delete it to rerun).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from esc10_cv import esc10_cv, result_cells


def run(model: str, root: Path, out: Path, overrides: list[str]) -> dict:
    return esc10_cv(out / model, root, ["--model", model, *(a for o in overrides for a in ("--set", o))])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, required=True, help="ESC-50 root (meta/esc50.csv, audio/)")
    parser.add_argument("--out", type=Path, required=True, help="one sub-folder per model")
    parser.add_argument("--models", nargs="+", default=["cnn", "piczak", "dtu", "knn", "random_forest"])
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    print("| model | mean accuracy ± std | folds 1-4 | minutes |")
    print("|---|---|---|---|")
    for model in args.models:
        print(f"| `{model}` | {result_cells(run(model, args.root, args.out, args.overrides))} |", flush=True)


if __name__ == "__main__":
    main()
