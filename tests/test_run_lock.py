"""The run folder's lock (issue 55, rough edge 8): two runs never write one folder, and none leaves a lock file, nor
a folder that it made and failed to fill. (A lock held by another process: tests/training/test_multiprocess.py.)"""

from __future__ import annotations

import os

import pytest

from envsound.errors import EnvsoundError
from envsound.fileio import LOCK_NAME, run_lock


def test_a_second_lock_on_a_held_folder_is_refused_and_a_released_one_leaves_no_file(tmp_path):
    out = tmp_path / "run"
    with run_lock(out):
        assert (out / LOCK_NAME).read_text() == str(os.getpid())
        with pytest.raises(EnvsoundError, match=rf"another envsound run \(process {os.getpid()}\) is writing here"):
            with run_lock(out):
                pass
        (out / "result.json").write_text("{}")
    assert sorted(p.name for p in out.iterdir()) == ["result.json"]
    with run_lock(out):  # free again
        pass
    assert sorted(p.name for p in out.iterdir()) == ["result.json"]


def test_a_failed_run_removes_the_folders_it_made_while_they_hold_nothing(tmp_path):
    out = tmp_path / "runs" / "a"
    with pytest.raises(RuntimeError), run_lock(out, scratch=("config.yaml",)):
        (out / "config.yaml").write_text("model: cnn\n")
        (out / "logs").mkdir()
        raise RuntimeError("the run failed before any result")
    assert not (tmp_path / "runs").exists()


def test_a_failed_run_keeps_what_it_produced_and_any_folder_that_was_there(tmp_path):
    out = tmp_path / "made"
    with pytest.raises(RuntimeError), run_lock(out, scratch=("config.yaml",)):
        (out / "config.yaml").write_text("model: cnn\n")
        (out / "lightning").mkdir()
        (out / "lightning" / "last.ckpt").write_bytes(b"an epoch's work")  # what --resume goes on from
        raise RuntimeError("interrupted")
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml", "lightning"]
    there = tmp_path / "there"
    there.mkdir()
    with pytest.raises(RuntimeError), run_lock(there, scratch=("config.yaml",)):
        (there / "config.yaml").write_text("model: cnn\n")
        raise RuntimeError("failed")
    assert sorted(p.name for p in there.iterdir()) == ["config.yaml"]  # the user's folder: only the lock goes


def test_a_train_run_that_fails_after_writing_its_config_leaves_no_folder(tmp_path, synthetic_manifest, tiny_config):
    from envsound.recipes.context import RunContext
    from envsound.recipes.run_folder import RunFolder

    folder = RunFolder(tmp_path / "run", checkpoint_name="model.ckpt", context=RunContext(progress=False))
    with pytest.raises(RuntimeError), folder.writing(tiny_config):
        assert folder.config_path.exists()
        raise RuntimeError("a bad clip found while decoding")
    assert not folder.path.exists()
