"""The command line refuses augmentation that would leak held-out audio, in one line."""

from conftest import TINY_OVERRIDES


def test_train_refuses_a_background_folder_holding_the_left_out_folds(tmp_path, synthetic_root, envsound_main):
    sets = [arg for o in TINY_OVERRIDES + ("augment.copies=1", "augment.background=1",
                                           f"augment.background_folder={synthetic_root / 'audio'}")
            for arg in ("--set", o)]
    run = envsound_main("train", "--dataset", "synthetic", "--root", synthetic_root, "--folds", "1,2",
                        "--out", tmp_path / "t", "--no-cache", *sets)
    assert run.returncode == 1
    assert "Traceback" not in run.stderr, run.stderr
    error = run.stderr.strip().splitlines()[-1]  # after the INFO line listing the dataset
    assert error.startswith("envsound train: error: augment.background_folder holds 60 file(s)"), run.stderr
    assert "validation or test clips" in error and "3-alarm_beep-000.wav" in error
    assert not (tmp_path / "t" / "model.ckpt").exists()
