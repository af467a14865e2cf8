"""A few-step CPU run of every training mode, on real WAV files."""

import subprocess
import sys

import numpy as np
import torch
import pytest

from conftest import kill_after_first_checkpoint
from envsound.errors import EnvsoundError
from envsound.features.cache import FeatureCache
from envsound.models.checkpoint import load_checkpoint
from envsound.models.clip import ClipModel
from envsound.recipes.context import RunContext
from envsound.recipes.train import train_model


@pytest.mark.parametrize("model, extra", [
    ("cnn", ()),
    ("cnn", ("runtime.precision=32", "runtime.channels_last=false", "augment.mixup_alpha=0.4",
             "augment.spec_augment=true", "augment.time_roll=true", "train.monitor=loss")),
    ("dtu", ()),
    ("piczak", ("features.n_mels=60", "features.deltas=true", "features.window_seconds=0.6")),
    ("knn", ()),
    ("random_forest", ()),
])
def test_every_model_trains_and_reloads(tmp_path, synthetic_manifest, tiny_config, model, extra):
    for override in (f"model.name={model}",) + extra:
        key, value = override.split("=")
        tiny_config.set(key, value)
    if model in ("knn", "random_forest"):
        tiny_config.model.filters = None
    tiny_config.train.max_epochs = 2
    result = train_model(synthetic_manifest.select_folds([1, 2]), tiny_config, out_dir=tmp_path,
                         context=RunContext(cache=FeatureCache(tmp_path / "cache"), progress=False))
    assert result.checkpoint.exists() and (tmp_path / "config.yaml").exists()
    checkpoint = load_checkpoint(result.checkpoint)
    assert checkpoint.config.model.name == model and checkpoint.labels == synthetic_manifest.labels
    clip_model = ClipModel.from_checkpoint(checkpoint)
    test = synthetic_manifest.select_folds([5])
    from envsound.features.extract import extract_features
    _, feats, _ = extract_features(test.records, checkpoint.config.features, cache=None, progress=False)
    probs = clip_model.predict_clips(feats)
    assert probs.shape == (len(test), len(synthetic_manifest.labels))
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-4)


def test_trained_model_learns_the_synthetic_classes(trained_run, synthetic_manifest):
    from envsound.evaluation.evaluate import evaluate_model

    model = ClipModel.from_checkpoint(load_checkpoint(trained_run.checkpoint))
    report = evaluate_model(model, synthetic_manifest.select_folds([5]), progress=False).report
    assert report["accuracy"] >= 0.5, report["accuracy"]  # chance is 0.1


def test_existing_model_is_not_overwritten(tmp_path, synthetic_manifest, tiny_config):
    tiny_config.model.name, tiny_config.model.filters = "knn", None
    train_model(synthetic_manifest.select_folds([1]), tiny_config, out_dir=tmp_path, context=RunContext(progress=False))
    before = (tmp_path / "model.ckpt").read_bytes()
    # the library speaks its own API's words (the CLI says --overwrite: tests/cli/test_cli.py)
    with pytest.raises(EnvsoundError, match=r"already exists; overwrite=True replaces it"):
        train_model(synthetic_manifest.select_folds([1]), tiny_config, out_dir=tmp_path,
                    context=RunContext(progress=False))
    assert (tmp_path / "model.ckpt").read_bytes() == before


