"""``envsound grid`` from the command line, in-process (knn baseline: the loop and the table are what is tested)."""

import json

from conftest import TINY_OVERRIDES
from envsound.cli.main import main


def envsound(capsys, *args) -> tuple[int, str, str]:
    """``envsound ARGS`` run by ``main`` in this process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_grid_command_writes_the_table_and_reuses_points(tmp_path, synthetic_root, capsys):
    sets = [a for o in TINY_OVERRIDES if not o.startswith("model.") for a in ("--set", o)]
    args = ["grid", "--dataset", "synthetic", "--root", synthetic_root, "--folds", "1,2", "--model", "knn",
            "--out", tmp_path / "g", "--cache-dir", tmp_path / "cache", "-q", *sets,
            "--set", "train.seed=0,1", "--set", "features.n_mfcc=13,20"]
    code, out, err = envsound(capsys, *args)
    assert code == 0, err
    assert "| train.seed \\ features.n_mfcc | 13 | 20 |" in out and "4 point(s) (4 run now, 0 reused)" in out
    grid = json.loads((tmp_path / "g" / "grid.json").read_text())
    assert [p["values"] for p in grid["points"]][1] == {"train.seed": "0", "features.n_mfcc": "20"}
    assert (tmp_path / "g" / "train.seed=1__features.n_mfcc=13" / "cv.json").exists()
    code, out, _ = envsound(capsys, *args)
    assert code == 0 and "(0 run now, 4 reused)" in out
    code, _, err = envsound(capsys, *args[:-1], "features.n_mfcc=13,x")
    assert code == 1 and "features.n_mfcc" in err and "Traceback" not in err
