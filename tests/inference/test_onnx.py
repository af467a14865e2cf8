"""ONNX export: `envsound export` writes one file that predict, serve and load_model run with onnxruntime, giving the
checkpoint's predictions (top-1 identical, probabilities within 1e-3) without importing torch."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import numpy as np
import onnx
import pytest
import soundfile as sf

import envsound
from conftest import TINY_OVERRIDES
from envsound.errors import CheckpointError, ConfigError

TOLERANCE = 1e-3


@pytest.fixture(scope="module")
def exported(trained_run, tmp_path_factory):
    from envsound.cli.main import main

    out = tmp_path_factory.mktemp("onnx") / "model.onnx"
    assert main(["export", "--quiet", str(trained_run.checkpoint), "--format", "onnx", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def clips(synthetic_manifest, tmp_path_factory):
    """The held-out fold, and one 75-s recording made of them: longer than a 60-s block, so it is read in pieces."""
    paths = [record.path for record in synthetic_manifest.select_folds([5]).records]
    pieces = [sf.read(path, dtype="float32") for path in paths]
    rate = pieces[0][1]
    long = np.concatenate([samples for samples, _ in pieces] * 3)[:75 * rate]
    long_path = tmp_path_factory.mktemp("long") / "long.flac"
    sf.write(long_path, long, rate)
    return paths + [long_path]


def probabilities(prediction) -> dict[str, float]:
    return {entry["label"]: entry["score"] for entry in prediction.top}


def assert_same(torch_prediction, onnx_prediction):
    assert torch_prediction.error is None and onnx_prediction.error is None
    assert onnx_prediction.top[0]["label"] == torch_prediction.top[0]["label"]
    assert probabilities(onnx_prediction) == pytest.approx(probabilities(torch_prediction), abs=TOLERANCE)


def test_onnx_predictions_equal_the_checkpoints(trained_run, exported, clips):
    torch_model = envsound.load_model(trained_run.checkpoint, precision="32")
    onnx_model = envsound.load_model(exported)
    assert onnx_model.labels == torch_model.labels and onnx_model.config == torch_model.config
    everything = len(torch_model.labels)
    for path in clips:
        expected = torch_model.predict(path, top_k=everything, segments=True)
        got = onnx_model.predict(path, top_k=everything, segments=True)
        assert_same(expected, got)
        assert [(s["start"], s["label"]) for s in got.segments] == [(s["start"], s["label"]) for s in expected.segments]
    assert len(got.segments) > 100  # the 75-s file: windows from two blocks, as the checkpoint scores them


def test_the_file_alone_describes_the_model(trained_run, exported):
    props = {entry.key: json.loads(entry.value) for entry in onnx.load(exported).metadata_props}
    checkpoint_model = envsound.load_model(trained_run.checkpoint)
    assert props["envsound.labels"] == checkpoint_model.labels
    assert props["envsound.config"]["features"]["sample_rate"] == checkpoint_model.config.features.sample_rate
    described = envsound.load_model(exported).describe()
    assert described["runtime"]["engine"] == "onnxruntime" and described["runtime"]["precision"] == "32"
    assert described["training"]["dataset"] == checkpoint_model.describe()["training"]["dataset"]


BLOCK_TORCH = """
import json, sys

class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "torch":
            raise ImportError(f"{name} is blocked: an ONNX deployment has no torch")

sys.meta_path.insert(0, NoTorch())
from envsound import load_model

