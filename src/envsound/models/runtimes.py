"""Where a model that torch does not run is run: an exported ``model.onnx`` (onnxruntime) or a frozen TFLite
network (LiteRT). What ``GET /v1/model`` and the page report beside a checkpoint's
:class:`~envsound.hardware.Runtime`; no torch here (the light install reads it)."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class EngineRuntime:
    """The ``accelerator`` (``cpu``, ``cuda``), the engine's ``provider`` (``CPUExecutionProvider``, ``XNNPACK`` ...),
    the ``precision`` (always float32: ``"32"``) and the ``engine`` (``onnxruntime``, ``litert``)."""

    accelerator: str
    provider: str
    precision: str = "32"
    engine: str = "onnxruntime"

    def describe(self) -> str:
        return f"{self.accelerator} through {self.engine} ({self.provider}), precision {self.precision}"

    def to_dict(self) -> dict:
        return asdict(self)
