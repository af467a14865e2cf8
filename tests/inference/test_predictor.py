import numpy as np
import soundfile as sf

import pytest

from envsound.features.extract import extract_features
from envsound.inference.predictor import Predictor
from envsound.models.checkpoint import load_checkpoint
from envsound.models.clip import ClipModel


@pytest.fixture(scope="module")
def predictor(trained_run):
    return Predictor.from_checkpoint(trained_run.checkpoint)


def test_predict_agrees_with_evaluation_path(predictor, trained_run, synthetic_manifest):
    """A clip shorter than a block is scored exactly as evaluation scores it from cached features."""
    records = synthetic_manifest.select_folds([5]).records[:5]
    model = ClipModel.from_checkpoint(load_checkpoint(trained_run.checkpoint))
    _, feats, _ = extract_features(records, model.config.features, cache=None, progress=False)
    expected = model.predict_clips(feats)
    for record, probs in zip(records, expected):
        top = predictor.predict_file(record.path, top_k=len(predictor.labels)).top
        got = {t["label"]: t["score"] for t in top}
        assert [got[label] for label in predictor.labels] == pytest.approx(probs.tolist(), abs=2e-4)


def test_long_file_streams_in_blocks_like_one_pass(tmp_path, trained_run, synthetic_manifest):
    """Blocks line up with the whole-file windows: a 3-s-block run equals a one-block run."""
    clips = [sf.read(r.path, dtype="float32")[0] for r in synthetic_manifest.records[:12]]
    rate = sf.info(synthetic_manifest.records[0].path).samplerate
    path = tmp_path / "long.wav"
    sf.write(path, np.concatenate(clips), rate)
    whole = Predictor.from_checkpoint(trained_run.checkpoint, block_seconds=600)
    blocked = Predictor.from_checkpoint(trained_run.checkpoint, block_seconds=3)
    a = whole.predict_file(path, segments=True)
    b = blocked.predict_file(path, segments=True)
    assert [s["start"] for s in a.segments] == [s["start"] for s in b.segments]
    assert a.top[0]["label"] == b.top[0]["label"]
    assert a.top[0]["score"] == pytest.approx(b.top[0]["score"], abs=0.02)
    assert a.segments[-1]["end"] == pytest.approx(len(np.concatenate(clips)) / rate, abs=0.1)


def test_bad_files_get_errors_and_the_batch_goes_on(tmp_path, predictor, synthetic_manifest):
    good = synthetic_manifest.records[0].path
    (tmp_path / "notes.wav").write_text("not audio at all")
    (tmp_path / "empty.wav").write_bytes(b"")
    results = list(predictor.predict_paths([good, tmp_path / "notes.wav", tmp_path / "empty.wav",
                                            tmp_path / "missing.wav"]))
    assert results[0].error is None and results[0].top
    for result in results[1:]:
        assert result.error and "\n" not in result.error
        assert result.file.split("/")[-1] in result.error


def test_segments_cover_a_clip_shorter_than_a_window(tmp_path, predictor):
    rate = 16000
    t = np.arange(int(0.3 * rate)) / rate
    path = tmp_path / "short.wav"
    sf.write(path, (0.3 * np.sin(2 * np.pi * 700 * t)).astype(np.float32), rate)
    result = predictor.predict_file(path, segments=True)
    assert len(result.segments) == 1 and result.segments[0]["start"] == 0.0
    assert result.segments[0]["end"] == pytest.approx(0.3, abs=1e-3)  # the file's end, not the padded window's


def test_a_named_folder_without_audio_is_an_error_line(trained_run, tmp_path):
    """Regression: a folder holding no audio used to yield nothing at all."""
    from envsound.inference.predictor import Predictor

    (tmp_path / "notes.txt").write_text("no audio here")
    results = list(Predictor.from_checkpoint(trained_run.checkpoint).predict_paths([tmp_path]))
    assert len(results) == 1 and results[0].error.startswith(f"{tmp_path}: no audio files in this folder")


def test_trimmed_and_padded_edges_predict_as_evaluation_does_in_the_file_time(tmp_path, trained_run,
                                                                               synthetic_manifest):
    """EnvNet-v2's edges (features.trim_zeros, edge_pad): predict, in one block or many, scores the clip that
    evaluation scores, and its timeline counts in the file's seconds (0.25 s of leading silence, half a window
    padded: the first window starts before the file, the last ends after it)."""
    from envsound.features.edges import prepare_clip
    from envsound.features.extract import compute_features

    checkpoint = load_checkpoint(trained_run.checkpoint)
    features = checkpoint.config.features
    features.trim_zeros, features.edge_pad = True, 0.5
    model = ClipModel.from_checkpoint(checkpoint)
    rate = features.sample_rate
    sound = np.concatenate([sf.read(r.path, dtype="float32")[0] for r in synthetic_manifest.records[:3]])
    assert sound[0] != 0 and sound[-1] != 0  # the silence added below is all there is to trim
    wave = np.concatenate([np.zeros(rate // 4, np.float32), sound, np.zeros(rate // 2, np.float32)])
    expected = model.predict_clips([compute_features(prepare_clip(wave, features), features)])[0]
    whole = Predictor(model, block_seconds=600).predict_waveform(wave, sample_rate=rate, top_k=len(model.labels),
                                                                 segments=True)
    got = {t["label"]: t["score"] for t in whole.top}
    assert [got[label] for label in model.labels] == pytest.approx(expected.tolist(), abs=2e-4)
    pad, hop = int(0.5 * features.window_samples) / rate, features.eval_hop_frames * features.hop_length / rate
    assert 0.25 - pad + hop > 0 > 0.25 - pad
    assert whole.segments[0]["start"] == 0.0  # starts before the file: shown from the file's start
    assert whole.segments[1]["start"] == pytest.approx(0.25 - pad + hop, abs=1e-3)
    path = tmp_path / "long.wav"
    sf.write(path, wave, rate, subtype="FLOAT")
    blocked = Predictor(model, block_seconds=3).predict_file(path, segments=True)
    assert [s["start"] for s in blocked.segments] == [s["start"] for s in whole.segments]
    assert [s["end"] for s in blocked.segments] == [s["end"] for s in whole.segments]
    assert whole.segments[-1]["end"] == pytest.approx(len(wave) / rate, abs=1e-3)  # padding after it not shown
    assert all(s["end"] <= round(len(wave) / rate, 3) for s in whole.segments)
    sound_only = Predictor(model, block_seconds=3).predict_waveform(sound, sample_rate=rate, segments=True)
    assert sound_only.segments[-1]["end"] == pytest.approx(len(sound) / rate, abs=1e-3)  # not half a window after