model = load_model(sys.argv[1])
print(json.dumps([model.predict(path, top_k=3).to_dict() for path in sys.argv[2:]]))
"""


def test_the_onnx_path_runs_without_torch(trained_run, exported, clips):
    run = subprocess.run([sys.executable, "-c", BLOCK_TORCH, str(exported), *map(str, clips[:3])],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    torch_model = envsound.load_model(trained_run.checkpoint, precision="32")
    for printed, path in zip(json.loads(run.stdout), clips[:3]):
        expected = torch_model.predict(path, top_k=3).to_dict()
        assert printed["top"][0]["label"] == expected["top"][0]["label"]
        assert {t["label"]: t["score"] for t in printed["top"]} == pytest.approx(
            {t["label"]: t["score"] for t in expected["top"]}, abs=TOLERANCE)
    blocked = subprocess.run([sys.executable, "-c", BLOCK_TORCH, str(trained_run.checkpoint), str(clips[0])],
                             capture_output=True, text=True, timeout=120)
    assert blocked.returncode != 0 and "torch is blocked" in blocked.stderr  # the blocker does block a checkpoint


def test_predict_and_serve_take_the_onnx_file(trained_run, exported, clips, capsys):
    from envsound.app.run import running
    from envsound.app.server import create_app
    from envsound.cli.main import main

    capsys.readouterr()
    assert main(["predict", "--quiet", str(exported), str(clips[0]), "--json"]) == 0
    from_cli = json.loads(capsys.readouterr().out)
    assert from_cli == envsound.load_model(exported).predict(clips[0]).to_dict()
    with running(create_app(envsound.load_model(exported))) as url, open(clips[0], "rb") as handle:
        answer = httpx.post(f"{url}/v1/predict", files={"file": (clips[0].name, handle)}, timeout=60)
        described = httpx.get(f"{url}/v1/model", timeout=60).json()
    assert answer.status_code == 200 and answer.json()["top"] == from_cli["top"]
    assert described["runtime"]["engine"] == "onnxruntime"


def test_unusable_files_and_settings_are_one_clear_line(trained_run, exported, tmp_path, capsys):
    from envsound.cli.main import main

    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(CheckpointError, match="junk.onnx: not a readable ONNX model"):
        envsound.load_model(junk)
    foreign = onnx.load(exported)
    del foreign.metadata_props[:]
    onnx.save(foreign, tmp_path / "foreign.onnx")
    with pytest.raises(CheckpointError, match="foreign.onnx: an ONNX model without envsound's metadata"):
        envsound.load_model(tmp_path / "foreign.onnx")
    future = onnx.load(exported)
    next(p for p in future.metadata_props if p.key == "envsound.format_version").value = "99"
    onnx.save(future, tmp_path / "future.onnx")
    with pytest.raises(CheckpointError, match="newer"):
        envsound.load_model(tmp_path / "future.onnx")
    framed = onnx.load(exported)  # a frame model's metadata on a graph without frame_probs
    framed.metadata_props.add(key="envsound.frames", value='{"frame_seconds": 0.08}')
    onnx.save(framed, tmp_path / "framed.onnx")
    with pytest.raises(CheckpointError, match="framed.onnx: the envsound metadata announces frames but the graph "
                                              "has no frame_probs output"):
        envsound.load_model(tmp_path / "framed.onnx")
    with pytest.raises(CheckpointError, match="not found"):
        envsound.load_model(tmp_path / "missing.onnx")
    with pytest.raises(ConfigError, match="float32"):
        envsound.load_model(exported, precision="bf16-mixed")
    with pytest.raises(ConfigError, match="--device mps"):
        envsound.load_model(exported, device="mps")
    capsys.readouterr()
    assert main(["export", "--quiet", str(trained_run.checkpoint), "--out", str(tmp_path / "model.bin")]) != 0
    assert main(["export", "--quiet", str(tmp_path / "missing.ckpt"), "--out", str(tmp_path / "m.onnx")]) != 0
    errors = capsys.readouterr().err.splitlines()
    assert any("*.onnx" in line for line in errors) and any("missing.ckpt: model file not found" in line
                                                             for line in errors)
    assert not (tmp_path / "model.bin").exists() and not (tmp_path / "m.onnx").exists()


def test_a_baseline_does_not_export(synthetic_manifest, tmp_path):
    from envsound.config.files import bare_config
    from envsound.inference.onnx_export import export_onnx
    from envsound.recipes.context import RunContext
    from envsound.recipes.train import train_model

    features_only = tuple(o for o in TINY_OVERRIDES if not o.startswith("model."))  # a baseline takes no filters
    config = bare_config(overrides=features_only + ("model.name=knn",))
    result = train_model(synthetic_manifest.select_folds([1]), config, out_dir=tmp_path,
                         context=RunContext(progress=False))
    with pytest.raises(ConfigError, match="scikit-learn baseline"):
        export_onnx(result.checkpoint, tmp_path / "knn.onnx")


ARCHITECTURES = {  # every input path of the graph: deltas (and clips shorter than the delta width), a recurrent
    # network, a raw-waveform network, a multi-label task
    "cnn-deltas": (("model.name=cnn", "features.deltas=true"), False),
    "crnn": (("model.name=crnn",), False),
    "aclnet-waveform": (("model.name=aclnet", "features.kind=waveform"), False),
    "cnn-10-crops": (("model.name=cnn", "features.eval_crops=10"), False),  # the test protocol travels in metadata
    "resnet-multilabel": (("model.name=resnet",), True),
}


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_every_input_path_exports_faithfully(name, tmp_path):
    import torch

    from envsound.config.files import bare_config
    from envsound.inference.onnx_export import export_onnx
    from envsound.inference.predictor import Predictor
    from envsound.models.checkpoint import Checkpoint, save_checkpoint
    from envsound.models.clip import build_network
    from envsound.task import Task

    overrides, multi_label = ARCHITECTURES[name]
    config = bare_config(overrides=TINY_OVERRIDES + overrides)
    torch.manual_seed(0)
    network = build_network(config, 4)
    checkpoint = save_checkpoint(tmp_path / "m.ckpt", Checkpoint(
        config=config, labels=list("abcd"), task=Task.from_flag(multi_label), state_dict=network.state_dict()))
    torch_model = Predictor.from_checkpoint(checkpoint, precision="32").model
    onnx_model = Predictor.from_checkpoint(export_onnx(checkpoint, tmp_path / "m.onnx")).model
    rate = config.features.sample_rate
    noise = np.random.default_rng(1).uniform(-0.5, 0.5, 3 * rate).astype(np.float32)
    for length in (int(0.1 * rate), rate // 2, 3 * rate):  # under the delta width, under a window, several windows
        expected, starts = torch_model.waveform_probs(noise[:length])
        got, onnx_starts = onnx_model.waveform_probs(noise[:length])
        assert onnx_starts == starts
        assert np.abs(got - expected).max() < TOLERANCE and (got.argmax(1) == expected.argmax(1)).all()
    assert onnx_model.task.multi_label == multi_label


def test_an_archive_scan_runs_the_exported_model_as_predict_does(exported, clips, tmp_path):
    """`predict model.onnx --out DIR`: the model cuts its own windows (a chunk a call), the results are predict's."""
    import pandas as pd

    from envsound.inference.predictor import Predictor

    summary = envsound.scan(exported, clips, out=tmp_path / "scan", tables=envsound.Tables(events=True),
                            options=envsound.ScanOptions(progress=False))
    assert summary.files == len(clips) and summary.failed == 0
    files = pd.read_parquet(tmp_path / "scan" / "files").set_index("file")
    windows = pd.read_parquet(tmp_path / "scan" / "windows")
    predictor = Predictor.from_checkpoint(exported)
    for path in clips:
        alone = predictor.predict_file(path, segments=True)
        row = files.loc[str(path)]
        assert [row.label, row.label_2] == [t["label"] for t in alone.top[:2]]
        assert [row.score, row.score_2] == pytest.approx([t["score"] for t in alone.top[:2]], abs=1e-4)
        assert windows[windows.file == str(path)].start.tolist() == [s["start"] for s in alone.segments]
