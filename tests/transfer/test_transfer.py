"""Transfer from our own classifiers (issue 11): a source trained on some classes of the synthetic set, a target on
others, through the library and the real command line (in-process ``main``: no torch import per test)."""

import logging

import numpy as np
import pytest
import torch

from conftest import TINY_OVERRIDES
from envsound.cli.main import main
from envsound.config import Config
from envsound.config.files import bare_config
from envsound.errors import CheckpointError, ConfigError
from envsound.features.cache import FeatureCache
from envsound.models.checkpoint import load_checkpoint
from envsound.models.clip import ClipModel, build_network
from envsound.recipes.context import RunContext
from envsound.recipes.train import train_model
from envsound.transfer.source import apply_init, match_labels, plan_init, read_label_map, weight_mismatches

SOURCE_CLASSES = ["siren", "dog_bark", "rain", "wind", "clock_tick", "engine"]
TARGET_CLASSES = ["rain", "wind", "bird_chirp", "door_knock"]  # two shared with the source, two new
CNN = TINY_OVERRIDES + ("train.max_epochs=8", "train.lr=0.003")


def _config(*extra):
    return bare_config(overrides=CNN + extra)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return FeatureCache(tmp_path_factory.mktemp("store"))


@pytest.fixture(scope="module")
def source(tmp_path_factory, synthetic_manifest, cache):
    """The source: the default model trained on six classes of folds 1-4."""
    out = tmp_path_factory.mktemp("source")
    manifest = synthetic_manifest.select_classes(SOURCE_CLASSES).select_folds([1, 2, 3, 4])
    return train_model(manifest, _config(), out_dir=out, context=RunContext(cache=cache, progress=False))


@pytest.fixture
def target(synthetic_manifest):
    return synthetic_manifest.select_classes(TARGET_CLASSES)


def test_head_rows_of_shared_classes_are_copied_and_the_rest_is_new(source, target, caplog):
    src = load_checkpoint(source.checkpoint)
    config = _config()
    plan = plan_init(source.checkpoint, config, target.labels)
    torch.manual_seed(0)
    network = build_network(config, len(target.labels))
    fresh_head = network.head[1].weight.detach().clone()
    with caplog.at_level(logging.INFO, logger="envsound.transfer"):
        apply_init(network, plan)
    state = network.state_dict()
    for key, value in src.state_dict.items():
        if not key.startswith("head."):
            assert torch.equal(state[key], value), key  # the whole trunk, batch-norm statistics included
    source_rows = {name: i for i, name in enumerate(src.labels)}
    weight, bias = network.head[1].weight, network.head[1].bias
    for i, name in enumerate(target.labels):
        if name in source_rows:
            assert torch.equal(weight[i], src.state_dict["head.1.weight"][source_rows[name]]), name
            assert torch.equal(bias[i], src.state_dict["head.1.bias"][source_rows[name]]), name
        else:
            assert torch.equal(weight[i], fresh_head[i]), name  # left as initialised
    log = caplog.text
    assert "head: replaced (6 -> 4 classes); rows copied for 2: rain, wind; new (random) for 2: bird_chirp, " \
           "door_knock" in log
    assert "loaded from" in log and "norm.*, blocks.*, fc.*" in log


def test_label_map_pairs_differently_named_classes(tmp_path):
    path = tmp_path / "map.csv"
    path.write_text("source,target\nBark,dog_bark\nsiren,alarm\n")
    mapping = read_label_map(path)
    rows = match_labels(["dog_bark", "alarm", "Rain", "new"], ["siren", "Bark", "rain"], mapping)
    assert rows == {0: 1, 1: 0, 2: 2}  # by the map, and 'Rain' = 'rain' up to case
    with pytest.raises(ConfigError, match="label sets lack: source 'Meow'"):
        match_labels(["a"], ["b"], {"Meow": "a"})
    (tmp_path / "bad.csv").write_text("only-one-column\n")
    with pytest.raises(ConfigError, match="line 1 .*expected two class names"):
        read_label_map(tmp_path / "bad.csv")


