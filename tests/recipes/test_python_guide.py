"""docs/guide/python.md runs as written: envsound.train / cross_validate / evaluate from one import, on a generated
folder of three classes, from an installed efficientat-mn04 (the shared AudioSet weights when beside the clone, else
a release-format file at random weights: the same code path, the accuracy not asserted then)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from audiofactory import write_my_sounds

import envsound
from envsound.transfer.install import install_pretrained

REPO = Path(__file__).resolve().parents[2]
GUIDE = REPO / "docs" / "guide" / "python.md"
WEIGHTS = REPO.parent / "shared" / "pretrained" / "efficientat" / "mn04_as_mAP_432.pt"


def guide_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", GUIDE.read_text(encoding="utf-8"), re.S)


@pytest.fixture
def my_sounds(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ENVSOUND_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("ENVSOUND_CACHE", str(tmp_path / "cache"))
    write_my_sounds()
    if WEIGHTS.exists():
        install_pretrained("efficientat-mn04", source_file=WEIGHTS, progress=False)
    else:
        from test_efficientat import release_state, write_labels

        torch.save(release_state(0.4), tmp_path / "mn04_as_mAP_432.pt")
        write_labels(tmp_path)
        install_pretrained("efficientat-mn04", source_file=tmp_path / "mn04_as_mAP_432.pt", progress=False)
    return tmp_path


def test_the_python_guide_runs_as_written(my_sounds, capsys):
    blocks = guide_blocks()
    assert len(blocks) == 3
    exec(compile(blocks[0], str(GUIDE), "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"\d\.\d{3} ± \d\.\d{3} over 5 folds", out[0]), out  # 5 recordings a class: 5 folds
    assert out[1].endswith("model.ckpt 15 clips")
    assert re.fullmatch(r"accuracy \d\.\d{3} on 6 unseen clips", out[3]), out  # folds 4 and 5: 2 clips a class
    if WEIGHTS.exists():  # the real network tells a 900-Hz tone from noise and a quiet 2.5-kHz tone
        assert "'label': 'doorbell'" in out[2].split("}")[0], out
    exec(compile(blocks[1], str(GUIDE), "exec"), {})
    assert capsys.readouterr().out.strip() == "cnn 2 epochs, 0 files left out"
    exec(compile(blocks[2], str(GUIDE), "exec"), {})
    assert "train.max_epochs" in capsys.readouterr().out


def test_a_run_result_lists_the_files_left_out(my_sounds):
    Path("my_sounds/kettle/broken.wav").write_bytes(b"RIFF not really a wave file")
    with pytest.raises(envsound.AudioLoadError, match="broken.wav"):
        envsound.train(envsound.dataset("folder", root="my_sounds"), model="cnn", out="runs/a", settings=TINY)
    data = envsound.dataset("folder", root="my_sounds", skip_bad=True)
    run = envsound.train(data, model="cnn", out="runs/b", settings=TINY)
    assert [Path(path).name for path, _ in run.skipped] == ["broken.wav"] and run.model_path.exists()
    assert run.metrics["n_train"] == 15


def test_the_old_keyword_form_still_trains_with_a_deprecation_warning(my_sounds):
    """Issue 66: envsound.train(dataset=..., root=..., skip_bad=..., resume=...) became train(envsound.dataset(...),
    options=RunOptions(...)); the old keywords are turned into those values (one path) for a release."""
    Path("my_sounds/kettle/broken.wav").write_bytes(b"RIFF not really a wave file")
    with pytest.warns(DeprecationWarning, match=r"envsound.dataset\(NAME, root="):
        run = envsound.train(dataset="folder", root="my_sounds", folds=[1, 2, 3], model="cnn", out="runs/old",
                             settings=TINY, skip_bad=True, cache=False, overwrite=True)
    new = envsound.train(envsound.dataset("folder", root="my_sounds", folds=[1, 2, 3], skip_bad=True), model="cnn",
                         out="runs/new", settings=TINY, options=envsound.RunOptions(cache=False, overwrite=True))
    assert run.metrics["n_train"] == new.metrics["n_train"] == 9 and run.skipped == new.skipped
    assert run.metrics["held_out_folds"] == [4, 5]
    with pytest.warns(DeprecationWarning):
        test = envsound.evaluate(run.model_path, dataset="folder", root="my_sounds", folds=[4, 5], skip_bad=True)
    assert test.metrics["n_clips"] == 6
    data = envsound.dataset("folder", root="my_sounds")
    with pytest.raises(envsound.ConfigError, match="given beside a dataset value"), pytest.warns(DeprecationWarning):
        envsound.train(data, root="elsewhere", out="runs/x")
    with pytest.raises(envsound.ConfigError, match=r"evaluate\(\): unknown keyword 'threshhold' \(did you mean "
                                                   r"threshold=\?\)"):
        envsound.evaluate(run.model_path, data, threshhold=0.5)


def test_a_dataset_value_lists_once_and_its_folds_share_the_listing(my_sounds):
    data = envsound.dataset("folder", root="my_sounds", classes="kettle", folds=[1])
    assert data.classes == ("kettle",) and data.folds == (1,) and data == envsound.dataset(
        "folder", root=Path("my_sounds"), classes=["kettle"], folds=(1,))
    manifest = data.load()
    assert manifest.labels == ["kettle"] and manifest.folds == [1, 2, 3, 4, 5]  # every fold: a run takes folds
    assert data.with_folds([2, 3]).load() is manifest and data.with_folds(None).folds == ()
    with pytest.raises(envsound.ConfigError, match=r"unknown dataset 'foldr' \(did you mean 'folder'\?\)"):
        envsound.dataset("foldr", root="my_sounds")


def test_every_public_function_takes_at_most_10_parameters():
    """Issue 66: the Python API copied argparse (train 20 keywords, cross_validate 21, evaluate 17). Counted: every
    named parameter, keyword-only ones included; not ``**kwargs`` (the flags' keywords, the old keyword form)."""
    import inspect

    wide = {}
    for name in envsound.__all__:
        value = getattr(envsound, name)
        if inspect.isfunction(value):
            named = [p for p in inspect.signature(value).parameters.values()
                     if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
            if len(named) > 10:
                wide[name] = len(named)
    assert not wide, wide  # scan had 18: its tables and its run settings are values of their own now


def test_settings_read_as_the_config_reads_them():
    from envsound.recipes.api import settings_overrides

    assert settings_overrides({"train": {"lr": 0.01, "max_epochs": 3}, "augment.spec_augment": False,
                               "model.options": {"width": 0.4}, "train.monitor": "val_loss"}) == [
        "train.lr=0.01", "train.max_epochs=3", "augment.spec_augment=false", 'model.options={"width": 0.4}',
        "train.monitor=val_loss"]
    with pytest.raises(envsound.ConfigError, match="mapping"):
        settings_overrides([("train.lr", 1)])


TINY = {"train.max_epochs": 1, "model.filters": 8, "features.n_mels": 32, "augment.copies": 0}
