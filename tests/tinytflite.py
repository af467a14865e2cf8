"""Tiny TFLite networks shaped like BirdNET V2.4 and YAMNet, written here as flatbuffers (no TensorFlow), so the
``litert`` family is tested on a fresh clone without ``../shared``. Each has its member's input, class count and
embedding tensor name, and maths a test recomputes in numpy (:func:`reference`):

    embedding = mean over k of waveform[k * 1024 : (k + 1) * 1024]      (the first ``steps`` * 1024 samples)
    output    = embedding[INDEX[c]] for each class c                     (BirdNET: logits; YAMNet: sigmoid of it)

Ops: SLICE, RESHAPE, MEAN, GATHER (+ LOGISTIC): a few KB to 27 KB, made in milliseconds by :func:`write_tiny`.
"""

from __future__ import annotations

from pathlib import Path

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as fb

# member -> (input samples, classes, embedding tensor name, output is a sigmoid)
SHAPES = {"birdnet-v2.4": (144_000, 6522, "model/GLOBAL_AVG_POOL/Mean", False),
          "yamnet": (15_600, 521, "yamnet_frames/global_average_pooling2d/Mean", True)}
WIDTH = 1024


def index(n_classes: int) -> np.ndarray:
    """Which embedding value each class's output is: a fixed, spread permutation."""
    return (np.arange(n_classes, dtype=np.int64) * 389 % WIDTH).astype(np.int32)


