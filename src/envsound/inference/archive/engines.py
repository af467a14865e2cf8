"""The scan engines by name, in a module of their own: the CLI's parser reads :data:`ENGINES` without loading the
scan (which loads torch), and the archive driver (:mod:`.driver`) builds the engine a run names from
:data:`REGISTRY`, the one place an engine's name is looked at. Each engine's module is imported when it is built:
Ray only for ``ray``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from envsound.errors import ConfigError

if TYPE_CHECKING:  # torch, and Ray, are loaded only when an engine is built
    from envsound.inference.archive.engine import Engine
    from envsound.inference.predictor import Predictor


@dataclass(frozen=True)
class EngineKind:
    """How one engine is made ready and built.

    Args:
        build: ``build(predictor, shape, *, address, device, workers, file_timeout)`` -> the engine; ``shape``: its
            ``batch_size``, ``top_k``, ``events``, ``window_scores`` and ``embed`` (each window's embedding in place
            of its probabilities).
        connect: called with the address before the model loads, so that a cluster that does not answer is said
            first; None: nothing to reach.
        model_threads: the model runs in this process beside the decoding workers (its torch threads are the cores
            they leave).
    """

    build: Callable[..., "Engine"]
    connect: Callable[[str | None], object] | None = None
    model_threads: bool = False


def _local(predictor: "Predictor", shape: dict, *, address: str | None, device: str, workers: int,
           file_timeout: float | None) -> "Engine":
    from envsound.inference.archive.engine import LocalEngine

    return LocalEngine(predictor, workers=workers, file_timeout=file_timeout, **shape)


def _ray(predictor: "Predictor", shape: dict, *, address: str | None, device: str, workers: int,
         file_timeout: float | None) -> "Engine":
    from envsound.inference.archive.ray_engine import RayEngine

    return RayEngine(predictor, address=address, device=device, file_timeout=file_timeout, **shape)


def _ray_connect(address: str | None) -> object:
    from envsound.inference.archive.ray_engine import connect

    return connect(address)


REGISTRY: dict[str, EngineKind] = {
    "local": EngineKind(build=_local, model_threads=True),  # this machine: LocalEngine
    "ray": EngineKind(build=_ray, connect=_ray_connect),  # a Ray cluster: RayEngine
}

ENGINES = tuple(REGISTRY)
"""Where a scan runs: ``local`` (:class:`~envsound.inference.archive.engine.LocalEngine`, this machine), ``ray``
(:class:`~envsound.inference.archive.ray_engine.RayEngine`, a Ray cluster)."""


def engine_kind(name: str) -> EngineKind:
    """The engine named ``name``.

    Raises:
        ConfigError: an unknown name (the valid ones listed).
    """
    if name not in REGISTRY:
        raise ConfigError(f"engine {name!r} is unknown; valid: {', '.join(ENGINES)}")
    return REGISTRY[name]
