"""Semi-supervised training (FixMatch, mean teacher) on real WAV files: few-step smoke runs through the library and
the CLI, the strong view, and the per-fold unlabelled pool of cross-validation."""

import csv

import numpy as np
import pytest
import torch

from conftest import TINY_OVERRIDES
from envsound.augment.strong import gain_and_noise, speed_and_pitch, strong_view
from envsound.config.files import bare_config
from envsound.data.registry import load_dataset
from envsound.errors import ConfigError
from envsound.features.cache import FeatureCache
from envsound.models.checkpoint import load_checkpoint
from envsound.recipes.context import RunContext
from envsound.recipes.crossval import run_cv
from envsound.recipes.train import train_model
from envsound.training.semi import rampup
from envsound.training.semi.losses import pseudo_label_loss
from semi_helpers import make_tiny_esc50

SEMI = TINY_OVERRIDES + ("train.max_epochs=2", "model.filters=4", "semi.fixmatch.threshold=0.2", "semi.mu=2")


def _metrics(run_dir):
    with open(run_dir / "logs" / "metrics.csv") as handle:
        return list(csv.DictReader(handle))


def test_strong_view_keeps_shape_and_changes_the_input():
    torch.manual_seed(0)
    x = torch.randn(6, 1, 32, 40) * 10 - 40  # dB-like
    y = strong_view(x, gain_db=6.0, snr_db=20.0)
    assert y.shape == x.shape and torch.isfinite(y).all() and not torch.allclose(x, y)
    quiet = gain_and_noise(x, gain_db=0.0, snr_db=200.0)  # no gain, noise far below everything: unchanged
    assert torch.allclose(quiet, x, atol=1e-3)
    loud = gain_and_noise(x, gain_db=0.0, snr_db=1.0)  # noise 1-2 dB below the peak lifts the quiet bins
    assert (loud >= x - 1e-4).all() and loud.min() > x.min() + 10
    assert rampup(0, 5) == pytest.approx(np.exp(-5)) and rampup(5, 5) == 1.0 and rampup(3, 0) == 1.0


def test_speed_changes_only_the_time_axis_and_pitch_only_the_mel_axis():
    torch.manual_seed(0)
    per_band = torch.randn(8, 1, 32, 1).expand(8, 1, 32, 40)  # every frame the same spectrum
    per_frame = torch.randn(8, 1, 1, 40).expand(8, 1, 32, 40)  # every band the same envelope
    assert torch.allclose(speed_and_pitch(per_band, max_speed=2.0, max_shift_bins=0.0), per_band, atol=1e-5)
    assert torch.allclose(speed_and_pitch(per_frame, max_speed=1.0, max_shift_bins=4.0), per_frame, atol=1e-5)
    assert not torch.allclose(speed_and_pitch(per_frame, max_speed=2.0, max_shift_bins=0.0), per_frame, atol=1e-2)
    band = torch.zeros(64, 1, 32, 40)
    band[:, :, 16] = 1.0  # one lit band: a shift of up to 3 bins moves its centre by up to 3, some by more than 1
    centre = (speed_and_pitch(band, max_speed=1.0, max_shift_bins=3.0).mean(dim=3)[:, 0]
              * torch.arange(32.0)).sum(dim=1)
    assert (centre - 16).abs().max() <= 3.0 + 1e-4 and (centre - 16).abs().max() > 1.0
    assert strong_view(band, gain_db=6.0, snr_db=20.0, max_speed=1.5, max_shift_bins=3.0).shape == band.shape


