"""One config resolver: `resolve()` layers the config every entry point trains with, and the CLI builds its config
through it, so the same request gives the same config from Python and from the command line."""

import pytest

from envsound.cli.main import build_parser
from envsound.cli.options import build_config
from envsound.config import Config
from envsound.config.files import bare_config
from envsound.config.flags import FLAGS
from envsound.errors import ConfigError
from envsound.models.checkpoint import Checkpoint, save_checkpoint
from envsound.models.registry import build_model
from envsound.recipes.config import resolve


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A small cnn checkpoint (8 filters, 32 mel bands) to start from."""
    config = bare_config(overrides=["model.filters=8", "features.n_mels=32"])
    net = build_model(config.model, n_classes=2, in_channels=1, n_mels=32, n_frames=40)
    path = tmp_path_factory.mktemp("source") / "model.ckpt"
    return save_checkpoint(path, Checkpoint(config=config, labels=["a", "b"], state_dict=net.state_dict()))


def test_each_layer_goes_over_the_last(tmp_path, source):
    # the model's own preset, an init's features and model, the named preset, a config file, --model, overrides
    assert resolve(model="piczak").features.n_mels == 60  # piczak's own preset
    assert bare_config(model="piczak").features.n_mels == 128  # the bare layering knows no model preset
    dtu = resolve(preset="dtu2018")
    assert (dtu.model.name, dtu.features.n_mels) == ("dtu", 28)
    assert resolve(preset="dtu2018", overrides=["features.n_mels=40"]).features.n_mels == 40
    yaml_file = tmp_path / "run.yaml"
    yaml_file.write_text("model:\n  name: piczak\ntrain:\n  lr: 0.002\n")
    from_file = resolve(config_file=yaml_file)
    assert (from_file.model.name, from_file.features.n_mels, from_file.train.lr) == ("piczak", 60, 0.002)
    config = resolve(init=source, overrides=["model.filters=16"])
    assert (config.model.name, config.model.filters, config.features.n_mels) == ("cnn", 16, 32)
    with pytest.raises(ConfigError, match="aclnet"):
        resolve(model="aclnet", overrides=["features.kind=logmel"])


def test_flags_are_keywords_and_an_unknown_one_is_named():
    config = resolve(shots=5, semi="fixmatch", allow_overlap=True, devices=2)
    assert (config.train.shots, config.semi.method, config.leakage.allow_overlap, config.runtime.devices) == (
        5, "fixmatch", True, 2)
    assert resolve(allow_overlap=False) == Config().validate()
    with pytest.raises(ConfigError, match="'epochs'.*overrides="):
        resolve(epochs=3)


REQUESTS = [  # (CLI words after the command, the same request to resolve())
    ([], {}),
    (["--model", "piczak"], {"model": "piczak"}),
    (["--preset", "dtu2018", "--set", "train.max_epochs=30"],
     {"preset": "dtu2018", "overrides": ["train.max_epochs=30"]}),
    (["--model", "crnn", "--set", "model.options.hidden=32", "--set", "train.lr=0.01"],
     {"model": "crnn", "overrides": ["model.options.hidden=32", "train.lr=0.01"]}),
    (["--shots", "5", "--semi", "fixmatch", "--allow-overlap", "--devices", "2"],
     {"shots": 5, "semi": "fixmatch", "allow_overlap": True, "devices": 2}),
    (["--label-fraction", "0.25"], {"label_fraction": 0.25}),
    (["--set", "train.freeze_encoder_epochs=4"], {"freeze_encoder_epochs": 4}),  # an old key and its alias flag
]


@pytest.mark.parametrize("words,request_", REQUESTS)
def test_the_cli_and_resolve_give_the_same_config(words, request_, tmp_path):
    args = build_parser().parse_args(["train", "--dataset", "synthetic", "--out", str(tmp_path), *words])
    assert build_config(args) == resolve(**request_)


def test_init_and_transfer_flags_give_the_same_config_both_ways(tmp_path, source):
    words = ["--init", str(source), "--transfer", "probe", "--set", "train.seed=3"]
    args = build_parser().parse_args(["cv", "--dataset", "synthetic", "--out", str(tmp_path), *words])
    config = build_config(args)
    assert config == resolve(init=source, transfer="probe", overrides=["train.seed=3"])
    assert (config.model.filters, config.features.n_mels, config.transfer.mode) == (8, 32, "probe")


def test_every_flag_is_an_option_of_train():
    options = {action.option_strings[0] for action in build_parser()._subparsers._group_actions[0].choices[
        "train"]._actions if action.option_strings}
    assert {flag.option for flag in FLAGS} <= options
