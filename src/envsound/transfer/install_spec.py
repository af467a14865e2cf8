"""Installing your own network: ``envsound download --from FILE --spec SPEC`` checks an ONNX or TFLite file against
its spec (:mod:`envsound.models.spec`) by opening it and running one silent window through it, then puts the file,
its label file and the resolved spec into ``<models>/<name>/``. What the file contradicts is refused in one line
naming the spec's field; nothing is installed then, and a member installed before under that name is kept.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from envsound.errors import CheckpointError, ConfigError
from envsound.fileio import atomic_path
from envsound.models.frozen import FrozenRelease
from envsound.models.frozen_head import copy_hashed
from envsound.models.releases import models_dir
from envsound.models.spec import LAYOUTS, SPEC_FILE, NetworkSpec, read_installed, read_spec, release_of, runtime_of

RATE_KEYS = ("sample_rate", "sampling_rate", "samplerate", "sr")
"""ONNX metadata keys taken to state the rate a network expects (envsound's own export writes ``sample_rate``)."""


class Probed(NamedTuple):
    """What one silent window through a file showed: its runtime, input layout, embedding width, logits columns."""

    runtime: str
    layout: str
    embedding_width: int
    n_classes: int


def install_spec(source: str | Path, spec_path: str | Path) -> FrozenRelease:
    """Install the network in the file ``source`` as its spec at ``spec_path`` describes it; returns the member as
    envsound now reads it (``envsound predict NAME FILE``, ``embed --model NAME``, ``cv --init NAME``).

    Raises:
        ConfigError: the spec, one line naming its field (see :func:`~envsound.models.spec.read_spec`), or what the
            file contradicts: a tensor that is not there, a window its input does not take or it refuses, a rate
            its metadata states otherwise, another input layout, not one label a logit.
        CheckpointError: the file is missing or neither an ONNX nor a TFLite network.
    """
    source = Path(source)
    if not source.is_file():
        raise CheckpointError(f"{source}: no such file; pass the network's .onnx or .tflite")
    spec = read_spec(spec_path)
    labels = _labels(spec)
    probed = probe(source, spec)
    if spec.logits and probed.n_classes != len(labels):
        raise spec.field_error("labels", f"{len(labels)} names in {spec.labels.name}, but {spec.logits} has "
                                         f"{probed.n_classes} columns")
    folder = models_dir() / spec.name
    folder.mkdir(parents=True, exist_ok=True)
    before = read_installed(folder)
    with atomic_path(folder / source.name) as tmp:
        digest = copy_hashed(source, tmp)
    label_name = ""
    if spec.labels is not None:
        label_name = spec.labels.name
        with atomic_path(folder / label_name) as tmp:
            shutil.copyfile(spec.labels, tmp)
    resolved = {"name": spec.name, "licence": spec.licence, "sample_rate": spec.sample_rate, "window": spec.window,
                "hop": spec.hop, "input": probed.layout, "embedding": spec.embedding,
                "embedding_width": probed.embedding_width, "logits": spec.logits, "n_classes": probed.n_classes,
                "activation": spec.activation, "labels": label_name, "file": source.name, "sha256": digest,
                "runtime": probed.runtime, "spec": str(Path(spec_path).resolve())}
    with atomic_path(folder / SPEC_FILE) as tmp:  # last: the spec beside the file is what makes it a member
        tmp.write_text(json.dumps(resolved, indent=2) + "\n", encoding="utf-8")
    if before is not None:  # a member reinstalled from other files: the old ones go
        for old in (Path(before.file).name, Path(before.labels_file).name if before.labels_file else ""):
            if old and old not in (source.name, label_name):
                (folder / old).unlink(missing_ok=True)
    return release_of(resolved)


def _labels(spec: NetworkSpec) -> list[str]:
    """The class names of the spec's label file (one a line, or a CSV's ``display_name`` column)."""
    if spec.labels is None:
        return []
    import csv

    try:
        if spec.labels.suffix == ".csv":
            with spec.labels.open(newline="", encoding="utf-8") as handle:
                rows = list(csv.DictReader(handle))
            if rows and "display_name" not in rows[0]:
                raise spec.field_error("labels", f"{spec.labels.name} is a CSV without a display_name column")
            names = [(row.get("display_name") or "").strip() for row in rows]
        else:
            names = [line.strip() for line in spec.labels.read_text(encoding="utf-8").splitlines() if line.strip()]
    except UnicodeDecodeError as exc:
        raise spec.field_error("labels", f"{spec.labels.name} is not UTF-8 text (byte {exc.start})") from exc
    if not names or not all(names):
        raise spec.field_error("labels", f"{spec.labels.name} holds an empty name or none at all")
    return names


def probe(path: Path, spec: NetworkSpec) -> Probed:
    """Open ``path`` in its runtime and run one silent window of ``spec.window`` samples through it.

    Raises:
        ConfigError: naming the spec's field the file contradicts.
        CheckpointError: not a readable network.
    """
    runtime = runtime_of(path)
    return _probe_tflite(path, spec) if runtime == "litert" else _probe_onnx(path, spec)


def _layout(spec: NetworkSpec, path: Path, shape: list[Any]) -> str:
    """The input layout of a file whose input has ``shape``, checked against the spec's ``input`` and ``window``."""
    if len(shape) not in (1, 2, 3) or (len(shape) == 3 and shape[1] not in (1, None, -1)) or \
            (len(shape) == 3 and isinstance(shape[1], str)):
        raise spec.field_error("input", f"{path.name} takes a tensor of shape {shape}; envsound feeds "
                                        f"{', '.join(LAYOUTS)}")
    layout = LAYOUTS[len(shape) - 1]
    if spec.input and spec.input != layout:
        raise spec.field_error("input", f"{path.name} takes {layout} (shape {shape}), not {spec.input}")
    last = shape[-1]
    if isinstance(last, (int, np.integer)) and last > 0 and last != spec.window:
        raise spec.field_error("window", f"{path.name} takes {last} samples a window, not {spec.window}")
    return layout


def _refused(spec: NetworkSpec, path: Path, exc: Exception) -> ConfigError:
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return spec.field_error("window", f"{path.name} refused a window of {spec.window} samples ({reason[:160]})")


def _width(spec: NetworkSpec, field: str, value: np.ndarray) -> int:
    """The values a window of a tensor holds (its batch of one taken off); a tensor of none is refused."""
    value = np.asarray(value)
    width = int(value.size)
    if width == 0 or not np.issubdtype(value.dtype, np.floating):
        raise spec.field_error(field, f"{getattr(spec, field)} holds {value.dtype} of shape {value.shape}, not a "
                                      "float vector a window")
    return width


def _probe_tflite(path: Path, spec: NetworkSpec) -> Probed:
    from envsound.models.litert import open_interpreter

    interpreter = open_interpreter(path, keep=True)
    inputs = interpreter.get_input_details()
    if len(inputs) != 1:
        raise spec.field_error("input", f"{path.name} has {len(inputs)} inputs; envsound feeds one, the waveform")
    signature = [int(d) for d in inputs[0].get("shape_signature", inputs[0]["shape"])]
    layout = _layout(spec, path, [d if d > 0 else None for d in signature])
    if signature[-1] <= 0 or (len(signature) > 1 and signature[0] <= 0):
        shape = [1] * (len(signature) - 1) + [spec.window]
        interpreter.resize_tensor_input(inputs[0]["index"], shape)
    tensors = {d["name"]: d["index"] for d in interpreter.get_tensor_details()}
    outputs = [d["name"] for d in interpreter.get_output_details()]
    _named(spec, path, "embedding", spec.embedding, tensors, outputs)
    if spec.logits and spec.logits not in outputs:
        raise spec.field_error("logits", f"{spec.logits!r} is not an output of {path.name} (outputs: "
                                         f"{', '.join(outputs)})")
    try:
        interpreter.allocate_tensors()
        details = interpreter.get_input_details()[0]
        interpreter.set_tensor(details["index"], np.zeros(details["shape"], np.float32))
        interpreter.invoke()
    except (ValueError, RuntimeError) as exc:
        raise _refused(spec, path, exc) from exc
    width = _width(spec, "embedding", interpreter.get_tensor(tensors[spec.embedding]))
    classes = _width(spec, "logits", interpreter.get_tensor(tensors[spec.logits])) if spec.logits else 0
    return Probed("litert", layout, width, classes)


def _named(spec: NetworkSpec, path: Path, field: str, name: str, tensors: Any, outputs: list[str]) -> None:
    if name not in tensors:
        raise spec.field_error(field, f"no tensor {name!r} in {path.name} (outputs: {', '.join(outputs)})")


def _probe_onnx(path: Path, spec: NetworkSpec) -> Probed:
    from envsound.models.onnx_network import open_session, tensor_names

    try:
        session = open_session(path, threads=1)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: neither a TFLite nor a readable ONNX network ({str(exc).split('(', 1)[-1]}"
                              ) from exc
    _rate_agrees(spec, path, session.get_modelmeta().custom_metadata_map)
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise spec.field_error("input", f"{path.name} has {len(inputs)} inputs; envsound feeds one, the waveform")
    shape = [d if isinstance(d, int) and d > 0 else None for d in inputs[0].shape]
    layout = _layout(spec, path, shape)
    outputs, made = tensor_names(path)
    _named(spec, path, "embedding", spec.embedding, made | set(outputs), outputs)
    if spec.logits:
        _named(spec, path, "logits", spec.logits, made | set(outputs), outputs)
    extra = tuple(name for name in (spec.embedding, spec.logits) if name and name not in outputs)
    session = open_session(path, extra_outputs=extra, threads=1)
    wanted = [spec.embedding] + ([spec.logits] if spec.logits else [])
    window = np.zeros([1] * (len(shape) - 1) + [spec.window], np.float32)
    try:
        values = session.run(wanted, {inputs[0].name: window})
    except Exception as exc:  # ONNX Runtime raises its own exception types for a shape it cannot take
        raise _refused(spec, path, exc) from exc
    width = _width(spec, "embedding", values[0])
    classes = _width(spec, "logits", values[1]) if spec.logits else 0
    return Probed("onnx", layout, width, classes)


def _rate_agrees(spec: NetworkSpec, path: Path, metadata: dict[str, str]) -> None:
    """Refuse a spec whose rate the file's own metadata contradicts."""
    for key, value in metadata.items():
        if key.lower() in RATE_KEYS:
            try:
                stated = int(float(value))
            except ValueError:  # not a number: not a rate this check can read
                continue
            if stated != spec.sample_rate:
                raise spec.field_error("sample_rate", f"{path.name}'s metadata says {key}={stated} Hz; the spec "
                                                      f"says {spec.sample_rate}")
