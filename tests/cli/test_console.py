"""What a console shows during a run, as a new user meets it: each line once, in one format, unambiguous, no library
noise."""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
import torch

from envsound.models.efficientat import EfficientAT, release_key


@pytest.fixture(scope="module")
def release_file(tmp_path_factory) -> Path:
    """An AudioSet release file (mn01's format: a bare state dict) at random weights, with its label list; every
    label holds a comma, as AudioSet's "Domestic animals, pets" does."""
    folder = tmp_path_factory.mktemp("release")
    torch.manual_seed(0)
    state = EfficientAT(n_classes=527, in_channels=1, n_mels=128, n_frames=100, width=0.1).state_dict()
    torch.save({release_key(k): v for k, v in state.items()}, folder / "mn01_as_mAP_298.pt")
    with (folder / "class_labels_indices.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["index", "mid", "display_name"])
        writer.writerows([i, f"/m/{i}", f"Sound {i}, kind {i % 3}"] for i in range(527))
    return folder / "mn01_as_mAP_298.pt"


@pytest.fixture(scope="module")
def cv_run(tmp_path_factory, synthetic_root, release_file):
    """`envsound cv --init` an AudioSet file on two folds of the synthetic set, as a console sees it."""

    out = tmp_path_factory.mktemp("cv") / "cv"
    command = [sys.executable, "-m", "envsound.cli.main", "cv", "--dataset", "synthetic", "--root",
               str(synthetic_root), "--folds", "1,2", "--init", str(release_file), "--out", str(out), "--no-cache",
               "--set", "features.window_seconds=1", "--set", "features.eval_hop_seconds=1"]
    ran = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert ran.returncode == 0, ran.stderr
    return SimpleNamespace(out=out, stdout=ran.stdout, stderr=ran.stderr)


def test_cv_from_an_audioset_file_says_each_transfer_line_and_each_fold_result_once(cv_run):
    console = cv_run.stdout + cv_run.stderr
    for line in ("transfer.mode=auto: probe", "an AudioSet network (trained on YouTube clips", "loaded from ",
                 "head: replaced (527 -> 10 classes)"):
        assert console.count(line) == 1, (line, console)
    for fold in (1, 2):
        assert len(re.findall(rf"^fold {fold}: accuracy \d", console, flags=re.M)) == 1, console
        assert re.search(rf"^fold {fold}: accuracy \d\.\d{{4}} \(20 clips\)$", cv_run.stdout, flags=re.M)


def test_a_first_run_shows_no_matplotlib_font_cache_line(tmp_path):
    """matplotlib logs "generated new fontManager" at INFO the first time it runs (here: a fresh MPLCONFIGDIR)."""
    code = ("from envsound.cli.main import configure_logging; "
            "configure_logging(debug=False, quiet=False, command='train'); "
            "import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt; plt.figure()")
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "MPLCONFIGDIR": str(tmp_path / "mpl")})
    assert ran.returncode == 0, ran.stderr
    assert (tmp_path / "mpl").exists() and "fontManager" not in ran.stderr, ran.stderr


def test_serve_logs_in_envsound_format_and_its_model_endpoint_counts_tensors(cv_run):
    """uvicorn's own handlers printed "INFO:     ..." lines among envsound's; GET /v1/model listed every tensor
    name a transfer loaded (12 KB for mn04)."""
    command = [sys.executable, "-m", "envsound.cli.main", "serve", str(cv_run.out / "fold_1" / "model.ckpt"),
               "--port", "0"]
    server = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    lines = []
    try:
        for line in server.stderr:
            lines.append(line)
            if "serving at" in line:
                break
        address = re.search(r"serving at (http://127\.0\.0\.1:\d+)/", lines[-1])
        assert address, lines
        answer = httpx.get(f"{address.group(1)}/v1/model", timeout=30)
    finally:
        server.terminate()
        _, rest = server.communicate(timeout=30)
    described = answer.json()
    transfer = described["training"]["transfer"]
    assert transfer["loaded_tensors"] > 100 and "loaded" not in transfer
    assert len(answer.content) < 4000, len(answer.content)
    console = "".join(lines) + rest
    assert "Application startup complete" in console  # uvicorn still speaks, in envsound's format
    assert not re.search(r"^(INFO|WARNING|ERROR):", console, flags=re.M), console


def test_predict_quotes_labels_that_hold_a_comma(envsound_main, release_file, synthetic_root):
    clip = sorted((synthetic_root / "audio").glob("*.wav"))[0]
    ran = envsound_main("predict", release_file, clip, "--threshold", "1e-9", "--top-k", "2")
    assert ran.returncode == 0, ran.stderr
    line = ran.stdout.strip().splitlines()[0]
    listed = re.search(r"\[labels: (.*)\]$", line).group(1)
    labels = next(csv.reader([listed], skipinitialspace=True))
    assert len(labels) == 527 and all(re.fullmatch(r"Sound \d+, kind \d", name) for name in labels)
    top = line.split(": ", 1)[1].split("  [labels")[0]
    assert re.fullmatch(r'"Sound \d+, kind \d" [\d.]+, "Sound \d+, kind \d" [\d.]+', top), top


def test_device_help_says_what_it_takes_instead_of_see_readme(envsound_main):
    text = " ".join(envsound_main("predict", "--help").stdout.split())
    device = text[text.rindex("--device {"):text.rindex("--precision {")]  # the option, not the usage line
    assert "see README" not in device
    for kind in ("cpu", "cuda (", "mps (", "gpu:", "auto:", "CUDA_VISIBLE_DEVICES"):
        assert kind in device, (kind, device)


def test_train_help_promises_curves_only_where_a_run_writes_them(envsound_main, cv_run):
    """A transfer.mode=probe run fits no epochs and writes no curves.png; the help promised one for every run."""
    assert not (cv_run.out / "fold_1" / "curves.png").exists()  # what a probe run writes
    text = " ".join(envsound_main("train", "--help").stdout.split())
    assert "curves.png (not for a baseline or a transfer.mode=probe run" in text, text[:400]
