"""The decoding of trained ``--preset sed`` runs tuned again as ``train`` tunes it now (issue 54: ``events.tune``'s
grid gained ``gap_seconds`` and ``hysteresis``), and fold 4 scored again. The network is the run's, untouched: the
decoding is chosen after training, on the run's validation split drawn again with its seed, by the function train
calls; so each result is what the same training gives today.

    ENVSOUND_MODELS=DIR .venv/bin/python experiments/sed_retune.py --mix experiments/out/sed-unseen/mix60 \\
        [--subset all] RUN ...

Writes ``RUN-retuned/model.ckpt`` and ``RUN-retuned/fold4.json`` (``envsound evaluate --folds 4 --json``) and prints
event F1, segment F1, PSDS 1 and PSDS 2 before and after.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from envsound.data.registry import load_dataset
from envsound.data.splits import train_val_split
from envsound.features.extract import extract_features
from envsound.models.checkpoint import load_checkpoint, save_checkpoint
from envsound.recipes.train import tuned_decoding

MEASURES = ("event_f1", "segment_f1", "psds", "psds2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mix", type=Path, required=True, help="the mixture set the runs trained on")
    parser.add_argument("--subset", default=None, help="the subset the runs trained on (all: curated and noisy)")
    parser.add_argument("runs", type=Path, nargs="+")
    args = parser.parse_args()
    trained = load_dataset("fsdkaggle2019", args.mix, **({"subset": args.subset} if args.subset else {}))
    for run in args.runs:
        out = run.with_name(run.name + "-retuned")
        if not (out / "fold4.json").exists():
            checkpoint = load_checkpoint(run / "model.ckpt")
            _, val = train_val_split(trained.select_folds([1, 2, 3]), val_fraction=checkpoint.config.train.val_fraction,
                                     seed=checkpoint.config.train.seed)
            records, features, _ = extract_features(val.records, checkpoint.config.features, cache=None,
                                                    progress=False)
            assert len(records) == len(val.records), "a validation mixture failed to load"
            checkpoint.config = tuned_decoding(checkpoint, val, features)
            out.mkdir(exist_ok=True)
            save_checkpoint(out / "model.ckpt", checkpoint)
            result = subprocess.run([sys.executable, "-m", "envsound", "evaluate", "--dataset", "fsdkaggle2019",
                                     "--root", str(args.mix), "--folds", "4", "--json", "--quiet",
                                     str(out / "model.ckpt")], check=True, capture_output=True, text=True)
            (out / "fold4.json").write_text(result.stdout, encoding="utf-8")
        before, after = (json.loads((folder / "fold4.json").read_text()) for folder in (run, out))
        tuned = load_checkpoint(out / "model.ckpt").meta["events_tuned"]
        print(f"{run}: {', '.join(f'{m} {before[m]:.3f} -> {after[m]:.3f}' for m in MEASURES)}; tuned {tuned}",
              flush=True)


if __name__ == "__main__":
    main()
