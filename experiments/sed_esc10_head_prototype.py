"""A throwaway prototype kept as it ran (2026-11-26): frame heads retrained on the frozen trunks of a finished
``--preset sed`` cv, in a plain torch loop, with other inputs or settings, each paired over the same 4 folds.

    ENVSOUND_MODELS=DIR .venv/bin/python experiments/sed_esc10_head_prototype.py \
        experiments/out/sed-esc10/frames-strong experiments/out/sed-esc10/mix base,t8,t16,mel
    ENVSOUND_MODELS=DIR .venv/bin/python experiments/sed_esc10_head_prototype.py \
        experiments/out/sed-esc10/frames-strong experiments/out/sed-esc10/mix t816
    ENVSOUND_MODELS=DIR .venv/bin/python experiments/sed_esc10_head_prototype.py \
        experiments/out/sed-esc10/frames-skips experiments/out/sed-esc10/mix B,E15,D50
    ENVSOUND_MODELS=DIR .venv/bin/python experiments/sed_esc10_head_prototype.py \
        experiments/out/sed-esc10/frames-skips experiments/out/sed-esc10/mix B,MIX,ROLL,MIXROLL

For each fold K the checkpoint's network gives every fold's windows' ``frame_steps`` ("trunk": the last layer for
a ``frame_skips=false`` run, last + early layers for a ``--preset sed`` run of format 19) and, computed here,
layer 6's and layer 12's outputs (``t8``, ``t16``: frequency bins kept; t16 repeated, not stitched) and the log-mel's
mean over each 8-frame step (``mel``). A new head (64 GRU units, AdamW 1e-3, weight decay 0.01, batch 16, seed 0)
trains on the other folds' strong frame targets and is scored on fold K (FrameTrack, threshold 0.5, 1-s median
filter; event F1 and segment F1). Variants: ``base`` / ``B`` (40 epochs, dropout 0.3), ``t8``, ``t16``, ``t816``,
``mel`` (those inputs beside the trunk's), ``E15`` (15 epochs), ``D50`` (dropout 0.5); added 2026-11-27, variety in
the training batches: ``MIX`` (each batch's sequences mixed with another's of the batch, lam ~ Beta(0.5, 0.5) on the
inputs, targets joined by their maximum), ``ROLL`` (each sequence and its targets rotated in time by a random number
of steps), ``MIXROLL`` (both). Results: docs/results.md.
"""
import argparse
import time, numpy as np, torch  # noqa: E401
from torch import nn
from envsound.models.checkpoint import load_checkpoint
from envsound.models.clip import ClipModel
from envsound.models.frames import FrameHead
from envsound.data.registry import load_dataset
from envsound.features.extract import extract_features
from envsound.features.windows import eval_windows, start_seconds
from envsound.events import Decoding, FrameTrack, detect_events
from envsound.evaluation.sed_metrics import event_f1, segment_f1
from envsound.transfer.frame_probe import frame_targets
torch.set_num_threads(2)
VARIANTS = {  # name: (inputs of the head, epochs, dropout[, mix, roll])
    "base": (["trunk"], 40, 0.3), "t8": (["trunk", "t8"], 40, 0.3), "t16": (["trunk", "t16"], 40, 0.3),
    "t816": (["trunk", "t8", "t16"], 40, 0.3), "mel": (["trunk", "mel"], 40, 0.3),
    "E15": (["trunk"], 15, 0.3), "D50": (["trunk"], 40, 0.5),
    "MIX": (["trunk"], 40, 0.3, True, False), "ROLL": (["trunk"], 40, 0.3, False, True),
    "MIXROLL": (["trunk"], 40, 0.3, True, True)}
VARIANTS["B"] = VARIANTS["base"]
parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("run", help="a finished cv folder of experiments/sed_esc10.py (fold_K/model.ckpt)")
parser.add_argument("mix", help="its envsound mix folder")
parser.add_argument("variants", help="comma-separated: " + ", ".join(VARIANTS))
args = parser.parse_args()
run, mix = args.run, args.mix
variants = {k: VARIANTS[k] for k in args.variants.split(",")}
man_all = load_dataset("fsdkaggle2019", mix)
cache = {}
def feats_for(model, fold):
    man = man_all.select_folds([fold])
    recs, feats, _ = extract_features(man.records, model.config.features, cache=None, progress=False)
    net = model.network.eval(); out = []
    for r, f in zip(recs, feats):
        w, starts = eval_windows(f, model.config.features)
        x = torch.from_numpy(np.ascontiguousarray(w, np.float32))
        with torch.inference_mode():
            trunk = net.frame_steps(x)  # (n, T, 384)
            h = x; taps = {}
            for i, layer in enumerate(net.features):
                h = layer(h)
                if i in (6, 12): taps[i] = h
            t8 = taps[6].flatten(1, 2).transpose(1, 2)  # (n, T8, C*F)
            t16 = taps[12].flatten(1, 2).transpose(1, 2)
            t16 = t16.repeat_interleave(2, dim=1)
            mel = x[:, 0].unfold(-1, 8, 8).mean(-1).transpose(1, 2)  # (n, T, 128)
        T = trunk.shape[1]
        def fit(a):
            a = a[:, :T]
            return torch.nn.functional.pad(a, (0, 0, 0, T - a.shape[1]))
        out.append(dict(rec=r, begins=start_seconds(starts, model.config.features), trunk=trunk, t8=fit(t8), t16=fit(t16), mel=fit(mel)))
    return out, man.strong
