"""Rough edges a new user hit with a folder of their own clips (issue 55): cross-validating a small folder, one
broken file, and the lock file every run folder kept. Real WAV files, real (tiny) training through the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from audiofactory import write_tone
from conftest import TINY_OVERRIDES

from envsound.fileio import LOCK_NAME

# one epoch, fp32 without channels-last: a single runtime candidate, so no runtime probe
SETS = [part for o in (*TINY_OVERRIDES, "train.max_epochs=1", "runtime.precision=32", "runtime.channels_last=false")
        for part in ("--set", o)]
QUICK = ["--model", "knn", "--no-cache",  # cv over every fold in seconds (a baseline takes no model.filters)
         *[part for o in TINY_OVERRIDES if not o.startswith("model.") for part in ("--set", o)]]


def make_folder(root: Path, sizes: dict[str, int], *, broken: bool = False) -> Path:
    """``root/<label>/<i>.wav``, ``sizes[label]`` tones a class; ``broken``: and ``dog/broken.wav`` of random bytes."""
    for k, (label, n) in enumerate(sizes.items()):
        for i in range(n):
            write_tone(root / label / f"{i}.wav", seconds=1.0, sample_rate=16000, freq=300 * (k + 1) + 40 * i, seed=i)
    if broken:
        (root / "dog" / "broken.wav").write_bytes(np.random.default_rng(0).bytes(4000))
    return root


THREE_BY_FOUR = {"dog": 4, "rain": 4, "siren": 4}


def test_cv_on_a_folder_of_3_classes_of_4_clips_runs_over_4_folds(tmp_path, envsound_main):
    root = make_folder(tmp_path / "clips", THREE_BY_FOUR)
    run = envsound_main("cv", "--dataset", "folder", "--root", root, "--out", tmp_path / "cv", *QUICK)
    assert run.returncode == 0, run.stderr
    assert "over 4 folds" in run.stdout and run.stdout.count("(3 clips)") == 4
    run = envsound_main("cv", "--dataset", "folder", "--root", root, "--folds", "1,2", "--out", tmp_path / "two",
                        *QUICK)
    assert run.returncode == 0, run.stderr
    assert "over 2 folds" in run.stdout


def test_cv_on_a_folder_with_a_class_of_one_clip_names_the_class_and_how_to_leave_it_out(tmp_path, envsound_main):
    root = make_folder(tmp_path / "clips", {**THREE_BY_FOUR, "cat": 1})
    run = envsound_main("cv", "--dataset", "folder", "--root", root, "--out", tmp_path / "cv", *QUICK)
    assert run.returncode == 1
    error = run.stderr.strip().splitlines()[-1]
    assert error.startswith("envsound cv: error: ") and "class 'cat' has 1 recording" in error
    assert "--exclude-classes cat" in error and not (tmp_path / "cv").exists()
    run = envsound_main("cv", "--dataset", "folder", "--root", root, "--exclude-classes", "cat",
                        "--out", tmp_path / "cv", *QUICK)
    assert run.returncode == 0, run.stderr
    assert "over 4 folds" in run.stdout


@pytest.mark.parametrize("command", ["train", "cv"])
def test_a_broken_file_stops_the_run_and_the_error_names_skip_bad(tmp_path, envsound_main, command):
    root = make_folder(tmp_path / "clips", THREE_BY_FOUR, broken=True)
    run = envsound_main(command, "--dataset", "folder", "--root", root, "--out", tmp_path / "out", *QUICK)
    assert run.returncode == 1
    error = run.stderr.strip().splitlines()[-1]
    assert error.startswith(f"envsound {command}: error: ") and "broken.wav" in error and "--skip-bad" in error


def _summary(run) -> str:
    return run.stderr.strip().splitlines()[-1]


def test_every_dataset_command_exits_1_after_one_summary_when_files_were_left_out_else_0(tmp_path, envsound_main):
    """train, cv, evaluate and embed-clips: 0 when nothing was left out; with --skip-bad and a broken file, 1, the file
    named once in the whole output, and a summary as the last line."""
    clean = make_folder(tmp_path / "clean", THREE_BY_FOUR)
    broken = make_folder(tmp_path / "broken", THREE_BY_FOUR, broken=True)
    run = envsound_main("train", "--dataset", "folder", "--root", clean, "--out", tmp_path / "model", "--no-cache",
                        *SETS)
    assert run.returncode == 0, run.stderr
    model = tmp_path / "model" / "model.ckpt"
    runs = {
        "train": ["train", "--dataset", "folder", "--out", tmp_path / "t", "--no-cache", *SETS],
        "cv": ["cv", "--dataset", "folder", "--out", tmp_path / "c", *QUICK],
        "evaluate": ["evaluate", model, "--dataset", "folder", "--no-cache"],
        "embed-clips": ["embed-clips", model, "--dataset", "folder", "--out", tmp_path / "e.npz", "--no-cache"],
    }
    for command, args in runs.items():
        run = envsound_main(*args, "--root", broken, "--skip-bad")
        assert run.returncode == 1, (command, run.stderr)
        assert (run.stdout + run.stderr).count("broken.wav") == 1, (command, run.stdout + run.stderr)
        assert _summary(run) == (f"envsound {command}: 1 of 13 file(s) left out as unusable (--skip-bad; each named "
                                 "above); the rest ran: exit status 1"), command
    for command in ("evaluate", "embed-clips"):  # nothing left out: 0 (train and cv were 0 above, on clean clips)
        run = envsound_main(*runs[command], "--root", clean, "--skip-bad")
        assert run.returncode == 0 and "left out" not in run.stderr, (command, run.stderr)


def test_a_run_folder_keeps_no_lock_file_and_a_failed_run_leaves_no_folder(tmp_path, synthetic_root, envsound_main):
    data = ["--dataset", "synthetic", "--root", synthetic_root, *QUICK]
    assert envsound_main("train", *data, "--folds", "1", "--out", tmp_path / "train").returncode == 0
    assert envsound_main("cv", *data, "--folds", "1,2", "--out", tmp_path / "cv").returncode == 0
    assert (tmp_path / "train" / "model.ckpt").exists() and (tmp_path / "cv" / "cv.json").exists()
    assert [p.relative_to(tmp_path) for p in tmp_path.rglob(LOCK_NAME)] == []
    # fold 9 does not exist: the run fails after it took its folder, having written nothing
    run = envsound_main("cv", *data, "--folds", "1,9", "--out", tmp_path / "new" / "x")
    assert run.returncode == 1 and "9" in run.stderr
    assert not (tmp_path / "new").exists(), "a failed run that wrote nothing must take the folders it made with it"
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("the user's")
    assert envsound_main("cv", *data, "--folds", "1,9", "--out", mine).returncode == 1
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]


def test_classes_chosen_by_flag_keep_the_folds_their_clips_have_among_every_class(tmp_path):
    """train --folds 1,2,3 --classes dog,rain then evaluate --folds 4 must test clips that training never saw."""
    from envsound.cli.dataset_flags import manifest_of
    from envsound.cli.main import build_parser

    root = make_folder(tmp_path / "clips", {"dog": 5, "rain": 5, "siren": 6})

    def folds_of(*flags) -> dict[str, int]:
        args = build_parser().parse_args(["cv", "--dataset", "folder", "--root", str(root), "--out", "x", *flags])
        return {r.clip_id: r.fold for r in manifest_of(args, rotate=True).records}

    every = folds_of()
    chosen = folds_of("--classes", "dog,rain")
    assert set(every.values()) == {1, 2, 3, 4, 5} and chosen == {c: every[c] for c in chosen}


def test_event_tables_without_events_name_the_events_flag(tmp_path, envsound_main):
    """Issue 69: `--event-tables` without `--events` was refused with "ask for the events too", naming no flag."""
    write_tone(tmp_path / "a.wav", seconds=1.0, sample_rate=16000, freq=440, seed=0)
    ran = envsound_main("predict", "efficientat-mn04", tmp_path / "a.wav", "--out", tmp_path / "scan",
                        "--event-tables", "raven")
    assert ran.returncode == 1 and "--event-tables lists each file's events: add --events" in ran.stderr, ran.stderr
    ran = envsound_main("predict", "efficientat-mn04", tmp_path / "a.wav", "--event-tables", "raven", "--events")
    assert ran.returncode == 1 and "add --out DIR" in ran.stderr, ran.stderr  # tables go into a results folder
    assert not (tmp_path / "scan").exists()


def test_a_misspelt_dataset_name_gets_the_name_it_meant(tmp_path, envsound_main):
    """Issue 69: `--dataset esc-50` listed the valid names without saying which was meant."""
    ran = envsound_main("cv", "--dataset", "esc-50", "--root", tmp_path, "--out", tmp_path / "cv", *QUICK)
    assert ran.returncode == 1 and "unknown dataset 'esc-50' (did you mean 'esc50'?)" in ran.stderr, ran.stderr