def test_gradual_keeps_the_trunk_and_its_statistics_frozen_then_trains_it(tmp_path, source, target, cache):
    src = load_checkpoint(source.checkpoint).state_dict
    folds = target.select_folds([1, 2, 3])
    frozen = train_model(folds, _config("transfer.mode=gradual", "transfer.freeze_epochs=3", "train.max_epochs=3"),
                         out_dir=tmp_path / "frozen", init=source.checkpoint,
                         context=RunContext(cache=cache, progress=False))
    state = load_checkpoint(frozen.checkpoint).state_dict
    trunk = [k for k in src if not k.startswith("head.")]
    assert any("running_mean" in k for k in trunk)
    for key in trunk:  # three epochs of steps: weights and batch-norm statistics untouched
        assert torch.equal(state[key], src[key]), key
    assert load_checkpoint(frozen.checkpoint).meta["transfer"]["mode"] == "gradual"

    thawed = train_model(folds, _config("transfer.mode=gradual", "transfer.freeze_epochs=1", "train.max_epochs=3"),
                         out_dir=tmp_path / "thawed", init=source.checkpoint,
                         context=RunContext(cache=cache, progress=False))
    after = load_checkpoint(thawed.checkpoint).state_dict
    assert not torch.equal(after["blocks.0.convs.0.weight"], src["blocks.0.convs.0.weight"])
    assert not torch.equal(after["norm.bn.running_mean"], src["norm.bn.running_mean"])


def test_full_mode_trains_the_trunk_at_its_own_rate(tmp_path, source, target, cache):
    folds = target.select_folds([1, 2, 3])
    result = train_model(folds, _config("transfer.mode=full", "transfer.trunk_lr_scale=0.1"),
                         out_dir=tmp_path, init=source.checkpoint, context=RunContext(cache=cache, progress=False))
    trained = load_checkpoint(result.checkpoint)
    assert trained.meta["transfer"]["copied_rows"] == {"rain": "rain", "wind": "wind"}
    assert trained.meta["transfer"]["new_rows"] == ["bird_chirp", "door_knock"]
    src = load_checkpoint(source.checkpoint).state_dict
    assert not torch.equal(trained.state_dict["fc.1.weight"], src["fc.1.weight"])


def test_probe_is_a_logistic_regression_on_the_frozen_trunk(tmp_path, source, target, cache):
    folds = target.select_folds([1, 2, 3, 4])
    result = train_model(folds, _config("transfer.mode=probe"), out_dir=tmp_path, init=source.checkpoint,
                         context=RunContext(cache=cache, progress=False))
    assert result.epochs == 0 and result.seconds < 60
    trained = load_checkpoint(result.checkpoint)
    assert trained.meta["transfer"]["head"] == "logistic regression"
    src = load_checkpoint(source.checkpoint).state_dict
    for key, value in src.items():
        if not key.startswith("head."):
            assert torch.equal(trained.state_dict[key], value), key
    model = ClipModel.from_checkpoint(trained)  # an ordinary checkpoint: evaluate and predict use it as any other
    test = target.select_folds([5])
    from envsound.features.extract import extract_features

    _, feats, _ = extract_features(test.records, trained.config.features, cache=cache, progress=False)
    predicted = model.predict_clips(list(feats)).argmax(axis=1)
    truth = np.array([target.labels.index(r.label) for r in test.records])
    assert (predicted == truth).mean() >= 0.5  # 4 classes, chance 0.25; the trunk never saw two of them


@pytest.mark.skipif(torch.cuda.is_available(), reason="asks for CUDA where there is none")
def test_a_probe_runs_its_trunk_where_runtime_accelerator_says(tmp_path, source, target, cache):
    with pytest.raises(ConfigError, match="runtime.accelerator='cuda' is not available"):
        train_model(target.select_folds([1, 2]), _config("transfer.mode=probe", "runtime.accelerator=cuda"),
                    out_dir=tmp_path, init=source.checkpoint, context=RunContext(cache=cache, progress=False))


def test_auto_is_the_measured_winner_and_full_where_a_probe_cannot_run(source):
    from envsound.transfer.modes import resolve_mode

    plan = plan_init(source.checkpoint, _config(), TARGET_CLASSES)
    assert resolve_mode(_config(), plan) == "probe"
    assert resolve_mode(_config("semi.method=fixmatch"), plan) == "full"
    assert resolve_mode(_config("train.ensemble=2"), plan) == "full"


