"""``envsound grid`` from the command line, in-process (knn baseline: the loop and the table are what is tested)."""

import json

from conftest import TINY_OVERRIDES


def test_grid_command_writes_the_table_and_reuses_points(tmp_path, synthetic_root, envsound_main):
    sets = [a for o in TINY_OVERRIDES if not o.startswith("model.") for a in ("--set", o)]
    args = ["grid", "--dataset", "synthetic", "--root", synthetic_root, "--folds", "1,2", "--model", "knn",
            "--out", tmp_path / "g", "--cache-dir", tmp_path / "cache", "-q", *sets,
            "--set", "train.seed=0,1", "--set", "features.n_mfcc=13,20"]
    run = envsound_main(*args)
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "| train.seed \\ features.n_mfcc | 13 | 20 |" in out and "4 point(s) (4 run now, 0 reused)" in out
    grid = json.loads((tmp_path / "g" / "grid.json").read_text())
    assert [p["values"] for p in grid["points"]][1] == {"train.seed": "0", "features.n_mfcc": "20"}
    assert (tmp_path / "g" / "train.seed=1__features.n_mfcc=13" / "cv.json").exists()
    run = envsound_main(*args)
    assert run.returncode == 0 and "(0 run now, 4 reused)" in run.stdout
    run = envsound_main(*args[:-1], "features.n_mfcc=13,x")
    assert run.returncode == 1 and "features.n_mfcc" in run.stderr and "Traceback" not in run.stderr
