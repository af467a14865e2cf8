"""Pre-training and cross-validation stopped by SIGTERM (a cluster's time limit, a shutdown) keep their work and say
how to go on (issue 68): a real process is sent SIGTERM once its first Lightning checkpoint is on disk; it exits 130
with the `--resume` line, its folder and that checkpoint kept; the same command with `--resume` finishes the run from
there. The frame head and the fine-tuning of `--preset sed`: tests/transfer/test_stages.py."""

import json
import subprocess
import sys
from pathlib import Path

import torch

from conftest import TINY_OVERRIDES, stopped_when_saved
from envsound.models.checkpoint import load_checkpoint

DEADLINE_S = 240


def stopped_at(args: list[str], state: Path) -> tuple[int, str]:
    """Run ``args``, send it SIGTERM once ``state`` exists; -> (exit status, stderr)."""
    return stopped_when_saved(args, state, deadline_s=DEADLINE_S)


def sets(*overrides: str) -> list[str]:
    return [arg for o in TINY_OVERRIDES + overrides for arg in ("--set", o)]


def test_pretraining_stopped_by_sigterm_keeps_its_epochs_and_resumes_from_the_next(tmp_path, synthetic_root):
    out = tmp_path / "cae"
    args = [sys.executable, "-m", "envsound", "pretrain", "--dataset", "synthetic", "--root", str(synthetic_root),
            "--folds", "1,2", "--decoder", "unpool", "--out", str(out), "--cache-dir", str(tmp_path / "cache"),
            *sets("model.name=dtu", "model.filters=4", "train.max_epochs=6")]
    last = out / "lightning" / "last.ckpt"
    code, said = stopped_at(args, last)
    assert code == 130, said
    assert said.strip().splitlines()[-1].endswith("--resume"), said
    assert last.exists() and (out / "config.yaml").exists() and not (out / "autoencoder.ckpt").exists()
    assert torch.load(last, weights_only=False)["epoch"] < 5
    resumed = subprocess.run(args + ["--resume"], capture_output=True, text=True, timeout=DEADLINE_S)
    assert resumed.returncode == 0, resumed.stderr
    assert load_checkpoint(out / "autoencoder.ckpt").meta["epochs"] == 6


def test_cv_stopped_by_sigterm_in_its_second_fold_keeps_the_first_and_resumes_the_second(tmp_path, synthetic_root):
    out = tmp_path / "cv"
    args = [sys.executable, "-m", "envsound", "cv", "--dataset", "synthetic", "--root", str(synthetic_root),
            "--folds", "1,2", "--out", str(out), "--cache-dir", str(tmp_path / "cache"), *sets("train.max_epochs=6")]
    last = out / "fold_2" / "lightning" / "last.ckpt"
    code, said = stopped_at(args, last)
    assert code == 130, said
    assert said.strip().splitlines()[-1].endswith("--resume"), said
    assert (out / "fold_1" / "model.ckpt").exists() and last.exists() and not (out / "cv.json").exists()
    assert torch.load(last, weights_only=False)["epoch"] < 5
    resumed = subprocess.run(args + ["--resume"], capture_output=True, text=True, timeout=DEADLINE_S)
    assert resumed.returncode == 0, resumed.stderr
    assert "fold 1: reusing finished" in resumed.stderr, resumed.stderr
    folds = json.loads((out / "cv.json").read_text())["folds"]
    assert [(f["fold"], f["epochs"]) for f in folds] == [(1, None), (2, 6)]
