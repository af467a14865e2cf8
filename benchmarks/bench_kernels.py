"""The three CPU kernels behind the faster training of the big presets, each against what it replaced.

    .venv/bin/python benchmarks/bench_kernels.py [--repeats 5] [--json out.json]

- ``piczak``'s first layer (80 filters 57x6 over a 2 x 60 x 41 segment, batch 1,000): forward + backward (input and
  weight gradients) as ``nn.Conv2d`` and as :class:`~envsound.models.blocks.BandConv2d` (a Conv1d per mel offset),
  in fp32 and under bf16 autocast (the latter only where oneDNN runs bf16 natively).
- One SGD step (Nesterov momentum 0.9, weight decay) over ``piczak``'s 26.5 M parameters: the per-tensor loop torch
  uses on the CPU by default, and ``fused=True``, which :mod:`envsound.training.loop.optim` now asks for.
- A training window read from a stored clip (a 2 x 60 x 216 log-mel ``.npy``): ``np.load(mmap_mode="r")``, which parses
  the header on every read, and :func:`~envsound.features.cache.open_stored`, which parses it once.

Each figure is the best of ``--repeats`` timed runs (milliseconds or microseconds per call) after a warm-up: on a
shared machine the minimum is the least disturbed. The CPU model, bf16 support and torch threads are recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from datetime import date
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_models import _best_time as best_seconds  # noqa: E402  (best of repeats, seconds per call)


def conv_rows(repeats: int, bf16: bool) -> list[dict]:
    from envsound.models.blocks import BandConv2d

    torch.manual_seed(0)
    band = BandConv2d(2, 80, (57, 6))
    plain = torch.nn.Conv2d(2, 80, (57, 6))
    plain.load_state_dict(band.state_dict())
    x = torch.randn(1000, 2, 60, 41, requires_grad=True)
    grad = torch.randn(1000, 80, 4, 36)
    rows = []
    for precision in ["fp32", "bf16"] if bf16 else ["fp32"]:
        for name, layer in (("Conv2d", plain), ("BandConv2d", band)):
            def step(layer=layer, precision=precision):
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                    out = layer(x)
                torch.autograd.grad(out, [x, layer.weight], grad.to(out.dtype))

            rows.append({"kernel": f"piczak conv1 {name}, forward + backward, batch 1,000", "precision": precision,
                         "ms": round(1000 * best_seconds(step, calls=3, repeats=repeats), 1)})
    return rows


def sgd_rows(repeats: int) -> list[dict]:
    from envsound.models.piczak import Piczak

    params = list(Piczak(n_classes=10, in_channels=2, n_mels=60, n_frames=41).parameters())
    for p in params:
        p.grad = torch.randn_like(p)
    rows = []
    for fused in (False, True):
        opt = torch.optim.SGD(params, lr=0.002, momentum=0.9, nesterov=True, weight_decay=1e-3, fused=fused)
        rows.append({"kernel": f"SGD step, piczak's {sum(p.numel() for p in params):,} parameters",
                     "precision": "fused" if fused else "per tensor (default)",
                     "ms": round(1000 * best_seconds(opt.step, calls=5, repeats=repeats), 1)})
    return rows


def read_rows(repeats: int) -> list[dict]:
    from envsound.features.cache import open_stored

    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i in range(500):
            paths.append(Path(tmp) / f"{i}.npy")
            np.save(paths[-1], np.random.default_rng(i).standard_normal((2, 60, 216)).astype(np.float32))

        def load_every(read):
            return lambda: [np.ascontiguousarray(read(p)[..., 20:61]) for p in paths]

        rows = []
        for name, read in (("np.load(mmap_mode='r')", lambda p: np.load(p, mmap_mode="r")),
                           ("open_stored (header parsed once)", open_stored)):
            seconds = best_seconds(load_every(read), calls=1, repeats=repeats) / len(paths)
            rows.append({"kernel": "a 41-frame window from a stored 2 x 60 x 216 clip", "precision": name,
                         "us": round(1e6 * seconds, 1)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()

    from envsound.hardware import cpu_bf16_supported, cpu_model

    bf16 = cpu_bf16_supported()
    rows = conv_rows(args.repeats, bf16) + sgd_rows(args.repeats) + read_rows(args.repeats)
    out = {"date": date.today().isoformat(), "cpu": cpu_model(), "cores": os.cpu_count(), "bf16": bf16,
           "torch_threads": torch.get_num_threads(), "rows": rows}
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
