"""Named presets shipped in the package (``--preset``), applied after the model's preset and before --config/--set."""

import pytest
import yaml

from envsound.cli.main import build_parser
from envsound.cli.options import build_config
from envsound.config import load_preset, preset_names
from envsound.config.files import bare_config
from envsound.errors import ConfigError


def test_dtu2018_reproduces_the_original_study():
    assert "dtu2018" in preset_names()
    config = bare_config(preset=load_preset("dtu2018"))
    f, m, t = config.features, config.model, config.train
    assert (f.sample_rate, f.n_fft, f.hop_length, f.n_mels) == (44100, 12288, 6144, 28)
    assert (f.n_mels, f.window_frames) == (28, 36)  # a 5-s clip is one 28 x 36 input
    assert (m.name, m.filters) == ("dtu", 64)
    assert (t.batch_size, t.optimizer, t.lr, t.scheduler) == (32, "adam", 1e-3, "none")
    assert (t.patience, t.monitor, t.val_fraction, t.min_steps) == (5, "loss", 0.1, 0)  # early stopping, 10 % split
    a = config.augment
    assert (a.mixup_alpha, a.spec_augment, a.time_roll, a.copies) == (0.0, False, False, 0)


def test_piczak2015_is_the_authors_short_segment_set_up():
    config = bare_config(preset=load_preset("piczak2015"))
    f, m, t, a = config.features, config.model, config.train, config.augment
    assert (f.sample_rate, f.n_fft, f.hop_length, f.n_mels, f.deltas) == (22050, 1024, 512, 60, True)
    assert (f.window_frames, f.eval_hop_frames) == (41, 20)  # 41-frame segments, 50 % overlap
    assert (m.name, m.filters, m.dropout) == ("piczak", 80, 0.5)
    assert (t.windows, t.optimizer, t.lr, t.weight_decay, t.scheduler) == ("all_copies", "sgd", 0.002, 0.001, "none")
    assert (t.batch_size, t.max_epochs, t.val_fraction, t.patience) == (1000, 300, 0.0, 0)
    assert (a.mixup_alpha, a.spec_augment, a.time_roll, t.class_balance) == (0.0, False, False, "off")
    assert (a.copies, a.pitch_shift, a.time_stretch, a.shift, a.gain, a.noise) == (10, 1.0, 1.0, 1.0, 0.0, 0.0)


def test_envnet2_bc2018_is_the_authors_esc10_bc_set_up():
    config = bare_config(preset=load_preset("envnet2-bc2018"))
    f, m, t = config.features, config.model, config.train
    assert (f.kind, f.sample_rate, f.window_samples, f.eval_crops) == ("waveform", 44100, 66650, 10)
    assert (f.trim_zeros, f.edge_pad) == (True, 0.5)  # esc_gen.py's cut zeros; dataset.py's inputLength // 2 padding
    assert (m.name, m.filters, m.dropout) == ("envnet2", 32, 0.5)  # the paper's width: fc 4096
    assert (t.optimizer, t.lr, t.weight_decay, t.batch_size) == ("sgd", 0.01, 5e-4, 64)
    assert (t.max_epochs, t.scheduler, t.lr_milestones, t.lr_gamma) == (1200, "step", [600, 900], 0.1)
    a = config.augment
    assert (a.between_class, a.mixup_alpha, a.time_roll, t.val_fraction, t.patience) == (True, 0.0, False, 0.0, 0)
    assert a.bc_gain == "a_weighting"  # utils.py's compute_gain: the loudest A-weighted frame
    assert a.copies == 0


def test_aclnet2018_is_what_the_paper_states():
    config = bare_config(preset=load_preset("aclnet2018"))
    f, m = config.features, config.model
    assert (f.kind, f.sample_rate, f.window_samples) == ("waveform", 44100, 56448)  # 1.28 s
    assert (m.name, m.filters, m.options) == ("aclnet", 32, {"llf_pool": 110, "separable": False})  # m = 1
    assert 44100 * 0.0099 < 4 * m.options["llf_pool"] < 44100 * 0.0101  # 10-ms LLF frames
    a = config.augment
    assert (a.mixup_alpha, a.between_class, a.spec_augment) == (0.2, False, False)
    assert a.copies > 0  # the paper trained with data augmentation


