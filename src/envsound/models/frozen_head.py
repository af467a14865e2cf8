"""A head learned over a frozen network (``envsound learn`` on a BirdNET or YAMNet store), exported as a folder that
numpy and LiteRT run, without torch (``envsound export LEARNED.ckpt --out DIR``; opened by
:meth:`~envsound.models.litert.FrozenModel.from_export`). The folder holds:

- the trunk: a copy of the network's ``.tflite`` the head was learned on, under its published name, of the digest
  the checkpoint records (its label file is not needed: the head has its own labels); a folder without it (as a
  fleet publishes a head: :mod:`envsound.deploy.head_files`) runs on the network installed here, of that digest;
- ``head.npz``: ``weight`` ``(K, embedding_width)`` and ``bias`` ``(K,)``, float32, the head's scores
  ``sigmoid(embedding . weight + bias)`` (a single-label head's: the softmax over its classes); a head with an
  open-set gate (a single-label probe's, :mod:`envsound.models.open_set`) also ``prototypes``
  ``(K, embedding_width)`` and ``thresholds`` ``(K,)``, float32: a class is ruled out in a window whose embedding's
  cosine similarity to the class's prototype is below its threshold (4 KB a class);
- ``envsound-head.json`` (:data:`MANIFEST`): the format, the network's name and licence, the trunk's and the head's
  file names and sha256, the labels, the task (its per-class thresholds), ``open_set`` (``{"share": s}`` when the
  head is gated, else ``null``) and the learning's metadata;
- ``README.txt``: what the folder is, how it is run, and the trunk's licence (BirdNET's CC BY-NC-SA 4.0: the copy
  is its user's own, not to be redistributed).

Why a ``.npz`` and JSON rather than an ONNX head: the head is one affine map and a sigmoid, which numpy computes
exactly as :meth:`~envsound.models.litert.FrozenModel.head_probs` does for the checkpoint (the export scores as the
checkpoint, bit for bit); an ONNX head would put a second runtime in a sensor's loop beside LiteRT for a product of
1,024 x K numbers a window (microseconds, against LiteRT's ~30 ms for BirdNET's trunk), and writing it would need
the ``onnx`` package. The manifest's sha256 pin both files, so the manifest's own digest is the whole model's
identity (the fingerprint a sensor reports).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from envsound._version import __version__
from envsound.errors import CheckpointError, ConfigError
from envsound.fileio import file_digest, stable_zip_member
from envsound.models.frozen import FROZEN, FrozenRelease
from envsound.events.context import context_seconds
from envsound.models.open_set import OpenSet
from envsound.task import Task

MANIFEST = "envsound-head.json"
"""The file that makes a folder an exported head (and whose digest is the model's fingerprint)."""
HEAD_FILE = "head.npz"
README = "README.txt"
FORMAT = "envsound-frozen-head"
# 2: head.npz may hold the open-set gate (prototypes, thresholds) and the manifest says so (open_set); an envsound
#    that reads 1 would score such a head without its gate, so it refuses the file as newer. A head without a gate
#    is still written as 1 (every sensor reads it); version 1 folders load without a gate, as they scored.
# 3: the manifest's meta may hold learned.context_seconds > 0 (checkpoint format 28): each window is scored with its
#    neighbours; an envsound that reads 2 would score each alone, so it refuses the folder as newer. A head without
#    context is written as before (1 or 2).
FORMAT_VERSION = 3
UNGATED_VERSION = 1  # the format of an export without an open-set gate (nor context)
GATED_VERSION = 2  # with a gate, without context


@dataclass(frozen=True)
class HeadExport:
    """An exported head, read and checked (:func:`read_head_export`): the folder, the trunk's file in it and the
    release it is, ``weight`` ``(K, embedding_width)`` and ``bias`` ``(K,)`` float32, the labels, the task, the
    learning's metadata (the checkpoint's ``meta``) and the head's open-set gate (``None``: none)."""

    folder: Path
    trunk: Path
    release: FrozenRelease
    weight: np.ndarray
    bias: np.ndarray
    labels: list[str]
    task: Task
    meta: dict[str, Any]
    open_set: OpenSet | None = None


def is_head_export(path: str | os.PathLike) -> bool:
    """True when ``path`` is a folder holding :data:`MANIFEST`, or that file itself."""
    path = Path(path)
    return (path / MANIFEST).is_file() if path.is_dir() else path.name == MANIFEST and path.is_file()


def manifest_of(path: str | os.PathLike) -> Path:
    """The manifest of the export ``path`` (its folder, or the manifest itself)."""
    path = Path(path)
    return path / MANIFEST if path.is_dir() else path


def write_head_export(out: str | os.PathLike, *, trunk: Path, trunk_digest: str, release: FrozenRelease,
                      weight: np.ndarray, bias: np.ndarray, labels: list[str], task: Task,
                      meta: dict[str, Any], open_set: OpenSet | None = None) -> Path:
    """Write the folder ``out`` (see the module's docstring): built beside it and put in place in one rename, so
    ``out`` is never half written; an earlier export at ``out`` is replaced. The trunk is copied from ``trunk`` and
    its copy's sha256 must be ``trunk_digest`` (what the head was learned on); ``open_set``: the head's gate, if any.

    Raises:
        ConfigError: ``out`` is a file, or a folder that holds something else than an export.
        CheckpointError: the trunk's copy is not of ``trunk_digest``; the head's shape is not ``(K, width)``/``(K,)``.
    """
    out = Path(out)
    weight, bias = np.ascontiguousarray(weight, np.float32), np.ascontiguousarray(bias, np.float32)
    if weight.shape != (len(labels), release.embedding_width) or bias.shape != (len(labels),):
        raise CheckpointError(f"{out}: a head of {weight.shape} and {bias.shape} for {len(labels)} labels over "
                              f"{release.name}'s {release.embedding_width}-d embedding; learn it again")
    if out.exists() and not (out.is_dir() and (is_head_export(out) or not any(out.iterdir()))):
        raise ConfigError(f"--out {out}: {'a file' if out.is_file() else 'a folder of other files'}; name a new "
                          "folder (or an earlier export, which is replaced)")
    out.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        trunk_name = Path(release.file).name
        copied = copy_hashed(trunk, building / trunk_name)
        if copied != trunk_digest:
            raise CheckpointError(f"{trunk}: sha256 {copied[:16]} as copied, not {trunk_digest[:16]} the head was "
                                  "learned on; the file changed: install it again")
        gate = {} if open_set is None else {"prototypes": open_set.prototypes.astype(np.float32),
                                             "thresholds": open_set.thresholds.astype(np.float32)}
        _save_npz(building / HEAD_FILE, weight=weight, bias=bias, **gate)
        manifest = {"format": FORMAT, "version": __version__,
                    "format_version": (FORMAT_VERSION if context_seconds(meta) > 0 else
                                       UNGATED_VERSION if open_set is None else GATED_VERSION),
                    "network": release.name, "licence": release.licence,
                    "trunk": {"file": trunk_name, "sha256": trunk_digest},
                    "head": {"file": HEAD_FILE, "sha256": file_digest(building / HEAD_FILE)},
                    "labels": list(labels), "task": task.to_dict(),
                    "open_set": None if open_set is None else {"share": float(open_set.share)}, "meta": meta}
        (building / MANIFEST).write_text(json.dumps(manifest, indent=1, default=str) + "\n", encoding="utf-8")
        (building / README).write_text(readme(release, trunk_name, len(labels)), encoding="utf-8")
        _put_in_place(building, out)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return out


def readme(release: FrozenRelease, trunk_name: str, classes: int) -> str:
    """The export's ``README.txt``: what it is, how it runs, and the trunk's licence."""
    lines = [f"An envsound export: a head of {classes} class(es) learned over {release.name}, and {trunk_name}, "
             "the network it reads.",
             "Run it with numpy and LiteRT, no torch (pip install 'envsound[litert]'): envsound predict THIS_FOLDER "
             "FILE, or envsound listen THIS_FOLDER --report URL --sensor NAME.",
             f"Licence of {trunk_name}: {release.licence}."]
    if not release.bundled:
        lines.append(f"{trunk_name} is a copy of its user's own file, not to be redistributed: keep this folder "
                     f"where {release.licence} allows, and do not publish it.")
    return "\n".join(lines) + "\n"


def read_head_export(path: str | os.PathLike) -> HeadExport:
    """The export at ``path`` (its folder or its manifest), its trunk's and head's sha256 checked against the
    manifest's. numpy and the standard library only: no torch, no LiteRT (the caller opens the trunk).

    Raises:
        CheckpointError: one line naming the file: no manifest, not JSON, another or a newer format, a missing or
            changed file (its sha256 differs), a head or an open-set gate of the wrong shape.
    """
    manifest = manifest_of(path)
    folder = manifest.parent
    try:
        fields = json.loads(manifest.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise CheckpointError(f"{path}: no {MANIFEST} here; make the folder with 'envsound export LEARNED.ckpt "
                              "--out DIR'") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{manifest}: not valid JSON ({exc}); export the head again") from exc
    if not isinstance(fields, dict) or fields.get("format") != FORMAT:
        raise CheckpointError(f"{manifest}: not an envsound head export (format {FORMAT!r} expected)")
    version = fields.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(f"{manifest}: export format {version!r}, where this envsound reads 1 to "
                              f"{FORMAT_VERSION}; upgrade envsound")
    try:
        release = FROZEN[fields["network"]]
        trunk = _trunk(folder, fields["trunk"], release)
        head = _pinned(folder, fields["head"], what="head")
        labels, task, meta = list(fields["labels"]), Task.from_dict(fields["task"]), dict(fields.get("meta") or {})
        gated = fields.get("open_set")  # absent in format 1: no gate
        share = None if gated is None else float(gated["share"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{manifest}: the manifest lacks or garbles {exc}; export the head again") from exc
    with np.load(head, allow_pickle=False) as arrays:
        weight, bias = arrays["weight"].astype(np.float32), arrays["bias"].astype(np.float32)
        if share is not None and not {"prototypes", "thresholds"} <= set(arrays.files):
            raise CheckpointError(f"{head}: its manifest says the head is gated, and it holds no prototypes and "
                                  "thresholds; export it again")
        open_set = None if share is None else OpenSet.from_payload(
            {"prototypes": arrays["prototypes"], "thresholds": arrays["thresholds"], "share": share},
            n_classes=len(labels), source=str(head), width=release.embedding_width)
    if weight.shape != (len(labels), release.embedding_width) or bias.shape != (len(labels),):
        raise CheckpointError(f"{head}: weight {weight.shape} and bias {bias.shape}, not ({len(labels)}, "
                              f"{release.embedding_width}) and ({len(labels)},) for its labels; export it again")
    return HeadExport(folder=folder, trunk=trunk, release=release, weight=weight, bias=bias, labels=labels,
                      task=task, meta=meta, open_set=open_set)


def export_files(path: str | os.PathLike) -> list[Path]:
    """The files the manifest of the export at ``path`` pins beside itself (its trunk and its head), what a copy of
    the export elsewhere (a Ray actor's folder) needs with the manifest.

    Raises:
        CheckpointError: as :func:`read_head_export`.
    """
    export = read_head_export(path)
    fields = json.loads(manifest_of(path).read_text(encoding="utf-8"))
    return [export.trunk, export.folder / fields["head"]["file"]]


def copy_hashed(source: Path, dest: Path) -> str:
    """Copy ``source`` to ``dest`` and return the sha256 (hex) of the bytes copied: the file read once."""
    digest = hashlib.sha256()
    with Path(source).open("rb") as reader, Path(dest).open("wb") as writer:
        for block in iter(lambda: reader.read(1 << 20), b""):
            digest.update(block)
            writer.write(block)
    return digest.hexdigest()


def _pinned(folder: Path, entry: dict, *, what: str) -> Path:
    """The file ``entry["file"]`` names in ``folder`` (a plain name), checked to have ``entry["sha256"]``."""
    name = str(entry["file"])
    if Path(name).name != name or name in ("", ".", ".."):
        raise CheckpointError(f"{folder / MANIFEST}: its {what} file {name!r} is not a plain name in the folder")
    path = folder / name
    if not path.is_file():
        raise CheckpointError(f"{path}: the export's {what} is missing; export the head again")
    if file_digest(path) != entry["sha256"]:
        raise CheckpointError(f"{path}: not the {what} the export was made with (its sha256 differs); export the "
                              "head again")
    return path


def _save_npz(path: Path, **arrays: np.ndarray) -> None:
    """``np.savez``'s file with fixed member times: the same head is the same bytes (and sha256), so a fleet that
    publishes it again has the same version (np.savez stamps each member with the time it was written)."""
    with zipfile.ZipFile(path, "w") as packed:
        for name, array in arrays.items():
            with packed.open(stable_zip_member(f"{name}.npy"), "w") as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)


def _trunk(folder: Path, entry: dict, release: FrozenRelease) -> Path:
    """The export's trunk: its copy in ``folder``, else (a head as a fleet publishes it) the network installed
    here, which must be the file the head was learned on (``entry["sha256"]``)."""
    if (folder / str(entry["file"])).exists():
        return _pinned(folder, entry, what="trunk")
    from envsound.models.releases import installed_path

    installed = installed_path(release)
    if installed is None or file_digest(installed) != entry["sha256"]:
        found = "is not installed" if installed is None else f"installed here is another file ({installed})"
        raise CheckpointError(f"{folder}: the head has no trunk of its own and {release.name} {found}; install the "
                              f"file it was learned on (sha256 {str(entry['sha256'])[:16]}): envsound download "
                              f"{release.name} --from FILE")
    return installed


def _put_in_place(building: Path, out: Path) -> None:
    """Rename the finished folder ``building`` to ``out``, an earlier export there moved aside first and removed."""
    if not out.exists():
        os.rename(building, out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
    os.rename(out, old / out.name)
    try:
        os.rename(building, out)
    except OSError:
        os.rename(old / out.name, out)  # put the earlier export back
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)
