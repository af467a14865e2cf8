"""Where and how a network runs on the machine at hand: accelerator, device count, precision, memory format.

The ``runtime`` section's ``accelerator``, ``devices``, ``precision`` and ``channels_last`` default to ``auto``,
resolved here into a :class:`Runtime`:

- accelerator ``auto``: CUDA when present, then Apple's MPS, else the CPU.
- precision ``auto``: on a CPU, ``bf16-mixed`` only where oneDNN supports bf16 **and** a short probe finds it faster
  than fp32 for the model at hand, else ``32``. Where oneDNN reports no bf16 it is never probed: emulated bf16 ran 9x
  slower than fp32 on an AVX2-only CPU (docs/benchmarks.md), so even a probe of it costs seconds for nothing. On CUDA
  the probe compares ``bf16-mixed`` (``16-mixed`` where the GPU lacks bf16) with fp32: a small network such as the
  default ``cnn`` trained 13 % faster in fp32 than in bf16 on an H100. On MPS ``32``.
- channels-last ``auto``: for 4-D (log-mel) input, and for waveform models with 2-D layers
  (:func:`has_image_layers`), the probe times both memory formats (on MPS: channels-last, unprobed).

A training process keeps the memory it frees for its next step (:func:`keep_freed_memory`, glibc only).

A probe times a few steps of the real network (training steps of :data:`PROBE_TRAIN_BATCH` examples, or one-window
inference batches) per candidate, within :data:`PROBE_SECONDS`; its answer is cached per CPU model, torch version,
thread count, model settings and input shape in :func:`probe_cache_path`, so it is paid once per machine; the
processes of a multi-process run take their machine's local rank 0's answer.
``ENVSOUND_NO_PROBE=1`` skips probing and takes the first candidate (CPU: fp32 and channels-last; CUDA: bf16-mixed or
16-mixed, channels-last).
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import os
import platform
import statistics
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

from envsound.config import ACCELERATORS, PRECISIONS, SWITCHES
from envsound.cores import usable_cores  # noqa: F401 (its home before it moved to the torch-free envsound.cores)
from envsound.errors import ConfigError
from envsound.fileio import launched_local_rank, write_json_atomic

log = logging.getLogger(__name__)

PROBE_VERSION = 4  # bump when what a probe times changes, to drop cached answers
# A probe's time on first use, building and warming up its candidates included (it stops timing once this is spent,
# after one timed step of each). Timing 0.4 s a candidate after two warm-up steps at the run's batch took 48.7 s of a
# 63-s first `train` from efficientat-mn04 on a 2-core EPYC. With PROBE_TRAIN_BATCH and a budget of 4 s, on 2 pinned
# cores of the lent H100 host's Xeon: 4.1-5.8 s (cnn training, the first torch work of the process), 2.0-2.4 s (cnn
# inference), 4.0-4.2 s (mn04 training and inference), each picking what a probe at batch 32 (training) or of 8 s
# (inference) picked (2026-11-27); 3 s leaves room for slower CPUs (not remeasured at 3 s).
PROBE_SECONDS = 3.0
# Training steps are timed on this many examples (fewer if the run's batch is smaller): what is compared is how
# fast each precision and memory format runs the same network, and a log-mel window already makes every
# convolution a large matrix product; 2, not 1, as batch norm needs two values a channel in training mode.
PROBE_TRAIN_BATCH = 2
# Measured on 2-core AMD EPYCs with AVX2 and no avx512_bf16 (docs/benchmarks.md): emulated bf16 against fp32, a
# default training step (9x in one session, 12x in another) and a whole small `train` (15x). Quoted by the warning
# for an explicit bf16 on such a CPU.
EMULATED_BF16_SLOWDOWN = "9-15x"


@dataclass(frozen=True)
class Runtime:
    """The resolved choice: where a network runs, on how many devices, in which precision and memory format."""

    accelerator: str  # cpu | cuda | mps
    devices: int
    precision: str  # 32 | bf16-mixed | 16-mixed (Lightning's names)
    channels_last: bool
    reason: str  # why, in a few words (logged and saved)

    @property
    def device(self) -> torch.device:
        return torch.device(self.accelerator)

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(self.precision)

    def autocast(self):
        """A context that runs the block in this precision (a no-op for ``32``)."""
        dtype = self.autocast_dtype
        return torch.autocast(self.accelerator, dtype=dtype, enabled=dtype is not None)

    def describe(self) -> str:
        devices = f"{self.devices} device{'s' if self.devices > 1 else ''}"
        layout = "channels-last" if self.channels_last else "contiguous"
        return f"{self.accelerator} ({devices}), precision {self.precision}, {layout}: {self.reason}"

    def to_dict(self) -> dict:
        return asdict(self)


def cpu_bf16_supported() -> bool:
    """Whether oneDNN runs bf16 natively on this CPU (avx512_bf16 or AMX); emulated bf16 is many times slower."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or what :func:`platform.processor` says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """The bf16-related CPU flags present (``avx512_bf16``, ``amx_bf16``): what benchmark figures must name."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    words = set(text.split())
    return [flag for flag in ("avx512_bf16", "amx_bf16") if flag in words]


