"""What a user sees of Ray when envsound starts a local instance for `--engine ray` (issue 69, item 11)."""

import subprocess
import sys

import pytest


def test_a_local_ray_instance_starts_without_its_token_notice():
    """Ray's "Token authentication is enabled for this Ray cluster ..." notice read as an error among the scan's
    lines; envsound starts the instance on this machine, so the notice is not the user's."""
    pytest.importorskip("ray")
    script = ("import logging; logging.basicConfig(level=logging.INFO)\n"
              "from envsound.inference.archive.ray_engine import connect\n"
              "connect(None).shutdown()\n")
    ran = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180,
                         env={"PATH": "/usr/bin:/bin", "HOME": "/tmp", "RAY_ADDRESS": ""})
    assert ran.returncode == 0, ran.stderr
    assert "Token authentication" not in ran.stderr, ran.stderr