def test_killed_run_resumes_from_its_last_checkpoint(tmp_path, synthetic_root):
    """SIGKILL a real training process after its first epoch; --resume then finishes the remaining epochs."""
    from conftest import TINY_OVERRIDES

    sets = [arg for o in TINY_OVERRIDES + ("train.max_epochs=8",) for arg in ("--set", o)]
    args = [sys.executable, "-m", "envsound.cli.main", "train", "--dataset", "synthetic", "--root", str(synthetic_root),
            "--folds", "1,2", "--out", str(tmp_path), "--no-cache", *sets]
    last = kill_after_first_checkpoint(args, tmp_path)
    assert not (tmp_path / "model.ckpt").exists(), "a killed run must not leave a model that looks complete"
    done_before = torch.load(last, weights_only=False)["epoch"]
    assert done_before < 7
    resumed = subprocess.run(args + ["--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert load_checkpoint(tmp_path / "model.ckpt").meta["epochs"] == 8


@pytest.mark.parametrize("crashed_resume", [False, True])
def test_a_resumed_run_keeps_the_curve_it_logged_before(tmp_path, synthetic_manifest, tiny_config, crashed_resume):
    """Lightning's CSVLogger deletes metrics.csv when it starts; a resume must keep the epochs run before it, also
    after a resume that was killed between that deletion and the write-back (its copy is read then)."""
    import csv

    from envsound.training.loop.history import BEFORE_RESUME

    tiny_config.train.max_epochs = 2
    tiny_config.train.scheduler = "none"  # a one-cycle schedule cannot be lengthened
    train_model(synthetic_manifest.select_folds([1, 2]), tiny_config, out_dir=tmp_path,
                context=RunContext(progress=False))
    logs = tmp_path / "logs"
    if crashed_resume:
        (logs / "metrics.csv").rename(logs / BEFORE_RESUME)
    tiny_config.train.max_epochs = 4  # the same run, given two more epochs
    train_model(synthetic_manifest.select_folds([1, 2]), tiny_config, out_dir=tmp_path,
                context=RunContext(resume=True, progress=False))
    with open(logs / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    epochs = [int(row["epoch"]) for row in rows if row["train_loss"]]
    assert epochs == [0, 1, 2, 3]  # each once: what the resume ran again is not kept twice
    assert not (logs / BEFORE_RESUME).exists()


def test_a_resume_with_other_input_settings_is_refused_with_the_way_back(tmp_path, synthetic_manifest, tiny_config):
    """Its epochs so far learned from other input: e.g. a run started before the clip edges existed, resumed with a
    preset that now trims and pads."""
    from envsound.errors import ConfigError

    tiny_config.train.max_epochs = 1
    train_model(synthetic_manifest.select_folds([1, 2]), tiny_config, out_dir=tmp_path,
                context=RunContext(progress=False))
    tiny_config.features.edge_pad, tiny_config.model.filters = 0.5, 4
    with pytest.raises(ConfigError, match=r"features.edge_pad 0.0 there, 0.5 here; model.filters 8 there, 4 here.*"
                                          r"--set features.edge_pad=0.0 --set model.filters=8"):  # the CLI's words too
        train_model(synthetic_manifest.select_folds([1, 2]), tiny_config, out_dir=tmp_path,
                    context=RunContext(resume=True, progress=False))


@pytest.mark.parametrize("lines_per_run, silence_s, expected", [(20, 600.0, [1, 2, 3]), (1, 600.0, [3]),
                                                                  (1, 0.0, [1, 2, 3])])
def test_a_run_without_a_progress_bar_logs_its_progress(tmp_path, synthetic_manifest, tiny_config, caplog,
                                                        monkeypatch, lines_per_run, silence_s, expected):
    """About LINES_PER_RUN lines a run, at least one every MAX_SILENCE_S, and the last epoch: in a log file a long
    run says how far it is and how long it has left."""
    import envsound.training.loop.progress as progress

    monkeypatch.setattr(progress, "LINES_PER_RUN", lines_per_run)
    monkeypatch.setattr(progress, "MAX_SILENCE_S", silence_s)
    with caplog.at_level("INFO", logger="envsound.training.loop.progress"):
        train_model(synthetic_manifest.select_folds([1, 2]), tiny_config, out_dir=tmp_path,
                    context=RunContext(progress=False))
    lines = [r.getMessage() for r in caplog.records if r.name == "envsound.training.loop.progress"]
    assert [int(line.split()[1].split("/")[0]) for line in lines] == expected
    assert all(line.startswith(f"epoch {e}/3: ") and "train_loss " in line and " s an epoch" in line
               for e, line in zip(expected, lines))
    assert (" left" in lines[0]) == (expected[0] < 3) and " left" not in lines[-1]


def test_same_seed_same_weights(tmp_path, synthetic_manifest, tiny_config):
    """Regression: the seed must be set before the weights are initialised, so a run is reproducible. On the CPU:
    cuDNN's backward kernels are not bitwise deterministic, so CUDA runs agree only to rounding."""
    tiny_config.train.max_epochs = 1
    tiny_config.runtime.accelerator = "cpu"
    torch.manual_seed(123)  # disturb the global generator between the runs: only train.seed may matter
    a = train_model(synthetic_manifest.select_folds([1]), tiny_config, out_dir=tmp_path / "a",
                    context=RunContext(progress=False))
    torch.manual_seed(456)
    b = train_model(synthetic_manifest.select_folds([1]), tiny_config, out_dir=tmp_path / "b",
                    context=RunContext(progress=False))
    wa, wb = load_checkpoint(a.checkpoint).state_dict, load_checkpoint(b.checkpoint).state_dict
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_the_piczak2015_preset_trains_on_every_segment(tmp_path, synthetic_manifest):
    from envsound.config import load_preset
    from envsound.config.files import bare_config

    config = bare_config(preset=load_preset("piczak2015"), overrides=(
        "train.max_epochs=2", "augment.copies=0", "train.batch_size=50", "model.filters=8"))  # small and quick
    result = train_model(synthetic_manifest.select_folds([1, 2]), config, out_dir=tmp_path,
                         context=RunContext(cache=FeatureCache(tmp_path / "cache"), progress=False))
    saved = load_checkpoint(result.checkpoint).config
    assert result.epochs == 2 and saved.train.windows == "all_copies" and saved.train.optimizer == "sgd"


def test_the_envnet2_bc2018_preset_trains_and_predicts_on_trimmed_padded_clips(tmp_path, synthetic_manifest):
    """The preset end to end, small: between-class batches of padded crops; the checkpoint keeps the edges, so
    evaluation and predict score the same trimmed and padded clip with 10 crops."""
    from envsound.config import load_preset
    from envsound.config.files import bare_config
    from envsound.evaluation.evaluate import evaluate_model
    from envsound.inference.predictor import Predictor

    config = bare_config(preset=load_preset("envnet2-bc2018"), overrides=(
        "train.max_epochs=1", "train.lr_milestones=1", "model.filters=10", "features.sample_rate=16000",
        "features.window_seconds=1.5"))  # small and quick
    result = train_model(synthetic_manifest.select_folds([1, 2]), config, out_dir=tmp_path,
                         context=RunContext(progress=False))
    model = ClipModel.from_checkpoint(load_checkpoint(result.checkpoint))
    features = model.config.features
    assert (features.trim_zeros, features.edge_pad, features.eval_crops) == (True, 0.5, 10)
    test = synthetic_manifest.select_folds([3])
    evaluation = evaluate_model(model, test, progress=False)
    model.open_set = None  # the closed-set probabilities, as evaluation scores them (no open-set gate)
    top = Predictor(model).predict_file(evaluation.records[0].path, top_k=len(model.labels)).top
    got = {row["label"]: row["score"] for row in top}
    assert [got[label] for label in model.labels] == pytest.approx(evaluation.y_prob[0].tolist(), abs=2e-4)


def test_a_run_without_validation_saves_its_final_weights_between_checkpoints(tmp_path, synthetic_manifest,
                                                                              tiny_config, monkeypatch):
    """Without validation Lightning's checkpoint is written every few epochs (one-step epochs made writing it every
    epoch the larger cost); the end of the run is written all the same, and the model keeps the final weights."""
    from envsound.training.loop import fit

    monkeypatch.setattr(fit, "CHECKPOINTS_PER_RUN", 2)  # 5 epochs: written after epochs 2 and 4, then at the end
    tiny_config.train.max_epochs, tiny_config.train.val_fraction = 5, 0.0
    result = train_model(synthetic_manifest.select_folds([1]), tiny_config, out_dir=tmp_path,
                         context=RunContext(progress=False))
    last = torch.load(tmp_path / "lightning" / "last.ckpt", weights_only=False)
    final = load_checkpoint(result.checkpoint)
    assert last["epoch"] == final.meta["epochs"] == 5  # written after the fifth epoch, not the fourth
    assert all(torch.equal(last["state_dict"][f"model.{k}"], v) for k, v in final.state_dict.items())