def test_probe_and_freezing_need_a_source(tmp_path, target):
    for mode in ("probe", "gradual", "full"):
        with pytest.raises(ConfigError, match=f"transfer.mode={mode} trains from a source model"):
            train_model(target, _config(f"transfer.mode={mode}"), out_dir=tmp_path / mode,
                        context=RunContext(progress=False))
    assert not any(tmp_path.iterdir())


def test_modes_a_source_cannot_train_in_are_refused(tmp_path, source, target, cache):
    from envsound.models.checkpoint import Checkpoint, save_checkpoint

    for extra, says in ((("transfer.mode=probe", "semi.method=fixmatch"), "probe fits on the labelled clips only"),
                        (("transfer.mode=probe", "train.ensemble=2"), "probe fits one logistic regression"),
                        (("transfer.mode=gradual", "runtime.devices=2"), "gradual runs in one process")):
        with pytest.raises(ConfigError, match=says):
            train_model(target, _config(*extra), out_dir=tmp_path / "run", init=source.checkpoint,
                        context=RunContext(progress=False))
    ensemble = load_checkpoint(source.checkpoint)
    ensemble.config.train.ensemble = 2
    path = save_checkpoint(tmp_path / "ensemble.ckpt", Checkpoint(config=ensemble.config, labels=ensemble.labels,
                                                                  state_dict=ensemble.state_dict))
    with pytest.raises(CheckpointError, match="an ensemble of 2 networks"):
        train_model(target, _config(), out_dir=tmp_path / "run", init=path, context=RunContext(progress=False))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("override, says", [
    ("features.n_mels=40", "features.n_mels 32 in the checkpoint, 40 here"),
    ("features.sample_rate=22050", "features.sample_rate 16000 in the checkpoint, 22050 here"),
    ("model.filters=4", "model.filters 8 in the checkpoint, 4 here"),
    ("model.name=piczak", "model.name 'cnn' in the checkpoint, 'piczak' here"),
])
def test_a_source_that_does_not_fit_is_refused_before_any_work(tmp_path, source, target, override, says):
    with pytest.raises(CheckpointError, match=says):
        train_model(target, _config(override), out_dir=tmp_path / "run", init=source.checkpoint,
                    context=RunContext(progress=False))
    assert not (tmp_path / "run").exists()


