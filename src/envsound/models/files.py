"""One door for model files: whatever a user passes as a model - a path or an installed name - becomes a
:class:`ModelFile` of one kind, sniffed once, here and nowhere else:

- ``classifier``: an envsound ``model.ckpt`` (``envsound train`` / ``cv``: a network, a baseline or an ensemble);
- ``autoencoder``: an envsound ``autoencoder.ckpt`` (``envsound pretrain``);
- ``release``: a pre-trained family's official file, such as an EfficientAT AudioSet release
  (``mn04_as_mAP_432.pt``), or an installed name such as ``efficientat-mn04`` (``envsound download``) that stands
  for one; its family (:mod:`envsound.models.families`) recognises it and opens it as an AudioSet tagger
  (EfficientAT's: :func:`~envsound.models.pretrained.official_checkpoint`);
- ``onnx``: a ``model.onnx`` from ``envsound export``, recognised by its suffix or its first bytes and run by
  :class:`~envsound.inference.onnx_model.OnnxModel`;
- ``frozen``: a TFLite network of the ``litert`` family (BirdNET V2.4, YAMNet), or its installed name
  (``birdnet-v2.4``, ``yamnet``), recognised by its first bytes here and by its structure when
  :class:`~envsound.models.litert.FrozenModel` opens it (LiteRT runs it); or an ONNX or TFLite network installed
  with a spec (:mod:`envsound.models.spec`), recognised by the spec beside it (LiteRT or ONNX Runtime runs it);
- ``head-export``: the folder ``envsound export`` makes of a head learned over one of them (its trunk's copy, the
  head, a manifest: :mod:`envsound.models.frozen_head`), recognised by its manifest; its ``path`` is the manifest,
  whose digest is the model's identity (it pins the trunk's and the head's). numpy and LiteRT run it, no torch.

Predict, serve, evaluate, embed, export, ``load_model``, ``resolve(init=)`` and ``--init`` all open their model
here and then say which kinds they take (:meth:`ModelFile.require`). torch is imported only to read a torch file, so
an ONNX model never imports it. :func:`~envsound.models.checkpoint.load_checkpoint` reads envsound's own format only.

>>> source = open_model_file("efficientat-mn04")
>>> source.kind, source.checkpoint.labels[:2]      # ('release', ['Speech', 'Male speech, man speaking'])
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from envsound.config.frontends import resolve
from envsound.errors import CheckpointError
from envsound.fileio import file_digest
from envsound.models.families import FAMILIES, by_download_name, installed_names, installed_releases, recognise
from envsound.models.frozen import is_tflite
from envsound.models.frozen_head import is_head_export, manifest_of
from envsound.models.releases import installed_path, models_dir
from envsound.models.spec import spec_beside

if TYPE_CHECKING:
    from envsound.models.checkpoint import Checkpoint

CLASSIFIER, AUTOENCODER, RELEASE, ONNX, FROZEN = "classifier", "autoencoder", "release", "onnx", "frozen"
HEAD_EXPORT = "head-export"
KINDS = {CLASSIFIER: "an envsound model.ckpt", AUTOENCODER: "an autoencoder.ckpt from 'envsound pretrain'",
         RELEASE: "an EfficientAT AudioSet release .pt (or its installed name)",
         ONNX: "a model.onnx from 'envsound export'",
         FROZEN: "a BirdNET V2.4 or YAMNet .tflite (or its installed name: birdnet-v2.4, yamnet), or a network "
                 "installed with a spec",
         HEAD_EXPORT: "the folder 'envsound export' makes of a head learned over BirdNET or YAMNet"}
"""Each kind as a message names it. An envsound autoencoder checkpoint says so in ``meta["kind"]``, by this name."""


@dataclass(frozen=True)
class ModelFile:
    """A model file, recognised: ``given`` as the caller wrote it (a path or an installed name), ``path`` the file
    read (an exported head's manifest), ``kind`` one of :data:`KINDS`, ``checkpoint`` what a torch file holds
    (``None`` for ONNX, which :class:`~envsound.inference.onnx_model.OnnxModel` opens, and the kinds LiteRT runs).
    The checkpoint may be shared (see :func:`~envsound.transfer.source.read_source`): read it, do not change it."""

    given: str
    path: Path
    kind: str
    checkpoint: Checkpoint | None = None

    @cached_property
    def digest(self) -> str:
        """SHA-256 of the file's bytes, hex (64 digits): the model's identity (a retrained model is another model),
        in a scan's fingerprint. Read once, on first use. :attr:`short_digest` is its first 16 digits."""
        return file_digest(self.path)

    @property
    def short_digest(self) -> str:
        """The first 16 hex digits of :attr:`digest`: what a sensor reports beside its events and what the server
        marks the events it detects with."""
        return self.digest[:16]

    def require(self, *kinds: str, purpose: str) -> "ModelFile":
        """``self`` when its kind is one of ``kinds``.

        Raises:
            CheckpointError: naming the file, what it is and what ``purpose`` (e.g. ``"prediction"``) takes.
        """
        if self.kind not in kinds:
            raise CheckpointError(f"{self.given}: {KINDS[self.kind]}; {purpose} takes "
                                  f"{_listed([KINDS[k] for k in kinds])}")
        return self


def accepted() -> str:
    """Every kind of model argument, with the names installed here (not every name the release table knows: those
    are downloadable, not installed), for messages."""
    here = [spec.download_name for spec in installed_releases()]
    names = (f"an installed name ({', '.join(here)})" if here else
             f"the name of an installed one (none is installed in {models_dir()}: 'envsound download "
             "efficientat-mn04')")
    return (f"an envsound model.ckpt or autoencoder.ckpt, {', '.join(f.describe for f in FAMILIES.values())}, "
            f"{names}, a model.onnx, or the folder 'envsound export' makes of a head learned over a frozen network")


def open_model_file(path_or_name: str | Path, *, labels_required: bool = True) -> ModelFile:
    """Recognise the model file ``path_or_name`` (a path, or an installed name such as ``efficientat-mn04``) and,
    for a torch file, read it (once, ``weights_only``). ``labels_required=False`` (``--init``): a release file with
    no AudioSet label file beside it opens with classes ``class_0`` ... instead of failing.

    Raises:
        CheckpointError: one line naming the file: not found (nor an installed name; the closest names given), a
            known name not installed (the download command), empty, text, truncated or foreign bytes, a torch file
            of no known kind, a release file whose tensors fit no known network, a newer envsound format.
    """
    given = str(path_or_name)
    path = model_path(path_or_name)
    if is_head_export(path):  # a folder (or its manifest): numpy and LiteRT, no torch
        return ModelFile(given=given, path=manifest_of(path), kind=HEAD_EXPORT)
    if not path.is_file():
        what = "a folder, not a model file" if path.is_dir() else "model file not found"
        near = difflib.get_close_matches(given, installed_names(), n=2, cutoff=0.75)
        hint = f" (did you mean {' or '.join(near)}?)" if near else ""
        raise CheckpointError(f"{given}: {what}{hint}; expected {accepted()}")
    if spec_beside(path) is not None:  # a network its user installed with a spec (ONNX or TFLite), run as frozen
        return ModelFile(given=given, path=path, kind=FROZEN)
    if _is_onnx(path):
        return ModelFile(given=given, path=path, kind=ONNX)
    if is_tflite(path):
        return ModelFile(given=given, path=path, kind=FROZEN)
    from envsound.models.checkpoint import checkpoint_from_payload, is_envsound_payload, read_payload  # torch
    payload = read_payload(path, expected=f"expected {accepted()}")
    family = recognise(payload)
    if family is not None:
        return ModelFile(given=given, path=path, kind=RELEASE, checkpoint=resolve(family.checkpoint)(
            payload, path=path, labels_required=labels_required))
    if not is_envsound_payload(payload):
        raise CheckpointError(f"{given}: a torch file that is neither an envsound checkpoint (no 'format' marker) "
                              f"nor {_listed([f.name + ' weights' for f in FAMILIES.values()])}; expected "
                              f"{accepted()}")
    checkpoint = checkpoint_from_payload(payload, path, expected=f"expected {accepted()}")
    kind = AUTOENCODER if checkpoint.meta.get("kind") == AUTOENCODER else CLASSIFIER
    return ModelFile(given=given, path=path, kind=kind, checkpoint=checkpoint)


def model_path(path_or_name: str | Path) -> Path:
    """The file ``path_or_name`` names: itself, or for an installed name that is not a path, the installed weights.

    Raises:
        CheckpointError: a known name whose weights are not installed (the message gives the download command).
    """
    spec = None if Path(path_or_name).exists() else by_download_name(str(path_or_name))
    if spec is None:
        return Path(path_or_name)
    found = installed_path(spec)
    if found is None:
        copy = "FOLDER" if spec.family == "litert" else "FILE"  # a frozen network comes with its label file
        raise CheckpointError(f"{path_or_name}: the weights are not installed in {models_dir()}; run 'envsound "
                              f"download {spec.download_name}' (or 'envsound download {spec.download_name} --from "
                              f"{copy}')")
    return found


# An ONNX file is a protobuf ModelProto: field 1 (ir_version, a one-byte varint) comes first, then a string or
# varint field of 2..7 (producer name, version, domain, model version, doc string, graph). No torch file starts so
# (a zip starts "PK", a legacy pickle 0x80), so a model.onnx renamed is still recognised.
_ONNX_SECOND_TAGS = {0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A}


def _is_onnx(path: Path) -> bool:
    if path.suffix.lower() == ".onnx":
        return True
    with path.open("rb") as handle:
        head = handle.read(3)
    return len(head) == 3 and head[0] == 0x08 and head[1] < 0x80 and head[2] in _ONNX_SECOND_TAGS


def _listed(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"
