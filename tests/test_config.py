import pytest
import yaml

from envsound.config import Config, check_same_input, write_config
from envsound.config.files import bare_config
from envsound.errors import ConfigError


def test_overrides_are_typed_and_win_over_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"train": {"lr": 0.5, "max_epochs": 7}, "features": {"n_mels": 64}}))
    config = bare_config(config_file=path, overrides=["train.lr=0.01", "features.f_max=none",
                                                      "runtime.channels_last=false"])
    assert config.train.lr == 0.01 and config.train.max_epochs == 7 and config.features.n_mels == 64
    assert config.features.f_max is None and config.runtime.channels_last == "false"


@pytest.mark.parametrize("override, fragment", [
    ("train.nope=1", "valid keys"),
    ("nosection.x=1", "unknown key"),
    ("train.max_epochs=1.5", "not a valid int"),
    ("runtime.channels_last=maybe", "auto, true or false"),
    ("runtime.precision=fp8", "auto, 32, bf16-mixed"),
    ("runtime.accelerator=tpu", "auto, cpu, cuda"),
    ("runtime.devices=0", ">= 1"),
    ("features.hop_length=0", "1..n_fft"),
    ("train.optimizer=rmsprop", "adamw"),
    ("semi.epoch=batch", "labelled or pool"),
    ("semi.rampup_epochs=5", "semi.rampup, the share"),  # gone in checkpoint format 7: says what replaced it
    ("semi.rampup=5", "0 <= rampup <= 1"),
    ("train.lr", "section.key=value"),
])
def test_bad_keys_and_values_name_themselves(override, fragment):
    with pytest.raises(ConfigError, match=fragment):
        bare_config(overrides=[override])


def test_unknown_yaml_key_is_an_error(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match="train.learning_rate"):
        bare_config(config_file=path)


def test_keys_that_left_train_still_set_their_new_place(tmp_path):
    """Checkpoint format 13 moved the runtime and the on-the-fly augmentation out of train: config files, --set
    and run directories written before still mean what they meant."""
    path = tmp_path / "old.yaml"
    path.write_text("train:\n  lr: 0.5\n  devices: 1\n  precision: '32'\n  num_workers: 2\n  mixup_alpha: 0.4\n")
    config = bare_config(config_file=path, overrides=["train.time_roll=false", "train.spec_augment=false"])
    assert (config.train.lr, config.runtime.precision, config.runtime.num_workers) == (0.5, "32", 2)
    assert (config.augment.mixup_alpha, config.augment.time_roll, config.augment.spec_augment) == (0.4, False, False)
    assert not hasattr(config.train, "mixup_alpha") and "runtime" in config.to_dict()


def test_a_key_under_its_old_and_new_name_is_refused():
    with pytest.raises(ConfigError, match="train.mixup_alpha and augment.mixup_alpha are the same setting"):
        Config.from_dict({"train": {"mixup_alpha": 0.2}, "augment": {"mixup_alpha": 0.4}})


@pytest.mark.parametrize("between_class, gain", [(True, "rms"), (False, "a_weighting")])
def test_an_old_layout_between_class_run_keeps_its_rms_gain(between_class, gain):
    """A config.yaml (or a grid point's cv.json) written before augment.bc_gain existed mixed by RMS loudness."""
    old = {"features": {"kind": "waveform", "sample_rate": 16000, "window_seconds": 1.5}, "model": {"name": "envnet2"},
           "train": {"between_class": between_class, "mixup_alpha": 0.0}}
    assert Config.from_dict(old).augment.bc_gain == gain
    old["augment"] = {"bc_gain": "a_weighting"}  # written since: as it says
    assert Config.from_dict(old).augment.bc_gain == "a_weighting"


def test_a_resume_with_other_on_the_fly_augmentation_is_refused(tmp_path):
    """The batches a run's epochs learned from: mixup, and between-class mixing's gain when it mixes."""
    saved = write_config(tmp_path / "config.yaml", bare_config())
    check_same_input(saved, bare_config(overrides=["augment.bc_gain=rms"]))  # no between-class mixing: same batches
    as_started = r"\(overrides=\['augment.mixup_alpha=0.2'\]; on the command line --set augment.mixup_alpha=0.2\)"
    with pytest.raises(ConfigError, match=r"augment.mixup_alpha 0.2 there, 0.0 here.*" + as_started):
        check_same_input(saved, bare_config(overrides=["augment.mixup_alpha=0"]))
    bc = ["features.kind=waveform", "model.name=envnet2", "features.sample_rate=16000", "features.window_seconds=1.5",
          "augment.between_class=true"]
    saved = write_config(tmp_path / "bc.yaml", bare_config(overrides=bc))
    with pytest.raises(ConfigError, match=r"augment.bc_gain 'a_weighting' there, 'rms' here"):
        check_same_input(saved, bare_config(overrides=[*bc, "augment.bc_gain=rms"]))


