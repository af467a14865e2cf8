"""Findings of issue 40 ("the front door"), each fixed with a test that failed before: what a new user meets first."""

from __future__ import annotations

import subprocess
import sys

from audiofactory import write_tone


def test_the_package_exports_its_errors_and_public_api():
    import envsound

    assert {"load_model", "EnvsoundError", "CheckpointError", "__version__"} <= set(dir(envsound))
    from envsound import AudioLoadError, EnvsoundError

    assert issubclass(AudioLoadError, EnvsoundError)


def test_python_dash_m_envsound_is_the_cli():
    ran = subprocess.run([sys.executable, "-m", "envsound", "--help"], capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0 and "usage: envsound" in ran.stdout


def test_predict_names_a_bad_file_once(trained_run, tmp_path, envsound_main):
    bad = tmp_path / "x.wav"
    bad.write_text("not audio")
    ran = envsound_main("predict", trained_run.checkpoint, bad)
    line = next(line for line in ran.stderr.splitlines() if "error" in line)
    assert ran.returncode == 1 and line.startswith(f"{bad}: error: ") and line.count(str(bad)) == 1, line


def test_a_text_file_as_a_checkpoint_says_what_it_is(tmp_path, envsound_main):
    notes = tmp_path / "notes.ckpt"
    notes.write_text("my notes about the model\n")
    ran = envsound_main("predict", notes, write_tone(tmp_path / "a.wav"))
    assert ran.returncode == 1 and "a text file, starting 'my notes'" in ran.stderr
    assert "pop from empty list" not in ran.stderr


def test_one_class_is_an_error_and_a_class_of_few_clips_a_warning(tmp_path, envsound_main):
    root = tmp_path / "sounds"
    for i in range(3):
        write_tone(root / "beep" / f"{i}.wav", freq=440 + 10 * i, seconds=0.5)
    ran = envsound_main("train", "--dataset", "folder", "--root", root, "--out", tmp_path / "run")
    assert ran.returncode == 1 and "a classifier needs at least 2" in ran.stderr
    assert not (tmp_path / "run").exists()
    from envsound.data.registry import load_dataset
    from envsound.recipes.train import check_class_counts

    for i in range(2):
        write_tone(root / "hum" / f"{i}.wav", freq=110 + 10 * i, seconds=0.5)
    import logging

    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("envsound.recipes.train").addHandler(handler)
    try:
        check_class_counts(load_dataset("folder", root))
    finally:
        logging.getLogger("envsound.recipes.train").removeHandler(handler)
    assert any("fewer than 5 training clips (hum 2, beep 3)" in r.getMessage() for r in records)



def test_ctrl_c_during_training_says_how_to_go_on_and_exits_130(synthetic_root, tmp_path):
    import signal
    import time

    from conftest import TINY_OVERRIDES

    # 1000 epochs: Lightning's last.ckpt every 20 (fit.CHECKPOINTS_PER_RUN), the run far longer than the wait below
    sets = [arg for o in TINY_OVERRIDES + ("train.max_epochs=1000",) for arg in ("--set", o)]
    command = [sys.executable, "-m", "envsound", "train", "--dataset", "synthetic", "--root", str(synthetic_root),
               "--folds", "1,2", "--out", str(tmp_path / "run"), *sets]
    # a runner started in the background hands SIGINT on ignored, and Python then never raises KeyboardInterrupt
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        lines.append(line)
        if line.startswith("class balance") or not line:  # the last line before the epochs begin
            break
    resumable = tmp_path / "run" / "lightning" / "last.ckpt"  # written inside Lightning's loop, after the first epochs
    deadline = time.monotonic() + 120
    while not resumable.exists() and process.poll() is None:
        assert time.monotonic() < deadline, "no epoch finished before the deadline"
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    rest = process.stderr.read()
    assert process.wait(timeout=60) == 130, "".join(lines) + rest
    last = rest.strip().splitlines()[-1]
    assert last.startswith("envsound train: interrupted; finished files are complete; to go on: envsound train ")
    assert last.endswith("--resume") and "Traceback" not in rest


def test_train_reports_a_score_or_says_how_to_get_one(synthetic_root, tmp_path, envsound_main):
    from conftest import TINY_OVERRIDES

    sets = [arg for o in TINY_OVERRIDES for arg in ("--set", o)]
    ran = envsound_main("train", "--dataset", "synthetic", "--root", synthetic_root, "--folds", "1,2", "--out",
                        tmp_path / "a", *sets)
    assert ran.returncode == 0, ran.stderr
    assert f"envsound evaluate {tmp_path / 'a' / 'model.ckpt'} --dataset synthetic" in ran.stdout
    assert "--folds 3,4,5" in ran.stdout
    ran = envsound_main("train", "--dataset", "synthetic", "--root", synthetic_root, "--folds", "1,2", "--out",
                        tmp_path / "b", *sets, "--set", "train.val_fraction=0.25")
    assert ran.returncode == 0 and "validation accuracy 0." in ran.stdout, ran.stdout + ran.stderr


def test_serve_on_a_busy_port_is_one_line(trained_run, envsound_main):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ran = envsound_main("serve", trained_run.checkpoint, "--port", port)
    assert ran.returncode == 1, ran.stderr
    assert ran.stderr.strip().splitlines()[-1].startswith(f"envsound serve: error: --host 127.0.0.1 --port {port}: "
                                                         "cannot listen there")


def test_a_folder_of_sounds_gets_folds_so_it_can_be_cross_validated(tmp_path, envsound_main):
    from conftest import TINY_OVERRIDES

    root = tmp_path / "sounds"
    for i in range(6):
        write_tone(root / "beep" / f"{i}.wav", freq=1500 + 40 * i, seconds=1.0, sample_rate=16000)
        write_tone(root / "hum" / f"{i}.wav", freq=120 + 5 * i, seconds=1.0, sample_rate=16000)
    sets = [arg for o in TINY_OVERRIDES for arg in ("--set", o)]
    ran = envsound_main("cv", "--dataset", "folder", "--root", root, "--folds", "1,2", "--out", tmp_path / "cv", *sets)
    assert ran.returncode == 0, ran.stderr
    assert "has no folds: made 5, stratified by class and grouped by source recording" in ran.stderr
    import json

    summary = json.loads((tmp_path / "cv" / "cv.json").read_text())
    assert [f["fold"] for f in summary["folds"]] == [1, 2]


def test_a_missing_root_suggests_download_only_for_a_public_corpus(tmp_path, envsound_main):
    ran = envsound_main("train", "--dataset", "folder", "--root", tmp_path / "nope", "--out", tmp_path / "run")
    assert ran.returncode == 1 and "does not exist; check --root" in ran.stderr and "download" not in ran.stderr
    ran = envsound_main("train", "--dataset", "esc50", "--root", tmp_path / "nope", "--out", tmp_path / "run")
    assert ran.returncode == 1 and f"run 'envsound download esc50 --root {tmp_path / 'nope'}'" in ran.stderr


def test_help_states_each_default_once_and_none_for_required_options():
    import argparse

    from envsound.cli.main import HelpFormatter, build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    for name, command in commands.items():
        formatter = HelpFormatter(name)
        for action in command._actions:
            text = (formatter._get_help_string(action) or "").replace("%(default)s", "X")
            assert text.lower().count("default") <= 1, (name, action.option_strings, text)
            if action.required:
                assert "(default: X)" not in text, (name, action.option_strings)
            if action.nargs == 0:  # a flag: on when given, nothing to say
                assert "(default: X)" not in text, (name, action.option_strings)


BLOCKER = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, Block())
from envsound.cli.main import main
sys.exit(main(sys.argv[1:]))
"""
TRAIN_EXTRA = {"torch", "lightning", "torchmetrics", "sklearn", "scipy", "skops", "matplotlib", "audiomentations",
               "librosa", "numba", "fastapi", "uvicorn", "multipart", "fastapi_offline", "onnx", "onnxscript"}


def test_the_light_install_classifies_with_onnx_and_names_the_extra_it_lacks(trained_run, tmp_path, envsound_main):
    # what `pip install envsound` (no extras) has: numpy, soundfile, soxr, onnxruntime, pyyaml, tqdm
    assert envsound_main("export", trained_run.checkpoint, "--out", tmp_path / "m.onnx").returncode == 0
    clip = write_tone(tmp_path / "a.wav")
    light = [sys.executable, "-c", BLOCKER.format(blocked=TRAIN_EXTRA)]
    ran = subprocess.run(light + ["predict", str(tmp_path / "m.onnx"), str(clip)], capture_output=True, text=True,
                         timeout=120)
    assert ran.returncode == 0 and "a.wav: " in ran.stdout, ran.stderr
    ran = subprocess.run(light + ["predict", str(trained_run.checkpoint), str(clip)], capture_output=True, text=True,
                         timeout=120)
    assert ran.returncode == 1 and ran.stderr.strip().splitlines()[-1] == (
        "envsound predict: error: this needs torch, which comes with the 'train' extra: pip install "
        "'envsound[train]'"), ran.stderr
    ran = subprocess.run(light + ["train", "--dataset", "folder", "--root", str(tmp_path), "--out", str(tmp_path / "r")],
                         capture_output=True, text=True, timeout=120)
    assert ran.returncode == 1 and "comes with the 'train' extra: pip install 'envsound[train]'" in ran.stderr
    assert "Traceback" not in ran.stderr


def test_the_page_offers_every_format_the_server_reads(trained_run):
    from fastapi.testclient import TestClient

    from envsound.app.server import create_app
    from envsound.inference.api import SUPPORTED_EXTENSIONS, load_model

    page = TestClient(create_app(load_model(trained_run.checkpoint, device="cpu"))).get("/").text
    accept = page.split('accept="', 1)[1].split('"', 1)[0].split(",")
    assert accept[0] == "audio/*" and tuple(accept[1:]) == SUPPORTED_EXTENSIONS and ".w64" in accept
