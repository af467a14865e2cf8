"""ESC-10 4-fold cross-validation table: one `envsound cv` run per model, summarised as Markdown.

    .venv/bin/python experiments/esc10_table.py --root ../shared/data/esc50 --out experiments/out/esc10 \
        [--models cnn piczak dtu knn random_forest] [--set key=value ...]

Each row is exactly `envsound cv --dataset esc10 --root ROOT --folds 1,2,3,4 --out OUT/<model> --model <model>`
(plus any --set); a model whose OUT/<model>/cv.json exists is not rerun (delete it to rerun).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


def run(model: str, root: Path, out: Path, overrides: list[str]) -> dict:
    target = out / model
    if not (target / "cv.json").exists():
        command = [sys.executable, "-m", "envsound.cli.main", "cv", "--dataset", "esc10", "--root", str(root),
                   "--folds", "1,2,3,4", "--out", str(target), "--model", model, "-q", "--resume"]
        for override in overrides:
            command += ["--set", override]
        subprocess.run(command, check=True)
    return json.loads((target / "cv.json").read_text())


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
        summary = run(model, args.root, args.out, args.overrides)
        folds = " / ".join(f"{f['accuracy'] * 100:.1f}" for f in summary["folds"])
        print(f"| `{model}` | {summary['mean_accuracy'] * 100:.1f} ± {summary['std_accuracy'] * 100:.1f} % | {folds} "
              f"| {summary['seconds'] / 60:.1f} |", flush=True)


if __name__ == "__main__":
    main()
