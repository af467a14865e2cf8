"""What `precision: auto` (envsound.hardware) chooses on this machine, and what the choice costs against the others.

    .venv/bin/python benchmarks/bench_runtime.py [--skip-train] [--json OUT.json]

Three measurements, default `cnn` on default features (one 5-s window is (1, 128, 216)):
1. One training step (forward + backward + AdamW, batch 32, random input) in fp32 and in bf16 autocast, each in
   channels-last and contiguous memory (3 rounds in turn, the best of each), and in the configuration `auto`
   resolves to. `auto` must be within 10 % of
   the best of fp32 and bf16.
2. A whole `train_model` on a fixed small set (100 synthetic 3-s clips, `--train-epochs` 10, no offline copies) with
   `runtime.precision` auto, 32 and bf16-mixed: wall seconds, features already in the store and the probe's answer
   already kept (both paid once per machine); the probe's one-time cost is given apart.
3. Model time per 5-s clip at batch 1 through the product's own path (`Predictor._score`: log-mel frontend, windows,
   `ClipModel.window_probs` on the runtime `auto` chose) against the bare network (no frontend) in each configuration;
   the ratio takes the best of 3 alternating rounds of the product and the fastest bare configuration.

On a GPU machine the same runs on CUDA (then fp16 replaces bf16 where the GPU lacks bf16). Timings are medians of
repeated calls after warm-up; the machine is named in the output.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch

from envsound.hardware import describe_machine, resolve_accelerator
from envsound.models.clip import build_network, window_shape
from envsound.recipes.config import resolve


def timed(fn, *, device: str, seconds: float = 2.0, min_calls: int = 5) -> float:
    """Median seconds of ``fn()`` after two warm-up calls."""
    for _ in range(2):
        fn()
    times = []
    deadline = time.perf_counter() + seconds
    while len(times) < min_calls or time.perf_counter() < deadline:
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        if len(times) >= 200:
            break
    return statistics.median(times)


def candidates(device: str) -> list[tuple[str, bool]]:
    low = "bf16-mixed" if device == "cpu" or torch.cuda.is_bf16_supported() else "16-mixed"
    return [(p, cl) for p in ("32", low) for cl in (True, False)]


def network_step(config, device: str, precision: str, channels_last: bool, *, batch: int, train: bool):
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = build_network(config, 10).to(device, memory_format=fmt).train(train)
    x = torch.randn(batch, *window_shape(config.features), device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(precision)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> None:
        if not train:
            with torch.inference_mode(), torch.autocast(device, dtype=dtype, enabled=dtype is not None):
                model(x)
            return
        with torch.autocast(device, dtype=dtype, enabled=dtype is not None):
            loss = model(x).float().logsumexp(1).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def label(precision: str, channels_last: bool) -> str:
    return f"{precision}{' + channels-last' if channels_last else ' contiguous'}"


def training_steps(config, device: str, batch: int) -> dict:
    from envsound.training.loop.fit import training_runtime

    runtime = training_runtime(config, lambda: build_network(config, 10))
    steps = {c: network_step(config, device, *c, batch=batch, train=True) for c in candidates(device)}
    speeds = {label(*c): 0.0 for c in steps}
    for _ in range(3):  # rounds in turn, best of each: a GPU's clocks ramp up during whatever runs first
        for c, step in steps.items():
            speeds[label(*c)] = max(speeds[label(*c)], batch / timed(step, device=device, seconds=1.0))
    chosen = label(runtime.precision, runtime.channels_last)
    best = {p: max(v for k, v in speeds.items() if k.startswith(p)) for p in {c[0] for c in candidates(device)}}
    return {"clips_per_second": {k: round(v, 1) for k, v in speeds.items()}, "auto": chosen,
            "auto_reason": runtime.reason, "auto_vs_best": round(speeds[chosen] / max(best.values()), 3)}


def whole_train(config_overrides: list[str], work: Path) -> dict:
    """Seconds of `train_model` per precision setting, on a warm feature store and with the probe's answer already
    kept (both are paid once per machine, not per run); the probe's own one-time cost is reported apart."""
    from envsound.data.synthetic import generate_synthetic, prepare_synthetic
    from envsound.features.cache import FeatureCache
    from envsound.features.extract import extract_features
    from envsound.recipes.context import RunContext
    from envsound.training.loop.fit import training_runtime
    from envsound.recipes.train import train_model

    manifest = prepare_synthetic(generate_synthetic(work / "data", clips_per_class_per_fold=2, seed=7))
    cache = FeatureCache(work / "cache")
    base = resolve(overrides=config_overrides)
    extract_features(manifest.records, base.features, cache=cache, progress=False)
    start = time.perf_counter()
    training_runtime(base, lambda: build_network(base, len(manifest.labels)))
    seconds = {"probe_once": round(time.perf_counter() - start, 1)}
    for precision in ("auto", "32", "bf16-mixed"):
        config = resolve(overrides=[*config_overrides, f"runtime.precision={precision}"])
        start = time.perf_counter()
        result = train_model(manifest, config, out_dir=work / f"run-{precision}",
                             context=RunContext(cache=cache, progress=False))
        seconds[precision] = round(time.perf_counter() - start, 1)
        if precision == "auto":
            from envsound.models.checkpoint import load_checkpoint

            seconds["auto_resolved_to"] = load_checkpoint(result.checkpoint).meta["runtime"]["precision"]
    return seconds


