"""The Python API: `from envsound import load_model`, files and in-memory waveforms, the CLI's result objects."""

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

import envsound
from envsound.errors import AudioLoadError, CheckpointError, ConfigError


@pytest.fixture(scope="module")
def model(trained_run):
    return envsound.load_model(trained_run.checkpoint)


@pytest.fixture(scope="module")
def clip(synthetic_manifest):
    return synthetic_manifest.select_folds([5]).records[0].path


def scores(prediction):
    return {entry["label"]: entry["score"] for entry in prediction.top}


def test_a_waveform_is_scored_as_the_same_audio_in_a_file(model, clip):
    from_file = model.predict(clip, top_k=len(model.labels))
    samples, rate = sf.read(clip, dtype="float32")
    from_array = model.predict(samples, sample_rate=rate, top_k=len(model.labels))
    assert from_file.file == str(clip) and from_array.file == "waveform" and from_array.error is None
    assert scores(from_array) == pytest.approx(scores(from_file), abs=1e-4)
    pcm = np.round(samples * 32767).astype(np.int16)  # integer PCM at full scale, and two equal channels
    stereo = np.stack([pcm, pcm], axis=1)
    assert scores(model.predict(stereo, sample_rate=rate, top_k=3)) == pytest.approx(scores(model.predict(
        samples, sample_rate=rate, top_k=3)), abs=2e-3)
    resampled = model.predict(samples[::2], sample_rate=rate // 2, top_k=1)  # resampled to the model's rate
    assert resampled.top and 0 <= resampled.top[0]["score"] <= 1


def test_the_result_is_what_predict_json_prints(model, trained_run, clip, capsys):
    import json

    from envsound.cli.main import main

    capsys.readouterr()
    assert main(["predict", "--quiet", str(trained_run.checkpoint), str(clip), "--json", "--segments"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert model.predict(clip, segments=True).to_dict() == printed
    assert model.task.kind == "single_label" and model.config.features.sample_rate > 0 and len(model.labels) > 1
    many = list(model.predict_many([clip, clip.parent / "missing.wav"]))
    assert many[0].error is None and "missing.wav" in many[1].error


@pytest.mark.parametrize("samples, sample_rate, message", [
    (np.zeros((4, 4, 4), dtype=np.float32), 16000, "shape"),
    (np.array([], dtype=np.float32), 16000, "0 frames"),
    (np.array(["a", "b"]), 16000, "dtype"),
    (np.full(16000, np.nan, dtype=np.float32), 16000, "non-finite"),
    (np.zeros(16000, dtype=np.float32), 16000, "silent"),
])
def test_a_bad_waveform_is_one_clear_line(model, samples, sample_rate, message):
    with pytest.raises(AudioLoadError, match=message) as caught:
        model.predict(samples, sample_rate=sample_rate)
    assert "\n" not in str(caught.value)


def test_wrong_arguments_and_files(model, clip, tmp_path):
    with pytest.raises(ConfigError, match="needs its sample_rate"):
        model.predict(np.ones(16000, dtype=np.float32))
    with pytest.raises(ConfigError, match="waveforms only"):
        model.predict(clip, sample_rate=16000)
    with pytest.raises(ConfigError, match="sample_rate"):
        model.predict(np.ones(16000, dtype=np.float32), sample_rate=0)
    with pytest.raises(AudioLoadError, match="missing.wav"):
        model.predict(tmp_path / "missing.wav")
    (tmp_path / "bad.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="bad.ckpt"):
        envsound.load_model(tmp_path / "bad.ckpt")


def test_precision_32_forces_fp32_in_the_api_and_the_commands(trained_run, clip, capsys):
    from envsound.cli.main import main

    model = envsound.load_model(trained_run.checkpoint, precision="32")
    assert model.runtime.precision == "32" and model.runtime.accelerator == "cpu"
    assert main(["predict", "--quiet", str(trained_run.checkpoint), str(clip), "--precision", "32"]) == 0
    with pytest.raises(SystemExit):  # argparse: a choice it does not know
        main(["predict", "--quiet", str(trained_run.checkpoint), str(clip), "--precision", "8"])
    assert "invalid choice" in capsys.readouterr().err


def test_importing_envsound_does_not_import_torch():
    code = "import sys, envsound; envsound.__version__; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"
