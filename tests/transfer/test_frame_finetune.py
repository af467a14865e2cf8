"""The frame detector's second stage and its decoding (issue 54): crops with their frame targets, mixing of windows
in mel power, decoding chosen on validation clips, and the refusal of a frame head with no pre-trained trunk."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from envsound.config.files import bare_config
from envsound.errors import ConfigError
from envsound.events import Timeline
from envsound.features.efficientat import SETTINGS
from envsound.transfer.frame_finetune import LOG_OFFSET, LOG_SCALE, FrameCrops, mix_windows

SED = {"features": dict(SETTINGS, window_seconds=1.0)}  # 100 frames of 10 ms a window


def event(label, onset, offset):
    return SimpleNamespace(label=label, onset=onset, offset=offset)


def test_a_crop_is_its_clip_from_a_random_start_with_the_targets_of_that_start():
    config = bare_config(preset=SED)
    clips = [np.arange(250, dtype=np.float32).reshape(1, 1, 250).repeat(2, axis=1),  # longer than the window
             np.arange(40, dtype=np.float32).reshape(1, 1, 40).repeat(2, axis=1)]  # shorter: placed inside it
    strong = [[event("a", 1.005, 1.505)], [event("b", 0.105, 0.205)]]  # off the 10-ms grid
    crops = FrameCrops(clips, strong, ["a", "b"], config=config, step_frames=4)
    torch.manual_seed(0)
    starts = set()
    for _ in range(30):
        window, target = crops[0]
        start = int(window[0, 0, 0])  # the ramp's value is the frame's index
        starts.add(start)
        assert window.shape == (1, 2, 100) and window[0, 0].tolist() == list(range(start, start + 100))
        centres = (start + 4 * np.arange(25)) / 100  # seconds
        assert target[:, 0].tolist() == ((centres >= 1.005) & (centres < 1.505)).astype(float).tolist()
        assert not target[:, 1].any()
        short, short_target = crops[1]
        where = np.flatnonzero(short[0, 0].numpy() != crops.pad)
        offset = int(where[1]) - 1  # frame 0 of the clip holds 0.0, as may the padding: read frame 1's place
        assert short[0, 0, offset:offset + 40].tolist() == list(range(40))
        centres = (-offset + 4 * np.arange(25)) / 100
        assert short_target[:, 1].tolist() == ((centres >= 0.105) & (centres < 0.205)).astype(float).tolist()
    assert len(starts) > 10  # the start changes from one reading to the next


def test_mixing_adds_mel_power_and_joins_the_targets():
    torch.manual_seed(0)
    power = torch.rand(8, 1, 4, 6) + 0.1
    x = (torch.log(power) + LOG_OFFSET) / LOG_SCALE
    y = torch.zeros(8, 6, 8)
    for i in range(8):
        y[i, :, i] = 1
    mixed, joined = mix_windows(x, y)
    changed = [i for i in range(8) if not torch.equal(mixed[i], x[i])]
    assert 0 < len(changed) < 8
    for i in range(8):
        active = joined[i, 0].nonzero().flatten().tolist()
        if i not in changed:
            assert active == [i] and torch.equal(joined[i], y[i])
            continue
        assert len(active) == 2 and i in active
        j = next(k for k in active if k != i)
        added = torch.exp(mixed[i] * LOG_SCALE - LOG_OFFSET) - power[i]  # what came from the partner
        ratio = (added / power[j]).flatten()
        assert torch.allclose(ratio, ratio[0].expand_as(ratio), rtol=1e-4)  # the partner, at one level
        assert 10 ** -0.6 - 1e-4 <= float(ratio[0]) <= 1 + 1e-4  # 0-6 dB below


def test_decoding_is_tuned_on_the_validation_clips_to_the_best_event_f1():
    """A track that is 0.45 inside its event with one 0.9 spike outside: only a threshold under 0.45 finds the
    event, and only a minimum length over the spike's 0.1 s drops the spike."""
    from envsound.evaluation.sed import tune_decoding

    probs = np.full((100, 1), 0.05)
    probs[20:60, 0] = 0.45  # an event from 0.2 s to 0.6 s at 10-ms steps
    probs[80:90, 0] = 0.9  # a 0.1-s false alarm
    timeline = Timeline(np.arange(100) * 0.01, probs, 1.0, 0.01, 0.01)
    tuned = tune_decoding({"c": timeline}, {"c": [("a", 0.2, 0.6)]}, ["a"])
    assert tuned["event_f1"] == 1.0 and tuned["threshold"] < 0.45 and tuned["min_seconds"] >= 0.2
    assert tuned["clips"] == 1
    assert (tuned["gap_seconds"], tuned["hysteresis"]) == (0.0, 1.0)  # of equal points, the plainest


