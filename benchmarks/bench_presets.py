"""Training throughput of the paper presets: windows (segments) and clips per second through `train_model`.

    .venv/bin/python benchmarks/bench_presets.py --root ../shared/data/esc50 [--presets piczak2015] [--epochs 2]

ESC-10 folds 1-3 (240 clips, a replication's training split), each preset as it is except `augment.copies=0` (making
copies is a one-time cost, measured apart by bench_augment.py) and `--epochs`. A first one-epoch run fills the feature
store and the runtime probe; the timed run then trains `--epochs` epochs on the warm store, and its seconds per epoch
give windows/s (what the network sees: every segment of every clip with `train.windows: all` or `all_copies`)
and clips/s.

The timed run writes its Lightning checkpoints only at its end, as a preset's run without validation writes them
every `max_epochs / 50` epochs (a run of a few epochs would otherwise write them every epoch: 1-3 s each for these
26-101 M-parameter networks, which made the figures before 2026-11-25 measure the disk as much as the training).
A preset with a validation split still writes them every epoch.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from datetime import date
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, required=True, help="ESC-50 root (ESC-10 is taken from it)")
    parser.add_argument("--presets", nargs="+", default=["piczak2015"])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()

    from envsound.data.registry import load_dataset
    from envsound.features.cache import FeatureCache
    from envsound.features.windows import eval_starts
    from envsound.hardware import cpu_bf16_supported, cpu_model
    from envsound.recipes.config import resolve
    from envsound.recipes.context import RunContext
    from envsound.training.loop import fit
    from envsound.recipes.train import train_model

    fit.CHECKPOINTS_PER_RUN = 1  # see the docstring

    manifest = load_dataset("esc10", args.root).select_folds([1, 2, 3])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        context = RunContext(cache=FeatureCache(Path(tmp) / "cache"), progress=False)
        for name in args.presets:
            def config(epochs: int):
                return resolve(preset=name, overrides=(f"train.max_epochs={epochs}", "augment.copies=0"))

            train_model(manifest, config(1), out_dir=Path(tmp) / f"{name}-warm", context=context)
            cfg = config(args.epochs)
            start = time.perf_counter()
            result = train_model(manifest, cfg, out_dir=Path(tmp) / name, context=context)
            seconds = time.perf_counter() - start
            frames = 1 + round(5.0 * cfg.features.sample_rate) // cfg.features.hop_length  # a 5-s ESC clip
            windows = len(manifest.records) * (len(eval_starts(frames, cfg.features)) if cfg.train.windows != "random"
                                               else 1)
            rows.append({"preset": name, "epochs": result.epochs, "seconds": round(seconds, 1),
                         "seconds_per_epoch": round(seconds / result.epochs, 2), "windows_per_epoch": windows,
                         "windows_per_s": round(windows * result.epochs / seconds, 1),
                         "clips_per_s": round(len(manifest.records) * result.epochs / seconds, 1)})
    out = {"date": date.today().isoformat(), "cpu": cpu_model(), "cores": os.cpu_count(), "bf16": cpu_bf16_supported(),
           "rows": rows}
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
