"""Sound event detection on mixtures of ESC-10 clips: how well the window timeline says *when*, against --segments.

    ENVSOUND_MODELS=DIR .venv/bin/python experiments/sed_esc10.py --root ../shared/data/esc50 \
        --out experiments/out/sed-esc10 [--windows 5 2 1]

Builds (once) ``OUT/mix``: ``envsound mix`` of ESC-10 folds 1-4 at 32 kHz, seed 0 (60 curated mixtures a fold, 4-12
s, 1-3 events of different classes over noise; ``strong_labels.csv`` holds every event). Then, per window length W,
``envsound cv --dataset fsdkaggle2019 --root OUT/mix --folds 1,2,3,4 --init efficientat-mn04`` (the default
``transfer.mode=auto``: a probe on the frozen AudioSet network, multi-label), with ``features.window_seconds=W``; for
W < 5 the hop is 0.25 s and the median filter 1 s (W = 1 is ``--preset sed``; W = 5: the defaults, hop 1 s, filter
3 s). Each fold's test clips
are scored by ``evaluate``'s event metrics (segment F1 at 1 s, event F1 with a 200-ms collar, PSDS scenarios 1 and 2)
and by the baseline "every window labelled with its top label" (``--segments``). Writes ``OUT/results.md``: mean ±
std over the 4 folds of each, and the paired difference in event F1 to the baseline. A finished cv is read back.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROWS = ("segment_f1", "event_f1", "psds", "psds2")


def run(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "envsound", *args, "--quiet"], check=True)


def cv(mix: Path, out: Path, window: float) -> dict:
    if not (out / "cv.json").exists():
        sets = [] if window == 5 else ["--preset", "sed"] if window == 1 else [
            "--set", f"features.window_seconds={window:g}", "--set", "features.eval_hop_seconds=0.25", "--set",
            "events.median_seconds=1"]
        run("cv", "--dataset", "fsdkaggle2019", "--root", str(mix), "--folds", "1,2,3,4", "--init",
            "efficientat-mn04", "--out", str(out), *sets)
    return json.loads((out / "cv.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", required=True, help="the ESC-50 folder")
    parser.add_argument("--out", type=Path, default=Path("experiments/out/sed-esc10"))
    parser.add_argument("--windows", type=float, nargs="+", default=[5.0, 2.0, 1.0])
    args = parser.parse_args()
    mix = args.out / "mix"
    if not (mix / "mix.json").exists():
        run("mix", "--dataset", "esc10", "--root", args.root, "--folds", "1,2,3,4", "--out", str(mix),
            "--sample-rate", "32000", "--seed", "0", "--noisy-factor", "0.25")
    lines = ["| window (hop) | lwlrap | segment F1 | event F1 | PSDS 1 | PSDS 2 | baseline event F1 | event F1 - "
             "baseline | min |", "|---|---|---|---|---|---|---|---|---|"]
    for window in args.windows:
        summary = cv(mix, args.out / f"probe-w{window:g}", window)
        folds = summary["folds"]
        cell = {key: f"{np.mean([f[key] for f in folds]):.3f} ± {np.std([f[key] for f in folds], ddof=1):.3f}"
                for key in ("lwlrap", *ROWS)}
        base = np.array([f["sed"]["baseline"]["event_f1"] for f in folds])
        gain = np.array([f["event_f1"] for f in folds]) - base
        hop = 1.0 if window == 5 else 0.25
        lines.append(f"| {window:g} s ({hop:g} s) | {cell['lwlrap']} | {cell['segment_f1']} | {cell['event_f1']} | "
                     f"{cell['psds']} | {cell['psds2']} | {base.mean():.3f} ± {base.std(ddof=1):.3f} | "
                     f"{gain.mean():+.3f} ± {gain.std(ddof=1):.3f} | {summary['seconds'] / 60:.1f} |")
    (args.out / "results.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
