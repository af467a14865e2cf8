"""The built-in log-mel frontends' parts, registered beside their modules: each record of
:data:`~envsound.config.frontends.FRONTENDS` that the config knows by name (and checks) gets its torch module, its
ONNX module and the value of silence here. Run by ``envsound/features/__init__.py``, so importing any ``features``
module (as every user of a frontend's modules does) fills the registry. Light: numpy, no torch; the modules are
named within this package and imported when first asked for (window cutting, which needs the silence value, runs
without torch).
"""

from __future__ import annotations

from dataclasses import replace

from envsound.config.frontends import frontend_spec, register_frontend
from envsound.features.melbank import DB_FLOOR, EFFICIENTAT_SILENCE


def register_builtin_frontends() -> None:
    """Complete the config's records of ``envsound`` and ``efficientat`` with their modules and silence values."""
    register_frontend(replace(frontend_spec("envsound"), module="envsound.features.mel:LogMel.from_config",
                              onnx_module="envsound.features.onnx_frontends:OnnxFrontend", silence=DB_FLOOR))
    register_frontend(replace(frontend_spec("efficientat"),
                              module="envsound.features.efficientat:EfficientATMel.from_config",
                              onnx_module="envsound.features.onnx_frontends:OnnxEfficientATFrontend",
                              silence=EFFICIENTAT_SILENCE))
