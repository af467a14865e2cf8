"""Model size and speed on this machine: parameters, batch-1 latency, training throughput.

    .venv/bin/python benchmarks/bench_models.py [--threads 2] [--repeats 5] [--json out.json] [--cnn-filters 16 24 32]

Latency: eval mode, batch 1, input (1, 1, 128, 216) (one 5-s clip at the default features; piczak gets its own
(1, 2, 60, 41) segment, and per 5-s clip = a batch of 9 segments of 41 frames at half-segment hop), best of
``--repeats`` timed runs of 20 calls, fp32 (contiguous) and bf16 autocast + channels_last.
Training: ``cnn`` at batch 32, forward + backward + AdamW step on random (32, 1, 128, 216) input, plain fp32
(contiguous) vs bf16 autocast + channels_last; clips/s, best of ``--repeats`` timed runs of 5 steps.
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
from envsound.models.registry import build_model

CLIP = (1, 128, 216)
PICZAK = (2, 60, 41)
PICZAK_SEGMENTS_PER_CLIP = 1 + (216 - 41) // 20  # 41-frame segments at a 20-frame hop over a 5-s clip


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
    if fast:
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
    if fast:
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
    parser.add_argument("--models", nargs="*", default=["cnn", "piczak", "dtu"], help="torch models to time")
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    results: dict = {"machine": platform.processor() or platform.machine(), "threads": args.threads,
                     "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"), "load_avg_1min_at_start": os.getloadavg()[0], "models": {}}
    print(f"threads {args.threads}, torch {torch.__version__}, load average {os.getloadavg()[0]:.2f}")
    variants = [(m, None) for m in args.models] + [("cnn", f) for f in args.cnn_filters]
    print(f"{'model':<12}{'params':>12}{'fp32 ms':>10}{'bf16+cl ms':>12}{'clip fp32':>12}{'clip bf16':>12}")
    for name, filters in variants:
        shape = PICZAK if name == "piczak" else CLIP
        model = build_model(ModelConfig(name=name, filters=filters), n_classes=10, in_channels=shape[0],
                            n_mels=shape[1], n_frames=shape[2])
        label = name if filters is None else f"{name}(f={filters})"
        n_params = sum(p.numel() for p in model.parameters())
        fp32 = latency_ms(model, shape, fast=False, repeats=args.repeats)
        bf16 = latency_ms(model, shape, fast=True, repeats=args.repeats)
        clip32, clip16 = fp32, bf16
        if name == "piczak":  # a clip's 9 segments go through as one batch at prediction time
            clip32 = latency_ms(model, shape, fast=False, repeats=args.repeats, batch=PICZAK_SEGMENTS_PER_CLIP)
            clip16 = latency_ms(model, shape, fast=True, repeats=args.repeats, batch=PICZAK_SEGMENTS_PER_CLIP)
        results["models"][label] = {"params": n_params, "latency_fp32_ms": round(fp32, 3),
                                    "latency_bf16_cl_ms": round(bf16, 3), "clip_fp32_ms": round(clip32, 3),
                                    "clip_bf16_cl_ms": round(clip16, 3)}
        print(f"{label:<12}{n_params:>12,}{fp32:>10.2f}{bf16:>12.2f}{clip32:>12.2f}{clip16:>12.2f}", flush=True)
    if not args.skip_train:
        for name, filters in [v for v in variants if v[0] == "cnn"]:
            label = name if filters is None else f"{name}(f={filters})"
            speeds = {}
            for fast in (False, True):
                torch.manual_seed(0)
                model = build_model(ModelConfig(name=name, filters=filters), n_classes=10, in_channels=1,
                                    n_mels=CLIP[1], n_frames=CLIP[2])
                speeds[fast] = train_clips_per_s(model, CLIP, fast=fast, repeats=args.repeats)
            results["models"][label].update(train_fp32_clips_s=round(speeds[False], 1),
                                            train_bf16_cl_clips_s=round(speeds[True], 1))
            print(f"train {label}: fp32 {speeds[False]:.1f} clips/s, bf16+channels_last {speeds[True]:.1f} "
                  f"clips/s, speed-up x{speeds[True] / speeds[False]:.2f}", flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
