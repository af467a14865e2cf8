"""The README's "Classify your own sounds" block runs as written on a small generated folder (issue 40). The download
line installs the shared copy of the weights with --from (nothing is fetched), and `serve` is left out (it blocks)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from audiofactory import write_my_sounds

REPO = Path(__file__).resolve().parents[2]
WEIGHTS = REPO.parent / "shared" / "pretrained" / "efficientat" / "mn04_as_mAP_432.pt"


def quickstart_commands() -> list[list[str]]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Classify your own sounds"):]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [shlex.split(line.split("#")[0]) for line in block.splitlines() if line.strip()]


@pytest.mark.skipif(not WEIGHTS.exists(), reason=f"AudioSet weights not found at {WEIGHTS}")
def test_the_readme_quickstart_runs_as_written(tmp_path, monkeypatch, envsound_main):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ENVSOUND_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("ENVSOUND_CACHE", str(tmp_path / "cache"))
    write_my_sounds()
    commands = quickstart_commands()
    assert [c[:2] for c in commands] == [["envsound", "download"], ["envsound", "cv"], ["envsound", "train"],
                                         ["envsound", "predict"], ["envsound", "serve"]]
    for command in commands[:-1]:
        args = command[1:] + (["--from", str(WEIGHTS)] if command[1] == "download" else [])
        ran = envsound_main(*args)
        assert ran.returncode == 0, f"{shlex.join(command)}\n{ran.stderr}"
    assert "new_recording.wav: doorbell" in ran.stdout
