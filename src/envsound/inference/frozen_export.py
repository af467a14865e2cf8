"""Export a head learned over a frozen network (``envsound learn`` on a BirdNET or YAMNet store) as the folder a
sensor runs with numpy and LiteRT, no torch (``envsound export LEARNED.ckpt --out DIR``): the trunk's ``.tflite``
copied from the file the head was learned on (found and checked by digest:
:func:`~envsound.models.litert.learned_trunk`), the head (with its open-set gate, a single-label probe's) and a
manifest (:mod:`envsound.models.frozen_head` says what each file holds and why the head is not an ONNX file). A
trunk whose licence forbids redistribution (BirdNET's CC BY-NC-SA 4.0) is the user's own copy: the folder's README
and :meth:`ExportedFolder.licence_line` say so.

A head cannot be one ``.onnx`` file: its trunk is a TFLite network, which becomes ONNX only through TensorFlow
(``tf2onnx``), and BirdNET's weights may not be bundled into a file envsound writes. ``--out X.onnx`` for such a
checkpoint is refused in one line naming the folder form (:func:`folder_form`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from envsound.errors import CheckpointError, ConfigError
from envsound.models.files import CLASSIFIER, ModelFile, open_model_file
from envsound.models.frozen import FROZEN, FrozenRelease
from envsound.models.frozen_head import HEAD_FILE, MANIFEST, write_head_export
from envsound.models.litert import FrozenModel, is_learned, learned_trunk
from envsound.models.open_set import OpenSet


@dataclass(frozen=True)
class ExportedFolder:
    """What :func:`export_frozen_head` wrote: the folder, the trunk's member, the trunk file's name and size, the
    number of classes."""

    folder: Path
    release: FrozenRelease
    trunk: str
    trunk_bytes: int
    classes: int

    def line(self) -> str:
        """One line saying what was made and how it runs."""
        return (f"wrote {self.folder}: {self.release.name}'s {self.trunk} ({self.trunk_bytes / 2 ** 20:.1f} MiB) "
                f"and a head of {self.classes} class(es) ({HEAD_FILE}, {MANIFEST}); numpy and LiteRT run it, no "
                f"torch: envsound predict {self.folder} FILE, or envsound listen {self.folder} --report URL")

    def licence_line(self) -> str | None:
        """One line when the trunk may not be redistributed (BirdNET's), else ``None``."""
        if self.release.bundled:
            return None
        return (f"licence: {self.trunk} is {self.release.licence}: this copy is yours, not to be redistributed "
                "(the folder's README.txt says so)")


def folder_form(model: str | Path, release_name: str) -> str:
    """The one-line refusal of ``--out X.onnx`` for a head learned over ``release_name``."""
    return (f"{model}: a head learned over {release_name} exports to a folder (its trunk's .tflite and the head), "
            f"not one .onnx file; name a folder: envsound export {model} --out DIR")


def export_frozen_head(model: str | Path | ModelFile, out: str | Path) -> ExportedFolder:
    """Write the head learned over a frozen network in ``model`` (a ``model.ckpt`` path, or one
    :func:`~envsound.models.files.open_model_file` opened) as the folder ``out`` (see the module's docstring; an
    earlier export there is replaced, the folder appears whole or not at all).

    >>> export_frozen_head("learned/model.ckpt", "sensor-model").line()

    Raises:
        CheckpointError: ``model`` is not a head learned over a frozen network; its trunk is not here (the
            download command given) or changed while copied.
        ConfigError: ``out`` names an ``.onnx`` file (:func:`folder_form`), a file, or a folder of other files.
    """
    source = model if isinstance(model, ModelFile) else open_model_file(model)
    checkpoint = source.checkpoint
    if source.kind != CLASSIFIER or not is_learned(checkpoint):
        raise CheckpointError(f"{source.given}: not a head learned over a frozen network (envsound learn on a "
                              "BirdNET or YAMNet store); a model.ckpt of a network exports to FILE.onnx")
    trunk_meta = checkpoint.meta.get("trunk") or {}
    release = FROZEN.get(trunk_meta.get("network", ""))
    if release is None:
        raise CheckpointError(f"{source.given}: its trunk {trunk_meta.get('network')!r} is none of "
                              f"{', '.join(FROZEN)}; learn it again")
    if release.family == "spec":  # the folder would need the spec to travel with the trunk: not yet
        raise CheckpointError(f"{source.given}: a head over {release.name}, a network installed with a spec; the "
                              "sensor folder is written for BirdNET and YAMNet trunks so far: predict, listen and "
                              "serve take this model.ckpt where the network is installed")
    out = Path(out)
    if out.suffix.lower() == ".onnx":
        raise ConfigError(folder_form(source.given, release.name))
    trunk = learned_trunk(checkpoint, given=source.given)
    state = checkpoint.state_dict
    if "head.weight" not in state or "head.bias" not in state:
        raise CheckpointError(f"{source.given}: a learned head without head.weight and head.bias; learn it again")
    trunk_name = Path(release.file).name
    meta = {key: value for key, value in checkpoint.meta.items() if key != "file"}
    meta["trunk"] = {**trunk_meta, "file": trunk_name}  # the copy in the folder, not the exporting machine's path
    gate = None if checkpoint.open_set is None else OpenSet.from_payload(
        checkpoint.open_set, n_classes=len(checkpoint.labels), source=str(source.given), width=release.embedding_width)
    write_head_export(out, trunk=trunk, trunk_digest=trunk_meta["digest"], release=release,
                      weight=state["head.weight"].float().numpy(), bias=state["head.bias"].float().numpy(),
                      labels=list(checkpoint.labels), task=checkpoint.task, meta=meta, open_set=gate)
    return ExportedFolder(folder=out, release=release, trunk=trunk_name, trunk_bytes=(out / trunk_name).stat().st_size,
                        classes=len(checkpoint.labels))


def check_head_export(model: str | Path | ModelFile, exported: str | Path, *, windows: int = 3) -> float:
    """The largest difference between the probabilities of the learned head in ``model`` (its ``model.ckpt``) and
    of its export ``exported`` on ``windows`` windows of seeded noise (plus half a window, so the last is aligned to
    the end) at the network's rate: 0 when the export is faithful (same trunk, same head, same arithmetic)."""
    source = model if isinstance(model, ModelFile) else open_model_file(model)
    learned = FrozenModel.from_checkpoint(source.checkpoint, path=source.path)
    export = FrozenModel.from_export(exported)
    rate, width = learned.release.sample_rate, learned.release.input_samples
    noise = np.random.default_rng(0).uniform(-0.5, 0.5, windows * width + width // 2).astype(np.float32)
    expected, starts = learned.waveform_probs(noise)
    got, got_starts = export.waveform_probs(noise)
    if starts != got_starts:  # the same config: a difference is a bug, not a tolerance
        raise CheckpointError(f"{exported}: cuts windows at {got_starts}, its checkpoint at {starts} ({rate} Hz)")
    return float(np.abs(expected - got).max())
