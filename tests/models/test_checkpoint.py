import numpy as np
import torch

import pytest

from conftest import TINY_OVERRIDES

from envsound.config.files import bare_config
from envsound.errors import CheckpointError
from envsound.models.checkpoint import FORMAT_VERSION, Checkpoint, load_checkpoint, save_checkpoint
from envsound.models.clip import ClipModel, build_network
from envsound.models.registry import model_preset


def test_checkpoint_round_trip_describes_itself(tmp_path):
    config = bare_config(overrides=["model.filters=8", "features.n_mels=32"])
    net = build_network(config, 3)
    path = save_checkpoint(tmp_path / "m.ckpt", Checkpoint(config=config, labels=["a", "b", "c"],
                                                           state_dict=net.state_dict(), meta={"dataset": "x"}))
    loaded = load_checkpoint(path)
    assert loaded.config == config and loaded.labels == ["a", "b", "c"]
    assert loaded.meta["dataset"] == "x" and loaded.meta["torch_version"] == torch.__version__
    model = ClipModel.from_checkpoint(loaded)  # on the best device here: compare on the same one
    x = torch.randn(2, 1, 32, config.features.window_frames)
    net.eval().to(model.runtime.device)
    with torch.inference_mode():
        x = x.to(model.runtime.device)
        assert torch.allclose(model.network(x), net(x), atol=1e-5)
    assert not list(tmp_path.glob("*.tmp")), "atomic save left a temporary file"


