"""``envsound grid`` as the real console entry point (knn baseline: the loop and the table are what is tested)."""

import json
import subprocess
import sys

from conftest import TINY_OVERRIDES


def envsound(*args):
    return subprocess.run([sys.executable, "-m", "envsound.cli.main", *map(str, args)], capture_output=True,
                          text=True, timeout=300)


def test_grid_command_writes_the_table_and_reuses_points(tmp_path, synthetic_root):
    sets = [a for o in TINY_OVERRIDES if not o.startswith("model.") for a in ("--set", o)]
    args = ["grid", "--dataset", "synthetic", "--root", synthetic_root, "--folds", "1,2", "--model", "knn",
            "--out", tmp_path / "g", "--cache-dir", tmp_path / "cache", "-q", *sets,
            "--set", "train.seed=0,1", "--set", "features.n_mfcc=13,20"]
    run = envsound(*args)
    assert run.returncode == 0, run.stderr
    assert "| train.seed \\ features.n_mfcc | 13 | 20 |" in run.stdout and "4 point(s) (4 run now, 0 reused)" in run.stdout
    grid = json.loads((tmp_path / "g" / "grid.json").read_text())
    assert [p["values"] for p in grid["points"]][1] == {"train.seed": "0", "features.n_mfcc": "20"}
    assert (tmp_path / "g" / "train.seed=1__features.n_mfcc=13" / "cv.json").exists()
    again = envsound(*args)
    assert again.returncode == 0 and "(0 run now, 4 reused)" in again.stdout
    bad = envsound(*args[:-1], "features.n_mfcc=13,x")
    assert bad.returncode == 1 and "features.n_mfcc" in bad.stderr and "Traceback" not in bad.stderr