def test_cli_inherits_the_sources_settings_and_names_every_mismatch(tmp_path, source, synthetic_root, capsys):
    common = ["--dataset", "synthetic", "--root", str(synthetic_root), "--classes", ",".join(TARGET_CLASSES),
              "--cache-dir", str(tmp_path / "cache"), "-q"]
    # no --set: the features (16 kHz, 32 mels) and model (8 filters) come from the source checkpoint
    assert main(["train", *common, "--folds", "1,2,3,4", "--init", str(source.checkpoint), "--transfer", "probe",
                 "--out", str(tmp_path / "probe")]) == 0
    trained = load_checkpoint(tmp_path / "probe" / "model.ckpt")
    assert trained.labels == TARGET_CLASSES and trained.config.features.n_mels == 32
    assert trained.config.model.filters == 8 and trained.config.transfer.mode == "probe"
    capsys.readouterr()
    # the source heard fold 4's rain and wind clips: testing on fold 4 from it is refused
    assert main(["train", *common, "--folds", "1,2,3", "--init", str(source.checkpoint), "--transfer", "probe",
                 "--out", str(tmp_path / "heard")]) == 1
    assert "was trained on 4 of this split's 16 validation/test clips" in capsys.readouterr().err

    assert main(["train", *common, "--init", str(source.checkpoint), "--out", str(tmp_path / "bad"),
                 "--set", "features.n_mels=40", "--set", "features.hop_length=128", "--model", "piczak"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("envsound train: error: ")
    for part in ("model.name 'cnn' in the checkpoint, 'piczak' here", "features.n_mels 32 in the checkpoint, 40",
                 "features.hop_length 256 in the checkpoint, 128 here"):
        assert part in err
    assert not (tmp_path / "bad").exists()

    not_a_checkpoint = tmp_path / "notes.ckpt"
    not_a_checkpoint.write_text("hello")
    assert main(["train", *common, "--init", str(not_a_checkpoint), "--out", str(tmp_path / "bad")]) == 1
    assert "notes.ckpt: not a model file (a text file" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_a_waveform_source_for_log_mel_features_is_refused(tmp_path, source, target):
    aclnet = tmp_path / "aclnet"
    config = bare_config(model="aclnet", overrides=("features.kind=waveform", "features.sample_rate=16000",
                                                    "model.filters=2", "train.max_epochs=1", "augment.copies=0",
                                                    "features.window_seconds=0.5", "features.eval_hop_seconds=0.5"))
    wave = train_model(target.select_folds([1]), config, out_dir=aclnet, context=RunContext(progress=False))
    with pytest.raises(CheckpointError, match="model.name 'aclnet' in the checkpoint, 'cnn' here.*features.kind "
                                              "'waveform' in the checkpoint, 'logmel' here"):
        train_model(target, _config(), out_dir=tmp_path / "run", init=wave.checkpoint,
                    context=RunContext(progress=False))


def test_embed_writes_embeddings_files_and_labels(tmp_path, source, synthetic_root, capsys):
    out = tmp_path / "emb.npz"
    assert main(["embed-clips", str(source.checkpoint), "--dataset", "synthetic", "--root", str(synthetic_root),
                 "--folds", "5", "--classes", "rain,wind", "--out", str(out), "--no-cache", "-q"]) == 0
    data = np.load(out)
    assert data["embeddings"].shape == (4, 64) and data["embeddings"].dtype == np.float32
    assert sorted(data["labels"]) == ["rain", "rain", "wind", "wind"] and all(f.endswith(".wav") for f in data["files"])
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00")
    one = sorted(synthetic_root.rglob("*.wav"))[0]
    assert main(["embed-clips", str(source.checkpoint), str(one), str(bad), "--out", str(tmp_path / "files.npz"), "-q"]) == 1
    data = np.load(tmp_path / "files.npz")
    assert list(data["files"]) == [str(one)] and "labels" not in data
    assert "bad.wav" in capsys.readouterr().err


def test_clips_left_unlabelled_by_shots_join_the_semi_supervised_pool(synthetic_manifest, cache):
    from envsound.training.prepare import prepare_training_data

    folds = synthetic_manifest.select_folds([1, 2])  # 4 clips a class
    data = prepare_training_data(folds, _config("train.shots=1", "semi.method=fixmatch"), cache=cache,
                                 progress=False)
    assert len(data.train) == 10 and len(data.unlabelled_features) == 30
    assert sorted(r.label for r in data.train.records) == sorted(synthetic_manifest.labels)


def test_classes_unknown_name_lists_the_valid_ones(synthetic_manifest):
    from envsound.errors import DatasetLayoutError

    with pytest.raises(DatasetLayoutError, match="no class 'cat'; its classes are siren, dog_bark"):
        synthetic_manifest.select_classes(["rain", "cat"])
    rest = synthetic_manifest.select_classes(exclude=["rain"])
    assert "rain" not in rest.labels and len(rest.labels) == 9 and len(rest) == len(synthetic_manifest) - 10


def test_older_configs_mean_what_they_meant():
    config = Config.from_dict({"train": {"freeze_encoder_epochs": 3, "encoder_lr_scale": 0.5}})
    assert config.transfer.mode == "gradual" and config.transfer.freeze_epochs == 3
    assert config.transfer.trunk_lr_scale == 0.5
    assert Config.from_dict({"train": {"freeze_encoder_epochs": 0}}).transfer.mode == "auto"


def test_a_model_option_that_differs_from_the_sources_is_a_mismatch():
    # regression: model.options were not compared, so an option that keeps the tensor shapes (aclnet's LLF pool,
    # which sets the frame rate the weights learnt) loaded silently
    def aclnet(*options):
        return bare_config(model="aclnet", overrides=("features.kind=waveform", *options))

    assert weight_mismatches(aclnet(), aclnet("model.options.llf_pool=40")) == []  # the default, spelt out
    assert weight_mismatches(aclnet("model.options.llf_pool=110"), aclnet()) == [
        "model.options.llf_pool 40 in the checkpoint, 110 here"]
    crnn = bare_config(model="crnn", overrides=("model.options.rnn=lstm", "model.options.hidden=32"))
    assert weight_mismatches(crnn, bare_config(model="crnn")) == [
        "model.options.rnn 'gru' in the checkpoint, 'lstm' here", "model.options.hidden 64 in the checkpoint, 32 here"]