@pytest.mark.parametrize("method", ["fixmatch", "fixmatch+ema", "mixmatch", "remixmatch", "mean_teacher"])
def test_semi_supervised_few_steps(tmp_path, synthetic_manifest, method):
    method, _, guesser = method.partition("+")
    config = bare_config(overrides=SEMI + (f"semi.method={method}", "train.label_fraction=0.5",
                                           f"semi.fixmatch.guesser={'ema' if guesser else 'student'}"))
    result = train_model(synthetic_manifest.select_folds([1, 2]), config, out_dir=tmp_path,
                         context=RunContext(progress=False))
    assert result.n_train + result.n_val == 20 and result.n_unlabelled == 20  # half of 40 clips left unlabelled
    rows = _metrics(tmp_path)
    assert len([r for r in rows if r["unsup_loss"]]) == 2
    assert all(np.isfinite(float(r["train_loss"])) for r in rows if r["train_loss"])
    if method == "fixmatch" and not guesser:
        assert any(float(r["mask_rate"]) > 0 for r in rows if r["mask_rate"])  # some pseudo-labels were used
    if guesser:  # the teacher followed the student at each of the 2 steps, and resumes with the run
        state = torch.load(tmp_path / "lightning" / "last.ckpt", weights_only=True)["state_dict"]
        assert int(state["teacher.n_averaged"]) == 2
    checkpoint = load_checkpoint(result.checkpoint)
    assert checkpoint.config.semi.method == method and checkpoint.meta["n_unlabelled_clips"] == 20
    assert not any(k.startswith("teacher") for k in checkpoint.state_dict)  # the student is the model


@pytest.mark.parametrize(("epoch", "steps_per_epoch"), [("labelled", 2), ("pool", 7)])
def test_semi_epoch_is_a_pass_over_the_labelled_clips_or_the_pool(tmp_path, synthetic_manifest, epoch,
                                                                   steps_per_epoch):
    # 10 labelled clips in batches of 4 (last one dropped): 2 steps; 30 unlabelled clips, mu = 1: 7 steps
    config = bare_config(overrides=SEMI + ("semi.method=mean_teacher", "train.label_fraction=0.25", "semi.mu=1",
                                           "train.batch_size=4", "train.val_fraction=0", f"semi.epoch={epoch}"))
    result = train_model(synthetic_manifest.select_folds([1, 2]), config, out_dir=tmp_path,
                         context=RunContext(progress=False))
    assert (result.n_train, result.n_unlabelled) == (10, 30)
    assert [int(r["step"]) + 1 for r in _metrics(tmp_path) if r["unsup_loss"]] == [steps_per_epoch,
                                                                                  2 * steps_per_epoch]


def test_the_ramp_up_is_a_share_of_the_run_s_steps(tmp_path, synthetic_manifest):
    # 2 epochs of 2 steps; the ramp takes half the run: steps 0 and 1 ramp up, steps 2 and 3 have the full weight
    config = bare_config(overrides=SEMI + ("semi.method=mean_teacher", "train.label_fraction=0.25", "semi.mu=1",
                                           "train.batch_size=4", "train.val_fraction=0", "semi.rampup=0.5"))
    train_model(synthetic_manifest.select_folds([1, 2]), config, out_dir=tmp_path, context=RunContext(progress=False))
    weights = [float(r["unsup_weight"]) for r in _metrics(tmp_path) if r["unsup_weight"]]
    assert weights == pytest.approx([(np.exp(-5.0) + np.exp(-5.0 * 0.25)) / 2, 1.0])


def test_semi_method_needs_unlabelled_clips(tmp_path, synthetic_manifest):
    config = bare_config(overrides=SEMI + ("semi.method=fixmatch",))
    with pytest.raises(ConfigError, match="no unlabelled clips"):
        train_model(synthetic_manifest.select_folds([1]), config, out_dir=tmp_path, context=RunContext(progress=False))


def test_cv_pool_leaves_out_each_test_fold(tmp_path):
    root = make_tiny_esc50(tmp_path / "esc")  # 10 classes x 4 folds x 2 clips; classes 0-4 are "esc10"
    esc10, esc50 = load_dataset("esc10", root), load_dataset("esc50", root)
    config = bare_config(overrides=SEMI + ("semi.method=fixmatch", "train.max_epochs=1", "train.val_fraction=0"))
    summary = run_cv(esc10, config, folds=[1, 2], out_dir=tmp_path / "cv",
                     context=RunContext(cache=FeatureCache(tmp_path / "cache"), progress=False),
                     unlabelled=esc50)
    assert [f["n_unlabelled_pool"] for f in summary["folds"]] == [60, 60]  # 80 clips minus the test fold's 20
    for fold in (1, 2):
        meta = load_checkpoint(tmp_path / "cv" / f"fold_{fold}" / "model.ckpt").meta
        assert meta["n_unlabelled_clips"] == 60 and meta["test_fold"] == fold


