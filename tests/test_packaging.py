"""Installing envsound prints nothing a user must wonder about: pyproject.toml is read by setuptools without warnings."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_building_the_package_metadata_warns_of_nothing_such_as_a_license_table(tmp_path):
    """`pip install -e .` printed setuptools' "`project.license` as a TOML table is deprecated" box three times."""
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    shutil.copy(REPO / "README.md", tmp_path)
    shutil.copytree(REPO / "src", tmp_path / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    (tmp_path / "meta").mkdir()
    code = ("import sys; from setuptools import build_meta; "
            "print(build_meta.prepare_metadata_for_build_wheel(sys.argv[1]))")
    built = subprocess.run([sys.executable, "-W", "default", "-c", code, str(tmp_path / "meta")], cwd=tmp_path,
                           capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stderr
    assert "deprecat" not in (built.stdout + built.stderr).lower(), built.stderr
    metadata = (tmp_path / "meta" / built.stdout.split()[-1] / "METADATA").read_text()
    assert "License-Expression: MIT" in metadata
