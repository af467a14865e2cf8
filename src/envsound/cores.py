"""The CPU cores this process may run on, without importing torch: what the archive engine's decoding workers, the
feature extraction's processes and a LiteRT network's interpreters are counted by (``envsound.hardware`` measures
torch's devices and imports torch; a BirdNET run over an archive never needs it)."""

from __future__ import annotations

import os


def usable_cores() -> int:
    """The cores this process may run on: its affinity where the OS says (taskset, a container's cpuset, a batch
    scheduler's allocation), else every core."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
