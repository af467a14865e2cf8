"""Frame-level event detection (``model.options.frame_head``, ``--preset sed``): shift-and-stitch steps, pooling,
joining windows' frames into one track, frame targets from strong labels, and the whole path from a release-format
file through ``train --preset sed`` to ``evaluate`` and ``predict --events`` on a mixture set with strong labels."""

from __future__ import annotations

import contextlib
import io
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from envsound.config.files import bare_config
from envsound.errors import ConfigError
from envsound.events import FrameTrack
from envsound.evaluation.sed import TUNED
from envsound.models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from envsound.models.clip import ClipModel
from envsound.models.efficientat import EfficientAT, release_key
from envsound.models.frames import Tap, linear_softmax_logit, stitched_steps, upsampled_steps
from envsound.recipes.config import resolve
from envsound.task import Task
from envsound.data.strong_labels import frame_targets
from envsound.transfer.frame_probe import fit_frame_head

from conftest import PRECISIONS, one_thread
from test_efficientat import release_state, write_labels


def calibrated_release_state(width: float) -> dict[str, torch.Tensor]:
    """A release-format state dict at random weights whose batch-norm statistics are those of its own activations on
    noise: random convolutions then pass on what they see (with the initial statistics the trunk's output is ~1e-8,
    too flat to learn from)."""
    torch.manual_seed(0)
    model = EfficientAT(n_classes=527, in_channels=1, n_mels=128, n_frames=400, width=width)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None  # a cumulative average: one batch sets the statistics
            module.reset_running_stats()
    with torch.no_grad():
        model.train()(torch.randn(8, 1, 128, 400))
    return {release_key(k): v for k, v in model.state_dict().items()}


class Halve(torch.nn.Module):
    """A stride-2 layer whose output step j reads input frame 2 j (the frame a centred kernel is centred on)."""

    def forward(self, x):
        return x[..., ::2]


def test_stitched_steps_interleave_the_shifted_runs_of_every_tap_in_time_order():
    ramp = torch.arange(200, dtype=torch.float32).expand(1, 1, 2, 200)  # each frame's value is its index
    layers = torch.nn.Sequential(*[Halve() for _ in range(5)])  # layer i has stride 2 ** (i + 1)
    steps = stitched_steps(layers, ramp, taps=[Tap(2, 8, keep_bins=True), Tap(3, 16), Tap(4, 32)], step=8)
    runs = [len(range(0, 200 - 8 * k, 32)) for k in range(4)]
    assert steps.shape == (1, 4 * min(runs), 2 + 1 + 1)  # stride 8 keeps its 2 bins; the others average them
    for column in range(4):
        assert steps[0, :, column].tolist() == [8.0 * m for m in range(4 * min(runs))]  # step m centred on 8 m
    with pytest.raises(ValueError, match="must divide"):
        stitched_steps(layers, ramp, taps=[Tap(4, 32)], step=12)


def test_upsampled_steps_read_every_tap_at_the_steps_frames_from_one_run():
    ramp = torch.arange(200, dtype=torch.float32).expand(1, 1, 2, 200)  # each frame's value is its index
    layers = torch.nn.Sequential(*[Halve() for _ in range(5)])
    steps = upsampled_steps(layers, ramp, taps=[Tap(1, 4, keep_bins=True), Tap(3, 16), Tap(4, 32)], step=4)
    assert steps.shape == (1, 50, 2 + 1 + 1)
    last = 32.0 * (len(range(0, 200, 32)) - 1)  # the stride-32 tap's last step is centred on frame 192
    for column in range(4):  # a ramp interpolates to itself: step m reads frame 4 m, held at each tap's last step
        limit = {0: 196.0, 1: 196.0, 2: 192.0, 3: last}[column]
        assert steps[0, :, column].tolist() == [min(4.0 * m, limit) for m in range(50)]


