"""Does the frame head learn more from more mixtures? Two ``--preset sed`` cvs of experiments/sed_esc10.py, one on
the 60-a-fold set and one on a set with more mixtures of the same clips (``--curated 240`` or 480), scored on the
*same* test mixtures: each fold's model of the larger set is evaluated on the smaller set's test fold, so the
comparison is paired mixture for mixture (the mixtures of a fold are made of that fold's clips only: no clip crosses
folds).

    ENVSOUND_MODELS=DIR .venv/bin/python experiments/sed_esc10.py --root ../shared/data/esc50 \
        --out experiments/out/sed-esc10-x4 --curated 240 --runs w5 skips
    ENVSOUND_MODELS=DIR .venv/bin/python experiments/sed_esc10_more_mixtures.py \
        --small experiments/out/sed-esc10/frames-skips --large experiments/out/sed-esc10-x4/frames-skips \
        --mix experiments/out/sed-esc10/mix

The 480-a-fold run: ``--out experiments/out/sed-esc10-x8 --curated 480`` and ``--large`` its ``frames-skips``.
Prints a markdown table ("small / large" in each cell): per fold and mean ± std, segment F1, event F1 and PSDS 1 of
both, and the paired difference in event F1 (t-test over the folds). Evaluations are kept in
``LARGE/on-small-fold_K.json`` and read back.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from scipy import stats

KEYS = ("segment_f1", "event_f1", "psds")


def on_small(large: Path, mix: Path, fold: int) -> dict:
    path = large / f"on-small-fold_{fold}.json"
    if not path.exists():
        out = subprocess.run([sys.executable, "-m", "envsound", "evaluate", str(large / f"fold_{fold}" / "model.ckpt"),
                              "--dataset", "fsdkaggle2019", "--root", str(mix), "--folds", str(fold), "--json",
                              "--quiet"], check=True, capture_output=True, text=True).stdout
        path.write_text(out, encoding="utf-8")
    return json.loads(path.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=Path, required=True, help="the cv folder of the 60-a-fold set")
    parser.add_argument("--large", type=Path, required=True, help="the cv folder of the larger set")
    parser.add_argument("--mix", type=Path, required=True, help="the smaller set's envsound mix folder")
    args = parser.parse_args()
    small = json.loads((args.small / "cv.json").read_text())["folds"]
    folds = [int(f["fold"]) for f in small]
    large = [on_small(args.large, args.mix, fold) for fold in folds]
    lines = ["| fold | " + " | ".join(f"{k} small / large" for k in KEYS) + " |", "|---" * (len(KEYS) + 1) + "|"]
    for fold, a, b in zip(folds, small, large):
        lines.append(f"| {fold} | " + " | ".join(f"{a[k]:.3f} / {b[k]:.3f}" for k in KEYS) + " |")
    cells = []
    for key in KEYS:
        a, b = np.array([f[key] for f in small]), np.array([f[key] for f in large])
        cells.append(f"{a.mean():.3f} ± {a.std(ddof=1):.3f} / {b.mean():.3f} ± {b.std(ddof=1):.3f}")
    lines.append("| mean ± std | " + " | ".join(cells) + " |")
    gain = np.array([b["event_f1"] - a["event_f1"] for a, b in zip(small, large)])
    p = stats.ttest_rel([b["event_f1"] for b in large], [a["event_f1"] for a in small]).pvalue
    lines.append(f"\nevent F1, large - small: {gain.mean():+.3f} ± {gain.std(ddof=1):.3f} "
                 f"({', '.join(f'{g:+.3f}' for g in gain)}), paired t-test p = {p:.3f}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