def test_round_trip_through_dict():
    config = bare_config(overrides=["model.name=dtu", "model.filters=16"])
    assert Config.from_dict(config.to_dict()) == config


def test_window_geometry():
    feats = bare_config().features
    assert feats.window_frames == 1 + feats.window_samples // feats.hop_length
    assert feats.window_samples == round(feats.window_seconds * feats.sample_rate)


def test_bool_channels_last_of_older_configs_still_loads():
    """Configs and checkpoints written before 'auto' existed hold a YAML bool."""
    old = Config().to_dict()
    del old["runtime"]  # before checkpoint format 13 these keys were train's
    old["train"].update(channels_last=True, precision="bf16-mixed")
    config = Config.from_dict(old)
    assert config.runtime.channels_last == "true" and config.runtime.precision == "bf16-mixed"


def test_model_options_round_trip_and_default_to_empty():
    assert Config().model.options == {}
    config = bare_config(overrides=["model.name=crnn", "model.options={rnn: lstm, hidden: 32, pool: mean}"])
    assert config.model.options == {"rnn": "lstm", "hidden": 32, "pool": "mean"}
    assert Config.from_dict(config.to_dict()) == config
    old = Config().to_dict()
    del old["model"]["options"]  # configs and checkpoints written before model.options existed
    assert Config.from_dict(old).model.options == {}
    with pytest.raises(ConfigError, match="model.options"):
        bare_config(overrides=["model.options=[hidden]"])


def test_each_semi_method_has_its_own_sub_section_and_the_old_flat_keys_still_load(tmp_path):
    config = bare_config(overrides=["semi.fixmatch.threshold=0.8", "semi.mixmatch.views=3",
                                    "semi.rounds=0.5,1"])  # an old flat key: into its sub-section
    assert (config.semi.fixmatch.threshold, config.semi.mixmatch.views, config.semi.self_training.rounds) == (
        0.8, 3, [0.5, 1.0])
    assert config.to_dict()["semi"]["fixmatch"] == {"threshold": 0.8, "threshold_mode": "fixed", "guesser": "student"}
    assert Config.from_dict(config.to_dict()) == config
    old_file = tmp_path / "old.yaml"
    old_file.write_text("semi:\n  method: fixmatch\n  threshold: 0.7\n  guesser: ema\n")
    new_file = tmp_path / "new.yaml"
    new_file.write_text("semi:\n  method: fixmatch\n  fixmatch:\n    threshold: 0.7\n    guesser: ema\n")
    assert bare_config(config_file=old_file) == bare_config(config_file=new_file)
    with pytest.raises(ConfigError, match="semi.threshold and semi.fixmatch.threshold are the same setting"):
        Config.from_dict({"semi": {"threshold": 0.7, "fixmatch": {"threshold": 0.8}}})
    with pytest.raises(ConfigError, match="unknown key 'semi.fixmatch.views'; valid keys: semi.fixmatch.threshold"):
        bare_config(overrides=["semi.fixmatch.views=2"])
    with pytest.raises(ConfigError, match="semi.fixmatch is a section"):
        bare_config(overrides=["semi.fixmatch=1"])
    with pytest.raises(ConfigError, match=r"semi.mixmatch.temperature=2.0 is out of range"):
        bare_config(overrides=["semi.temperature=2"])


def test_with_overrides_is_a_checked_copy_of_a_config():
    config = Config().with_overrides(["model.name=crnn", "model.options.hidden=32", "train.lr=0.5"])
    copied = config.with_overrides(["train.lr=0.01", "semi.fixmatch.threshold=0.8"])
    assert (copied.train.lr, copied.semi.fixmatch.threshold, copied.model.options) == (0.01, 0.8, {"hidden": 32})
    assert (config.train.lr, config.semi.fixmatch.threshold) == (0.5, 0.95)  # the original is left as it was
    copied.model.options["hidden"] = 64
    assert config.model.options == {"hidden": 32}  # nothing shared
    assert config.with_overrides([]) == config
    with pytest.raises(ConfigError, match="expected section.key=value"):
        config.with_overrides(["train.lr"])
    with pytest.raises(ConfigError, match="train.lr"):
        config.with_overrides(["train.lr=-1"])


def test_resolve_config_is_not_public_a_run_config_comes_from_resolve():
    """Issue 55: beside resolve() it made configs the CLI would not (no model preset, no model/input check)."""
    import envsound.config

    assert "resolve_config" not in envsound.config.__all__ and not hasattr(envsound.config, "resolve_config")
    assert not hasattr(envsound.config, "bare_config")
