"""A frozen network (BirdNET, YAMNet) or a head learned over one, built again in a Ray actor from the bytes the driver
read (:class:`~envsound.inference.archive.ray_engine._ModelCopy`): an actor's node may have neither the network
installed nor its label file, nor the trunk file a head was learned with.

- a network: its ``.tflite`` and the label names the driver read, put together as
  :meth:`~envsound.models.litert.FrozenModel.load` puts them (no label file written: its format differs by member);
- a learned head: its ``model.ckpt`` and its trunk's ``.tflite`` (the file the driver's model runs, found there by
  :func:`~envsound.models.litert.learned_trunk`), written side by side, the checkpoint's recorded trunk file pointed
  at that copy, so :meth:`~envsound.models.litert.FrozenModel.from_checkpoint` checks its digest as on the driver.

A network installed from a spec (:mod:`envsound.models.spec`) travels with its resolved spec (:func:`spec_files`),
written beside the copy under the member's file name, so the copy is the member there too (an ONNX one run by ONNX
Runtime).

LiteRT runs one thread in each actor (:data:`LITERT_THREADS`) and the engine one actor per CPU it gives the model
(:func:`litert_actors`): the interpreter takes a window at a time, which parallel processes share out better than
threads. BirdNET on 2 cores (2026-11-29, ``LiteRTNetwork.run`` of 120 windows): two 1-thread interpreters side by side
60 windows/s, one 2-thread interpreter 34 (one 1-thread: 30) on idle cores; 21 against 19 with other work on them. In
a 2-CPU Ray cluster (1 actor, the other CPU decoding), 1 or 2 threads scored 240 windows in the same 7.2-7.8 s.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from envsound.errors import CheckpointError
from envsound.models.litert import LEARNED_KIND, FrozenModel, is_learned, open_network
from envsound.models.spec import SPEC_FILE, read_installed, spec_beside

LITERT_THREADS = 1
"""LiteRT's CPU threads in each actor."""

TRUNK_FILE = "trunk.tflite"  # a learned head's trunk, beside its checkpoint in the actor's folder


def is_frozen(model) -> bool:
    """True for a model run by LiteRT (a frozen network, or a head learned over one), possibly narrowed to some
    classes (:class:`~envsound.inference.class_filter.ClassSubset`)."""
    return isinstance(getattr(model, "inner", model), FrozenModel)


def is_learned_head(model) -> bool:
    """True for a head learned over a frozen network (a ``model.ckpt`` of ``meta["kind"]`` ``frozen-head``)."""
    return is_frozen(model) and (model.meta or {}).get("kind") == LEARNED_KIND


def spec_files(path: Path) -> tuple[tuple[str, bytes], ...]:
    """``((SPEC_FILE, its bytes),)`` when the network file ``path`` is a spec member, else ``()``: what an actor
    needs beside its copy to open it as the member."""
    return ((SPEC_FILE, (Path(path).parent / SPEC_FILE).read_bytes()),) if spec_beside(path) else ()


def trunk_path(model) -> Path:
    """The trunk file a learned head runs on the driver."""
    return Path(getattr(model, "inner", model).network.path)


def trunk_bytes(model) -> bytes:
    """The bytes of the trunk a learned head runs: the file its interpreter opened on this node (the one
    :func:`~envsound.models.litert.learned_trunk` found, of the digest the checkpoint records)."""
    return trunk_path(model).read_bytes()


def litert_actors(cpus: int) -> int:
    """How many LiteRT actors a cluster of ``cpus`` CPUs runs, one CPU and one thread each: three in four CPUs,
    at least one, so that the decoding tasks keep a CPU of their own (decoding and resampling a window costs a
    fraction of scoring it: BirdNET ~0.03 s a window on one core)."""
    return max(1, cpus * 3 // 4)


def open_frozen(path: Path, labels: list[str], *, embed: bool) -> FrozenModel:
    """The network in the TFLite file ``path`` with the driver's ``labels``, as ``FrozenModel.load`` opens it, at
    :data:`LITERT_THREADS`; ``embed``: the interpreter that reads the embedding opened now, while ``path`` exists
    (the caller removes it).

    Raises:
        CheckpointError: not a readable network of a known member.
    """
    model = FrozenModel(open_network(path, threads=LITERT_THREADS, embedding=False), labels=labels)
    model.threads = LITERT_THREADS
    if embed:
        model.embedder  # noqa: B018 - opened while the file is here
    return model


def open_learned(path: Path, trunk: bytes) -> FrozenModel:
    """The head learned over a frozen network in the ``model.ckpt`` at ``path``, its trunk the file of bytes
    ``trunk`` (written beside it and checked against the checkpoint's digest), at :data:`LITERT_THREADS`. Its one
    interpreter keeps its tensors: the head reads the embedding, and so does an embedding run.

    Raises:
        CheckpointError: not such a checkpoint; ``trunk`` is not the network it names (another digest).
    """
    from envsound.models.files import open_model_file  # torch: the checkpoint's format

    member = read_installed(path.parent)  # a spec member's trunk: its copy goes under the name its spec says
    copy = path.parent / (Path(member.file).name if member is not None else TRUNK_FILE)
    copy.write_bytes(trunk)
    checkpoint = open_model_file(path).checkpoint
    if checkpoint is None or not is_learned(checkpoint):
        raise CheckpointError(f"{path.name}: not a head learned over a frozen network")
    recorded = checkpoint.meta.get("trunk") or {}
    here = replace(checkpoint, meta={**checkpoint.meta, "trunk": {**recorded, "file": str(copy)}})
    return FrozenModel.from_checkpoint(here, path=path, threads=LITERT_THREADS)


def open_export(path: Path) -> FrozenModel:
    """The head ``envsound export`` wrote, its folder's files beside ``path`` (its manifest), at
    :data:`LITERT_THREADS`: one interpreter, which keeps its tensors (the head reads the embedding).

    Raises:
        CheckpointError: not such a folder, or a file in it changed (their SHA-256 are checked).
    """
    return FrozenModel.from_export(path, threads=LITERT_THREADS)