def test_efficientat_frames_every_40_ms_from_one_run_match_the_stitched_ones_of_the_fine_layer():
    torch.manual_seed(0)
    model = EfficientAT(n_classes=3, in_channels=1, n_mels=128, n_frames=256, width=0.1, frame_head=4,
                        frame_step=4, frame_stitch=False).eval()
    assert [tap.stride for tap in model.frame_taps] == [4, 8, 16, 32]
    x = torch.randn(2, 1, 128, 256)
    steps = model.frame_steps(x)
    assert steps.shape[:2] == (2, 64) and model.frame_logits(x).shape == (2, 64, 3)
    fine = stitched_steps(model.features, x, taps=model.frame_taps[:1], step=4)  # the stride-4 layer: exact
    assert torch.allclose(steps[:, :, :fine.shape[2]], fine, atol=1e-5)
    with pytest.raises(ConfigError, match="frame_step=6"):
        EfficientAT(n_classes=3, in_channels=1, n_mels=128, n_frames=256, width=0.1, frame_head=4, frame_step=6)


def test_linear_softmax_pooling_by_hand():
    logit = torch.logit(torch.tensor([[[0.9], [0.1]], [[0.5], [0.5]]]))  # (2 clips, 2 steps, 1 class)
    pooled = torch.sigmoid(linear_softmax_logit(logit))[:, 0]
    assert pooled.tolist() == pytest.approx([(0.81 + 0.01) / 1.0, 0.5], abs=1e-6)


def test_frame_track_keeps_each_window_around_its_centre_and_drops_frames_past_the_file():
    track = FrameTrack(window_seconds=10.0, step_seconds=1.0, n_classes=1)
    track.push(0.0, np.full((10, 1), 0.1))  # centres 0 .. 9
    track.push(5.0, np.full((10, 1), 0.9))  # centres 5 .. 14; the windows meet at (5 + 10) / 2 = 7.5
    timeline = track.finish(duration=12.0)
    assert timeline.begins.tolist() == [c - 0.5 for c in range(12)]
    assert timeline.probs[:, 0].tolist() == pytest.approx([0.1] * 8 + [0.9] * 4)
    assert (timeline.window_seconds, timeline.hop_seconds, timeline.duration) == (1.0, 1.0, 12.0)
    assert FrameTrack(window_seconds=1.0, step_seconds=0.1, n_classes=3).finish(2.0).probs.shape == (0, 3)
    live = FrameTrack(window_seconds=10.0, step_seconds=1.0, n_classes=1, collect=False, hop_seconds=5.0)
    centres, probs = live.push(0.0, np.full((10, 1), 0.1))  # a live stream: final up to half a hop past the centre
    assert centres.tolist() == list(range(8)) and probs[:, 0].tolist() == pytest.approx([0.1] * 8)
    centres, probs = live.push(5.0, np.full((10, 1), 0.9))
    assert centres.tolist() == [8, 9, 10, 11, 12] and probs[:, 0].tolist() == pytest.approx([0.9] * 5)
    assert live.flush()[0].tolist() == [13, 14] and live.centres == []  # the rest at the end; nothing collected


def test_frame_targets_mark_the_steps_whose_centre_an_event_covers():
    events = [SimpleNamespace(label="dog", onset=0.3, offset=0.7), SimpleNamespace(label="rain", onset=0.0,
                                                                                   offset=0.15)]
    target = frame_targets(events, ["dog", "rain", "siren"], begin=-0.1, steps=9, step=0.1)  # centres -0.1 .. 0.7
    assert target[:, 0].tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 0]  # 0.3, 0.4, 0.5, 0.6
    assert target[:, 1].tolist() == [0, 1, 1, 0, 0, 0, 0, 0, 0]  # 0.0, 0.1
    assert not target[:, 2].any()


