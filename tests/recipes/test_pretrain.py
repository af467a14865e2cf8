"""Autoencoder pre-training and classifier initialisation from it, on real WAV files (a few tiny epochs each)."""

import logging

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import TINY_OVERRIDES
from envsound.config.files import bare_config
from envsound.data.unlabelled import prepare_unlabelled
from envsound.errors import AudioLoadError, CheckpointError, ConfigError
from envsound.features.cache import FeatureCache
from envsound.models.autoencoder import load_autoencoder
from envsound.models.checkpoint import load_checkpoint
from envsound.models.clip import ClipModel
from envsound.models.dtu import DTUClassifier
from envsound.recipes.context import RunContext
from envsound.recipes.pretrain import pretrain_autoencoder
from envsound.recipes.train import train_model
from envsound.transfer.modes import optimizer_groups
from envsound.transfer.source import InitPlan

PRETRAIN = TINY_OVERRIDES + ("model.name=dtu", "model.filters=4", "train.max_epochs=1")


def _config(*extra):
    return bare_config(overrides=PRETRAIN + extra)


@pytest.fixture(scope="module")
def dtu_autoencoder(tmp_path_factory, synthetic_manifest):
    out = tmp_path_factory.mktemp("cae")
    result = pretrain_autoencoder(synthetic_manifest.select_folds([1, 2]), _config(), decoder="unpool", out_dir=out,
                                  context=RunContext(cache=FeatureCache(out / "cache"), progress=False))
    return result


def test_pretraining_writes_a_self_describing_autoencoder(dtu_autoencoder):
    result = dtu_autoencoder
    checkpoint = load_checkpoint(result.checkpoint)
    assert checkpoint.meta["kind"] == "autoencoder" and checkpoint.meta["decoder"] == "unpool"
    assert checkpoint.meta["trunk"] == "dtu" and checkpoint.labels == []
    assert checkpoint.config.model.filters == 4 and checkpoint.config.features.n_mels == 32
    model, _ = load_autoencoder(result.checkpoint)
    assert model.decoder_kind == "unpool"
    assert result.n_train + result.n_val == 40 and result.n_val > 0 and result.epochs == 1
    assert result.best_val_loss is not None and np.isfinite(result.best_val_loss)
    assert result.examples.shape[1:] == (1, 32, 63) and 1 <= len(result.examples) <= 6
    assert (result.checkpoint.parent / "pretrain.json").exists()
    with pytest.raises(CheckpointError, match="pre-trained autoencoder, not a classifier"):
        ClipModel.from_checkpoint(checkpoint, source=str(result.checkpoint))  # predict/evaluate refuse it clearly


def test_init_copies_the_encoder_and_freezing_keeps_it(tmp_path, synthetic_manifest, dtu_autoencoder):
    ae_state = load_checkpoint(dtu_autoencoder.checkpoint).state_dict
    config = _config("transfer.mode=gradual", "transfer.freeze_epochs=1")
    result = train_model(synthetic_manifest.select_folds([1]), config, out_dir=tmp_path / "frozen",
                         init=dtu_autoencoder.checkpoint, context=RunContext(progress=False))
    trained = load_checkpoint(result.checkpoint)
    assert trained.meta["transfer"]["source"] == str(dtu_autoencoder.checkpoint)
    assert trained.meta["transfer"]["mode"] == "gradual" and trained.config.transfer.freeze_epochs == 1
    encoder = [k for k in ae_state if k.startswith("encoder.")]
    assert len(encoder) == 11  # norm weight, bias and statistics, 3 x conv weight + bias
    for key in encoder:  # copied, then frozen for the only epoch: weights and batch-norm statistics
        assert torch.equal(trained.state_dict[key], ae_state[key]), key
    fresh = DTUClassifier(n_classes=10, in_channels=1, n_mels=32, n_frames=63, filters=4).state_dict()
    assert not torch.equal(trained.state_dict["encoder.convs.0.weight"], fresh["encoder.convs.0.weight"])

    unfrozen = train_model(synthetic_manifest.select_folds([1]), _config(), out_dir=tmp_path / "unfrozen",
                           init=dtu_autoencoder.checkpoint, context=RunContext(progress=False))
    changed = load_checkpoint(unfrozen.checkpoint).state_dict["encoder.convs.0.weight"]
    assert not torch.equal(changed, ae_state["encoder.convs.0.weight"])  # trainable: fine-tuning moved it
    assert torch.allclose(changed, ae_state["encoder.convs.0.weight"], atol=0.05)  # ... from the copied start


