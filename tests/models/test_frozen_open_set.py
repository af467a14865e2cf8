""""None of these" for a head probed over a frozen network (issue 76): 'train --init yamnet' on a single-label set
calibrates the open-set gate on the network's embeddings of its training clips, cut as prediction cuts them; the
checkpoint and its exported folder carry it, and FrozenModel applies it as ClipModel does, so a sound of no class gets
no label and no event. The network is the tiny YAMNet of tests/tinytflite.py (embedding: the mean of a window's
1,024-sample blocks): the classes are clips of opposite offsets under noise, the foreign sound a tone whose period is
one block (an embedding orthogonal to both)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("ai_edge_litert")
pytest.importorskip("flatbuffers")

from tinytflite import install_tiny_pair, reference  # noqa: E402 (after the skips)

import envsound  # noqa: E402
from audiofactory import write_offsets  # noqa: E402
from envsound.models.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402

RATE = 16_000


def offsets(root, per_class: int = 4, seconds: float = 2.0):
    """A folder dataset of ``up`` (offset +0.2) and ``down`` (-0.2) under noise of 0.05, one clip a class a fold."""
    return write_offsets(root, sample_rate=RATE, seconds=seconds, per_class=per_class)


def foreign_then_up(path):
    """2 s of a tone of period 1,024 samples (no class: its embedding is the tone, orthogonal to both offsets),
    then 2 s of ``up``."""
    tone = 0.3 * np.sin(2 * np.pi * np.arange(2 * RATE) / 1024)
    up = 0.2 + np.random.default_rng(99).normal(0, 0.05, 2 * RATE)
    sf.write(path, np.concatenate([tone, up]).astype(np.float32), RATE, subtype="FLOAT")
    return path


@pytest.fixture(scope="module")
def probed(tmp_path_factory):
    """The tiny pair installed; a probe over YAMNet trained with the default gate (0.05) on folds 1-3."""
    root = tmp_path_factory.mktemp("frozen-open-set")
    models = install_tiny_pair(root)
    data = offsets(root / "data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ENVSOUND_MODELS", str(models))
        run = envsound.train(envsound.dataset("folder", root=data, folds=[1, 2, 3]), init="yamnet",
                             out=root / "run")
    return {"models": models, "data": data, "checkpoint": run.model_path, "root": root}


def test_the_probe_calibrates_its_gate_on_the_networks_embeddings_of_the_windows_prediction_cuts(probed):
    from envsound.config.files import bare_config
    from envsound.features.windows import eval_windows
    from envsound.models.frozen import FROZEN
    from envsound.models.litert import frozen_config
    from envsound.models.open_set import OpenSet, calibrate
    from envsound.transfer.frozen_probe import frozen_open_set, plan_frozen

    checkpoint = load_checkpoint(probed["checkpoint"])
    assert checkpoint.meta["kind"] == "frozen-head" and checkpoint.config.events.open_set == 0.05
    assert OpenSet.from_payload(checkpoint.open_set, n_classes=2, width=1024).share == 0.05
    config = bare_config(preset={k: v for k, v in frozen_config(FROZEN["yamnet"]).to_dict().items()
                                 if k in ("features", "model")}, overrides=["events.open_set=0.1"])
    clips = [sf.read(path, dtype="float32")[0][None] for label in ("up", "down")
             for path in sorted((probed["data"] / label).iterdir())]
    targets = np.eye(2)[[0] * 4 + [1] * 4]
    plan = plan_frozen("yamnet", probed["models"] / FROZEN["yamnet"].file, config, ["up", "down"])
    gate = frozen_open_set(plan, config, clips, targets)
    want = calibrate(clips, targets.argmax(axis=1), embed=lambda w: reference("yamnet", w.reshape(len(w), -1))[1],
                     cut=lambda clip: eval_windows(clip, config.features), share=0.1, n_classes=2)
    assert gate.share == 0.1 and gate.prototypes[0].sum() > 0 > gate.prototypes[1].sum()
    np.testing.assert_allclose(gate.prototypes, want.prototypes, atol=1e-5)
    np.testing.assert_allclose(gate.thresholds, want.thresholds, atol=1e-5)


def test_a_sound_of_no_class_gets_no_label_and_no_event_and_the_gate_is_clipmodels(probed, tmp_path, monkeypatch):
    monkeypatch.setenv("ENVSOUND_MODELS", str(probed["models"]))
    from envsound.inference.predictor import Predictor

    recording = foreign_then_up(tmp_path / "recording.wav")
    predictor = Predictor.from_checkpoint(probed["checkpoint"])
    model = predictor.model
    assert model.open_set is not None and predictor.rejects
    prediction = predictor.predict_file(recording, segments=True, events=True)
    labels = [segment["label"] for segment in prediction.segments]
    starts = [segment["start"] for segment in prediction.segments]
    assert set(label for label, start in zip(labels, starts) if start + 0.975 <= 2.0) == {None}  # the tone's
    assert set(label for label, start in zip(labels, starts) if start >= 2.0) == {"up"}
    assert [event["label"] for event in prediction.events] == ["up"] and prediction.events[0]["onset"] >= 1.0
    assert prediction.top[0]["label"] == "up" and not prediction.rejected  # a window passed: not rejected
    # the gate as ClipModel applies it: the closed-set softmax, a class ruled out (negated) below its threshold
    windows = np.random.default_rng(5).uniform(-0.3, 0.3, (3, 15_600)).astype(np.float32)
    windows[0] += 0.2
    embeddings = model.window_embeddings(windows)
    gated = model.head_probs(embeddings)
    model.open_set, gate = None, model.open_set
    closed = model.head_probs(embeddings)
    np.testing.assert_array_equal(gated, gate.gate(closed, embeddings))
    up = model.labels.index("up")
    assert gated[0].argmax() == up and gated[0, up] > 0.5  # up passes its gate
    assert (gated[1:] <= 0).all() and np.array_equal(-gated[1:], closed[1:])  # noise: none of the classes
    model.open_set = gate
    np.testing.assert_allclose(model.waveform_probs(windows.reshape(-1)[:15_600])[0], gated[:1], rtol=1e-5, atol=1e-7)


def test_the_export_carries_the_gate_and_scores_as_the_checkpoint(probed, tmp_path, monkeypatch):
    monkeypatch.setenv("ENVSOUND_MODELS", str(probed["models"]))
    from envsound.inference.frozen_export import export_frozen_head
    from envsound.models.frozen_head import read_head_export
    from envsound.models.litert import FrozenModel

    export_frozen_head(probed["checkpoint"], tmp_path / "sensor")
    manifest = json.loads((tmp_path / "sensor" / "envsound-head.json").read_text())
    assert (manifest["format_version"], manifest["open_set"]) == (2, {"share": 0.05})
    learned = FrozenModel.from_checkpoint(load_checkpoint(probed["checkpoint"]), path=probed["checkpoint"])
    exported = FrozenModel.from_export(tmp_path / "sensor")
    np.testing.assert_array_equal(exported.open_set.thresholds, learned.open_set.thresholds)
    wave = sf.read(foreign_then_up(tmp_path / "recording.wav"), dtype="float32")[0]
    expected, got = learned.waveform_probs(wave), exported.waveform_probs(wave)
    assert got[1] == expected[1] and (expected[0][0] <= 0).all() and expected[0][-1].max() > 0.5
    np.testing.assert_array_equal(got[0], expected[0])
    # a head without a gate (as envsound learn writes) is still format 1, which every envsound reads
    checkpoint = load_checkpoint(probed["checkpoint"])
    checkpoint.open_set = None
    save_checkpoint(tmp_path / "ungated.ckpt", checkpoint)
    export_frozen_head(tmp_path / "ungated.ckpt", tmp_path / "ungated")
    assert json.loads((tmp_path / "ungated" / "envsound-head.json").read_text())["format_version"] == 1
    assert read_head_export(tmp_path / "ungated").open_set is None
    assert FrozenModel.from_checkpoint(checkpoint, path=tmp_path / "ungated.ckpt").open_set is None


def test_a_gate_of_another_width_is_refused_in_one_line(probed, tmp_path, monkeypatch):
    monkeypatch.setenv("ENVSOUND_MODELS", str(probed["models"]))
    from envsound.errors import CheckpointError
    from envsound.models.litert import FrozenModel

    checkpoint = load_checkpoint(probed["checkpoint"])
    checkpoint.open_set = {**checkpoint.open_set, "prototypes": checkpoint.open_set["prototypes"][:, :512]}
    with pytest.raises(CheckpointError, match=r"open-set prototypes \(2, 512\) .* do not fit 2 classes of 1024-d"):
        FrozenModel.from_checkpoint(checkpoint, path="bad.ckpt")


def test_open_set_0_trains_a_probe_without_a_gate(probed, monkeypatch):
    monkeypatch.setenv("ENVSOUND_MODELS", str(probed["models"]))
    run = envsound.train(envsound.dataset("folder", root=probed["data"], folds=[1, 2]), init="yamnet",
                         out=probed["root"] / "closed", settings={"events.open_set": 0})
    assert load_checkpoint(run.model_path).open_set is None
