"""Model size and speed on this machine: parameters, batch-1 latency, training throughput.

    .venv/bin/python benchmarks/bench_models.py [--threads 2] [--repeats 5] [--json out.json] [--cnn-filters 16 24 32]
    .venv/bin/python benchmarks/bench_models.py --models aclnet envnet2 --repeats 2

Any registered torch model can be timed. Each is built for its own preset (``model_preset``) with its default
``model.options``: the default features for ``cnn`` / ``crnn`` / ``resnet`` / ``dtu``: one 5-s window
``(1, 1, 128, 216)``; ``piczak`` a ``(1, 2, 60, 41)`` segment; the waveform models ``(1, 1, samples)``: 1.28 s at
16 kHz for ``aclnet``, 1.51 s at 22.05 kHz for ``envnet2``).
Latency: eval mode, batch 1 (one window), best of ``--repeats`` timed runs of 20 calls, fp32 (contiguous) and bf16
autocast + channels_last; "clip" columns time the batch of windows evaluation cuts from one 5-s clip at the preset's
``eval_hop_seconds`` (1 window for ``cnn``/``dtu``).
Training: batch ``--batch`` (32) of preset-sized windows (= clips: training draws one window per clip per epoch),
forward + backward + AdamW step on random input, plain fp32 (contiguous) vs bf16 autocast + channels_last; clips/s,
best of ``--repeats`` timed runs of 5 steps (``--train-models``: default the ``cnn`` variants, ``crnn``, ``resnet`` and
the waveform models).
The load average is recorded: other processes on the machine slow everything down.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import torch
from torch import nn

from envsound.config import ModelConfig
from envsound.features.windows import eval_hop_length, window_length, window_starts
from envsound.models.clip import input_shape
from envsound.models.registry import build_model, model_preset
from envsound.recipes.config import resolve

CLIP_SECONDS = 5.0


def preset_shape(name: str) -> tuple[tuple[int, ...], int]:
    """(one window's shape without the batch axis, windows evaluation cuts from a 5-s clip) at ``name``'s preset."""
    feats = resolve(model=name).features
    channels, n_mels, n_frames = input_shape(feats)
    shape = (1, n_frames) if feats.kind == "waveform" else (channels, n_mels, n_frames)
    clip_samples = int(CLIP_SECONDS * feats.sample_rate)
    clip_len = clip_samples if feats.kind == "waveform" else 1 + clip_samples // feats.hop_length
    n_windows = len(window_starts(clip_len, window=window_length(feats), hop=eval_hop_length(feats)))
    return shape, n_windows


def build(name: str, shape: tuple[int, ...], filters: int | None) -> nn.Module:
    channels, n_mels, n_frames = (1, 1, shape[-1]) if len(shape) == 2 else shape
    return build_model(ModelConfig(name=name, filters=filters), n_classes=10, in_channels=channels, n_mels=n_mels,
                       n_frames=n_frames)


def _best_time(fn, *, calls: int, repeats: int) -> float:
    """Best of ``repeats`` timed runs of ``calls`` calls (seconds per call): on a shared machine the minimum is the
    least contaminated by other processes (as ``timeit`` recommends)."""
    fn()
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - start) / calls)
    return min(times)


def latency_ms(model: nn.Module, shape: tuple[int, ...], *, fast: bool, repeats: int, batch: int = 1) -> float:
    """Best time of one forward call on ``(batch, *shape)`` in eval mode, in ms."""
    model = model.eval().to(memory_format=torch.channels_last if fast else torch.contiguous_format)
    x = torch.randn(batch, *shape)
    if fast and x.dim() == 4:  # waveform models follow their weights' format internally
        x = x.contiguous(memory_format=torch.channels_last)

    def call() -> None:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=fast):
            model(x)

    return 1e3 * _best_time(call, calls=20, repeats=repeats)


def train_clips_per_s(model: nn.Module, shape: tuple[int, ...], *, fast: bool, repeats: int,
                      batch: int = 32) -> float:
    model = model.train().to(memory_format=torch.channels_last if fast else torch.contiguous_format)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(batch, *shape)
    if fast and x.dim() == 4:  # waveform models follow their weights' format internally
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=fast):
            loss = nn.functional.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return batch / _best_time(step, calls=5, repeats=repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cnn-filters", type=int, nargs="*", default=[],
                        help="extra cnn widths to time besides the default")
    parser.add_argument("--models", nargs="*", default=["cnn", "crnn", "resnet", "piczak", "dtu", "aclnet", "envnet2"],
                        help="registered torch models to time, each at its preset")
    parser.add_argument("--filters", type=int, default=None,
                        help="model.filters for every model in --models (default: each preset's)")
    parser.add_argument("--train-models", nargs="*", default=None,
                        help="models whose training throughput is timed (default: cnn variants, crnn, resnet and the "
                             "waveform models)")
    parser.add_argument("--batch", type=int, default=32, help="training batch size")
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    results: dict = {"machine": platform.processor() or platform.machine(), "threads": args.threads,
                     "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
                     "load_avg_1min_at_start": os.getloadavg()[0], "models": {}}
    print(f"threads {args.threads}, torch {torch.__version__}, load average {os.getloadavg()[0]:.2f}")
    variants = []
    for name in args.models:
        preset_filters = model_preset(name).get("model", {}).get("filters")
        variants.append((name, args.filters if args.filters is not None else preset_filters))
    variants += [("cnn", f) for f in args.cnn_filters]
    print(f"{'model':<16}{'input':>16}{'params':>12}{'fp32 ms':>10}{'bf16+cl ms':>12}{'clip fp32':>12}"
          f"{'clip bf16':>12}")
    for name, filters in variants:
        shape, per_clip = preset_shape(name)
        model = build(name, shape, filters)
        label = name if filters is None else f"{name}(f={filters})"
        n_params = sum(p.numel() for p in model.parameters())
        fp32 = latency_ms(model, shape, fast=False, repeats=args.repeats)
        bf16 = latency_ms(model, shape, fast=True, repeats=args.repeats)
        clip32, clip16 = fp32, bf16
        if per_clip > 1:  # a clip's windows go through as one batch at evaluation / prediction time
            clip32 = latency_ms(model, shape, fast=False, repeats=args.repeats, batch=per_clip)
            clip16 = latency_ms(model, shape, fast=True, repeats=args.repeats, batch=per_clip)
        results["models"][label] = {"params": n_params, "input": list(shape), "windows_per_5s_clip": per_clip,
                                    "latency_fp32_ms": round(fp32, 3), "latency_bf16_cl_ms": round(bf16, 3),
                                    "clip_fp32_ms": round(clip32, 3), "clip_bf16_cl_ms": round(clip16, 3)}
        print(f"{label:<16}{str(shape):>16}{n_params:>12,}{fp32:>10.2f}{bf16:>12.2f}{clip32:>12.2f}{clip16:>12.2f}",
              flush=True)
    if not args.skip_train:
        timed = {"cnn", "crnn", "resnet", "aclnet", "envnet2"}
        chosen = [v for v in variants if (v[0] in args.train_models if args.train_models is not None
                                          else v[0] in timed)]
        for name, filters in chosen:
            label = name if filters is None else f"{name}(f={filters})"
            shape, _ = preset_shape(name)
            speeds = {}
            for fast in (False, True):
                torch.manual_seed(0)
                model = build(name, shape, filters)
                speeds[fast] = train_clips_per_s(model, shape, fast=fast, repeats=args.repeats, batch=args.batch)
            results["models"][label].update(train_fp32_clips_s=round(speeds[False], 1),
                                            train_bf16_cl_clips_s=round(speeds[True], 1))
            print(f"train {label}: fp32 {speeds[False]:.1f} clips/s, bf16+channels_last {speeds[True]:.1f} "
                  f"clips/s, speed-up x{speeds[True] / speeds[False]:.2f}", flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