def test_efficientat_frame_head_pools_its_frames_into_the_clip_logits():
    torch.manual_seed(0)
    model = EfficientAT(n_classes=3, in_channels=1, n_mels=128, n_frames=250, width=0.1, frame_head=8).eval()
    x = torch.randn(2, 1, 128, 250)
    frames = model.frame_logits(x)
    assert frames.shape == (2, 4 * min(len(range(0, 250 - 8 * k, 32)) for k in range(4)), 3)
    assert torch.allclose(model(x), linear_softmax_logit(frames), atol=1e-5)
    plain = EfficientAT(n_classes=3, in_channels=1, n_mels=128, n_frames=250, width=0.1)
    assert not plain.has_frames and model.has_frames
    with pytest.raises(ConfigError, match="no frame output"):
        plain.frame_logits(x)


def test_the_sed_preset_adds_a_frame_head_and_keeps_the_sources_width(tmp_path):
    torch.save(release_state(0.1), tmp_path / "mn01_as_mAP_298.pt")
    write_labels(tmp_path)
    config = resolve(preset="sed", init=tmp_path / "mn01_as_mAP_298.pt")
    assert config.model.name == "efficientat" and config.model.options == {"width": 0.1, "frame_head": 64,
                                                                            "frame_step": 4, "frame_stitch": False}
    assert (config.events.finetune_epochs, config.events.tune, config.train.val_fraction) == (20, True, 0.2)
    assert (config.features.window_seconds, config.features.eval_hop_seconds, config.events.median_seconds) == \
        (10.0, 5.0, 1.0)


def test_a_frame_head_refuses_a_single_label_task():
    config = bare_config(preset={"model": {"name": "efficientat", "options": {"width": 0.1, "frame_head": 4}}})
    with pytest.raises(ConfigError, match="multi-label set"):
        fit_frame_head(None, config, [], np.zeros((0, 2)), labels=["a", "b"], task=Task())


@pytest.fixture(scope="module")
def sed_run(tmp_path_factory, synthetic_root):
    """A mixture set with strong labels, a release-format file at random weights, and ``train --preset sed`` from
    it on folds 1-2 (its frame head trained on the strong labels)."""
    from envsound.cli.main import main

    root = tmp_path_factory.mktemp("sed")
    mix = root / "mix"
    assert main(["mix", "--quiet", "--dataset", "synthetic", "--root", str(synthetic_root), "--folds", "1,2,3",
                 "--out", str(mix), "--curated", "10", "--noisy-factor", "0", "--min-seconds", "3",
                 "--max-seconds", "4", "--max-events", "2", "--sample-rate", "32000", "--seed", "1"]) == 0
    torch.save(calibrated_release_state(0.1), root / "mn01_as_mAP_298.pt")
    write_labels(root)
    out = root / "run"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), one_thread():
        assert main(["train", "--quiet", "--dataset", "fsdkaggle2019", "--root", str(mix), "--folds", "1,2",
                     "--init", str(root / "mn01_as_mAP_298.pt"), "--preset", "sed", "--out", str(out),
                     "--cache-dir", str(root / "cache"), "--set", "features.window_seconds=4",
                     "--set", "features.eval_hop_seconds=2", "--set", "train.max_epochs=50", "--set", "train.lr=0.01",
                     "--set", "train.batch_size=4",
                     "--set", "runtime.precision=32"]) == 0  # the same model on every CPU (auto may pick bf16)
    return SimpleNamespace(mix=mix, out=out, cache=root / "cache", printed=printed.getvalue())