def describe_machine() -> dict:
    """What every benchmark figure must name: CPU model, its bf16 flags, oneDNN's bf16 support, cores, torch."""
    return {"cpu": cpu_model(), "bf16_flags": cpu_flags(), "onednn_bf16": cpu_bf16_supported(),
            "cores": os.cpu_count(), "torch": str(torch.__version__)}


# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_KEPT_HEAP = False


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for the process's next allocations instead of handing it back to the
    kernel, for good in this process. Called by every training process; returns whether it is in force (glibc only;
    a no-op elsewhere, or with ``ENVSOUND_KEEP_HEAP`` set to ``0``, ``false``, ``no`` or ``off``). Idempotent.

    glibc serves every block over 32 MB with a fresh ``mmap`` and unmaps it on free, so each training step of a
    network with large activations (EnvNet-v2's first layers: 136 MB a batch, its fc11 weight in bf16: 168 MB) faulted
    its pages in anew: 688,000 page faults and 2.6 s of kernel CPU time a step on a 2-core EPYC, whose steps then took
    1.78x as long (docs/benchmarks.md, "Freed memory kept"). Served from the heap and never trimmed, the same blocks
    are reused once the heap has grown to a step's needs. The cost: the process holds its peak memory (a third more
    for EnvNet-v2, fragmentation included) until :func:`release_freed_memory` (which ``fit_network`` calls at the
    end of a run) or its exit. An allocator preloaded in glibc's place (jemalloc, tcmalloc) ignores it.
    """
    global _KEPT_HEAP
    if _KEPT_HEAP or os.environ.get("ENVSOUND_KEEP_HEAP", "").strip().lower() in ("0", "false", "no", "off"):
        return _KEPT_HEAP
    if not _glibc():
        return False
    libc = ctypes.CDLL(None)
    if libc.mallopt(_M_MMAP_MAX, 0):
        _KEPT_HEAP = True  # from here on large blocks come from the heap; the trim threshold keeps them there
        libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
        log.debug("malloc: freed memory is kept for reuse (ENVSOUND_KEEP_HEAP=0 to hand it back to the kernel)")
    return _KEPT_HEAP


def release_freed_memory() -> None:
    """Hand the heap's free pages back to the kernel once (glibc's ``malloc_trim``): after a runtime probe, whose
    networks (four candidates, fp32 among them) needed more memory than the training that follows (a run held the
    probe's 10.9 GB of ``envnet2-bc2018`` on a 2-core EPYC without it), and at the end of a run, so that a notebook or
    a long-lived process does not hold a run's peak. A no-op where freed memory is not kept."""
    if _KEPT_HEAP:
        trim = ctypes.CDLL(None).malloc_trim
        trim.argtypes = [ctypes.c_size_t]
        trim(0)


def _glibc() -> bool:
    """Whether the running C library is glibc (``os.confstr`` asks it; musl and macOS have no such name)."""
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (ValueError, OSError, AttributeError):
        return False


def resolve_accelerator(requested: str, *, setting: str = "runtime.accelerator") -> str:
    """``auto`` -> ``cuda``, ``mps`` or ``cpu`` (the first present); ``gpu`` -> CUDA or MPS.

    Raises:
        ConfigError: an accelerator this machine does not have (the message says what it has).
    """
    if requested not in ACCELERATORS:
        raise ConfigError(f"{setting}={requested!r} is not valid; use one of {', '.join(ACCELERATORS)}")
    present = available_accelerators()
    if requested == "auto":
        return present[0]
    if requested == "gpu":
        gpus = [a for a in present if a != "cpu"]
        if not gpus:
            raise ConfigError(f"{setting}='gpu' but this machine has no CUDA or MPS device; available: cpu "
                              f"(use {setting}=auto or cpu)")
        return gpus[0]
    if requested not in present:
        raise ConfigError(f"{setting}={requested!r} is not available on this machine; available: "
                          f"{', '.join(present)} (use {setting}=auto)")
    return requested


def available_accelerators() -> list[str]:
    """What this machine has, best first: ``cuda``, ``mps``, ``cpu``."""
    present = []
    if torch.cuda.is_available():
        present.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        present.append("mps")
    return present + ["cpu"]


def check_devices(accelerator: str, devices: int) -> None:
    """Raise :class:`ConfigError` when ``devices`` exceeds what ``accelerator`` has here (CPU: processes <= cores)."""
    if accelerator == "cuda":
        have, unit = torch.cuda.device_count(), "CUDA device"
    elif accelerator == "mps":
        have, unit = 1, "MPS device"
    else:
        have, unit = os.cpu_count() or 1, "CPU core"
    if not 1 <= devices <= have:
        raise ConfigError(f"runtime.devices={devices} but this machine has {have} {unit}{'s' if have != 1 else ''} "
                          f"for accelerator {accelerator!r}; use 1..{have}")


def has_image_layers(network: nn.Module | Callable[[], nn.Module]) -> bool:
    """Whether ``network`` has a 2-D convolution over more than one channel, whose speed the memory format changes
    (EnvNet-v2 and AclNet turn the waveform into an image after their first layers: channels-last made an EnvNet-v2
    training step 6 % faster in bf16 on a 2-core EPYC). A builder is called on the meta device: no weights are
    allocated or initialised."""
    if not isinstance(network, nn.Module):
        with torch.device("meta"):
            network = network()
    return any(isinstance(m, nn.Conv2d) and m.in_channels > 1 for m in network.modules())


def resolve_runtime(
    *,
    accelerator: str = "auto",
    devices: int = 1,
    precision: str = "auto",
    channels_last: str = "auto",
    image_input: bool = True,
    setting: str = "runtime.accelerator",
    probe: Callable[[Sequence[tuple[str, bool]], str], dict[tuple[str, bool], float]] | None = None,
) -> Runtime:
    """Resolve the ``auto`` settings for this machine.

    Args:
        accelerator, devices, precision, channels_last: the requested settings (``runtime.*``, or ``--device``).
        image_input: whether the network runs 2-D convolutions, where channels-last can matter: log-mel models,
            and waveform models that reshape their input into an image (:func:`has_image_layers`).
        setting: how errors name the accelerator setting (``runtime.accelerator`` or ``--device``); with
            ``--device`` they name the precision ``--precision`` too.
        probe: ``probe(candidates, accelerator)`` times candidates ``(precision, channels_last)`` on that accelerator
            -> seconds per step (see :func:`probe_candidates`); ``None`` takes the first candidate without timing.

    Raises:
        ConfigError: an accelerator or device count this machine does not have; an unknown setting.
    """
    named = "--precision " if setting == "--device" else "runtime.precision="
    if precision not in PRECISIONS:
        raise ConfigError(f"{named}{precision!r} is not valid; use one of {', '.join(PRECISIONS)}")
    if channels_last not in SWITCHES:
        raise ConfigError(f"runtime.channels_last={channels_last!r} is not valid; use auto, true or false")
    where = resolve_accelerator(accelerator, setting=setting)
    check_devices(where, devices)
    if where == "cpu" and precision == "16-mixed":
        raise ConfigError(f"{named}'16-mixed' is for GPUs; on a CPU use auto, 32 or bf16-mixed")
    native_bf16 = where != "cpu" or cpu_bf16_supported()
    if where == "cpu" and precision == "bf16-mixed" and not native_bf16:
        warnings.warn(f"{named}bf16-mixed on a CPU without native bf16 ({cpu_model()}: oneDNN reports "
                      f"none): it runs {EMULATED_BF16_SLOWDOWN} slower than precision 32 (measured); "
                      f"set {named}auto", stacklevel=2)
    precisions = [precision] if precision != "auto" else _auto_precisions(where, native_bf16)
    layouts = [channels_last == "true"] if channels_last != "auto" else _auto_layouts(where, image_input)
    candidates = [(p, cl) for p in precisions for cl in layouts]
    if len(candidates) == 1 or probe is None or os.environ.get("ENVSOUND_NO_PROBE") == "1":
        chosen = candidates[0]
        reason = _fixed_reason(where, precision, native_bf16)
    else:
        timings = probe(candidates, where)
        chosen = min(candidates, key=lambda c: timings[c])
        reason = "probe: " + ", ".join(f"{p}{'+cl' if cl else ''} {timings[(p, cl)] * 1e3:.1f} ms"
                                       for p, cl in candidates)
        if precision == "auto" and where == "cpu" and len(precisions) == 1:
            reason = f"oneDNN reports no bf16; {reason}"
    return Runtime(accelerator=where, devices=devices, precision=chosen[0], channels_last=chosen[1], reason=reason)


def _auto_precisions(where: str, native_bf16: bool) -> list[str]:
    if where == "cuda":
        return ["bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed", "32"]
    if where == "mps":
        return ["32"]
    return ["32", "bf16-mixed"] if native_bf16 else ["32"]


def _auto_layouts(where: str, image_input: bool) -> list[bool]:
    if not image_input:
        return [False]
    return [True] if where == "mps" else [True, False]


def _fixed_reason(where: str, precision: str, native_bf16: bool) -> str:
    if precision != "auto":
        return "as configured"
    if where == "cpu" and not native_bf16:
        return "oneDNN reports no bf16 on this CPU"
    return f"the default for {where}"


def probe_cache_path() -> Path:
    """``$ENVSOUND_PROBE_CACHE``, else ``~/.cache/envsound/runtime-probes.json`` (read when called)."""
    env = os.environ.get("ENVSOUND_PROBE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "envsound" / "runtime-probes.json"


def probe_candidates(
    build: Callable[[], nn.Module],
    item_shape: Sequence[int],
    *,
    mode: str,
    batch: int,
    identity: dict,
    seconds: float = PROBE_SECONDS,
) -> Callable[[Sequence[tuple[str, bool]], str], dict[tuple[str, bool], float]]:
    """A probe for :func:`resolve_runtime` that times ``build()``'s network on random input.

    Args:
        build: makes a fresh network (returns logits).
        item_shape: one example's shape, e.g. ``(1, 128, 216)`` log-mel or ``(1, 110250)`` waveform.
        mode: ``"train"`` (forward + backward + SGD step) or ``"infer"`` (forward under ``inference_mode``).
        batch: the per-process training batch (timed at most :data:`PROBE_TRAIN_BATCH` examples a step), or 1 for
            prediction.
        identity: what makes the answer specific (model settings); added to the cache key.
        seconds: the probe's time, building and one warm-up step of every candidate included; the timed steps
            take turns over up to 5 rounds and stop once it is spent (at least one step each).

    Returns a function ``(candidates, accelerator) -> {candidate: median seconds per step}``, cached on disk.
    """
    if mode == "train":
        batch = min(batch, PROBE_TRAIN_BATCH)  # every training batch size of a model shares one answer

    def run(candidates: Sequence[tuple[str, bool]], accelerator: str = "cpu") -> dict[tuple[str, bool], float]:
        key_data = {"cpu": cpu_model(), "flags": cpu_flags(), "torch": str(torch.__version__),
                    "threads": torch.get_num_threads(), "accelerator": accelerator,
                    "gpu": torch.cuda.get_device_name() if accelerator == "cuda" else None, "mode": mode,
                    "batch": batch, "shape": list(item_shape), "identity": identity,
                    "candidates": [list(c) for c in candidates], "version": PROBE_VERSION}
        # A training step's large activations time differently with freed memory kept (keep_freed_memory); a
        # one-window inference batch has none, so the evaluation inside a `cv` (a process that keeps freed memory)
        # and a later `predict` (one that does not) share one answer instead of probing twice.
        if mode == "train":
            key_data["kept_heap"] = _KEPT_HEAP
        key = _probe_key(key_data)
        cache = _read_probe_cache()
        if key not in cache and launched_local_rank() > 0:  # the processes of one machine start together: local
            cache = _wait_for_probe(key)                      # rank 0 probes, the others take its answer
        if key in cache:
            return {(p, cl): t for p, cl, t in cache[key]["timings"]}
        start = time.perf_counter()
        timings = _time_candidates(build, item_shape, candidates, mode=mode, batch=batch, device=accelerator,
                                   seconds=seconds)
        what = f"training steps of {batch}" if mode == "train" else f"batches of {batch}"
        log.info("runtime probe: timed %s %s in %d ways on this %s to run it the fastest: %s (%.1f s; once per model "
                 "and input shape, kept in %s)", identity.get("name", "model"), what, len(candidates),
                 "CPU" if accelerator == "cpu" else accelerator,
                 ", ".join(f"{p}{'+cl' if cl else ''} {t * 1e3:.1f} ms" for (p, cl), t in timings.items()),
                 time.perf_counter() - start, probe_cache_path())
        cache = _read_probe_cache()  # another process may have written meanwhile
        cache[key] = {**key_data, "timings": [[p, cl, t] for (p, cl), t in timings.items()]}
        try:
            write_json_atomic(probe_cache_path(), cache)
        except OSError as exc:  # a read-only home: the answer is still used, just not kept
            log.warning("cannot keep the runtime probe's answer in %s (%s)", probe_cache_path(), exc)
        return timings

    return run


def _probe_key(key_data: dict) -> str:
    return hashlib.sha256(json.dumps(key_data, sort_keys=True, default=str).encode()).hexdigest()[:24]


def _wait_for_probe(key: str, *, timeout: float = 120.0) -> dict:
    """The probe cache once it holds ``key`` (written by local rank 0), or as it is after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    cache = _read_probe_cache()
    while key not in cache and time.monotonic() < deadline:
        time.sleep(0.5)
        cache = _read_probe_cache()
    return cache


def _read_probe_cache() -> dict:
    try:
        data = json.loads(probe_cache_path().read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _time_candidates(build: Callable[[], nn.Module], item_shape: Sequence[int],
                     candidates: Sequence[tuple[str, bool]], *, mode: str, batch: int, device: str,
                     seconds: float, rounds: int = 5) -> dict[tuple[str, bool], float]:
    """Median seconds per step of each candidate, within about ``seconds`` from the start. Every candidate is built
    and warmed up first, then they take turns over up to ``rounds`` rounds (each round's share of the time left split
    between them; at least one step each, at most 20): timing one after the other let a GPU's clocks ramp up during
    the first candidate and made whichever came first look slower (seen on an H100)."""
    start = time.perf_counter()
    steps = {}
    for candidate in candidates:
        steps[candidate] = _candidate_step(build, item_shape, mode=mode, batch=batch, device=device,
                                           precision=candidate[0], channels_last=candidate[1])
        steps[candidate]()  # oneDNN and cuDNN pick and build their kernels on the first call
    times: dict[tuple[str, bool], list[float]] = {c: [] for c in candidates}
    for done_rounds in range(rounds):
        left = seconds - (time.perf_counter() - start)
        if done_rounds and left <= 0:
            break
        share = max(left, 0.0) / ((rounds - done_rounds) * len(steps))
        for candidate, step in steps.items():
            deadline = time.perf_counter() + share
            done = 0
            while done < 1 or (time.perf_counter() < deadline and done < 20):
                begin = time.perf_counter()
                step()
                times[candidate].append(time.perf_counter() - begin)
                done += 1
    return {c: statistics.median(t) for c, t in times.items()}


def _candidate_step(build: Callable[[], nn.Module], item_shape: Sequence[int], *, mode: str, batch: int,
                    device: str, precision: str, channels_last: bool) -> Callable[[], None]:
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = build().to(device, memory_format=fmt).train(mode == "train")
    x = torch.randn(batch, *item_shape, device=device)
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(precision)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-6) if mode == "train" else None

    def step() -> None:
        if optimizer is None:
            with torch.inference_mode(), torch.autocast(device, dtype=dtype, enabled=dtype is not None):
                model(x)
        else:
            with torch.autocast(device, dtype=dtype, enabled=dtype is not None):
                loss = model(x).float().logsumexp(dim=1).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if device == "cuda":
            torch.cuda.synchronize()

    return step
