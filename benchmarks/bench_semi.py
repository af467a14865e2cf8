"""Cost of a semi-supervised step against a supervised one, per method, on this machine.

    .venv/bin/python benchmarks/bench_semi.py [--models cnn wrn28] [--mu 2] [--labelled 24] [--steps 5] [--repeats 2]
        [--precision auto|32|bf16]

One optimizer step (forward, backward, AdamW) of ``SemiModule`` / ``ClassifierModule`` on random dB-like log-mel
windows at the model's features, its own preset included as ``envsound train --model`` takes it (one 5-s window,
128 x 216 for ``cnn`` and ``wrn28``): ``--labelled`` labelled windows and ``mu x 32`` unlabelled ones
(``train.batch_size`` 32), each method with its defaults. Precision ``auto`` is bf16 autocast + channels-last where
oneDNN has bf16 (what ``runtime.precision=auto`` picks on such CPUs), else fp32.
Freed memory is kept for reuse, as in a training process (``ENVSOUND_KEEP_HEAP=0``: handed back, glibc's default).
Reports the best of ``--repeats`` timed runs of ``--steps`` steps after one warm-up step, and each method's cost in
supervised steps.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import time

import torch

from envsound.hardware import keep_freed_memory
from envsound.models.clip import window_shape
from envsound.recipes.config import resolve
from envsound.training.loop.module import ClassifierModule
from envsound.training.semi import SemiModule

METHODS = ("supervised", "fixmatch", "mixmatch", "remixmatch", "mean_teacher")


def step_seconds(model: str, method: str, *, mu: int, labelled: int, steps: int, repeats: int, bf16: bool) -> float:
    overrides = [f"semi.mu={mu}", "train.batch_size=32"]
    if method != "supervised":
        overrides.append(f"semi.method={method}")
    config = resolve(model=model, overrides=overrides)
    torch.manual_seed(0)
    cls = ClassifierModule if method == "supervised" else SemiModule
    module = cls.from_config(config, 10, channels_last=bf16)
    module.train()
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-3)
    shape = window_shape(config.features)
    x_l = torch.randn(labelled, *shape) * 10 - 40
    y_l = torch.eye(10)[torch.arange(labelled) % 10]
    batch = (x_l, y_l)
    if method != "supervised":
        batch = {"labelled": batch, "unlabelled": (torch.randn(mu * 32, *shape) * 10 - 40, None)}
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

    def one_step() -> None:
        optimizer.zero_grad()
        with autocast:
            loss = module.training_step(batch, 0)
        loss.backward()
        optimizer.step()

    one_step()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            one_step()
        best = min(best, (time.perf_counter() - start) / steps)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["cnn"])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--mu", type=int, default=2)
    parser.add_argument("--labelled", type=int, default=24, help="labelled windows a step (ESC-10 at 10 %%: 24)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--precision", choices=["auto", "32", "bf16"], default="auto")
    args = parser.parse_args()
    import warnings

    warnings.filterwarnings("ignore", message=".*self.log.*")
    torch.set_num_threads(os.cpu_count() or 1)
    kept = keep_freed_memory()  # as a training process does (ENVSOUND_KEEP_HEAP=0: glibc's default)
    bf16 = (args.precision == "bf16" or
            (args.precision == "auto" and torch.ops.mkldnn._is_mkldnn_bf16_supported()))
    print(f"{platform.processor() or platform.machine()}, threads {torch.get_num_threads()}, "
          f"torch {torch.__version__}, "
          f"oneDNN bf16 {torch.ops.mkldnn._is_mkldnn_bf16_supported()}, precision {'bf16+cl' if bf16 else 'fp32'}, "
          f"mu {args.mu}, {args.labelled} labelled + {args.mu * 32} unlabelled windows, "
          f"freed memory {'kept' if kept else 'handed back'}, load average {os.getloadavg()[0]:.2f}")
    print(f"{'model':8} {'method':14} {'s/step':>8} {'x supervised':>13}")
    for model in args.models:
        base = None
        for method in args.methods:
            seconds = step_seconds(model, method, mu=args.mu, labelled=args.labelled, steps=args.steps,
                                   repeats=args.repeats, bf16=bf16)
            base = seconds if method == "supervised" else base
            ratio = f"{seconds / base:13.1f}" if base else f"{'':13}"
            print(f"{model:8} {method:14} {seconds:8.3f} {ratio}")


if __name__ == "__main__":
    main()
