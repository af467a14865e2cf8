"""Issue 77 (3): one file-level rule for a learned detector (`envsound learn`'s model): a file holds the sound when it
has at least one event of it or its best window passes the threshold; `files/`' top-k label/score (the best window's
score) and `labels` follow it. Before, the mean window score missed a 30-s file with two bird calls, and the top-k
named every label for every file, even one that never sounds in it. Another model keeps the mean."""

from __future__ import annotations

import pytest

pytest.importorskip("ai_edge_litert")
pytest.importorskip("flatbuffers")
pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")

import envsound  # noqa: E402 (after the skips)
from learnedhead import learned_head, recording  # noqa: E402

RATE, WINDOW = 48_000, 3.0
QUIET = envsound.ScanOptions(progress=False, workers=1)


@pytest.fixture
def learned(tmp_path, monkeypatch):
    monkeypatch.setenv("ENVSOUND_MODELS", str(tmp_path / "models"))
    return learned_head(tmp_path)


@pytest.fixture
def archive(tmp_path):
    folder = tmp_path / "archive"
    folder.mkdir()
    recording(folder / "two-calls.wav", RATE, WINDOW, "rrbrrrrrbr")  # 2 of 10 windows bird: a mean near 0.2
    recording(folder / "rain.wav", RATE, WINDOW, "rrrrrr", seed=1)
    return folder


def files(out) -> pd.DataFrame:
    table = pd.read_parquet(out / "files")
    return table.set_index(table["file"].map(lambda name: name.rsplit("/", 1)[-1]))


def test_a_learned_detectors_file_holds_a_sound_heard_in_few_windows(tmp_path, learned, archive):
    envsound.scan(learned, archive, out=tmp_path / "out", options=QUIET)
    table = files(tmp_path / "out")
    two = table.loc["two-calls.wav"]
    assert set(two.labels.split(";")) == {"bird", "rain"}
    windows = pd.read_parquet(tmp_path / "out" / "windows")
    best = windows[windows.file.str.endswith("two-calls.wav") & (windows.label == "bird")].score.max()
    assert {two.label, two.label_2} == {"bird", "rain"} and two.score == pytest.approx(best, abs=1e-3)


def test_a_learned_detectors_top_k_names_no_label_the_file_does_not_hold(tmp_path, learned, archive):
    envsound.scan(learned, archive, out=tmp_path / "out", options=QUIET)
    rain = files(tmp_path / "out").loc["rain.wav"]
    assert rain.labels == "rain" and rain.label == "rain" and rain.label_2 is None and pd.isna(rain.score_2)


def test_the_printed_prediction_follows_the_same_rule(learned, archive):
    from envsound.inference.predictor import Predictor

    predictor = Predictor.from_checkpoint(learned)
    prediction = predictor.predict_file(archive / "two-calls.wav", top_k=2)
    assert {item["label"] for item in prediction.labels} == {"bird", "rain"} and prediction.events is None
    assert prediction.top[0]["score"] == pytest.approx(0.953, abs=2e-3)  # the best window's, not the mean
    rain = predictor.predict_file(archive / "rain.wav", top_k=2)
    assert [item["label"] for item in rain.labels] == ["rain"] and len(rain.top) == 2  # top: every label, scored


def test_a_model_learn_did_not_make_keeps_the_mean(tmp_path, learned, archive):
    from envsound.models.checkpoint import load_checkpoint, save_checkpoint

    checkpoint = load_checkpoint(learned)
    checkpoint.meta.pop("learned")
    plain = save_checkpoint(tmp_path / "plain" / "model.ckpt", checkpoint)
    envsound.scan(plain, archive, out=tmp_path / "out", options=QUIET)
    two = files(tmp_path / "out").loc["two-calls.wav"]
    assert two.labels == "rain" and (two.label, two.label_2) == ("rain", "bird") and two.score_2 < 0.5
