"""The frontend registry (issue 74): config knows the built-in frontends by name, torch-free and naming no stage above
it; ``envsound.features`` registers their modules and silence values beside the modules themselves."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from envsound.config.frontends import FRONTENDS, frontend_spec
from envsound.features.efficientat import EfficientATMel
from envsound.features.melbank import DB_FLOOR, EFFICIENTAT_SILENCE
from envsound.features.mel import LogMel
from envsound.features.onnx_frontends import OnnxEfficientATFrontend, OnnxFrontend

FRONTENDS_SOURCE = Path(__file__).resolve().parents[2] / "src" / "envsound" / "config" / "frontends.py"


def test_config_checks_the_frontend_names_without_torch_or_the_features_stage():
    code = ("import sys\n"
            "from envsound.config import FeatureConfig\n"
            "FeatureConfig(frontend='efficientat', win_length=800).validate()\n"
            "from envsound.config.frontends import frontend_spec\n"
            "try:\n"
            "    frontend_spec('envsound').part('module')\n"
            "except Exception as exc:\n"
            "    print(type(exc).__name__)\n"
            "print(sorted(m for m in ('torch', 'numpy', 'envsound.features') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["ConfigError", "[]"]  # known by name; its module only once features registers it


def test_the_config_names_no_module_above_it():
    """Its records named ``"envsound.features.mel:LogMel.from_config"`` and ``"envsound.inference.onnx_export:..."``."""
    names = [node.value for node in ast.walk(ast.parse(FRONTENDS_SOURCE.read_text()))
             if isinstance(node, ast.Constant) and isinstance(node.value, str)
             and re.fullmatch(r"envsound(\.\w+)+(:[\w.]+)?", node.value)]
    assert not names


@pytest.mark.parametrize("name, module, onnx_module, silence", [
    ("envsound", LogMel.from_config, OnnxFrontend, DB_FLOOR),
    ("efficientat", EfficientATMel.from_config, OnnxEfficientATFrontend, EFFICIENTAT_SILENCE)])
def test_features_registers_the_builtin_frontends_parts(name, module, onnx_module, silence):
    spec = frontend_spec(name)
    assert (spec.part("module"), spec.part("onnx_module"), spec.silence_value()) == (module, onnx_module, silence)
    assert set(FRONTENDS) >= {"envsound", "efficientat"}


def test_the_onnx_frontends_old_home_still_gives_them_with_a_warning():
    from envsound.inference import onnx_export

    with pytest.warns(DeprecationWarning, match="envsound.features.onnx_frontends.OnnxFrontend"):
        assert onnx_export.OnnxFrontend is OnnxFrontend