def test_not_a_checkpoint(tmp_path):
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.ckpt: not a model file \\(a text file"):
        load_checkpoint(junk)
    plain = tmp_path / "plain.ckpt"
    torch.save({"state_dict": {}}, plain)
    with pytest.raises(CheckpointError, match="plain.ckpt: not an envsound checkpoint"):
        load_checkpoint(plain)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.ckpt")


def test_a_checkpoint_marker_without_a_config_is_a_checkpoint_error_not_a_key_error(tmp_path):
    from envsound.models.files import open_model_file

    marked = tmp_path / "marked.ckpt"
    torch.save({"format": "envsound-checkpoint"}, marked)
    for opener in (load_checkpoint, open_model_file):
        with pytest.raises(CheckpointError, match="marked.ckpt: an envsound checkpoint without its config and labels"):
            opener(marked)


def test_weights_that_do_not_fit_are_refused(tmp_path):
    config = bare_config(overrides=["model.filters=8", "features.n_mels=32"])
    other = bare_config(overrides=["model.filters=16", "features.n_mels=32"])
    state = build_network(other, 3).state_dict()
    save_checkpoint(tmp_path / "m.ckpt", Checkpoint(config=config, labels=["a", "b", "c"], state_dict=state))
    with pytest.raises(CheckpointError, match="do not fit"):
        ClipModel.from_checkpoint(load_checkpoint(tmp_path / "m.ckpt"))


def test_a_format_1_checkpoint_still_loads_and_predicts(tmp_path):
    """Version 1 (before the runtime settings): no train.accelerator/devices/num_nodes/strategy keys, precision
    'bf16-mixed' and channels_last a YAML bool in train, as the default wrote them."""
    config = bare_config(overrides=["model.filters=8", "features.n_mels=32"])
    net = build_network(config, 2)
    path = save_checkpoint(tmp_path / "m.ckpt", Checkpoint(config=config, labels=["a", "b"],
                                                           state_dict=net.state_dict()))
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = 1
    del payload["config"]["runtime"]
    payload["config"]["train"].update(precision="bf16-mixed", channels_last=True, num_workers=0)
    torch.save(payload, path)
    loaded = load_checkpoint(path)
    assert loaded.config.runtime.channels_last == "true" and loaded.config.runtime.accelerator == "auto"
    assert loaded.config.runtime.precision == "bf16-mixed"
    probs = ClipModel.from_checkpoint(loaded).window_probs(torch.randn(3, 1, 32, config.features.window_frames)
                                                           .numpy())
    assert probs.shape == (3, 2)


def test_a_format_2_checkpoint_with_the_old_freezing_keys_loads(tmp_path):
    """Version 2 (before the transfer section): train.freeze_encoder_epochs and train.encoder_lr_scale."""
    config = bare_config(overrides=["model.filters=8", "features.n_mels=32"])
    path = save_checkpoint(tmp_path / "m.ckpt", Checkpoint(config=config, labels=["a", "b"],
                                                           state_dict=build_network(config, 2).state_dict()))
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = 2
    del payload["config"]["transfer"], payload["config"]["train"]["shots"]
    payload["config"]["train"].update(freeze_encoder_epochs=5, encoder_lr_scale=0.5)
    torch.save(payload, path)
    loaded = load_checkpoint(path)
    assert loaded.config.transfer.mode == "gradual" and loaded.config.transfer.freeze_epochs == 5
    assert loaded.config.transfer.trunk_lr_scale == 0.5 and loaded.config.train.shots == 0
    assert ClipModel.from_checkpoint(loaded).n_classes == 2


def test_a_format_4_checkpoint_without_the_window_and_schedule_keys_loads(tmp_path):
    """Version 4 (before features.eval_crops, train.windows, train.lr_milestones, train.lr_gamma)."""
    config = bare_config(overrides=["model.filters=8", "features.n_mels=32"])
    path = save_checkpoint(tmp_path / "m.ckpt", Checkpoint(config=config, labels=["a", "b"],
                                                           state_dict=build_network(config, 2).state_dict()))
    payload = torch.load(path, weights_only=True)
    assert payload["format_version"] == FORMAT_VERSION
    payload["format_version"] = 4
    del payload["config"]["features"]["eval_crops"]
    for key in ("windows", "lr_milestones", "lr_gamma"):
        del payload["config"]["train"][key]
    torch.save(payload, path)
    loaded = load_checkpoint(path)
    assert loaded.config.features.eval_crops == 0 and loaded.config.train.windows == "random"
    assert loaded.config.train.lr_milestones == [] and ClipModel.from_checkpoint(loaded).n_classes == 2


def test_a_format_5_checkpoint_keeps_the_semi_behaviour_it_was_trained_with(tmp_path):
    """Version 5 (before semi.labelled_mixup, distribution_alignment and MixMatch's keys): FixMatch mixed the
    labelled windows and did not align its guesses."""
    config = bare_config(overrides=["model.filters=8", "features.n_mels=32", "semi.method=fixmatch"])
    path = save_checkpoint(tmp_path / "m.ckpt", Checkpoint(config=config, labels=["a", "b"],
                                                           state_dict=build_network(config, 2).state_dict()))
    payload = _flat_semi(torch.load(path, weights_only=True))
    assert payload["format_version"] == FORMAT_VERSION
    payload["format_version"] = 5
    for key in ("labelled_mixup", "distribution_alignment", "views", "temperature", "mix_alpha", "rampup"):
        del payload["config"]["semi"][key]
    payload["config"]["semi"]["lambda_u"] = 1.0
    torch.save(payload, path)
    semi = load_checkpoint(path).config.semi
    assert (semi.method, semi.labelled_mixup, semi.distribution_alignment, semi.unlabelled_weight) == (
        "fixmatch", True, False, 1.0)
    assert load_checkpoint(save_checkpoint(tmp_path / "new.ckpt", Checkpoint(
        config=config, labels=["a", "b"], state_dict={}))).config.semi.labelled_mixup is False


def test_a_format_6_checkpoint_keeps_its_ramp_up_as_a_share_of_the_run(tmp_path):
    """Version 6 ramped mean teacher's and MixMatch's weight over semi.rampup_epochs epochs."""
    config = bare_config(overrides=["model.filters=8", "features.n_mels=32", "semi.method=mixmatch",
                                    "train.max_epochs=500"])
    path = save_checkpoint(tmp_path / "m.ckpt", Checkpoint(config=config, labels=["a", "b"], state_dict={}))
    payload = _flat_semi(torch.load(path, weights_only=True))
    payload["format_version"] = 6
    del payload["config"]["semi"]["rampup"]
    payload["config"]["semi"]["rampup_epochs"] = 5
    torch.save(payload, path)
    assert load_checkpoint(path).config.semi.rampup == pytest.approx(0.01)  # 5 of 500 epochs


def _flat_semi(payload: dict) -> dict:
    """The semi section as formats before 16 wrote it: each method's sub-section's keys directly under semi."""
    semi = payload["config"]["semi"]
    for method in ("fixmatch", "mixmatch", "self_training"):
        semi.update(semi.pop(method))
    return payload


def test_a_format_15_checkpoint_loads_its_flat_semi_keys_into_their_sub_sections(tmp_path):
    config = bare_config(overrides=["model.filters=8", "semi.method=self_training", "semi.fixmatch.threshold=0.8",
                                    "semi.mixmatch.views=3", "semi.self_training.rounds=0.5,1"])
    path = save_checkpoint(tmp_path / "m.ckpt", Checkpoint(config=config, labels=["a", "b"], state_dict={}))
    payload = _flat_semi(torch.load(path, weights_only=True))
    payload["format_version"] = 15
    assert payload["config"]["semi"]["threshold"] == 0.8 and "fixmatch" not in payload["config"]["semi"]
    torch.save(payload, path)
    assert load_checkpoint(path).config == config


def test_a_format_7_checkpoint_keeps_the_fixed_threshold(tmp_path):
    """Version 7 had no semi.threshold_mode: FixMatch's threshold was semi.threshold."""
    config = bare_config(overrides=["model.filters=8", "semi.method=fixmatch",
                                    "semi.fixmatch.threshold_mode=adaptive"])
    path = save_checkpoint(tmp_path / "m.ckpt", Checkpoint(config=config, labels=["a", "b"], state_dict={}))
    assert load_checkpoint(path).config.semi.fixmatch.threshold_mode == "adaptive"
    payload = _flat_semi(torch.load(path, weights_only=True))
    payload["format_version"] = 7
    del payload["config"]["semi"]["threshold_mode"]
    torch.save(payload, path)
    assert load_checkpoint(path).config.semi.fixmatch.threshold_mode == "fixed"


def test_a_format_8_checkpoint_keeps_its_epochs(tmp_path):
    """Version 8 had no train.min_steps: a run on a labelled share trained train.max_epochs epochs, however few steps
    they made; a retrained copy of its config does the same."""
    config = bare_config(overrides=["model.filters=8", "semi.method=fixmatch", "train.label_fraction=0.1"])
    path = save_checkpoint(tmp_path / "m.ckpt", Checkpoint(config=config, labels=["a", "b"], state_dict={}))
    assert load_checkpoint(path).config.train.min_steps is None
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = 8
    del payload["config"]["train"]["min_steps"]
    torch.save(payload, path)
    assert load_checkpoint(path).config.train.min_steps == 0


def test_a_format_9_checkpoint_without_self_training_rounds_loads(tmp_path):
    """Version 9 had no semi.rounds (self_training did not exist): such a file loads with the default."""
    config = bare_config(overrides=["model.filters=8", "semi.method=fixmatch", "train.label_fraction=0.1"])
    path = save_checkpoint(tmp_path / "m.ckpt", Checkpoint(config=config, labels=["a", "b"], state_dict={}))
    payload = _flat_semi(torch.load(path, weights_only=True))
    payload["format_version"] = 9
    del payload["config"]["semi"]["rounds"]
    torch.save(payload, path)
    loaded = load_checkpoint(path).config
    assert loaded.semi.method == "fixmatch" and loaded.semi.self_training.rounds == [0.25, 0.5, 0.75, 1.0]


def test_a_format_10_self_training_checkpoint_loads_with_full_rounds(tmp_path):
    """Version 10 had no semi.round_budget: every round took the run's whole step budget."""
    config = bare_config(overrides=["model.filters=8", "semi.method=self_training", "train.label_fraction=0.1"])
    path = save_checkpoint(tmp_path / "m.ckpt", Checkpoint(config=config, labels=["a", "b"], state_dict={}))
    payload = _flat_semi(torch.load(path, weights_only=True))
    payload["format_version"] = 10
    del payload["config"]["semi"]["round_budget"]
    torch.save(payload, path)
    assert load_checkpoint(path).config.semi.self_training.round_budget == "full"


def test_a_format_11_checkpoint_loads_with_its_clip_edges_as_read(tmp_path):
    """Version 11 had no features.trim_zeros or edge_pad: its clips were neither trimmed nor padded."""
    config = bare_config(overrides=["model.filters=8"])
    path = save_checkpoint(tmp_path / "m.ckpt", Checkpoint(config=config, labels=["a", "b"], state_dict={}))
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = 11
    del payload["config"]["features"]["trim_zeros"], payload["config"]["features"]["edge_pad"]
    torch.save(payload, path)
    features = load_checkpoint(path).config.features
    assert features.trim_zeros is False and features.edge_pad == 0.0


def test_a_format_12_checkpoint_loads_its_runtime_and_mixing_from_train_and_the_rms_gain(tmp_path):
    """Version 12 kept the runtime and the on-the-fly augmentation in train, and had no bc_gain: between-class
    mixing weighed plain RMS, where the default is now A-weighted."""
    config = bare_config(preset=model_preset("envnet2"), model="envnet2",
                         overrides=["augment.between_class=true", "runtime.precision=32", "augment.time_roll=false"])
    assert config.augment.bc_gain == "a_weighting"
    path = save_checkpoint(tmp_path / "m.ckpt", Checkpoint(config=config, labels=["a", "b"], state_dict={}))
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = 12
    saved = payload["config"]
    saved["train"].update(saved.pop("runtime"))
    for key in ("time_roll", "spec_augment", "mixup_alpha", "between_class", "bc_gain"):
        value = saved["augment"].pop(key)
        if key != "bc_gain":
            saved["train"][key] = value
    torch.save(payload, path)
    loaded = load_checkpoint(path).config
    assert loaded.augment.bc_gain == "rms" and loaded.augment.between_class and not loaded.augment.time_roll
    assert loaded.runtime.precision == "32" and loaded.augment.mixup_alpha == config.augment.mixup_alpha


def test_a_newer_format_says_to_upgrade(tmp_path):
    config = bare_config(overrides=["model.filters=8"])
    path = save_checkpoint(tmp_path / "m.ckpt", Checkpoint(config=config, labels=["a"], state_dict={}))
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = 99
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="format 99 is newer.*upgrade envsound"):
        load_checkpoint(path)


