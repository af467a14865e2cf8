"""Clips spread over processes, one torch thread each: how features and augmented copies are computed.

The log-mel of one clip is a chain of small FFTs and element-wise ops: two torch threads in one process ran it
*slower* than one (docs/benchmarks.md), so parallelism comes from processes, one per core, each single-threaded.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Iterator

from envsound.config import FeatureConfig
from envsound.features.cache import cache_settings
from envsound.cores import usable_cores

MIN_PARALLEL_JOBS = 32  # fewer jobs run in this process: starting workers costs about a second
_FRONTENDS: dict[str, object] = {}  # one log-mel frontend per feature setting, per process


def worker_count(requested: int, jobs: int, *, min_jobs: int = MIN_PARALLEL_JOBS) -> int:
    """Processes for ``jobs`` jobs: ``requested`` (0 = one per core), at most one per job; 0 when fewer than
    ``min_jobs`` jobs, too few to pay for starting workers (they then run in this process)."""
    if jobs < min_jobs:
        return 0
    return min(requested or usable_cores(), jobs)


@contextmanager
def worker_pool(workers: int) -> Iterator[ProcessPoolExecutor | None]:
    """A pool of ``workers`` single-threaded processes, or ``None`` (run in this process, on one torch thread) when
    ``workers <= 1``."""
    if workers <= 1:
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield None
        finally:
            torch.set_num_threads(threads)
        return
    # fork where the OS has it: measured 4 s to start 2 workers and make 4 copies, against 14 s with spawn (each
    # spawned worker imports torch, scipy and audiomentations again). Children run torch with one thread
    # (_init_worker), as DataLoader workers do, so the parent's thread pool is never used after the fork.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    executor = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(method),
                                   initializer=_init_worker)
    try:
        yield executor
    except BaseException:  # a bad file with on_error="raise", or an interrupt: drop the jobs not yet started
        executor.shutdown(wait=True, cancel_futures=True)
        raise
    executor.shutdown(wait=True)


def chunk_size(jobs: int, workers: int) -> int:
    """Jobs handed to a worker at a time: about eight rounds per worker, so none idles at the end."""
    return max(1, jobs // (8 * max(1, workers)))


def frontend_for(cfg: FeatureConfig):
    """This process's :class:`~envsound.features.mel.LogMel` for ``cfg`` (built once), or ``None`` for waveforms."""
    if cfg.kind != "logmel":
        return None
    from envsound.features.mel import logmel_frontend

    key = repr(sorted(cache_settings(cfg).items()))
    if key not in _FRONTENDS:
        _FRONTENDS[key] = logmel_frontend(cfg)
    return _FRONTENDS[key]


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)  # one process per core already
