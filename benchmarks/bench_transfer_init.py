"""What ``--init`` costs before training: reading the source, checking it, replacing the head (next to one epoch).

    .venv/bin/python benchmarks/bench_transfer_init.py --source experiments/out/transfer/source/model.ckpt \
        [--classes 10] [--repeats 20]

Times, over ``--repeats`` rounds after one warm-up: ``read_source`` (torch.load of the checkpoint), ``plan_init``
(every weight-relevant setting, a network built to compare tensor names and shapes, the label matching) and
``apply_init`` (trunk copied, head rows copied) into a freshly built network for ``--classes`` new classes; and,
for scale, one training step of that network on a batch of ``train.batch_size`` windows (forward, backward, AdamW).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from datetime import date
from pathlib import Path

import torch

from envsound.hardware import describe_machine
from envsound.models.clip import build_network, window_shape
from envsound.transfer.source import apply_init, plan_init, read_source


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, required=True)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    logging.disable(logging.INFO)
    config = read_source(args.source).config
    labels = [f"new{i}" for i in range(args.classes)]
    plan = plan_init(args.source, config, labels)
    network = build_network(config, len(labels))
    optimiser = torch.optim.AdamW(network.parameters())
    batch = torch.randn(config.train.batch_size, *window_shape(config.features))
    targets = torch.randint(0, len(labels), (len(batch),))

    def step() -> None:
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(network(batch), targets).backward()
        optimiser.step()

    result = {
        "read_source_ms": timed(lambda: read_source(args.source), args.repeats),
        "plan_init_ms": timed(lambda: plan_init(args.source, config, labels), args.repeats),
        "apply_init_ms": timed(lambda: apply_init(build_network(config, len(labels)), plan), args.repeats),
        "build_network_ms": timed(lambda: build_network(config, len(labels)), args.repeats),
        "train_step_ms": timed(step, max(3, args.repeats // 4)),
        "source_bytes": args.source.stat().st_size,
        "machine": describe_machine(), "date": date.today().isoformat(),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
