"""`pip install envsound` for real: the wheel built from this tree, installed with its base dependencies only into a
fresh virtual environment (no torch, no extras), classifies a clip with an exported model there."""

from __future__ import annotations

import re
import subprocess
import sys
import venv
from pathlib import Path

from audiofactory import write_tone

REPO = Path(__file__).resolve().parents[2]


def _run(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=300, **kwargs)


def test_the_base_wheel_in_a_fresh_environment_predicts_with_onnx(trained_run, tmp_path, envsound_main):
    built = _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                 tmp_path / "dist", REPO)
    assert built.returncode == 0, built.stderr
    wheel = next((tmp_path / "dist").glob("envsound-*.whl"))

    env = tmp_path / "env"
    venv.create(env, with_pip=True)
    python, cli = env / "bin" / "python", env / "bin" / "envsound"
    installed = _run(python, "-m", "pip", "install", "-q", wheel)
    assert installed.returncode == 0, installed.stderr
    # the light runtime is what the issue says, and nothing more
    missing = _run(python, "-c", "import importlib.util as u; print([m for m in ('torch', 'lightning', 'fastapi', "
                   "'sklearn', 'librosa', 'sqlalchemy') if u.find_spec(m)])")
    assert missing.stdout.strip() == "[]", missing.stdout

    assert envsound_main("export", trained_run.checkpoint, "--out", tmp_path / "m.onnx").returncode == 0
    clip = write_tone(tmp_path / "a.wav")
    ran = _run(cli, "predict", tmp_path / "m.onnx", clip, "--json", cwd=tmp_path)
    assert ran.returncode == 0 and '"top"' in ran.stdout, ran.stderr
    ran = _run(cli, "listen", tmp_path / "m.onnx", "--input", clip, "--json", cwd=tmp_path)  # live, without torch
    assert ran.returncode == 0 and '"end": true' in ran.stdout.splitlines()[-1], ran.stderr
    sensor = _run(cli, "listen", tmp_path / "m.onnx", "--input", clip, "--report", "http://127.0.0.1:9", "--sensor",
                  "lab", "--queue", tmp_path / "queue.sqlite", "--deliver-seconds", "0", cwd=tmp_path)
    # a sensor without torch or SQLAlchemy: what it heard waits in its queue for the server
    heard = re.fullmatch(r"(\d+) events: 0 delivered, (\d+) queued", sensor.stdout.strip().splitlines()[-1])
    assert sensor.returncode == 1 and heard and heard[1] == heard[2] != "0", sensor.stderr
    ran = _run(cli, "train", "--dataset", "folder", "--root", tmp_path, "--out", tmp_path / "r", cwd=tmp_path)
    assert ran.returncode == 1 and ran.stderr.strip().splitlines()[-1].endswith("pip install 'envsound[train]'")
