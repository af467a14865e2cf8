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
    assert capsys.readouterr().out.strip() == "cnn 2 epochs"
    exec(compile(blocks[2], str(GUIDE), "exec"), {})
    assert "train.max_epochs" in capsys.readouterr().out


def test_a_run_result_lists_the_files_left_out(my_sounds):
    Path("my_sounds/kettle/broken.wav").write_bytes(b"RIFF not really a wave file")
    with pytest.raises(envsound.AudioLoadError, match="broken.wav"):
        envsound.train(dataset="folder", root="my_sounds", model="cnn", out="runs/a", settings=TINY)
    run = envsound.train(dataset="folder", root="my_sounds", model="cnn", out="runs/b", settings=TINY, skip_bad=True)
    assert [Path(path).name for path, _ in run.skipped] == ["broken.wav"] and run.model_path.exists()
    assert run.metrics["n_train"] == 15


def test_settings_read_as_the_config_reads_them():
    from envsound.recipes.api import settings_overrides

    assert settings_overrides({"train": {"lr": 0.01, "max_epochs": 3}, "augment.spec_augment": False,
                               "model.options": {"width": 0.4}, "train.monitor": "val_loss"}) == [
        "train.lr=0.01", "train.max_epochs=3", "augment.spec_augment=false", 'model.options={"width": 0.4}',
        "train.monitor=val_loss"]
    with pytest.raises(envsound.ConfigError, match="mapping"):
        settings_overrides([("train.lr", 1)])


TINY = {"train.max_epochs": 1, "model.filters": 8, "features.n_mels": 32, "augment.copies": 0}
