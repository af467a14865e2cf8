"""Sound event detection on mixtures of ESC-10 clips: window timelines and a frame-level head, against --segments.

    ENVSOUND_MODELS=DIR .venv/bin/python experiments/sed_esc10.py --root ../shared/data/esc50 \
        --out experiments/out/sed-esc10 [--runs w5 w1 clip strong skips] [--curated 60]

Builds (once) ``OUT/mix``: ``envsound mix`` of ESC-10 folds 1-4 at 32 kHz, seed 0 (``--curated`` mixtures a fold,
60 unless told, 4-12 s, 1-3 events of different classes over noise; ``strong_labels.csv`` holds every event). Then
each run is
``envsound cv --dataset fsdkaggle2019 --root OUT/mix --folds 1,2,3,4 --init efficientat-mn04`` with the default
``transfer.mode=auto`` (the AudioSet network frozen) and:

- ``w5``: the defaults (a logistic-regression probe on 5-s windows every 1 s, 3-s median filter): the window timeline;
- ``w2``, ``w1``: the same probe on 2-s or 1-s windows every 0.25 s, 1-s median filter;
- ``clip``: ``--preset sed --set events.train_on=clip --set model.options.frame_skips=false``: the frame head (a
  GRU over the trunk's 80-ms frames) trained on the mixtures' clip labels only, through linear-softmax pooling;
- ``strong``: ``--preset sed --set model.options.frame_skips=false``: the same head trained on the strong labels;
- ``skips``: ``--preset sed``: that head reading two early layers too (time strides 8 and 16, frequency bins kept).

Each fold's test clips are scored by ``evaluate``'s event metrics (segment F1 at 1 s, event F1 with a 200-ms collar,
PSDS scenarios 1 and 2) and by the baseline "every window labelled with its top label" (``--segments``, of the
run's own windows). Writes ``OUT/results.md``: mean ± std over the 4 folds of each, and the paired difference in
event F1 to the default probe's ``--segments`` baseline. A finished cv is read back.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROWS = ("segment_f1", "event_f1", "psds", "psds2")
FINE = ["--set", "features.eval_hop_seconds=0.25", "--set", "events.median_seconds=1"]
RUNS = {  # name: (folder, what the row says, cv arguments)
    "w5": ("probe-w5", "window probe, 5-s windows (1-s hop)", []),
    "w2": ("probe-w2", "window probe, 2-s windows (0.25-s hop)", ["--set", "features.window_seconds=2", *FINE]),
    "w1": ("probe-w1", "window probe, 1-s windows (0.25-s hop)", ["--set", "features.window_seconds=1", *FINE]),
    "clip": ("frames-clip", "frame head on the last layer, clip labels (`--preset sed --set events.train_on=clip "
             "--set model.options.frame_skips=false`)",
             ["--preset", "sed", "--set", "events.train_on=clip", "--set", "model.options.frame_skips=false"]),
    "strong": ("frames-strong", "frame head on the last layer, strong labels (`--preset sed --set "
               "model.options.frame_skips=false`)", ["--preset", "sed", "--set", "model.options.frame_skips=false"]),
    "skips": ("frames-skips", "frame head on the last and two early layers, strong labels (`--preset sed`)",
              ["--preset", "sed"]),
}


def run(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "envsound", *args, "--quiet"], check=True)


def cv(mix: Path, out: Path, sets: list[str]) -> dict:
    if not (out / "cv.json").exists():
        run("cv", "--dataset", "fsdkaggle2019", "--root", str(mix), "--folds", "1,2,3,4", "--init",
            "efficientat-mn04", "--out", str(out), *sets)
    return json.loads((out / "cv.json").read_text())


def mean_std(values) -> str:
    values = np.asarray(values, dtype=np.float64)
    return f"{values.mean():.3f} ± {values.std(ddof=1):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", required=True, help="the ESC-50 folder")
    parser.add_argument("--out", type=Path, default=Path("experiments/out/sed-esc10"))
    parser.add_argument("--runs", nargs="+", choices=list(RUNS), default=["w5", "w1", "clip", "strong", "skips"])
    parser.add_argument("--curated", type=int, default=60, help="mixtures a fold (envsound mix --curated)")
    args = parser.parse_args()
    mix = args.out / "mix"
    if not (mix / "mix.json").exists():
        run("mix", "--dataset", "esc10", "--root", args.root, "--folds", "1,2,3,4", "--out", str(mix),
            "--sample-rate", "32000", "--seed", "0", "--noisy-factor", "0.25", "--curated", str(args.curated))
    lines = ["| run | lwlrap | segment F1 | event F1 | PSDS 1 | PSDS 2 | its --segments event F1 | event F1 - "
             "default's baseline | min |", "|---|---|---|---|---|---|---|---|---|"]
    reference = None
    for name in ["w5", *[n for n in args.runs if n != "w5"]]:
        folder, title, sets = RUNS[name]
        folds = cv(mix, args.out / folder, sets)
        summary, folds = folds, folds["folds"]
        base = np.array([f["sed"]["baseline"]["event_f1"] for f in folds])
        reference = base if reference is None else reference
        cell = {key: mean_std([f[key] for f in folds]) for key in ("lwlrap", *ROWS)}
        gain = np.array([f["event_f1"] for f in folds]) - reference
        lines.append(f"| {title} | {cell['lwlrap']} | {cell['segment_f1']} | {cell['event_f1']} | {cell['psds']} | "
                     f"{cell['psds2']} | {mean_std(base)} | {gain.mean():+.3f} ± {gain.std(ddof=1):.3f} | "
                     f"{summary['seconds'] / 60:.1f} |")
    (args.out / "results.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