def test_the_tuning_joins_barks_across_their_pauses_and_holds_an_event_that_sags():
    """Clip "bark": a dog barking 0.3 s of every second from 0 to 4 s, one event in the reference: only joining
    gaps of 0.7 s or more (the median filters of the grid erase the barks or keep the holes) scores it. Clip "sag":
    an event at 0.8 that sags to 0.3 for 2.5 s (longer than any gap joined), beside a 0.6-s false alarm at 0.5: only
    hysteresis (threshold 0.6, held down to 0.3) keeps it whole without the false alarm."""
    from envsound.evaluation.sed import tune_decoding

    bark = np.full((600, 1), 0.05)
    for second in range(4):
        bark[second * 100:second * 100 + 30, 0] = 0.9
    sag = np.full((600, 1), 0.05)
    sag[50:450, 0] = 0.8
    sag[150:400, 0] = 0.3  # the sag
    sag[500:560, 0] = 0.5  # the false alarm
    reference = {"bark": [("dog", 0.0, 3.3)], "sag": [("dog", 0.5, 4.5)]}
    timelines = {clip: Timeline(np.arange(600) * 0.01, probs, 6.0, 0.01, 0.01)
                 for clip, probs in (("bark", bark), ("sag", sag))}
    tuned = tune_decoding(timelines, reference, ["dog"])
    assert tuned["event_f1"] == 1.0 and tuned["gap_seconds"] >= 1.0
    assert (tuned["threshold"], tuned["hysteresis"]) == (0.6, 0.5)


def test_an_efficientat_frame_head_on_strong_labels_needs_a_pre_trained_trunk():
    from envsound.recipes.fit_paths import check_frame_start

    config = bare_config(preset={"model": {"name": "efficientat", "options": {"width": 0.1, "frame_head": 4}}})
    with pytest.raises(ConfigError, match="--init efficientat-mn04"):
        check_frame_start(config, None, True)
    check_frame_start(config, None, False)  # clip labels only: the network learns them
    check_frame_start(bare_config(preset={"model": {"name": "efficientat", "options": {"frame_head": 4}},
                                          "events": {"train_on": "clip"}}), None, True)  # asked for
    check_frame_start(bare_config(overrides=["model.options.frame_head=4"]), None, True)  # cnn: clip labels


def test_a_frame_head_on_curated_clips_hears_of_the_noisy_part_s_true_events(caplog):
    from pathlib import Path

    from envsound.data.records import ClipRecord, Manifest
    from envsound.data.strong_labels import StrongEvent
    from envsound.recipes.fit_paths import hint_noisy_strong

    config = bare_config(preset={"model": {"name": "efficientat", "options": {"frame_head": 4}}})
    events = [StrongEvent("dog", 0.0, 1.0)]
    curated = ClipRecord(path=Path("a.wav"), labels=("dog",), fold=1, source_id="a", clip_id="train_curated/a.wav",
                         origin="curated")
    noisy = ClipRecord(path=Path("b.wav"), labels=("dog",), fold=1, source_id="b", clip_id="train_noisy/b.wav",
                       origin="noisy")
    strong = {"train_curated/a.wav": events, "train_noisy/b.wav": events, "train_noisy/c.wav": events}

    def warned(records, config=config, init="mn04.pt") -> str:
        caplog.clear()
        hint_noisy_strong(config, Manifest(name="mix", records=records, labels=["dog"], multi_label=True,
                                           strong=strong), init=init)
        return caplog.text

    with caplog.at_level("WARNING", logger="envsound.recipes.fit_paths"):
        assert "true events of the noisy part's clips" in warned([curated]) and "--subset all" in caplog.text
        assert warned([curated, noisy]) == ""  # --subset all: they are there
        assert warned([curated], bare_config(preset={"model": {"name": "efficientat"}})) == ""  # no frame head
        assert warned([curated], init=None) == ""  # trained whole on clip labels: the noisy ones would mislead it
        assert "--subset all" in warned([curated], bare_config(preset={"model": {"name": "efficientat", "options": {
            "frame_head": 4}}}, overrides=["train.ensemble=2"]))  # an ensemble of detectors reads them too
        for setting in ("transfer.mode=full", "events.train_on=clip"):
            assert warned([curated], bare_config(preset={"model": {"name": "efficientat", "options": {
                "frame_head": 4}}}, overrides=[setting])) == "", setting

    from envsound.recipes.crossval import run_cv

    with caplog.at_level("WARNING", logger="envsound.recipes.fit_paths"), pytest.raises(ConfigError, match="devices"):
        caplog.clear()  # cv says it too, first (it scores the curated clips alone): stopped here by the next check
        run_cv(Manifest(name="mix", records=[curated], labels=["dog"], multi_label=True, strong=strong),
               bare_config(preset={"model": {"name": "efficientat", "options": {"frame_head": 4}}},
                           overrides=["runtime.devices=2"]), out_dir=Path("unused"), init="mn04.pt")
    assert "--subset all" in caplog.text


