"""Training on more than one process (Lightning DDP on CPU, gloo) and the lock that keeps two runs out of one --out."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import TINY_OVERRIDES
from envsound.errors import EnvsoundError
from envsound.models.checkpoint import load_checkpoint
from envsound.recipes.context import RunContext
from envsound.recipes.train import train_model

pytestmark = pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs 2 CPU cores for 2 processes")


def cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "envsound.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_two_cpu_processes_train_the_same_schedule_as_one(tmp_path, synthetic_root):
    """``--devices 2`` runs DDP: the global batch is split over the processes, so both runs take the same optimizer
    steps, and the model process 0 saves scores within noise of the one-process model."""
    sets = [arg for o in TINY_OVERRIDES + ("train.max_epochs=15", "train.lr=0.003") for arg in ("--set", o)]
    common = ["--dataset", "synthetic", "--root", str(synthetic_root), "--folds", "1,2,3,4",
              "--cache-dir", str(tmp_path / "cache"), *sets]
    accuracy, steps = {}, {}
    for devices in (1, 2):
        out = tmp_path / f"devices{devices}"
        run = cli("train", *common, "--out", str(out), "--devices", str(devices))
        assert run.returncode == 0, run.stderr
        assert run.stdout.count("trained cnn") == 1, run.stdout  # process 1 reports nothing
        meta = load_checkpoint(out / "model.ckpt").meta
        assert meta["runtime"]["devices"] == devices and meta["epochs"] == 15
        assert f"cpu ({devices} device" in (out / "config.yaml").read_text().splitlines()[0]
        with open(out / "logs" / "metrics.csv") as fh:
            steps[devices] = max(int(row["step"]) for row in csv.DictReader(fh))
        scored = cli("evaluate", str(out / "model.ckpt"), "--dataset", "synthetic", "--root", str(synthetic_root),
                     "--folds", "5", "--json", "--no-cache")
        assert scored.returncode == 0, scored.stderr
        accuracy[devices] = json.loads(scored.stdout)["accuracy"]
    assert steps[1] == steps[2]
    assert min(accuracy.values()) >= 0.5, accuracy  # chance is 0.1
    assert abs(accuracy[1] - accuracy[2]) <= 0.25, accuracy


def test_cross_validation_on_several_processes_is_refused_with_what_to_do(tmp_path, synthetic_root, capsys):
    from envsound.cli.main import main

    assert main(["cv", "--dataset", "synthetic", "--root", str(synthetic_root), "--folds", "1,2", "--out",
                 str(tmp_path), "--devices", "2", "--no-cache"]) == 1
    assert "envsound train --devices N" in capsys.readouterr().err


def test_a_second_run_into_the_same_out_is_refused_and_a_killed_holder_blocks_nothing(tmp_path, synthetic_manifest,
                                                                                      tiny_config):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\nfrom envsound.fileio import run_lock\n"
        f"with run_lock({str(out)!r}):\n    print('held', flush=True)\n    time.sleep(120)\n")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(EnvsoundError, match=rf"another envsound run \(process {holder.pid}\) is writing here"):
            train_model(synthetic_manifest.select_folds([1]), tiny_config, out_dir=out,
                        context=RunContext(progress=False))
        assert not (out / "model.ckpt").exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    deadline = time.monotonic() + 10  # the OS releases the lock of a dead process
    while True:
        try:
            result = train_model(synthetic_manifest.select_folds([1]), tiny_config, out_dir=out,
                                 context=RunContext(progress=False))
            break
        except EnvsoundError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    assert result.checkpoint.exists()