def test_fixmatch_through_the_cli(tmp_path, synthetic_root, envsound_main):
    sets = [a for o in SEMI for a in ("--set", o)]
    base = ["train", "--dataset", "synthetic", "--root", synthetic_root, "--folds", "1,2",
            "--cache-dir", tmp_path / "cache", *sets]
    run = envsound_main(*base, "--out", tmp_path / "t", "--label-fraction", "0.5", "--semi", "fixmatch",
                        "--unlabelled-dataset", "synthetic", "--unlabelled-root", synthetic_root,
                        "--unlabelled-folds", "3")
    assert run.returncode == 0, run.stderr
    # 20 left unlabelled of folds 1-2; fold 3 is left out of training (a fold one may test on), so its clips are not
    # used as unlabelled data either
    assert "and 20 unlabelled (fixmatch)" in run.stdout
    assert "unlabelled pool: left out 20 of 40 clips" in run.stderr
    checkpoint = load_checkpoint(tmp_path / "t" / "model.ckpt")
    assert checkpoint.config.train.label_fraction == 0.5 and checkpoint.config.semi.method == "fixmatch"


def test_fixmatch_pseudo_labels_each_class_of_a_multi_label_task():
    weak = torch.sigmoid(torch.tensor([[4.0, -4.0, 0.0]]))  # 0.98 (-> 1), 0.02 (-> 0), 0.5 (no target)
    strong = torch.tensor([[0.0, 0.0, 5.0]])
    loss, mask = pseudo_label_loss(weak, strong, threshold=0.9, multi_label=True)
    assert mask.tolist() == [[1.0, 1.0, 0.0]]
    bce = torch.nn.functional.binary_cross_entropy_with_logits(torch.tensor(0.0), torch.tensor(1.0))
    assert float(loss) == pytest.approx(float(2 * bce / 3))  # the strong view's third class is not trained
    # single-label: one pseudo-label per window, by the softmax's confidence
    weak = torch.softmax(torch.tensor([[9.0, 0.0, 0.0], [1.0, 1.0, 1.0]]), dim=-1)
    _, mask = pseudo_label_loss(weak, torch.zeros(2, 3), threshold=0.9)
    assert mask.tolist() == [1.0, 0.0]


def test_a_mean_teacher_starts_from_an_init_checkpoint(tmp_path, synthetic_manifest):
    source = train_model(synthetic_manifest.select_folds([3]), bare_config(overrides=SEMI),
                      out_dir=tmp_path / "source", context=RunContext(progress=False))
    config = bare_config(overrides=SEMI + ("semi.method=mean_teacher", "train.label_fraction=0.5"))
    result = train_model(synthetic_manifest.select_folds([1, 2]), config, out_dir=tmp_path / "t",
                         context=RunContext(progress=False),
                         init=source.checkpoint)
    assert result.n_unlabelled == 20 and load_checkpoint(result.checkpoint).meta["transfer"]["source"]


def test_a_semi_run_without_its_module_is_refused_before_anything_runs(tmp_path):
    """The loop imports no recipe: fit_network trains the module class it is given, and a semi-supervised config
    with the plain classifier module (its unlabelled clips would be ignored) is refused before the runtime probe."""
    from envsound.task import Task
    from envsound.training.loop.clips import ClipSet, FitData
    from envsound.training.loop.fit import LoopRun, fit_network

    config = bare_config(overrides=[*TINY_OVERRIDES, "semi.method=fixmatch"])
    with pytest.raises(ValueError, match="semi.method='fixmatch' needs its recipe's module_class"):
        fit_network(config, FitData(ClipSet([], np.zeros((0, 3), np.float32))), task=Task(), run=LoopRun(tmp_path))
    assert not any(tmp_path.iterdir())
