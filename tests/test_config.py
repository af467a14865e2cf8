import pytest
import yaml

from envsound.config import Config, resolve_config
from envsound.errors import ConfigError


def test_overrides_are_typed_and_win_over_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"train": {"lr": 0.5, "max_epochs": 7}, "features": {"n_mels": 64}}))
    config = resolve_config(config_file=path, overrides=["train.lr=0.01", "features.f_max=none",
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
        resolve_config(overrides=[override])


def test_unknown_yaml_key_is_an_error(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match="train.learning_rate"):
        resolve_config(config_file=path)


def test_keys_that_left_train_still_set_their_new_place(tmp_path):
    """Checkpoint format 13 moved the runtime and the on-the-fly augmentation out of train: config files, --set
    and run directories written before still mean what they meant."""
    path = tmp_path / "old.yaml"
    path.write_text("train:\n  lr: 0.5\n  devices: 1\n  precision: '32'\n  num_workers: 2\n  mixup_alpha: 0.4\n")
    config = resolve_config(config_file=path, overrides=["train.time_roll=false", "train.spec_augment=false"])
    assert (config.train.lr, config.runtime.precision, config.runtime.num_workers) == (0.5, "32", 2)
    assert (config.augment.mixup_alpha, config.augment.time_roll, config.augment.spec_augment) == (0.4, False, False)
    assert not hasattr(config.train, "mixup_alpha") and "runtime" in config.to_dict()


def test_round_trip_through_dict():
    config = resolve_config(overrides=["model.name=dtu", "model.filters=16"])
    assert Config.from_dict(config.to_dict()) == config


def test_window_geometry():
    feats = resolve_config().features
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
    config = resolve_config(overrides=["model.name=crnn", "model.options={rnn: lstm, hidden: 32, pool: mean}"])
    assert config.model.options == {"rnn": "lstm", "hidden": 32, "pool": "mean"}
    assert Config.from_dict(config.to_dict()) == config
    old = Config().to_dict()
    del old["model"]["options"]  # configs and checkpoints written before model.options existed
    assert Config.from_dict(old).model.options == {}
    with pytest.raises(ConfigError, match="model.options"):
        resolve_config(overrides=["model.options=[hidden]"])
