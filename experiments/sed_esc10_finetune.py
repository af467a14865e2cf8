"""Does fine-tuning the trunk on strong labels lift event F1? A prototype on a finished ``--preset sed`` cv.

    ENVSOUND_MODELS=DIR .venv/bin/python experiments/sed_esc10_finetune.py \
        --run experiments/out/sed-esc10/frames-skips --mix experiments/out/sed-esc10/mix [--epochs 6] [--lr 1e-4]

Each fold K's checkpoint (the trunk frozen, the frame head trained on it: the probe stage of LP-FT) is fine-tuned end
to end, trunk and frame head together, on its training folds' evaluation windows and their strong frame targets
(binary cross-entropy of every 80-ms step; BatchNorm statistics kept, AdamW at ``--lr``, weight decay 0.01, batch
``--batch`` windows, seed 0, ``--freq-mask`` bins of SpecAugment's frequency masking per window), and scored on
fold K after every epoch through the product's path (``clip_timeline`` and ``sed_report``: FrameTrack, the
checkpoint's thresholds and median filter). Epoch 0 is the checkpoint as it is. Prints per fold and epoch, then per
epoch the mean ± std over folds and the paired difference to epoch 0 (t-test). Scoring every epoch on the test fold
shows the curve; an epoch count chosen from it is chosen on these folds.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from scipy import stats
from torch import nn

from envsound.data.registry import load_dataset
from envsound.evaluation.sed import clip_timeline, sed_report
from envsound.features.cache import FeatureCache
from envsound.features.extract import extract_features
from envsound.features.windows import start_seconds
from envsound.models.checkpoint import load_checkpoint
from envsound.models.clip import ClipModel
from envsound.transfer.frame_probe import frame_targets


def windows_and_targets(model: ClipModel, manifest, cache) -> tuple[torch.Tensor, torch.Tensor]:
    records, features, _ = extract_features(manifest.records, model.config.features, cache=cache, progress=False)
    steps = None
    xs, ys = [], []
    for record, feature in zip(records, features):
        windows, starts = model.clip_windows(feature)
        if steps is None:
            with torch.inference_mode():
                steps = model.network.frame_steps(torch.from_numpy(windows[:1])).shape[1]
        xs.append(windows)
        ys += [frame_targets(manifest.strong.get(record.clip_id, ()), model.labels, begin=begin, steps=steps,
                             step=model.frame_seconds) for begin in start_seconds(starts, model.config.features)]
    return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.stack(ys))


def test_scores(model: ClipModel, test: tuple, strong: dict) -> dict:
    records, features = test  # the test fold's log-mels, extracted once
    timelines = [clip_timeline(model, r, f)[0] for r, f in zip(records, features)]
    report = sed_report(model, records, timelines, strong)
    return {"event_f1": report["event_f1"], "segment_f1": report["segment_f1"], "psds": report["psds"]}


def freq_mask(x: torch.Tensor, width: int, generator: torch.Generator) -> torch.Tensor:
    if width <= 0:
        return x
    x = x.clone()
    bins = x.shape[2]
    for i in range(len(x)):
        w = int(torch.randint(0, width + 1, (1,), generator=generator))
        f0 = int(torch.randint(0, bins - w + 1, (1,), generator=generator))
        x[i, :, f0:f0 + w] = 0.0  # the normalised log-mel's mean
    return x


def fine_tune(model: ClipModel, x: torch.Tensor, y: torch.Tensor, *, epochs: int, lr: float, batch: int,
              mask: int, after_epoch) -> None:
    network = model.network
    optimizer = torch.optim.AdamW(network.parameters(), lr=lr, weight_decay=0.01)
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    for epoch in range(1, epochs + 1):
        network.train()
        for module in network.modules():  # batches of a few windows: keep the AudioSet statistics
            if isinstance(module, nn.BatchNorm2d):
                module.eval()
        began, losses = time.perf_counter(), []
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), batch):
            index = order[start:start + batch]
            logits = network.frame_logits(freq_mask(x[index], mask, generator))
            loss = nn.functional.binary_cross_entropy_with_logits(logits.float(), y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        network.eval()
        after_epoch(epoch, float(np.mean(losses)), time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="a finished --preset sed cv folder (fold_K/model.ckpt)")
    parser.add_argument("--mix", type=Path, required=True, help="its envsound mix folder")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--freq-mask", type=int, default=0, help="largest frequency mask in mel bins (0: none)")
    parser.add_argument("--folds", type=int, nargs="+", default=[1, 2, 3, 4])
    args = parser.parse_args()
    torch.set_num_threads(2)
    data, cache = load_dataset("fsdkaggle2019", args.mix), FeatureCache()
    scores: dict[int, list[dict]] = {}
    for fold in args.folds:
        began = time.perf_counter()
        model = ClipModel.from_checkpoint(load_checkpoint(args.run / f"fold_{fold}" / "model.ckpt"), source="cv")
        test_set = data.select_folds([fold])
        test = extract_features(test_set.records, model.config.features, cache=cache, progress=False)[:2]
        x, y = windows_and_targets(model, data.select_folds([f for f in args.folds if f != fold]), cache)
        scores[fold] = [test_scores(model, test, test_set.strong)]
        print(f"fold {fold}: {len(x)} training windows, epoch 0 event F1 {scores[fold][0]['event_f1']:.3f} "
              f"({time.perf_counter() - began:.0f} s)", flush=True)

        def after_epoch(epoch: int, loss: float, seconds: float, fold=fold) -> None:
            scores[fold].append(test_scores(model, test, test_set.strong))
            s = scores[fold][-1]
            print(f"fold {fold} epoch {epoch}: loss {loss:.4f}, event F1 {s['event_f1']:.3f}, segment F1 "
                  f"{s['segment_f1']:.3f}, PSDS {s['psds']:.3f} ({seconds:.0f} s training)", flush=True)

        fine_tune(model, x, y, epochs=args.epochs, lr=args.lr, batch=args.batch, mask=args.freq_mask,
                  after_epoch=after_epoch)
    print("\n| epoch | event F1 | segment F1 | PSDS 1 | event F1 - epoch 0 (paired) | p |\n|---|---|---|---|---|---|")
    for epoch in range(args.epochs + 1):
        ev = np.array([scores[f][epoch]["event_f1"] for f in args.folds])
        seg = np.array([scores[f][epoch]["segment_f1"] for f in args.folds])
        psds = np.array([scores[f][epoch]["psds"] for f in args.folds])
        base = np.array([scores[f][0]["event_f1"] for f in args.folds])
        diff, p = "", ""
        if epoch and len(ev) > 1:
            d = ev - base
            diff = f"{d.mean():+.3f} ± {d.std(ddof=1):.3f} ({', '.join(f'{v:+.3f}' for v in d)})"
            p = f"{stats.ttest_rel(ev, base).pvalue:.3g}"
        print(f"| {epoch} | {ev.mean():.3f} ± {ev.std(ddof=1):.3f} | {seg.mean():.3f} ± {seg.std(ddof=1):.3f} | "
              f"{psds.mean():.3f} ± {psds.std(ddof=1):.3f} | {diff} | {p} |")


if __name__ == "__main__":
    main()
