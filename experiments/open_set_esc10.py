"""None of my classes: events of a 4-class model on recordings where half the sounds are of no class it knows.

A model of dog, rooster, rain and crying baby (``envsound train --init`` a pretrained network, a probe, on three of
ESC-10's official folds 1-4) hears a recording built from the fourth fold: its 32 clips of the model's classes and 32
clips of other ESC-50 classes (distinct classes where the fold has them), 5 s each, in a seeded order (320 s, at the
network's rate). An event is right when it overlaps a clip of its class; a clip of the model's classes is found when
an event of its class overlaps it. Each fold is the test fold once (the model never heard it); the same network is
scored with its open-set gate (``events.open_set``, the default 0.05, calibrated on the training folds alone) and
without it (every window one of its classes: how envsound decoded before), paired.

``--init``: the AudioSet release (``mn04_as_mAP_432.pt`` or ``efficientat-mn04``), or a frozen network installed in
``$ENVSOUND_MODELS`` (``yamnet``, ``birdnet-v2.4``: its probe's gate is calibrated on its own embeddings):

    python experiments/open_set_esc10.py --root ../shared/data/esc50 \\
        --init ../shared/pretrained/efficientat/mn04_as_mAP_432.pt --out experiments/out/open-set
    python experiments/open_set_esc10.py --root ../shared/data/esc50 --init yamnet --out experiments/out/open-set-yamnet

Figures: docs/results.md, "None of my classes".
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

import envsound
from envsound.audio.load import load_audio
from envsound.inference.predictor import Predictor

CLASSES = ["dog", "rooster", "rain", "crying_baby"]
CLIP_SECONDS = 5.0
RATE = 32000


def recording(meta: pd.DataFrame, root: Path, fold: int, seed: int, rate: int = RATE) -> tuple[np.ndarray, list[tuple]]:
    """The test fold's clips of the model's classes and as many of other classes, shuffled, end to end at ``rate``
    (Hz); with the truth ``(start, end, category, of_the_model)`` of each."""
    rng = np.random.default_rng(seed)
    here = meta[meta.fold == fold]
    mine = here[here.category.isin(CLASSES)]
    others = here[~here.category.isin(CLASSES)]
    # one clip of each other class first (distinct sounds), then more clips of them until there are as many
    firsts = others.groupby("category").sample(1, random_state=seed)
    rest = others.drop(firsts.index).sample(frac=1.0, random_state=seed)
    chosen = pd.concat([firsts.sample(frac=1.0, random_state=seed), rest]).head(len(mine))
    clips = [(r.filename, r.category, True) for r in mine.itertuples()] + \
        [(r.filename, r.category, False) for r in chosen.itertuples()]
    clips = [clips[i] for i in rng.permutation(len(clips))]
    size = int(CLIP_SECONDS * rate)
    wave = np.concatenate([np.pad(c := load_audio(root / "audio" / name, sample_rate=rate)[:size], (0, size - len(c)))
                           for name, _, _ in clips])
    truth = [(CLIP_SECONDS * i, CLIP_SECONDS * (i + 1), category, ok) for i, (_, category, ok) in enumerate(clips)]
    return wave, truth


def scores(events: list[dict], truth: list[tuple]) -> dict:
    """Event precision (events overlapping a clip of their class), recall (clips of the model's classes an event of
    their class overlaps)."""
    def hit(event, clip):
        start, end, category, ok = clip
        return ok and event["label"] == category and event["onset"] < end and event["offset"] > start

    right = sum(any(hit(e, clip) for clip in truth) for e in events)
    mine = [clip for clip in truth if clip[3]]
    found = sum(any(hit(e, clip) for e in events) for clip in mine)
    return {"events": len(events), "wrong": len(events) - right,
            "precision": right / len(events) if events else 0.0, "recall": found / len(mine)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="an ESC-50 checkout (meta/esc50.csv, audio/)")
    parser.add_argument("--init", required=True, help="the AudioSet release (mn04_as_mAP_432.pt or efficientat-mn04) "
                        "or a frozen network's name (yamnet, birdnet-v2.4)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--folds", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--share", type=float, default=None,
                        help="events.open_set for the training runs (default: envsound's default)")
    args = parser.parse_args()
    meta = pd.read_csv(args.root / "meta" / "esc50.csv")
    rows = []
    for fold in args.folds:
        train_folds = [f for f in (1, 2, 3, 4) if f != fold]
        run = args.out / f"fold_{fold}"
        if not (run / "model.ckpt").exists():
            settings = {} if args.share is None else {"events.open_set": args.share}
            envsound.train(envsound.dataset("esc10", root=args.root, folds=train_folds, classes=CLASSES),
                           init=args.init, out=run, settings=settings)
        rate = Predictor.from_checkpoint(run / "model.ckpt").features.sample_rate  # the recording at the model's rate
        wave, truth = recording(meta, args.root, fold, args.seed + fold, rate)
        path = run / "recording.wav"
        sf.write(path, wave, rate, subtype="FLOAT")
        for gate in (True, False):
            predictor = Predictor.from_checkpoint(run / "model.ckpt")
            if not gate:
                predictor.model.open_set = None  # the same network, every window one of its classes
            found = scores(predictor.predict_file(path, events=True).events, truth)
            rows.append({"fold": fold, "open_set": gate, **found})
            print(json.dumps(rows[-1]), flush=True)
    table = pd.DataFrame(rows)
    table.to_csv(args.out / "open_set.csv", index=False)
    for gate, part in table.groupby("open_set"):
        print(f"open set {'on ' if gate else 'off'}: precision {part.precision.mean():.3f} ± "
              f"{part.precision.std():.3f}, recall {part.recall.mean():.3f} ± {part.recall.std():.3f}, events {part.events.sum()} "
              f"({part.wrong.sum()} wrong) over folds {', '.join(map(str, part.fold))}")
    on, off = (table[table.open_set == g].set_index("fold") for g in (True, False))
    precision, recall = on.precision - off.precision, on.recall - off.recall
    print(f"paired, on - off: precision {precision.mean():+.3f} ± {precision.std():.3f}, recall "
          f"{recall.mean():+.3f} ± {recall.std():.3f}")


if __name__ == "__main__":
    main()
