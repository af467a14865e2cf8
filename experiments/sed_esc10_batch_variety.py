"""A prototype kept as it ran (2026-11-27): the frame head of ``--preset sed`` retrained on the frozen trunks of a
finished cv with cheap variety in its training batches, paired with the plain head over the same 4 folds. Derived
from ``sed_esc10_head_prototype.py`` (same features, loop, decoding and scoring), variants:

- ``B``: the plain head (40 epochs, dropout 0.3, seed 0), as there;
- ``MIX``: each batch's sequences mixed with another's of the batch (lam ~ Beta(0.5, 0.5) on the inputs; targets
  joined by their maximum: a frame holds both events);
- ``ROLL``: each sequence and its targets rotated in time by a random number of steps;
- ``MIXROLL``: both.

    ENVSOUND_MODELS=DIR .venv/bin/python experiments/sed_esc10_batch_variety.py \
        experiments/out/sed-esc10/frames-skips experiments/out/sed-esc10/mix B,MIX,ROLL,MIXROLL

Results: docs/results.md.
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
from envsound.evaluation.events import FrameTrack, detect_events
from envsound.evaluation.sed_metrics import event_f1, segment_f1
from envsound.transfer.frame_probe import frame_targets
torch.set_num_threads(2)
VARIANTS = {  # name: (inputs of the head, epochs, dropout, mix, roll)
    "B": (["trunk"], 40, 0.3, False, False), "MIX": (["trunk"], 40, 0.3, True, False),
    "ROLL": (["trunk"], 40, 0.3, False, True), "MIXROLL": (["trunk"], 40, 0.3, True, True)}
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
            trunk = net.frame_steps(x)  # (n, T, 1024): the last layer and the two early ones (frame_skips)
        out.append(dict(rec=r, begins=start_seconds(starts, model.config.features), trunk=trunk))
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
    for name, (keys, epochs, dropout, mixing, rolling) in variants.items():
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
            sy[cid] = [(e.label, e.onset, e.offset) for e in detect_events(tl.begins, tl.probs, labels, window_seconds=tl.window_seconds, hop_seconds=tl.hop_seconds, duration=tl.duration, thresholds=0.5, median_seconds=1.0)]
        ev, sg = event_f1(ref, sy, labels)["f1"], segment_f1(ref, sy, labels, durations=dur)["f1"]
        res[name].append((ev, sg))
        print(f"  {name}: dim {X.shape[-1]} event {ev:.3f} segment {sg:.3f}  ({time.time() - t0:.0f} s)", flush=True)
for name, r in res.items():
    r = np.array(r); print(name, "event %.3f ± %.3f segment %.3f" % (r[:, 0].mean(), r[:, 0].std(ddof=1), r[:, 1].mean()))
