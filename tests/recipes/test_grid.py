"""Grid search: axes from --set lists, a rows x columns table, resumability (tiny 2x1 grid, 2 folds, 1 epoch)."""

import json

import pytest

from conftest import TINY_OVERRIDES
from envsound.config import BATCH_AUGMENT_KEYS
from envsound.config.files import bare_config
from envsound.errors import ConfigError, EnvsoundError
from envsound.features.cache import FeatureCache
from envsound.recipes.context import RunContext
from envsound.recipes.grid import grid_markdown, grid_search, point_dir_name, split_grid_overrides

BASE = TINY_OVERRIDES + ("model.name=dtu", "train.max_epochs=1")


def test_split_grid_overrides():
    fixed, axes = split_grid_overrides(["train.max_epochs=5", "model.filters=16,32,64", "train.batch_size=16, 32"])
    assert fixed == ["train.max_epochs=5"]
    assert axes == [("model.filters", ["16", "32", "64"]), ("train.batch_size", ["16", "32"])]
    with pytest.raises(ConfigError, match="twice"):
        split_grid_overrides(["model.filters=1,2", "model.filters=3,4"])
    with pytest.raises(ConfigError, match="empty value"):
        split_grid_overrides(["model.filters=1,,2"])


def test_two_keys_make_rows_and_columns():
    axes = [("model.filters", ["16", "32"]), ("train.batch_size", ["8", "16", "32"])]
    points = [{"values": {"model.filters": f, "train.batch_size": b}, "mean_accuracy": 0.5, "std_accuracy": 0.125}
              for f in ("16", "32") for b in ("8", "16", "32")]
    lines = grid_markdown(["model.filters", "train.batch_size"], axes, points).splitlines()
    assert lines[0] == "| model.filters \\ train.batch_size | 8 | 16 | 32 |"
    assert lines[2] == "| 16 | 50.0 ± 12.5 | 50.0 ± 12.5 | 50.0 ± 12.5 |" and lines[3].startswith("| 32 |")


def test_grid_runs_each_point_once_and_resumes(tmp_path, synthetic_manifest):
    config = bare_config(overrides=BASE)
    axes = [("model.filters", ["2", "4"]), ("train.batch_size", ["16"])]
    cache = FeatureCache(tmp_path / "cache")
    result = grid_search(synthetic_manifest, config, axes, folds=[1, 2], out_dir=tmp_path / "g",
                         context=RunContext(cache=cache, progress=False))
    assert result.n_run == 2 and [p["values"]["model.filters"] for p in result.points] == ["2", "4"]
    assert result.markdown.splitlines()[0] == "| model.filters \\ train.batch_size | 16 |"
    assert len(result.markdown.splitlines()) == 4 + 2  # header, rule, 2 rows, blank, caption
    written = json.loads((tmp_path / "g" / "grid.json").read_text())
    assert written["keys"] == ["model.filters", "train.batch_size"] and len(written["points"]) == 2
    assert (tmp_path / "g" / "grid.md").read_text() == result.markdown
    point = tmp_path / "g" / point_dir_name({"model.filters": "2", "train.batch_size": "16"})
    summary = json.loads((point / "cv.json").read_text())
    assert summary["config"]["model"]["filters"] == 2 and summary["n_folds"] == 2
    stamp = (point / "cv.json").stat().st_mtime_ns

    again = grid_search(synthetic_manifest, config, axes, folds=[1, 2], out_dir=tmp_path / "g",
                        context=RunContext(cache=cache, progress=False))
    assert again.n_run == 0 and again.points == result.points and (point / "cv.json").stat().st_mtime_ns == stamp

    saved = summary["config"]  # as a grid of checkpoint format 12 wrote it: runtime and mixing keys under train
    saved["train"].update(saved.pop("runtime"))
    saved["train"].update({key: saved["augment"].pop(key) for key in BATCH_AUGMENT_KEYS if key != "bc_gain"})
    (point / "cv.json").write_text(json.dumps(summary))
    older = grid_search(synthetic_manifest, config, axes, folds=[1, 2], out_dir=tmp_path / "g",
                        context=RunContext(cache=cache, progress=False))
    assert older.n_run == 0  # the same settings under their old names: reused

    other = bare_config(overrides=BASE + ("train.lr=0.01",))
    with pytest.raises(EnvsoundError, match="other settings"):
        grid_search(synthetic_manifest, other, axes, folds=[1, 2], out_dir=tmp_path / "g",
                    context=RunContext(progress=False))
    with pytest.raises(ConfigError, match="model.filters"):
        grid_search(synthetic_manifest, config, [("model.filters", ["4", "0"])], folds=[1, 2],
                    out_dir=tmp_path / "bad", context=RunContext(progress=False))
    assert not (tmp_path / "bad").exists()  # an invalid value fails before anything runs