@pytest.mark.parametrize("override, says", [
    ("model.filters=8", "model.filters 4 in the checkpoint, 8 here"),
    ("model.name=cnn", "trunk (model.name) 'dtu' in the checkpoint, 'cnn' here"),
    ("features.n_mels=40", "features.n_mels 32 in the checkpoint, 40 here"),
    ("features.window_seconds=2.0", "input frames"),
    ("features.deltas=true", "features.deltas"),
])
def test_a_mismatching_encoder_is_refused_before_any_work(tmp_path, synthetic_manifest, dtu_autoencoder,
                                                         override, says):
    with pytest.raises(CheckpointError, match=says.replace("(", r"\(").replace(")", r"\)")):
        train_model(synthetic_manifest.select_folds([1]), _config(override), out_dir=tmp_path / "run",
                    init=dtu_autoencoder.checkpoint, context=RunContext(progress=False))
    assert not (tmp_path / "run").exists()


def test_init_refuses_a_baseline_checkpoint_and_models_without_a_trunk(tmp_path, synthetic_manifest,
                                                                      dtu_autoencoder):
    knn = train_model(synthetic_manifest.select_folds([1]), _config("model.name=knn", "model.filters=null"),
                      out_dir=tmp_path / "knn", context=RunContext(progress=False))
    with pytest.raises(CheckpointError, match="scikit-learn baseline with no network weights"):
        train_model(synthetic_manifest.select_folds([1]), _config(), out_dir=tmp_path / "a", init=knn.checkpoint,
                    context=RunContext(progress=False))
    with pytest.raises(CheckpointError, match="model 'piczak' has no encoder"):
        train_model(synthetic_manifest.select_folds([1]), _config("model.name=piczak"), out_dir=tmp_path / "b",
                    init=dtu_autoencoder.checkpoint, context=RunContext(progress=False))


def test_freezing_without_init_and_bad_scales_are_config_errors(tmp_path, synthetic_manifest):
    with pytest.raises(ConfigError, match="transfer.mode=gradual trains from a source model, and there is none"):
        train_model(synthetic_manifest.select_folds([1]), _config("transfer.mode=gradual"),
                    out_dir=tmp_path, context=RunContext(progress=False))
    for bad in ("transfer.trunk_lr_scale=0", "transfer.freeze_epochs=0", "train.freeze_encoder_epochs=-1"):
        with pytest.raises(ConfigError):
            _config(bad)


def test_encoder_learning_rate_scale_makes_two_groups():
    model = DTUClassifier(n_classes=3, in_channels=1, n_mels=16, n_frames=16, filters=4)
    config = _config("train.encoder_lr_scale=0.1", "train.lr=0.002")  # the older key of transfer.trunk_lr_scale
    assert config.transfer.trunk_lr_scale == 0.1
    plan = InitPlan(source="ae", kind="autoencoder", trunk={})
    from envsound.transfer.modes import trunk_modules

    encoder_group, rest = optimizer_groups(model, lr=config.train.lr, trunk_scale=config.transfer.trunk_lr_scale,
                                           trunk=trunk_modules(model, plan))
    assert encoder_group["lr"] == pytest.approx(0.0002) and rest["lr"] == pytest.approx(0.002)
    assert {id(p) for p in encoder_group["params"]} == {id(p) for p in model.encoder.parameters()}
    assert len(encoder_group["params"]) + len(rest["params"]) == len(list(model.parameters()))


def test_cnn_unpool_is_refused_and_cnn_upsample_pretrains(tmp_path, synthetic_manifest):
    with pytest.raises(ConfigError, match="average-pools"):
        pretrain_autoencoder(synthetic_manifest, _config("model.name=cnn"), decoder="unpool", out_dir=tmp_path,
                             context=RunContext(progress=False))
    config = _config("model.name=cnn", "model.filters=2", "train.pretrain_val_fraction=0")
    result = pretrain_autoencoder(synthetic_manifest.select_folds([1]), config, decoder="upsample",
                                  out_dir=tmp_path, context=RunContext(progress=False))
    assert result.n_val == 0 and result.best_val_loss is None
    assert load_checkpoint(result.checkpoint).meta["trunk"] == "cnn"
    finetuned = train_model(synthetic_manifest.select_folds([1]), config, out_dir=tmp_path / "clf",
                            init=result.checkpoint, context=RunContext(progress=False))
    assert finetuned.checkpoint.exists()


