"""``model.options``: each model declares what it takes; build_model checks it and names the bad key or value."""

from __future__ import annotations

import pytest
import torch
import yaml

from envsound.config import Config, ModelConfig
from envsound.config.files import bare_config
from envsound.errors import ConfigError
from envsound.models.blocks import OptionSpec, resolve_options
from envsound.models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from envsound.models.clip import build_network
from envsound.models.registry import (build_model, check_model_options, describe_model_options, model_names,
                                      model_options)


def _build(name: str, **options):
    return build_model(ModelConfig(name=name, options=options), n_classes=3, in_channels=1, n_mels=32, n_frames=40)


def test_every_model_declares_valid_defaults():
    for name in model_names():
        specs = model_options(name)
        defaults = check_model_options(name, {})
        assert set(defaults) == set(specs)
        for key, spec in specs.items():
            assert spec.coerce(spec.default) == defaults[key]
    assert describe_model_options("piczak") == "none"
    assert describe_model_options("cnn") == "frame_head (int 0..1024, default 0)"
    assert describe_model_options("crnn") == ("rnn (gru|lstm, default gru), hidden (int 8..1024, default 64), "
                                              "layers (int 1..4, default 1), pool (attention|mean|max, default "
                                              "attention), frame_head (int 0..1024, default 0)")


def test_unknown_option_names_the_model_the_key_and_the_valid_ones():
    with pytest.raises(ConfigError) as info:
        _build("crnn", hiden=32)
    message = str(info.value)
    assert "model 'crnn' has no option 'hiden'" in message and "did you mean 'hidden'" in message
    assert "rnn (gru|lstm, default gru)" in message and "hidden (int 8..1024, default 64)" in message
    with pytest.raises(ConfigError, match=r"model 'resnet' has no option 'rnn'; its options: depth \(10\|18\|34"):
        _build("resnet", rnn="gru")


@pytest.mark.parametrize("name, options, fragment", [
    ("crnn", {"hidden": 0}, r"model.options.hidden=0 is not valid; valid: int 8..1024, default 64"),
    ("crnn", {"hidden": 32.5}, r"model.options.hidden=32.5 is not valid"),
    ("crnn", {"hidden": True}, r"model.options.hidden=True is not valid"),
    ("crnn", {"hidden": "many"}, r"model.options.hidden='many' is not valid"),
    ("crnn", {"rnn": "transformer"}, r"model.options.rnn='transformer' is not valid; valid: gru\|lstm"),
    ("crnn", {"pool": 1}, r"valid: attention\|mean\|max"),
    ("crnn", {"layers": 9}, r"model.options.layers=9 .* int 1..4"),
    ("resnet", {"depth": 50}, r"model 'resnet': model.options.depth=50 is not valid; valid: 10\|18\|34, default 10"),
])
def test_bad_values_name_the_model_the_value_and_the_range(name, options, fragment):
    with pytest.raises(ConfigError, match=fragment) as info:
        _build(name, **options)
    assert f"model {name!r}" in str(info.value)


@pytest.mark.parametrize("name", ["piczak", "dtu", "knn", "random_forest"])
def test_models_without_options_reject_any(name):
    with pytest.raises(ConfigError, match=rf"model '{name}' takes no options, but model.options has 'hidden'"):
        build_model(ModelConfig(name=name, options={"hidden": 8}), n_classes=3, in_channels=2, n_mels=64,
                    n_frames=41)


def test_options_reach_the_constructor_with_yaml_typed_strings():
    model = _build("crnn", rnn="lstm", hidden="16", layers=2.0)  # a string or integral float from a config is fine
    assert isinstance(model.rnn, torch.nn.LSTM) and model.rnn.hidden_size == 16 and model.rnn.num_layers == 2
    assert len(_build("resnet", depth=18).stages[0]) == 2


def test_option_spec_alone():
    spec = OptionSpec(0.5, float, low=0.0, high=1.0)
    assert spec.describe() == "float 0.0..1.0, default 0.5" and spec.coerce(1) == 1.0 and spec.coerce("0.25") == 0.25
    assert OptionSpec(True, bool).coerce("false") is False
    with pytest.raises(ConfigError, match="must be a mapping"):
        resolve_options("x", {"a": spec}, ["a"])
    with pytest.raises(ConfigError, match=r"model.options.a=inf"):
        resolve_options("x", {"a": OptionSpec(1, int)}, {"a": float("inf")})


def test_config_options_from_yaml_and_set_round_trip(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"model": {"name": "crnn", "options": {"rnn": "lstm", "hidden": 32}}}))
    config = bare_config(config_file=path)
    assert config.model.options == {"rnn": "lstm", "hidden": 32}
    assert Config.from_dict(config.to_dict()) == config
    # --set replaces the whole mapping
    config = bare_config(config_file=path, overrides=["model.options={pool: mean}"])
    assert config.model.options == {"pool": "mean"}
    assert bare_config(config_file=path, overrides=["model.options={}"]).model.options == {}
    with pytest.raises(ConfigError, match="model.options"):
        bare_config(overrides=["model.options=32"])
    with pytest.raises(ConfigError, match="model.options.hidden"):
        bare_config(overrides=["model.options={hidden: [1, 2]}"])


def test_set_option_one_key():
    model = ModelConfig(name="crnn")
    model.set_option("hidden", "32")
    model.set_option("rnn", "lstm")
    assert model.options == {"hidden": 32, "rnn": "lstm"}
    model.set_option("hidden", "none")  # back to the model's default
    assert model.options == {"rnn": "lstm"}
    with pytest.raises(ConfigError, match="model.options.a.b"):
        model.set_option("a.b", 1)


def test_set_one_option_on_the_command_line():
    config = bare_config(overrides=["model.name=crnn", "model.options.hidden=32", "model.options.rnn=lstm"])
    assert config.model.options == {"hidden": 32, "rnn": "lstm"}


def test_checkpoint_keeps_the_options_and_older_configs_load_without_them(tmp_path):
    config = bare_config(overrides=["model.name=crnn", "model.filters=4", "features.n_mels=32",
                                    "model.options={rnn: lstm, hidden: 8}"])
    net = build_network(config, 2)
    path = save_checkpoint(tmp_path / "m.ckpt", Checkpoint(config=config, labels=["a", "b"],
                                                           state_dict=net.state_dict()))
    loaded = load_checkpoint(path)
    assert loaded.config.model.options == {"rnn": "lstm", "hidden": 8}
    rebuilt = build_network(loaded.config, 2)
    rebuilt.load_state_dict(loaded.state_dict)  # strict: the same architecture
    assert isinstance(rebuilt.rnn, torch.nn.LSTM)
    # a checkpoint written before model.options existed
    payload = torch.load(path, weights_only=True)
    payload["config"]["model"] = {"name": "cnn", "filters": 4, "dropout": None}
    torch.save(payload, tmp_path / "old.ckpt")
    assert load_checkpoint(tmp_path / "old.ckpt").config.model.options == {}
