"""Where the frame head's events are lost: its event F1 on the clips it was trained on against its test fold, and
decoding settings (threshold, median filter) chosen on the training folds.

    ENVSOUND_MODELS=DIR .venv/bin/python experiments/sed_esc10_decoding.py --run experiments/out/sed-esc10/frames-skips \
        --mix experiments/out/sed-esc10/mix

``--run`` is a finished ``cv`` folder of ``experiments/sed_esc10.py`` (``fold_K/model.ckpt``). For each fold K its
checkpoint's frame timelines of every fold's mixtures are decoded at thresholds 0.2..0.6 and median filters of
0..2 s; printed per fold: event F1 on the training folds and on fold K at the checkpoint's own settings, the
settings best on the training folds, and fold K's event F1 at those. (A large gap between the two first columns is
overfitting of the head; the last shows whether decoding fitted inside the training folds would help.)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from envsound.data.registry import load_dataset
from envsound.events import Decoding, detect_events
from envsound.evaluation.sed import clip_timeline
from envsound.evaluation.sed_metrics import event_f1
from envsound.features.extract import extract_features
from envsound.models.checkpoint import load_checkpoint
from envsound.models.clip import ClipModel

THRESHOLDS = (0.2, 0.3, 0.4, 0.5, 0.6)
MEDIANS = (0.0, 0.5, 1.0, 1.5, 2.0)


def timelines(model: ClipModel, manifest) -> tuple[dict, dict]:
    records, features, _ = extract_features(manifest.records, model.config.features, cache=None, progress=False)
    found = {r.clip_id: clip_timeline(model, r, f)[0] for r, f in zip(records, features)}
    truth = {r.clip_id: [(e.label, e.onset, e.offset) for e in manifest.strong.get(r.clip_id, ())] for r in records}
    return found, truth


def score(found: dict, truth: dict, labels, threshold, median: float) -> float:
    system = {clip: [(e.label, e.onset, e.offset) for e in detect_events(
        t.begins, t.probs, labels, window_seconds=t.window_seconds, hop_seconds=t.hop_seconds, duration=t.duration,
        decoding=Decoding(threshold=threshold, median_seconds=median))] for clip, t in found.items()}
    return event_f1(truth, system, labels)["f1"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="a finished cv folder (fold_K/model.ckpt)")
    parser.add_argument("--mix", type=Path, required=True, help="the envsound mix folder it was trained on")
    args = parser.parse_args()
    data = load_dataset("fsdkaggle2019", args.mix)
    folds = sorted(int(p.name.split("_")[1]) for p in args.run.glob("fold_*"))
    print("| fold | train folds, own settings | test fold, own settings | best on train folds (threshold, median s) "
          "| test fold at those |\n|---|---|---|---|---|")
    for fold in folds:
        model = ClipModel.from_checkpoint(load_checkpoint(args.run / f"fold_{fold}" / "model.ckpt"), source="cv")
        decoding = Decoding.of(model.config.events).resolved(model.task, model.n_classes)
        labels, own = model.labels, (decoding.threshold, decoding.median_seconds)
        train = timelines(model, data.select_folds([f for f in folds if f != fold]))
        test = timelines(model, data.select_folds([fold]))
        grid = {(t, m): score(*train, labels, t, m) for t in THRESHOLDS for m in MEDIANS}
        best = max(grid, key=grid.get)
        print(f"| {fold} | {score(*train, labels, *own):.3f} | {score(*test, labels, *own):.3f} | {best[0]}, "
              f"{best[1]} ({grid[best]:.3f}) | {score(*test, labels, *best):.3f} |", flush=True)


if __name__ == "__main__":
    main()
