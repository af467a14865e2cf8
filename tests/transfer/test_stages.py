"""Issue 68: a ``--preset sed`` run stopped by SIGTERM (a cluster's time limit, a shutdown) after 80 minutes of its
two frame stages had kept nothing, and its folder was removed as one that held nothing. Each stage now keeps its
state at every epoch's end, SIGTERM stops the run with the ``--resume`` line, and ``--resume`` goes on from the
epoch after the saved one."""

from __future__ import annotations

import sys

import torch

from conftest import stopped_when_saved
from modelfiles import release_file

DEADLINE_S = 90  # for a state to appear: the run's start, its features and the trunk's pass; seconds when alone


def run_until(command: list[str], *, state, stage: str) -> tuple[int, str]:
    """Run ``command``; when ``state`` exists (``None``: never), send it SIGTERM; its exit code and stderr. Fails at
    once when the run ends, or when ``stage`` logs its third epoch, with no ``state`` on disk."""
    return stopped_when_saved(command, state, deadline_s=DEADLINE_S, gave_up=lambda said: f"{stage}: epoch 3/" in said)


def saved_epochs(state) -> int:
    """Whole epochs a stage's state holds (a stop keeps it at the batch it stopped after: often inside an epoch)."""
    loops = torch.load(state, map_location="cpu", weights_only=True)["loops"]
    return loops["fit_loop"]["epoch_progress"]["current"]["completed"]


def test_a_sed_run_stopped_in_either_frame_stage_keeps_its_epochs_and_resumes_from_the_next(synthetic_root, tmp_path):
    from envsound.cli.main import main

    mix = tmp_path / "mix"
    assert main(["mix", "--quiet", "--dataset", "synthetic", "--root", str(synthetic_root), "--folds", "1,2",
                 "--out", str(mix), "--curated", "8", "--noisy-factor", "0", "--min-seconds", "2",
                 "--max-seconds", "3", "--max-events", "2", "--sample-rate", "32000", "--seed", "1"]) == 0
    out = tmp_path / "run"
    command = [sys.executable, "-m", "envsound", "train", "--dataset", "fsdkaggle2019", "--root", str(mix),
               "--folds", "1,2", "--init", str(release_file(tmp_path)), "--preset", "sed", "--out", str(out),
               "--cache-dir", str(tmp_path / "cache"), "--set", "features.window_seconds=2", "--set",
               "features.eval_hop_seconds=1", "--set", "train.batch_size=4", "--set", "runtime.precision=32"]
    head, finetune = out / "frame_head" / "last.ckpt", out / "frame_finetune" / "last.ckpt"
    ever = ["--set", "train.max_epochs=100000", "--set", "events.finetune_epochs=100000"]  # until stopped

    # stopped in the frame head: the folder, its config and the head's state are kept; one line says how to go on
    code, said = run_until(command + ever, state=head, stage="frame head")
    assert code == 130 and "Traceback" not in said, said
    last = said.strip().splitlines()[-1]
    assert last.startswith("envsound train: interrupted; finished files are complete; to go on: envsound train ")
    assert last.endswith(" --resume"), last
    assert (out / "config.yaml").exists() and head.exists() and not (out / "model.ckpt").exists()
    done = saved_epochs(head)

    # resumed with one more epoch: the head goes on at the next epoch; stopped again in the fine-tuning
    head_epochs = ["--set", f"train.max_epochs={done + 1}"]
    code, said = run_until(command + ever + head_epochs + ["--resume"], state=finetune,
                           stage="fine-tuning the frame network")
    assert code == 130 and "Traceback" not in said, said
    assert f"frame head: resumed after epoch {done}/{done + 1}" in said
    epochs = [line.split(",")[0] for line in said.splitlines() if line.startswith("frame head: epoch ")]
    assert epochs == [f"frame head: epoch {done + 1}/{done + 1}"], said
    assert finetune.exists() and not (out / "model.ckpt").exists()
    tuned = saved_epochs(finetune)

    # resumed with one more epoch of fine-tuning: the head is not trained again; the model is written
    code, said = run_until(command + head_epochs + ["--set", f"events.finetune_epochs={tuned + 1}", "--resume"],
                           state=None, stage="")
    assert code == 0, said
    assert "frame head: epoch" not in said
    assert f"frame head: trained before; the fine-tuning goes on from {finetune}" in said
    assert f"fine-tuning the frame network: resumed after epoch {tuned}/{tuned + 1}" in said
    epochs = [line.split(",")[0] for line in said.splitlines() if line.startswith("fine-tuning the frame network: ep")]
    assert epochs == [f"fine-tuning the frame network: epoch {tuned + 1}/{tuned + 1}"], said
    checkpoint = torch.load(out / "model.ckpt", map_location="cpu", weights_only=False)
    assert checkpoint["meta"]["frame_head"] == {"labels": "strong", "finetune_epochs": tuned + 1}
