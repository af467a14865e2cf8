"""A training step with freed memory handed back to the kernel (glibc's default) and kept for reuse
(:func:`envsound.hardware.keep_freed_memory`, which every training process now calls).

    .venv/bin/python benchmarks/bench_heap.py [--presets envnet2-bc2018 aclnet2018 piczak2015 default] [--steps 5]

Each preset's network (``default``: the default ``cnn`` and features) at the preset's batch size, on random input of
its window shape, in the precision and memory format ``training_runtime`` resolves on this machine (its probe is cached
per machine, so a second run pays nothing for it). One step: forward, the task's loss, backward and the preset's
optimiser, as Lightning runs them. Every (preset, heap) pair runs in a fresh process (``ENVSOUND_KEEP_HEAP=0`` for
"handed back"): the setting is process-wide. Two warm-up steps, then ``--steps`` timed steps: the median seconds per
step, and per step the minor page faults and kernel (system) CPU seconds, from ``getrusage``; peak resident memory
(``ru_maxrss``) over the whole process.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path


def one(preset: str, steps: int) -> dict:
    """Time ``steps`` training steps of ``preset``'s network in this process."""
    import torch

    from envsound.hardware import keep_freed_memory
    from envsound.models.clip import build_network, window_shape
    from envsound.recipes.config import resolve
    from envsound.training.loop.fit import training_runtime
    from envsound.training.loop.optim import configure_optimization

    config = resolve(preset=None if preset == "default" else preset)
    runtime = training_runtime(config, lambda: build_network(config, 10))  # keeps the heap unless told not to
    torch.manual_seed(0)
    network = build_network(config, 10)
    fmt = torch.channels_last if runtime.channels_last else torch.contiguous_format
    network = network.to(memory_format=fmt).train()
    optimizer = configure_optimization(network.parameters(), config.train, total_steps=100)
    optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
    batch = torch.randn(config.train.batch_size, *window_shape(config.features)) * 0.1
    if batch.dim() == 4:
        batch = batch.contiguous(memory_format=fmt)
    targets = torch.randint(0, 10, (config.train.batch_size,))

    def step() -> None:
        with runtime.autocast():
            loss = torch.nn.functional.cross_entropy(network(batch), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for _ in range(2):
        step()
    seconds = []
    before = resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(steps):
        start = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - start)
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {"preset": preset, "model": config.model.name, "batch": config.train.batch_size,
            "runtime": f"{runtime.precision}{' + channels-last' if runtime.channels_last else ''}",
            "kept": keep_freed_memory(), "s_per_step": statistics.median(seconds),
            "faults_per_step": (after.ru_minflt - before.ru_minflt) / steps,
            "sys_s_per_step": (after.ru_stime - before.ru_stime) / steps,
            "peak_rss_gib": after.ru_maxrss / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["envnet2-bc2018", "aclnet2018", "piczak2015", "default"])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the result here")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # the child process: one preset, prints its row as JSON
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.steps)))
        return

    from envsound.hardware import describe_machine

    rows = []
    for preset in args.presets:
        for keep in ("0", "1"):
            done = subprocess.run([sys.executable, __file__, "--one", preset, "--steps", str(args.steps)],
                                  env={**os.environ, "ENVSOUND_KEEP_HEAP": keep}, check=True, capture_output=True,
                                  text=True)
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            row = rows[-1]
            print(f"{preset:15s} {row['runtime']:25s} {'kept' if row['kept'] else 'handed back':12s} "
                  f"{row['s_per_step']:7.3f} s/step  {row['faults_per_step']:10.0f} faults/step  "
                  f"{row['sys_s_per_step']:5.2f} s sys/step  peak RSS {row['peak_rss_gib']:.2f} GiB", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"date": date.today().isoformat(), "machine": describe_machine(),
                                         "steps": args.steps, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