def test_sed_preset_trains_a_frame_head_on_strong_labels_that_evaluate_and_predict_use(sed_run, capsys):
    from envsound.cli.main import main
    from envsound.inference.api import load_model

    checkpoint = torch.load(sed_run.out / "model.ckpt", weights_only=False, map_location="cpu")
    assert checkpoint["meta"]["frame_head"] == {"labels": "strong", "finetune_epochs": 20}
    tuned = checkpoint["meta"]["events_tuned"]  # chosen on the validation mixtures, written into the config
    assert tuned["clips"] == 6 and 0 <= tuned["event_f1"] <= 1
    assert {key: checkpoint["config"]["events"][key] for key in TUNED} == {key: tuned[key] for key in TUNED}
    # train's last line gives that choice's score, not "no accuracy yet", and how to get an honest one
    assert f"validation event F1 {tuned['event_f1']:.4f} on 6 held-out clips" in sed_run.printed
    assert f"envsound evaluate {sed_run.out / 'model.ckpt'} --dataset fsdkaggle2019" in sed_run.printed
    assert "--folds 3" in sed_run.printed and "no accuracy" not in sed_run.printed
    from envsound.inference.predictor import Predictor

    loaded = Predictor.from_checkpoint(sed_run.out / "model.ckpt", device="cpu")
    n = loaded.model.n_classes
    assert loaded.decoding.threshold == (tuned["threshold"],) * n
    over = Predictor(loaded.model, threshold=0.83)  # --threshold: one threshold for labels and events, over the tuned
    assert over.decoding.threshold == pytest.approx((0.83,) * n) and over.task.threshold == 0.83
    assert loaded.model.config.events.threshold == tuned["threshold"]  # the model is left as loaded
    model = load_model(sed_run.out / "model.ckpt", device="cpu")
    clip = sorted((sed_run.mix / "train_curated").glob("curated_f1_*.wav"))[0]
    found = model.predict(clip, events=True)
    assert found.events and all(round(e["onset"] / 0.04, 6) % 1 in (0.0, 0.5) or e["onset"] == 0
                                for e in found.events)  # frame edges: centres every 40 ms +- half a step
    capsys.readouterr()
    assert main(["evaluate", "--quiet", str(sed_run.out / "model.ckpt"), "--dataset", "fsdkaggle2019", "--root",
                 str(sed_run.mix), "--folds", "1", "--cache-dir", str(sed_run.cache), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    # the training clips: the head learnt where their events are, far above the --segments baseline
    assert report["event_f1"] > report["sed"]["baseline"]["event_f1"] + 0.2
    assert report["segment_f1"] > 0.6  # a fifth of the clips chose the decoding, unheard: not all in-sample


def test_an_archive_scan_of_a_frame_model_gives_predict_s_events(sed_run, tmp_path):
    """`predict --out DIR --events` with a frame model: the frames of windows batched across files decode to the
    events `predict --events` gives file by file."""
    import envsound
    import pandas as pd
    from envsound.inference.predictor import Predictor

    clips = sorted((sed_run.mix / "train_curated").glob("curated_f1_*.wav"))[:6]
    envsound.scan(sed_run.out / "model.ckpt", clips, out=tmp_path / "scan", tables=envsound.Tables(events=True),
                  options=envsound.ScanOptions(precision="32", batch_size=4, progress=False))
    events = pd.read_parquet(tmp_path / "scan" / "events")
    predictor = Predictor.from_checkpoint(sed_run.out / "model.ckpt", precision="32")
    assert predictor.has_frames
    for clip in clips:
        want = predictor.predict_file(clip, events=True).events
        got = events[events.file == str(clip)].sort_values(["onset", "label"]).to_dict("records")
        want = sorted(want, key=lambda e: (e["onset"], e["label"]))
        assert [(e["label"], e["onset"], e["offset"]) for e in got] == \
            [(e["label"], e["onset"], e["offset"]) for e in want]
        assert [e["score"] for e in got] == pytest.approx([e["score"] for e in want], abs=2e-4)
    assert len(events)


def test_an_ensemble_of_detectors_averages_its_members_frames_and_tunes_their_decoding(sed_run, tmp_path):
    """`--preset sed --set train.ensemble=2`: two probes of the frame head (and their fine-tuning) from seeds 0 and 1,
    one checkpoint whose frames are the mean of the members' frame logits, its decoding tuned on the validation
    mixtures the members shared."""
    from envsound.cli.main import main
    from envsound.inference.api import load_model

    out = tmp_path / "ensemble"
    assert main(["train", "--quiet", "--dataset", "fsdkaggle2019", "--root", str(sed_run.mix), "--folds", "1,2",
                 "--init", str(sed_run.mix.parent / "mn01_as_mAP_298.pt"), "--preset", "sed", "--out", str(out),
                 "--cache-dir", str(sed_run.cache), "--set", "features.window_seconds=4", "--set",
                 "features.eval_hop_seconds=2", "--set", "train.max_epochs=5", "--set", "events.finetune_epochs=1",
                 "--set", "train.batch_size=4", "--set", "runtime.precision=32", "--set", "train.ensemble=2"]) == 0
    checkpoint = torch.load(out / "model.ckpt", weights_only=False, map_location="cpu")
    assert checkpoint["meta"]["transfer"]["mode"] == "probe" and checkpoint["meta"]["events_tuned"]["clips"] == 6
    assert checkpoint["meta"]["frame_head"] == {"labels": "strong", "finetune_epochs": 1}
    heads = [{k: v for k, v in checkpoint["state_dict"].items() if k.startswith(f"members.{i}.frame_head.")}
             for i in (0, 1)]
    assert heads[0] and not torch.equal(*(next(iter(head.values())) for head in heads))  # two seeds, two heads
    model = ClipModel.from_checkpoint(load_checkpoint(out / "model.ckpt"), device="cpu")
    assert model.has_frames
    x = torch.randn(2, 1, model.config.features.n_mels, 400)
    with torch.no_grad():
        frames = model.network.frame_logits(x)
        assert torch.allclose(frames, (model.network.members[0].frame_logits(x)
                                       + model.network.members[1].frame_logits(x)) / 2, atol=1e-6)
        assert torch.allclose(model.network(x), linear_softmax_logit(frames), atol=1e-6)  # what and when agree
    clip = sorted((sed_run.mix / "train_curated").glob("curated_f1_*.wav"))[0]
    assert load_model(out / "model.ckpt", device="cpu").predict(clip, events=True).events is not None


def test_what_a_frame_head_trains_on_follows_events_train_on():
    from envsound.recipes.fit_paths import frame_labels
    from envsound.training.loop.clips import ClipSet

    events = [[SimpleNamespace(label="a", onset=0.0, offset=1.0)]]
    with_strong = ClipSet([np.zeros((1, 4, 4))], np.ones((1, 1)), strong=events)
    without = ClipSet([np.zeros((1, 4, 4))], np.ones((1, 1)))
    assert frame_labels(bare_config(), with_strong) is events  # auto: the strong labels where there are some
    assert frame_labels(bare_config(), without) is None
    assert frame_labels(bare_config(overrides=["events.train_on=clip"]), with_strong) is None
    with pytest.raises(ConfigError, match="this set has no strong labels"):
        frame_labels(bare_config(overrides=["events.train_on=strong"]), without)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_live_listening_to_a_frame_model_decodes_its_frames_as_predict_does(sed_run, precision):
    import soundfile as sf

    from envsound.inference.live import LiveListener
    from envsound.inference.predictor import Predictor

    predictor = Predictor.from_checkpoint(sed_run.out / "model.ckpt", device="cpu", precision=precision)
    # the decoding this test was worked out for (events.tune chose the fixture's on 6 clips: a filter of up to 2 s
    # moves a crossing near the threshold by more than the frame the two sides may differ by)
    events = predictor.model.config.events
    events.threshold, events.median_seconds, events.min_seconds = 0.5, 1.0, 0.0
    clips = sorted((sed_run.mix / "train_curated").glob("curated_f1_*.wav"))[:3]
    wave = np.concatenate([sf.read(clip, dtype="float32")[0] for clip in clips])
    listener = LiveListener(predictor, sample_rate=32000)
    hops = [hop for piece in np.array_split(wave, 7) for hop in listener.push(piece)] + listener.finish()
    live = [(e["label"], e["onset"], e["offset"]) for hop in hops for e in hop.ended]
    offline = [(e["label"], e["onset"], e["offset"])
               for e in predictor.predict_waveform(wave, sample_rate=32000, events=True).events]
    # the stream's last window (starting at 6 s of 11 s: the tail shorter than a hop is not scored) is not predict's
    # last (which ends with the recording, at 7.04 s): both take the frames before 8.52 s from the same windows, so
    # the events decided by then (their end and half the 1-s median filter before 8.52) are the same on both sides.
    # Later ones differ by design: the stream closes the events of its last window's frames when it ends, at 10 s.
    # The same up to a frame (80 ms): a window scored alone sees zero padding in its last STFT frames, which the
    # bidirectional GRU carries to all its frames, so a frame near the threshold may cross it one frame apart.
    centre = max(hop.start for hop in hops if not hop.end) + 2.0
    decided = sorted((e for e in live if e[2] <= centre), key=lambda e: (e[1], e[0]))  # live: in the order they end
    expected = [e for e in offline if e[2] <= centre]
    assert decided and [e[0] for e in decided] == [e[0] for e in expected], (live, offline)
    frame = predictor.model.frame_seconds
    assert all(abs(a - b) <= frame + 1e-6 for d, e in zip(decided, expected) for a, b in zip(d[1:], e[1:])), \
        (live, offline)
    assert all(centre < e[2] <= centre + 2.0 for e in live[len(decided):])


def test_a_format_18_frame_model_loads_with_the_head_it_was_trained_with(tmp_path):
    """Format 18 heads read the last layer only (no model.options.frame_skips then): they load as that."""
    config = bare_config(overrides=["model.name=efficientat", "features.frontend=efficientat",
                                    "model.options.width=0.1", "model.options.frame_head=4",
                                    "model.options.frame_skips=false"])
    network = EfficientAT(n_classes=2, in_channels=1, n_mels=128, n_frames=100, width=0.1, frame_head=4,
                          frame_skips=False)
    assert network.frame_head.norm.normalized_shape == (network.pooled_dim,)
    path = save_checkpoint(tmp_path / "m.ckpt", Checkpoint(config=config, labels=["a", "b"],
                                                           state_dict=network.state_dict()))
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = 18
    del payload["config"]["model"]["options"]["frame_skips"]
    torch.save(payload, path)
    model = ClipModel.from_checkpoint(load_checkpoint(path), device="cpu")
    assert model.config.model.options["frame_skips"] is False and model.has_frames
    assert model.frame_probs(torch.randn(1, 1, 128, 100).numpy()).shape[-1] == 2
    wider = EfficientAT(n_classes=2, in_channels=1, n_mels=128, n_frames=100, width=0.1, frame_head=4)
    assert wider.frame_head.norm.normalized_shape[0] > network.pooled_dim  # frame_skips: early layers beside it


def test_a_format_21_frame_model_loads_with_the_80_ms_stitched_frames_it_was_trained_with(tmp_path):
    """Format 21 had no frame_step, frame_stitch, events.finetune_epochs or events.tune: it loads as it ran."""
    config = bare_config(overrides=["model.name=efficientat", "features.frontend=efficientat",
                                    "model.options.width=0.1", "model.options.frame_head=4"])
    network = EfficientAT(n_classes=2, in_channels=1, n_mels=128, n_frames=100, width=0.1, frame_head=4)
    path = save_checkpoint(tmp_path / "m.ckpt", Checkpoint(config=config, labels=["a", "b"],
                                                           state_dict=network.state_dict()))
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = 21
    for key in ("frame_step", "frame_stitch"):
        payload["config"]["model"]["options"].pop(key, None)
    for key in ("finetune_epochs", "tune"):
        del payload["config"]["events"][key]
    torch.save(payload, path)
    model = ClipModel.from_checkpoint(load_checkpoint(path), device="cpu")
    options = model.config.model.options
    assert (options["frame_step"], options["frame_stitch"]) == (8, True)
    assert (model.config.events.finetune_epochs, model.config.events.tune) == (0, False)
    assert model.network.frame_step_frames == 8 and model.network.frame_stitch


def test_the_cnn_frame_head_places_each_step_on_its_frame_and_pools_its_frames_into_the_clip_logits():
    from envsound.models.cnn import CNN

    torch.manual_seed(0)
    model = CNN(n_classes=3, in_channels=1, n_mels=32, n_frames=160, filters=4, frame_head=8).eval()
    x = torch.zeros(1, 1, 32, 160)
    with torch.no_grad():
        quiet = model.frame_steps(x)
        for frame in (80, 88, 120):  # a click at one frame moves the trunk most at the step centred on it
            click = x.clone()
            click[..., frame] = 10.0
            change = (model.frame_steps(click) - quiet).norm(dim=-1)[0]
            assert int(change.argmax()) == frame // 8
        assert torch.allclose(model(x), linear_softmax_logit(model.frame_logits(x)), atol=1e-5)
    plain = CNN(n_classes=3, in_channels=1, n_mels=32, n_frames=160)
    assert not plain.has_frames and model.has_frames
    with pytest.raises(ConfigError, match="no frame output"):
        plain.frame_logits(x)


def test_the_crnn_frame_head_places_each_step_on_its_frame_and_pools_its_frames_into_the_clip_logits():
    """With symmetric kernels a click's effect on the recurrent layer's input is centred on the step centred on it:
    step m on frame 4 m (half a frame before); without the half-step padding it sits 1.5 frames late."""
    from envsound.models.crnn import CRNN

    torch.manual_seed(0)
    model = CRNN(n_classes=3, in_channels=1, n_mels=32, n_frames=160, filters=4, frame_head=8).eval()
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.constant_(module.weight, 0.1)
    x = torch.zeros(1, 1, 32, 160)
    centred = lambda v: model.conv_steps(v, centred=True)  # noqa: E731  what frame_steps reads
    with torch.no_grad():
        quiet = centred(x)
        for frame in range(80, 88):
            click = x.clone()
            click[..., frame] = 10.0
            change = (centred(click) - quiet).norm(dim=-1)[0]
            centre = float((change * torch.arange(len(change))).sum() / change.sum()) * 4
            assert abs(centre - frame) <= 1.0
        frames = model.frame_logits(x)
        assert frames.shape == (1, 41, 3)  # (160 + 2) / 4 steps
        assert torch.allclose(model(x), linear_softmax_logit(frames), atol=1e-5)
    assert not CRNN(n_classes=3, in_channels=1, n_mels=32, n_frames=160).has_frames and model.has_frames


def test_the_resnet_frame_head_places_each_step_on_its_frame():
    """Symmetric kernels (and residual branches switched on): a click's effect on the steps is centred within a
    frame of it (half a frame: the stem's pool)."""
    from envsound.models.resnet import ResNet

    model = ResNet(n_classes=3, in_channels=1, n_mels=32, n_frames=160, filters=4, frame_head=8).eval()
    for module in model.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.BatchNorm2d)):
            torch.nn.init.constant_(module.weight, 0.1 if isinstance(module, torch.nn.Conv2d) else 1.0)
    x = torch.zeros(1, 1, 32, 160)
    with torch.no_grad():
        quiet = model.frame_steps(x)
        for frame in range(80, 96, 3):
            click = x.clone()
            click[..., frame] = 10.0
            change = (model.frame_steps(click) - quiet).norm(dim=-1)[0]
            assert abs(float((change * torch.arange(len(change))).sum() / change.sum()) * 8 - frame) <= 1.0
        assert torch.allclose(model(x), linear_softmax_logit(model.frame_logits(x)), atol=1e-5)