def test_cances2022_is_the_authors_esc10_semi_supervised_set_up():
    config = bare_config(preset=load_preset("cances2022"), overrides=["semi.method=fixmatch"])
    f, m, t, s = config.features, config.model, config.train, config.semi
    assert (f.sample_rate, f.n_fft, f.hop_length, f.n_mels, f.window_frames) == (44100, 2048, 512, 64, 431)
    assert m.name == "wrn28"
    assert (t.optimizer, t.lr, t.weight_decay, t.scheduler, t.max_epochs) == ("adam", 0.001, 0.0, "cosine", 300)
    assert t.min_steps == 0  # the epochs as the paper gives them, not the label-share budget
    assert (t.batch_size, s.mu, s.epoch) == (30, 1, "pool")  # 30 labelled + 30 unlabelled, epochs over the pool
    a = config.augment
    assert (a.mixup_alpha, a.spec_augment, s.labelled_mixup, t.val_fraction) == (0.0, False, False, 0.0)
    assert (s.fixmatch.threshold, s.unlabelled_weight, s.distribution_alignment) == (0.8, 1.0, False)
    mixmatch = bare_config(preset=load_preset("cances2022"), overrides=["semi.method=mixmatch"]).semi
    assert (mixmatch.mixmatch.views, mixmatch.mixmatch.temperature, mixmatch.mixmatch.mix_alpha) == (2, 0.5, 0.75)
    assert mixmatch.rampup * t.max_epochs == pytest.approx(50, abs=0.1)  # their ramp: the first 50 epochs


def test_words_yaml_reads_as_booleans_stay_words():
    assert bare_config(overrides=["train.class_balance=off"]).train.class_balance == "off"
    assert bare_config(overrides=["train.windows=all"]).train.windows == "all"


def test_unknown_preset_lists_the_valid_names():
    with pytest.raises(ConfigError, match=r"unknown preset 'dtu2019'; valid: .*dtu2018"):
        load_preset("dtu2019")


def test_preset_order_model_preset_then_preset_then_config_then_set(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  batch_size: 8\n  lr: 0.5\n")
    args = build_parser().parse_args(["config", "--preset", "dtu2018", "--config", str(path),
                                      "--set", "train.lr=0.01"])
    config = build_config(args)
    assert config.model.name == "dtu" and config.features.n_mels == 28  # from the preset
    assert config.train.batch_size == 8 and config.train.lr == 0.01  # --config over the preset, --set over both
    args = build_parser().parse_args(["config", "--preset", "dtu2018", "--model", "cnn"])
    assert build_config(args).model.name == "cnn"  # --model still wins


def test_scheduler_none_can_be_set_on_the_command_line():
    # regression: 'none' was read as an empty value even for a key that cannot be None
    assert bare_config(overrides=["train.scheduler=none"]).train.scheduler == "none"
    assert bare_config(overrides=["features.f_max=none"]).features.f_max is None


def test_config_command_prints_the_preset_and_refuses_unknown_ones(envsound_main):
    shown = envsound_main("config", "--preset", "dtu2018")
    assert shown.returncode == 0, shown.stderr
    printed = yaml.safe_load(shown.stdout)
    assert printed["features"]["n_mels"] == 28 and printed["model"]["name"] == "dtu"
    assert printed["semi"]["method"] == "none" and printed["train"]["label_fraction"] == 1.0
    bad = envsound_main("config", "--preset", "nope")
    assert bad.returncode == 1 and "unknown preset 'nope'; valid: aclnet2018, cances2022, dtu2018" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_sed_is_a_frame_head_on_efficientat():
    config = bare_config(preset=load_preset("sed"))
    assert config.model.name == "efficientat" and config.model.options["frame_head"] == 64
    assert (config.model.options["frame_step"], config.events.finetune_epochs, config.events.tune) == (4, 20, True)
    assert (config.features.window_seconds, config.features.eval_hop_seconds, config.events.median_seconds) == \
        (10.0, 5.0, 1.0)