res = {k: [] for k in variants}
for fold in (1, 2, 3, 4):
    t0 = time.time()
    model = ClipModel.from_checkpoint(load_checkpoint(f"{run}/fold_{fold}/model.ckpt"), source="x")
    labels = model.labels; step = model.frame_seconds
    train, test = [], []
    for f in (1, 2, 3, 4):
        o, strong = feats_for(model, f)
        for c in o: c["strong"] = strong.get(c["rec"].clip_id, [])
        (test if f == fold else train).extend(o)
    print("fold", fold, "features %.0f s" % (time.time() - t0), flush=True)
    for name, (keys, epochs, dropout, *variety) in variants.items():
        mixing, rolling = variety or (False, False)
        torch.manual_seed(0)
        X = torch.cat([torch.cat([c[k] for k in keys], -1) for c in train])
        Y = torch.from_numpy(np.stack([frame_targets(c["strong"], labels, begin=b, steps=c["trunk"].shape[1], step=step) for c in train for b in c["begins"]]))
        head = FrameHead(X.shape[-1], len(labels), hidden=64, dropout=dropout).train()
        opt = torch.optim.AdamW(head.parameters(), lr=1e-3, weight_decay=0.01)
        g = torch.Generator().manual_seed(0)
        for ep in range(epochs):
            perm = torch.randperm(len(X), generator=g)
            for s in range(0, len(X), 16):
                i = perm[s:s + 16]
                xb, yb = X[i], Y[i]
                if rolling:
                    shifts = torch.randint(0, xb.shape[1], (len(xb),), generator=g)
                    xb = torch.stack([torch.roll(a, int(k), dims=0) for a, k in zip(xb, shifts)])
                    yb = torch.stack([torch.roll(a, int(k), dims=0) for a, k in zip(yb, shifts)])
                if mixing:
                    other = torch.randperm(len(xb), generator=g)
                    lam = torch.distributions.Beta(0.5, 0.5).sample((len(xb), 1, 1))
                    xb, yb = lam * xb + (1 - lam) * xb[other], torch.maximum(yb, yb[other])
                loss = nn.functional.binary_cross_entropy_with_logits(head(xb), yb)
                opt.zero_grad(); loss.backward(); opt.step()
        head.eval(); ref, sy, dur = {}, {}, {}
        for c in test:
            with torch.inference_mode():
                p = torch.sigmoid(head(torch.cat([c[k] for k in keys], -1))).numpy()
            tr = FrameTrack(window_seconds=model.config.features.window_seconds, step_seconds=step, n_classes=len(labels))
            for b, fr in zip(c["begins"], p): tr.push(float(b), fr)
            tl = tr.finish(c["rec"].duration if getattr(c["rec"], "duration", None) else len(c["trunk"][0]) * step)
            cid = c["rec"].clip_id
            import soundfile as sf
            tl.duration = sf.info(str(c["rec"].path)).duration
            ref[cid] = [(e.label, e.onset, e.offset) for e in c["strong"]]
            dur[cid] = tl.duration
            sy[cid] = [(e.label, e.onset, e.offset) for e in detect_events(tl.begins, tl.probs, labels, window_seconds=tl.window_seconds, hop_seconds=tl.hop_seconds, duration=tl.duration, decoding=Decoding(threshold=0.5, median_seconds=1.0))]
        ev, sg = event_f1(ref, sy, labels)["f1"], segment_f1(ref, sy, labels, durations=dur)["f1"]
        res[name].append((ev, sg))
        print(f"  {name}: dim {X.shape[-1]} event {ev:.3f} segment {sg:.3f}  ({time.time() - t0:.0f} s)", flush=True)
for name, r in res.items():
    r = np.array(r); print(name, "event %.3f ± %.3f segment %.3f" % (r[:, 0].mean(), r[:, 0].std(ddof=1), r[:, 1].mean()))