@pytest.mark.parametrize("name,step", [("cnn", 8), ("crnn", 4), ("resnet", 8)])
def test_a_network_with_a_frame_head_learns_from_clip_labels_and_gives_events_from_its_frames(sed_run, tmp_path,
                                                                                             name, step):
    from conftest import TINY_OVERRIDES
    from envsound.cli.main import main
    from envsound.inference.api import audio_duration
    from envsound.inference.predictor import Predictor

    tiny = [arg for override in TINY_OVERRIDES for arg in ("--set", override)]
    args = ["train", "--quiet", "--dataset", "fsdkaggle2019", "--root", str(sed_run.mix), "--folds", "1,2",
            "--cache-dir", str(tmp_path / "cache"), *tiny, "--set", f"model.name={name}", "--set",
            "model.options.frame_head=8", "--set", "features.window_seconds=2", "--set", "features.eval_hop_seconds=1"]
    assert main([*args, "--out", str(tmp_path / "run")]) == 0
    predictor = Predictor.from_checkpoint(tmp_path / "run" / "model.ckpt", device="cpu")
    clip = sorted((sed_run.mix / "train_curated").glob("curated_f1_*.wav"))[0]
    assert predictor.has_frames and predictor.model.frame_seconds == pytest.approx(step * 256 / 16000)
    events = predictor.predict_file(clip, events=True).events  # decoded from its frames (Predictor.has_frames)
    assert events and all(0 <= e["onset"] < e["offset"] <= audio_duration(clip) for e in events)
    assert main([*args, "--out", str(tmp_path / "strong"), "--set", "events.train_on=strong"]) == 1  # no frozen trunk