def test_a_trained_checkpoint_records_the_runtime_it_chose(tmp_path, synthetic_manifest):
    """``auto`` is what the config keeps (the request); the choice is in the checkpoint and config.yaml's comment.
    (The shared trained_run states precision 32, so this test trains its own one-epoch model at auto.)"""
    from envsound.recipes.context import RunContext
    from envsound.recipes.train import train_model

    config = bare_config(overrides=TINY_OVERRIDES + ("train.max_epochs=1",))
    assert config.runtime.precision == "auto"
    run = train_model(synthetic_manifest.select_folds([1]), config, out_dir=tmp_path / "run",
                      context=RunContext(progress=False))
    runtime = load_checkpoint(run.checkpoint).meta["runtime"]
    assert runtime["accelerator"] in ("cpu", "cuda", "mps") and runtime["devices"] == 1
    assert runtime["precision"] in ("32", "bf16-mixed", "16-mixed") and runtime["reason"]
    first_line = (run.checkpoint.parent / "config.yaml").read_text().splitlines()[0]
    assert first_line.startswith(f"# runtime chosen: {runtime['accelerator']} (1 device), "
                                 f"precision {runtime['precision']}")
    assert bare_config(config_file=run.checkpoint.parent / "config.yaml").runtime.precision == "auto"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_predict_on_a_device_the_machine_lacks_is_one_clear_line(trained_run, tmp_path, capsys):
    from envsound.cli.main import main

    assert main(["predict", str(trained_run.checkpoint), str(tmp_path), "--device", "cuda"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == ("envsound predict: error: --device='cuda' is not available on this machine; available: cpu "
                   "(use --device=auto)")


def test_a_format_20_checkpoint_loads_without_training_prints(tmp_path):
    """Format 21 adds the training clips' robust fingerprints; a format 20 file (none) loads, its prints None."""
    config = bare_config(overrides=TINY_OVERRIDES)
    path = save_checkpoint(tmp_path / "m.ckpt", Checkpoint(config=config, labels=["a", "b"],
                                                           trained_on=np.arange(3, dtype=np.int64),
                                                           trained_prints=np.ones((3, 65), np.uint32)))
    assert load_checkpoint(path).trained_prints.shape == (3, 65)
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = 20
    del payload["trained_prints"]
    torch.save(payload, path)
    old = load_checkpoint(path)
    assert old.trained_prints is None and list(old.trained_on) == [0, 1, 2]