def reference(member: str, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What the tiny network of ``member`` computes for ``windows`` ``(n, samples)``: (output, embedding)."""
    samples, n_classes, _, sigmoid = SHAPES[member]
    steps = samples // WIDTH
    embedding = windows[:, :steps * WIDTH].reshape(len(windows), steps, WIDTH).mean(axis=1)
    output = embedding[:, index(n_classes)]
    return (1 / (1 + np.exp(-output)) if sigmoid else output), embedding


def _tensor(name: str, shape, kind: int, buffer: int) -> fb.TensorT:
    tensor = fb.TensorT()
    tensor.name, tensor.shape, tensor.type, tensor.buffer = name.encode(), list(shape), kind, buffer
    return tensor


def _buffer(data: np.ndarray | None) -> fb.BufferT:
    buffer = fb.BufferT()
    buffer.data = None if data is None else list(np.ascontiguousarray(data).tobytes())
    return buffer


def _op(code: int, inputs, outputs, options_type: int = 0, options=None) -> fb.OperatorT:
    op = fb.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = code, list(inputs), list(outputs)
    op.builtinOptionsType, op.builtinOptions = options_type, options
    return op


def write_tiny(member: str, path: Path) -> Path:
    """Write the tiny network shaped like ``member`` (``birdnet-v2.4``, ``yamnet``) to ``path``."""
    samples, n_classes, embedding_name, sigmoid = SHAPES[member]
    steps = samples // WIDTH
    f32, i32 = fb.TensorType.FLOAT32, fb.TensorType.INT32
    consts = [np.array([0, 0], np.int32), np.array([1, steps * WIDTH], np.int32),
              np.array([1, steps, WIDTH], np.int32), np.array([1], np.int32), index(n_classes)]
    buffers = [_buffer(None), _buffer(None)] + [_buffer(c) for c in consts] + [_buffer(None)] * 5
    tensors = [_tensor("INPUT", (1, samples), f32, 1),
               _tensor("begin", (2,), i32, 2), _tensor("size", (2,), i32, 3), _tensor("shape", (3,), i32, 4),
               _tensor("axis", (1,), i32, 5), _tensor("classes", (n_classes,), i32, 6),
               _tensor("sliced", (1, steps * WIDTH), f32, 7), _tensor("steps", (1, steps, WIDTH), f32, 8),
               _tensor(embedding_name, (1, WIDTH), f32, 9), _tensor("Identity" if not sigmoid else "logits",
                                                                   (1, n_classes), f32, 10)]
    reshape, reducer, gather = fb.ReshapeOptionsT(), fb.ReducerOptionsT(), fb.GatherOptionsT()
    reshape.newShape, reducer.keepDims, gather.axis = [1, steps, WIDTH], False, 1
    ops = [_op(0, [0, 1, 2], [6], fb.BuiltinOptions.SliceOptions, fb.SliceOptionsT()),
           _op(1, [6, 3], [7], fb.BuiltinOptions.ReshapeOptions, reshape),
           _op(2, [7, 4], [8], fb.BuiltinOptions.ReducerOptions, reducer),
           _op(3, [8, 5], [9], fb.BuiltinOptions.GatherOptions, gather)]
    codes = [fb.BuiltinOperator.SLICE, fb.BuiltinOperator.RESHAPE, fb.BuiltinOperator.MEAN, fb.BuiltinOperator.GATHER]
    out = 9
    if sigmoid:
        tensors.append(_tensor("Identity", (1, n_classes), f32, 11))
        ops.append(_op(4, [9], [10]))
        codes.append(fb.BuiltinOperator.LOGISTIC)
        out = 10
    graph = fb.SubGraphT()
    graph.tensors, graph.operators, graph.inputs, graph.outputs, graph.name = tensors, ops, [0], [out], b"main"
    model = fb.ModelT()
    model.version, model.subgraphs, model.buffers, model.description = 3, [graph], buffers, b"envsound tiny test net"
    model.operatorCodes = []
    for code in codes:
        entry = fb.OperatorCodeT()
        entry.builtinCode, entry.deprecatedBuiltinCode, entry.version = code, min(code, 127), 1
        model.operatorCodes.append(entry)
    builder = flatbuffers.Builder(1 << 16)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(bytes(builder.Output()))
    return path


def range_reference(weights: np.ndarray, bias: np.ndarray, place) -> np.ndarray:
    """What the tiny range network of :func:`write_tiny_range` gives for ``place`` (lat, lon, week): ``(n,)``."""
    return 1 / (1 + np.exp(-(np.asarray(weights, np.float32) @ np.asarray(place, np.float32) + bias)))


def write_tiny_range(path: Path, weights: np.ndarray, bias: np.ndarray) -> Path:
    """Write a tiny network shaped like BirdNET's species-range model, ``(1, 3)`` (lat, lon, week) -> ``(1, n)``
    probabilities ``sigmoid(weights @ place + bias)`` (``weights`` ``(n, 3)``, ``bias`` ``(n,)``): FULLY_CONNECTED
    and LOGISTIC, to ``path``."""
    weights, bias = np.asarray(weights, np.float32), np.asarray(bias, np.float32)
    n, f32 = len(weights), fb.TensorType.FLOAT32
    buffers = [_buffer(None), _buffer(None), _buffer(weights), _buffer(bias), _buffer(None), _buffer(None)]
    tensors = [_tensor("serving_default_MNET_INPUT:0", (1, 3), f32, 1), _tensor("weights", (n, 3), f32, 2),
               _tensor("bias", (n,), f32, 3), _tensor("logits", (1, n), f32, 4),
               _tensor("StatefulPartitionedCall:0", (1, n), f32, 5)]
    ops = [_op(0, [0, 1, 2], [3], fb.BuiltinOptions.FullyConnectedOptions, fb.FullyConnectedOptionsT()),
           _op(1, [3], [4])]
    graph = fb.SubGraphT()
    graph.tensors, graph.operators, graph.inputs, graph.outputs, graph.name = tensors, ops, [0], [4], b"main"
    model = fb.ModelT()
    model.version, model.subgraphs, model.buffers, model.description = 3, [graph], buffers, b"envsound tiny range net"
    model.operatorCodes = []
    for code in (fb.BuiltinOperator.FULLY_CONNECTED, fb.BuiltinOperator.LOGISTIC):
        entry = fb.OperatorCodeT()
        entry.builtinCode, entry.deprecatedBuiltinCode, entry.version = code, code, 1
        model.operatorCodes.append(entry)
    builder = flatbuffers.Builder(1 << 16)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(bytes(builder.Output()))
    return path


def tiny_range_weights(n_classes: int = 6522) -> tuple[np.ndarray, np.ndarray]:
    """Weights for :func:`write_tiny_range` a test can reason about: even classes live in the north (0.99 at
    latitude 50, 0.007 at -50), odd ones in the south; class 1 instead sings late in the year only
    (``sigmoid(0.2 * week - 5)``: 0.27 in week 20, 0.008 in week 1, 0.006 for the whole year, week -1)."""
    weights = np.zeros((n_classes, 3), np.float32)
    weights[:, 0] = np.where(np.arange(n_classes) % 2 == 0, 0.1, -0.1)
    bias = np.zeros(n_classes, np.float32)
    weights[1], bias[1] = (0.0, 0.0, 0.2), -5.0
    return weights, bias


BIRDNET_FILES = ("BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite", "BirdNET_GLOBAL_6K_V2.4_Labels.txt")
BIRDNET_NAMES = [f"Genus species{i}_Common {i}" for i in range(6522)]
"""The tiny BirdNET's 6,522 label lines, in BirdNET's ``Latin name_Common name`` form."""


def birdnet_folder(folder: Path, *, with_range: bool = False) -> Path:
    """``folder`` as a user has BirdNET: the tiny network, its 6,522 labels and (``with_range``) the species-range
    model of :func:`tiny_range_weights`, under BirdNET's file names."""
    from envsound.models.birdnet_range import RANGE_FILE

    folder.mkdir(parents=True, exist_ok=True)
    write_tiny("birdnet-v2.4", folder / BIRDNET_FILES[0])
    (folder / BIRDNET_FILES[1]).write_text("".join(name + "\n" for name in BIRDNET_NAMES))
    if with_range:
        write_tiny_range(folder / RANGE_FILE, *tiny_range_weights())
    return folder


def yamnet_files(folder: Path) -> Path:
    """``folder`` holding the tiny YAMNet and a class map of 521 rows (``Class 0`` ...), under YAMNet's file names."""
    folder.mkdir(parents=True, exist_ok=True)
    write_tiny("yamnet", folder / "yamnet.tflite")
    rows = "".join(f"{i},/m/{i},Class {i}\n" for i in range(521))
    (folder / "yamnet_class_map.csv").write_text("index,mid,display_name\n" + rows)
    return folder


def install_tiny_pair(root: Path) -> Path:
    """``root/models``: a models folder holding the tiny BirdNET and YAMNet, installed by the library call
    ``envsound download NAME --from FOLDER`` makes (their copies written under ``root``)."""
    import pytest

    from envsound.transfer.install_frozen import install_frozen

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ENVSOUND_MODELS", str(root / "models"))
        install_frozen("birdnet-v2.4", source=birdnet_folder(root / "birdnet"), progress=False)
        install_frozen("yamnet", source=yamnet_files(root / "yamnet"), progress=False)
    return root / "models"