def test_an_exported_frame_model_gives_the_checkpoints_frames_and_events(sed_run, tmp_path):
    """The ONNX file carries the frame output (``frame_probs``) and the frame step: its events are the checkpoint's,
    read from its frames, not from its windows. (A ``cnn`` frame model: the export traces the same frame head and
    shift-and-stitch as the fixture's ``--preset sed`` model, which takes a minute to export on 2 cores: its graph
    holds four copies of the trunk.)"""
    from conftest import TINY_OVERRIDES
    from envsound.cli.main import main
    from envsound.inference.onnx_export import parity_check
    from envsound.inference.predictor import Predictor

    tiny = [arg for override in TINY_OVERRIDES for arg in ("--set", override)]
    assert main(["train", "--quiet", "--dataset", "fsdkaggle2019", "--root", str(sed_run.mix), "--folds", "1,2",
                 "--cache-dir", str(tmp_path / "cache"), *tiny, "--set", "model.name=cnn", "--set",
                 "model.options.frame_head=8", "--set", "features.window_seconds=2", "--set",
                 "features.eval_hop_seconds=1", "--out", str(tmp_path / "run")]) == 0
    checkpoint = tmp_path / "run" / "model.ckpt"
    assert main(["export", "--quiet", str(checkpoint), "--out", str(tmp_path / "model.onnx")]) == 0
    assert parity_check(checkpoint, tmp_path / "model.onnx") < 1e-3  # window and frame probabilities
    torch_model = Predictor.from_checkpoint(checkpoint, device="cpu", precision="32")
    onnx_model = Predictor.from_checkpoint(tmp_path / "model.onnx")
    assert onnx_model.has_frames and onnx_model.model.frame_seconds == torch_model.model.frame_seconds
    found = 0
    for clip in sorted((sed_run.mix / "train_curated").glob("curated_f1_*.wav"))[:3]:
        want = torch_model.predict_file(clip, events=True).events
        got = onnx_model.predict_file(clip, events=True).events
        assert [(e["label"], e["onset"], e["offset"]) for e in got] == \
            [(e["label"], e["onset"], e["offset"]) for e in want]
        assert [e["score"] for e in got] == pytest.approx([e["score"] for e in want], abs=1e-3)
        found += len(want)
    assert found