def test_augmentations_keep_every_tensor_on_the_batch_s_device():
    """Random draws on the batch's device (a GPU's batch must not meet CPU tensors): the meta device has no data,
    so a tensor made elsewhere fails loudly there."""
    from envsound.transfer.frame_finetune import augment_windows

    x, y = torch.zeros(4, 1, 128, 50, device="meta"), torch.zeros(4, 13, 3, device="meta")
    mixed, joined = augment_windows(x, y)
    assert mixed.device.type == "meta" and joined.shape == (4, 13, 3)


def test_fine_tuning_trains_the_trunk_and_keeps_its_batchnorm_statistics():
    from envsound.models.efficientat import EfficientAT
    from envsound.transfer.frame_finetune import finetune_frames

    torch.manual_seed(0)
    network = EfficientAT(n_classes=2, in_channels=1, n_mels=128, n_frames=100, width=0.1, frame_head=4,
                          frame_step=4, frame_stitch=False)
    before = {k: v.clone() for k, v in network.state_dict().items()}
    config = bare_config(preset={**SED, "events": {"finetune_epochs": 2}, "train": {"batch_size": 2, "lr": 0.01}})
    rng = np.random.default_rng(0)
    clips = [rng.normal(size=(1, 128, n)).astype(np.float32) for n in (60, 100, 140, 90)]
    strong = [[event("a", 0.1, 0.4)], [event("b", 0.5, 0.9)], [event("a", 0.0, 1.2)], []]
    tuned = finetune_frames(network, config, clips, strong, labels=["a", "b"], accelerator="cpu", precision="32")
    after = tuned.state_dict()
    assert not tuned.training
    assert not torch.equal(before["features.1.block.0.0.weight"], after["features.1.block.0.0.weight"])  # trunk
    assert not torch.equal(before["frame_head.out.weight"], after["frame_head.out.weight"])  # head
    for key in before:
        if key.endswith(("running_mean", "running_var")):
            assert torch.equal(before[key], after[key]), key
    with pytest.raises(ConfigError, match="features.frontend=envsound"):
        finetune_frames(network, bare_config(overrides=["events.finetune_epochs=1"]), clips, strong,
                        labels=["a", "b"], accelerator="cpu", precision="32")


def test_frame_head_reports_each_epoch(caplog, monkeypatch):
    """Issue 69: ``--preset sed`` on 1,200 mixtures trained its frame head for 67 minutes without a line (the
    fine-tuning after it said each epoch): the trunk's pass over the clips, every epoch of the frame head and every
    epoch of the fine-tuning now say how far they are and the time left."""
    import envsound.transfer.progress as progress
    from envsound.task import Task
    from envsound.transfer.frame_probe import fit_frame_head

    monkeypatch.setattr(progress, "PASS_LINE_S", 0.0)  # the trunk's pass: a line a clip (30 s apart in a run)
    config = bare_config(preset={**SED, "model": {"name": "efficientat", "options": {
        "width": 0.1, "frame_head": 4, "frame_step": 4, "frame_stitch": False}},
        "events": {"finetune_epochs": 2}, "train": {"max_epochs": 3, "batch_size": 2}})
    rng = np.random.default_rng(0)
    clips = [rng.normal(size=(1, 128, 100)).astype(np.float32) for _ in range(3)]
    strong = [[event("a", 0.1, 0.4)], [event("b", 0.5, 0.9)], []]
    torch.manual_seed(0)
    with caplog.at_level("INFO", logger="envsound.transfer"):
        fit_frame_head(None, config, clips, np.zeros((3, 2), dtype=np.float32), labels=["a", "b"],
                       task=Task(kind="multi_label"), strong=strong)
    lines = [r.getMessage() for r in caplog.records if r.name == "envsound.transfer.progress"]
    assert [line.split(",")[0] for line in lines] == [
        "frame head: the trunk's steps: 1/3 clips", "frame head: the trunk's steps: 2/3 clips",
        "frame head: epoch 1/3", "frame head: epoch 2/3", "frame head: epoch 3/3",
        "fine-tuning the frame network: epoch 1/2", "fine-tuning the frame network: epoch 2/2"]
    epochs = [line for line in lines if "epoch" in line]
    assert all(", loss " in line and " elapsed" in line for line in epochs), epochs
    assert all(line.endswith(" left") for line in epochs if "epoch 3/3" not in line and "epoch 2/2" not in line)
