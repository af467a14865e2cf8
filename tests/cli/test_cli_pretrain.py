"""``envsound pretrain`` and ``--init`` on train / cv on real files: in-process through ``main`` (the ``envsound_main``
fixture), and as a real process where one is killed and resumed."""

import json
import subprocess
import sys

import numpy as np
import soundfile as sf
import torch

from conftest import TINY_OVERRIDES, kill_after_first_checkpoint
from envsound.models.checkpoint import load_checkpoint

SETS = [arg for o in TINY_OVERRIDES + ("model.name=dtu", "model.filters=4", "train.max_epochs=1")
        for arg in ("--set", o)]


def test_pretrain_then_train_and_cv_from_the_encoder(tmp_path, synthetic_root, envsound_main):
    cae = tmp_path / "cae"
    run = envsound_main("pretrain", "--dataset", "synthetic", "--root", synthetic_root, "--exclude-folds", "3,4,5",
                        "--decoder", "unpool", "--out", cae, "--cache-dir", tmp_path / "cache", *SETS)
    assert run.returncode == 0, run.stderr
    assert "pre-trained the dtu autoencoder (unpool) on" in run.stdout
    assert (cae / "reconstructions.png").stat().st_size > 1000
    checkpoint = load_checkpoint(cae / "autoencoder.ckpt")
    assert checkpoint.meta["kind"] == "autoencoder"
    assert checkpoint.meta["n_train_clips"] + checkpoint.meta["n_val_clips"] == 40  # folds 1 and 2 only

    run = envsound_main("train", "--dataset", "synthetic", "--root", synthetic_root, "--folds", "1,2", "--out",
                        tmp_path / "t", "--cache-dir", tmp_path / "cache", "--init", cae / "autoencoder.ckpt",
                        "--freeze-encoder-epochs", "1", *SETS)
    assert run.returncode == 0, run.stderr
    trained = load_checkpoint(tmp_path / "t" / "model.ckpt")
    assert trained.config.transfer.mode == "gradual" and trained.config.transfer.freeze_epochs == 1
    assert torch.equal(trained.state_dict["encoder.convs.1.weight"], checkpoint.state_dict["encoder.convs.1.weight"])

    # cross-validating over folds 1 and 2 from an encoder pre-trained on them tests on clips it has heard: refused,
    # unless the user says so (then each fold warns)
    cv = ["cv", "--dataset", "synthetic", "--root", synthetic_root, "--folds", "1,2", "--out", tmp_path / "cv",
          "--cache-dir", tmp_path / "cache", "--init", cae / "autoencoder.ckpt", *SETS]
    run = envsound_main(*cv)
    assert run.returncode == 1 and "autoencoder.ckpt was trained on 20 of this split's 20 validation/test" in run.stderr
    run = envsound_main(*cv, "--allow-overlap")
    assert run.returncode == 0, run.stderr
    assert run.stderr.count("used anyway") == 2
    assert json.loads((tmp_path / "cv" / "cv.json").read_text())["n_folds"] == 2
    assert load_checkpoint(tmp_path / "cv" / "fold_1" / "model.ckpt").meta["transfer"]["source"] == str(cae / "autoencoder.ckpt")

    run = envsound_main("train", "--dataset", "synthetic", "--root", synthetic_root, "--out", tmp_path / "bad",
                        "--init", cae / "autoencoder.ckpt", "-q", *SETS, "--set", "model.filters=8")
    assert run.returncode == 1
    assert "model.filters 4 in the checkpoint, 8 here" in run.stderr and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


def test_pretrain_on_an_unlabelled_folder_with_a_broken_file(tmp_path, envsound_main):
    rng = np.random.default_rng(5)
    root = tmp_path / "recordings"
    for i, seconds in enumerate((0.7, 1.5, 4.0, 2.2, 1.1, 3.3)):
        path = root / f"site{i % 2}" / f"rec{i}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        t = np.arange(int(16000 * seconds)) / 16000
        sf.write(path, (0.3 * np.sin(2 * np.pi * (300 + 200 * i) * t) + 0.02 * rng.standard_normal(len(t)))
                 .astype(np.float32), 16000)
    (root / "site1" / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk")
    args = ["pretrain", "--dataset", "unlabelled", "--root", root, "--decoder", "upsample", "--out", tmp_path / "o",
            "--no-cache", *SETS]
    refused = envsound_main(*args)
    assert refused.returncode == 1 and "broken.wav" in refused.stderr and "Traceback" not in refused.stderr
    assert not (tmp_path / "o" / "autoencoder.ckpt").exists()
    skipped = envsound_main(*args, "--skip-bad")
    assert skipped.returncode == 1, skipped.stderr  # finished, but says it left a file out
    assert "skipped" in skipped.stderr and "broken.wav" in skipped.stderr
    assert (tmp_path / "o" / "autoencoder.ckpt").exists() and (tmp_path / "o" / "reconstructions.png").exists()

    cnn = envsound_main("pretrain", "--dataset", "unlabelled", "--root", root, "--model", "cnn", "--decoder", "unpool",
                        "--out", tmp_path / "c", "--skip-bad", "--no-cache")
    assert cnn.returncode == 1 and "average-pools" in cnn.stderr


def test_killed_pretraining_resumes(tmp_path, synthetic_root):
    """SIGKILL a real pre-training process after its first epoch; --resume then finishes the remaining epochs."""
    args = [sys.executable, "-m", "envsound.cli.main", "pretrain", "--dataset", "synthetic", "--root",
            str(synthetic_root), "--folds", "1,2", "--decoder", "unpool", "--out", str(tmp_path), "--no-cache",
            *SETS, "--set", "train.max_epochs=8"]
    last = kill_after_first_checkpoint(args, tmp_path)
    assert not (tmp_path / "autoencoder.ckpt").exists(), "a killed run must not leave an autoencoder"
    assert torch.load(last, weights_only=False)["epoch"] < 7
    resumed = subprocess.run(args + ["--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert load_checkpoint(tmp_path / "autoencoder.ckpt").meta["epochs"] == 8