def prediction(config, device: str, work: Path) -> dict:
    from envsound.inference.predictor import Predictor
    from envsound.models.checkpoint import Checkpoint, save_checkpoint

    path = save_checkpoint(work / "predict.ckpt", Checkpoint(config=config, labels=[str(i) for i in range(10)],
                                                             state_dict=build_network(config, 10).state_dict()))
    predictor = Predictor.from_checkpoint(path, device=device)
    samples = (0.1 * np.random.default_rng(0).standard_normal(config.features.window_samples)).astype(np.float32)
    steps = {c: network_step(config, device, *c, batch=1, train=False) for c in candidates(device)}
    bare = {label(*c): timed(step, device=device) for c, step in steps.items()}
    fastest_step = steps[min(steps, key=lambda c: bare[label(*c)])]
    # the product and the fastest bare configuration alternate, so drift of the machine hits both alike
    rounds = [(timed(lambda: predictor._score(samples, final=True, limit=None), device=device),
               timed(fastest_step, device=device)) for _ in range(3)]
    product, fastest = min(r[0] for r in rounds), min(r[1] for r in rounds)
    return {"product_ms": round(product * 1e3, 2), "runtime": predictor.model.runtime.describe(),
            "bare_network_ms": {k: round(v * 1e3, 2) for k, v in bare.items()},
            "product_vs_fastest_bare": round(product / fastest, 2)}


def main() -> int:
    os.environ["ENVSOUND_PROBE_CACHE"] = str(Path(tempfile.mkdtemp()) / "probes.json")  # probes measured afresh
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--skip-train", action="store_true", help="skip the whole-train measurement")
    parser.add_argument("--train-epochs", type=int, default=10, help="epochs of the whole-train measurement")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    device = resolve_accelerator(args.device)
    config = resolve()
    machine = {**describe_machine(), "threads": torch.get_num_threads(), "device": device,
               "gpu": torch.cuda.get_device_name() if device == "cuda" else None, "date": date.today().isoformat(),
               "python": platform.python_version()}
    print(json.dumps(machine), flush=True)
    results = {"machine": machine}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        results["training_step"] = training_steps(config, device, args.batch)
        print(json.dumps({"training_step": results["training_step"]}), flush=True)
        results["prediction"] = prediction(config, device, work)
        print(json.dumps({"prediction": results["prediction"]}), flush=True)
        if not args.skip_train:
            overrides = ["features.window_seconds=2.0", f"train.max_epochs={args.train_epochs}", "augment.copies=0",
                         f"runtime.accelerator={device}"]
            results["whole_train_seconds"] = whole_train(overrides, work)
            print(json.dumps({"whole_train_seconds": results["whole_train_seconds"]}), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
