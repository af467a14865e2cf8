"""Autoencoder pre-training throughput (training clips/s) for each decoder, on this machine.

    .venv/bin/python benchmarks/bench_pretrain.py [--threads 2] [--steps 5] [--repeats 3] [--json out.json]

One training step = the forward pass, the reconstruction loss (MSE against the per-mel-bin standardised input), the
backward pass and the optimiser step of ``AutoencoderModule``, on random ``(batch, 1, n_mels, window_frames)`` windows
(one window per clip per epoch in ``envsound pretrain``, so windows/s = clips/s of an epoch), with the precision and
memory format ``training_runtime`` resolves the config to on this machine (``auto`` by default: see
envsound.hardware), and no data loading or validation.
Cases: the ``dtu2018`` preset (28 x 36 input, 64 filters, batch 32) with ``unpool`` and ``upsample``, and the default
``cnn`` (128 x 216, batch 32) with ``upsample`` (its trunk average-pools: no ``unpool``). Best of ``--repeats`` timed
runs of ``--steps`` steps after one warm-up step; the load average is recorded (other processes slow everything).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import torch

from envsound.config import preset_names
from envsound.models.autoencoder import build_autoencoder
from envsound.recipes.config import resolve
from envsound.training.loop.fit import training_runtime
from envsound.training.loop.optim import configure_optimization
from envsound.training.pretrain.module import AutoencoderModule

CASES = [("dtu2018", "unpool"), ("dtu2018", "upsample"), ("cnn", "upsample")]


def config_of(name: str):
    return resolve(preset=name) if name in preset_names() else resolve(model=name)


def throughput(name: str, decoder: str, *, steps: int, repeats: int) -> dict:
    config = config_of(name)
    runtime = training_runtime(config, lambda: build_autoencoder(config, decoder=decoder))
    module = AutoencoderModule(build_autoencoder(config, decoder=decoder), config.train, features=config.features,
                               model=config.model, channels_last=runtime.channels_last)
    feats, train = config.features, config.train
    x = torch.randn(train.batch_size, 2 if feats.deltas else 1, feats.n_mels, feats.window_frames) * 10 - 40
    optimizer = configure_optimization(module.model.parameters(), train, total_steps=10_000)
    optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
    bf16 = runtime.precision == "bf16-mixed"

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = module.reconstruction_loss(x)
        loss.backward()
        optimizer.step()

    module.train()
    step()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        best = min(best, time.perf_counter() - start)
    return {"config": name, "decoder": decoder, "input": list(x.shape[1:]), "batch": train.batch_size,
            "precision": runtime.precision, "channels_last": runtime.channels_last,
            "clips_per_second": round(train.batch_size * steps / best, 1),
            "seconds_per_step": round(best / steps, 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    results = [throughput(name, decoder, steps=args.steps, repeats=args.repeats) for name, decoder in CASES]
    info = {"machine": platform.processor() or platform.machine(), "threads": args.threads,
            "torch": torch.__version__, "load_average": os.getloadavg(), "results": results}
    print("| config | decoder | input | batch | clips/s | s/step |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['config']} | {r['decoder']} | {' x '.join(map(str, r['input']))} | {r['batch']} | "
              f"{r['clips_per_second']} | {r['seconds_per_step']} |")
    print(f"threads {args.threads}, torch {torch.__version__}, load average {info['load_average']}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(info, handle, indent=2)


if __name__ == "__main__":
    main()
