"""A tiny ONNX network the tests export themselves (``onnx.helper``, no torch), for the ``spec`` family: a waveform
window of ``window`` samples -> an inner embedding tensor and an output of logits, maths :func:`reference`
recomputes in numpy:

    embed  = mean over k of window[k * WIDTH : (k + 1) * WIDTH]       (an inner tensor, "frames/embed")
    logits = embed @ WEIGHTS[:, :n_classes] + BIAS[:n_classes]        (the output "logits")
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

WIDTH = 16
_RNG = np.random.default_rng(76)
WEIGHTS = _RNG.standard_normal((WIDTH, 8)).astype(np.float32)
BIAS = _RNG.standard_normal(8).astype(np.float32)


def reference(windows: np.ndarray, n_classes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """What the tiny network computes for ``windows`` ``(n, window)``: (logits, embedding)."""
    embed = windows.reshape(len(windows), -1, WIDTH).mean(axis=1)
    return embed @ WEIGHTS[:, :n_classes] + BIAS[:n_classes], embed


def write_tiny_onnx(path: Path, *, window: int = 1600, n_classes: int = 3, batch: int | str = "n",
                    samples: int | str | None = None, metadata: dict[str, str] | None = None) -> Path:
    """Write the tiny network to ``path``: input ``wave`` ``(batch, samples)`` (``samples``: ``window``, or a name:
    free, the network then refusing a window not a multiple of ``WIDTH``; ``batch`` a name: free), output
    ``logits`` ``(batch, n_classes)``, inner tensor ``frames/embed`` ``(batch, WIDTH)``; ``metadata`` into its
    ``metadata_props``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    samples = window if samples is None else samples
    nodes = [helper.make_node("Reshape", ["wave", "shape"], ["frames"]),
             helper.make_node("ReduceMean", ["frames", "axes"], ["frames/embed"], keepdims=0),
             helper.make_node("MatMul", ["frames/embed", "weights"], ["product"]),
             helper.make_node("Add", ["product", "bias"], ["logits"])]
    initial = [numpy_helper.from_array(np.array([0, -1, WIDTH], np.int64), "shape"),
               numpy_helper.from_array(np.array([1], np.int64), "axes"),
               numpy_helper.from_array(WEIGHTS[:, :n_classes].copy(), "weights"),
               numpy_helper.from_array(BIAS[:n_classes].copy(), "bias")]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("wave", TensorProto.FLOAT,
                                                                            [batch, samples])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, n_classes])],
                              initializer=initial)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    for key, value in (metadata or {}).items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


ONNX_SPEC = ("name: my-onnx\nlicence: CC0-1.0\nsample_rate: 16000\nwindow: 1600\nhop: 800\nembedding: frames/embed\n"
             "logits: logits\nactivation: sigmoid\nlabels: labels.txt\n")
"""A spec of the tiny network (3 classes, labels in ``labels.txt``), installed as ``my-onnx``."""


def install_with_spec(models: Path, network: Path, spec: str, labels: list[str]) -> Path:
    """``network`` installed with ``spec`` (YAML text; its label file ``labels.txt`` written beside it), as
    'envsound download --from FILE --spec SPEC' does, into ``models`` ($ENVSOUND_MODELS); the installed file."""
    from envsound.transfer.install_spec import install_spec

    (network.parent / "labels.txt").write_text("".join(name + "\n" for name in labels))
    (network.parent / "spec.yaml").write_text(spec)
    release = install_spec(network, network.parent / "spec.yaml")
    return models / release.file