def test_resume_continues_from_the_last_lightning_checkpoint(tmp_path, synthetic_manifest):
    """A run whose autoencoder.ckpt is missing (interrupted) resumes from lightning/last.ckpt, not from scratch."""
    config = _config("train.pretrain_val_fraction=0")
    manifest = synthetic_manifest.select_folds([1])
    pretrain_autoencoder(manifest, config, decoder="upsample", out_dir=tmp_path, context=RunContext(progress=False))
    last = tmp_path / "lightning" / "last.ckpt"
    state = torch.load(last, weights_only=False)
    state["state_dict"]["model.decoder.2.0.bias"] += 123.0  # a marker only a resumed run can carry over
    torch.save(state, last)
    (tmp_path / "autoencoder.ckpt").unlink()  # as if killed before the end
    result = pretrain_autoencoder(manifest, config, decoder="upsample", out_dir=tmp_path,
                                  context=RunContext(resume=True, progress=False))
    bias = load_checkpoint(result.checkpoint).state_dict["decoder.2.0.bias"]
    assert float(bias.mean()) > 100
    with pytest.raises(CheckpointError, match="decoder='upsample', not 'unpool'"):
        pretrain_autoencoder(manifest, config, decoder="unpool", out_dir=tmp_path,
                             context=RunContext(resume=True, progress=False))


def test_unlabelled_folder_refuses_a_broken_file_unless_asked(tmp_path):
    rng = np.random.default_rng(3)
    for rel, seconds in (("a.wav", 1.2), ("deep/er/b.flac", 3.0), ("c.wav", 0.5)):
        path = tmp_path / "rec" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, (0.1 * rng.standard_normal(int(16000 * seconds))).astype(np.float32), 16000)
    broken = tmp_path / "rec" / "deep" / "broken.wav"
    broken.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk")
    (tmp_path / "rec" / ".hidden.wav").write_bytes(b"ignored")
    (tmp_path / "rec" / "metadata.csv").write_text("file,comment\na.wav,a corpus ships its notes beside the audio\n")
    (tmp_path / "rec" / "deep" / "README").write_text("not audio, and no extension")
    with pytest.raises(AudioLoadError, match="broken.wav"):
        prepare_unlabelled(tmp_path / "rec")
    manifest = prepare_unlabelled(tmp_path / "rec", on_error="skip")
    assert sorted(r.clip_id for r in manifest.records) == ["a.wav", "c.wav", "deep/er/b.flac"]
    assert all(r.labels == () and r.fold is None for r in manifest.records) and manifest.labels == []
    assert [p.name for p, _ in manifest.skipped] == ["broken.wav"]  # the CSV and README are not errors


def test_unlabelled_folder_ignores_files_without_an_audio_extension_and_counts_them(tmp_path, caplog):
    path = tmp_path / "rec" / "a.wav"
    path.parent.mkdir(parents=True)
    sf.write(path, np.zeros(16000, dtype=np.float32) + 0.01, 16000)
    (tmp_path / "rec" / "metadata.csv").write_text("file\na.wav\n")
    (tmp_path / "rec" / "README.md").write_text("notes")
    with caplog.at_level(logging.INFO, logger="envsound"):
        manifest = prepare_unlabelled(tmp_path / "rec")
    assert [r.clip_id for r in manifest.records] == ["a.wav"] and manifest.skipped == []
    assert "ignored 2 file(s) without an audio extension" in caplog.text


def test_the_autoencoder_records_the_clips_it_heard(dtu_autoencoder, synthetic_manifest):
    from envsound.features.fingerprint import clip_fingerprints, exact_ids

    trained_on = load_checkpoint(dtu_autoencoder.checkpoint).trained_on
    heard = exact_ids(clip_fingerprints([r.path for r in synthetic_manifest.select_folds([1, 2]).records]))
    assert trained_on.dtype == np.int64 and sorted(trained_on.tolist()) == sorted(heard.tolist())


def test_init_from_a_model_that_heard_the_test_clips_is_refused(tmp_path, synthetic_manifest, dtu_autoencoder,
                                                                  caplog):
    """The autoencoder was pre-trained on folds 1-2: a split testing on fold 2 must not start from it."""
    train, test = synthetic_manifest.select_folds([1, 3]), synthetic_manifest.select_folds([2])
    with pytest.raises(CheckpointError, match=r"was trained on 20 of this split's 20 validation/test clips"):
        train_model(train, _config(), out_dir=tmp_path / "a", init=dtu_autoencoder.checkpoint, held_out=[test],
                    context=RunContext(progress=False))
    assert not (tmp_path / "a" / "model.ckpt").exists()
    allowed = _config("leakage.allow_overlap=true", "train.max_epochs=1")
    with caplog.at_level("WARNING", logger="envsound"):
        train_model(train, allowed, out_dir=tmp_path / "b", init=dtu_autoencoder.checkpoint, held_out=[test],
                    context=RunContext(progress=False))
    assert "used anyway" in caplog.text
    clean = synthetic_manifest.select_folds([4])  # never heard: no objection
    train_model(train, _config("train.max_epochs=1"), out_dir=tmp_path / "c", init=dtu_autoencoder.checkpoint,
                held_out=[clean], context=RunContext(progress=False))
