"""Issue 77 (3), a learned detector's numbers: `counts/` counts events as `events/` decodes them, beside the
overlapping windows (a file with two calls: 3 windows, 2 events), a learned detector's events without --events,
another model's only with it (null without); and one file-level rule for a learned detector (`envsound learn`'s
model): a file holds the sound when it has at least one event of it or its best window passes the threshold, and
`files/`' top-k label/score (the best window's score) and `labels` follow it. Before, the mean window score missed a
30-s file with two bird calls, and the top-k named every label for every file, even one that never sounds in it;
another model keeps the mean. The model is a head over the tiny frozen network of tests/tinytflite.py
(tests/learnedhead.py)."""

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


def archive_of(folder, two_calls: str):
    """Two recordings: ``two-calls.wav`` (its windows' pattern: ``b`` bird, ``r`` rain) and ``rain.wav``."""
    folder.mkdir()
    recording(folder / "two-calls.wav", RATE, WINDOW, two_calls)
    recording(folder / "rain.wav", RATE, WINDOW, "rrrrrr", seed=1)
    return folder


@pytest.fixture
def archive(tmp_path):
    return archive_of(tmp_path / "archive", "rrbbrrrrbr")  # bird in windows 2-3 and 8: 2 events


@pytest.fixture
def sparse(tmp_path):
    return archive_of(tmp_path / "sparse", "rrbrrrrrbr")  # 2 of 10 windows bird: a mean near 0.2


def plain_model(learned, folder):
    """The same head with no meta["learned"]: a model envsound learn did not make."""
    from envsound.models.checkpoint import load_checkpoint, save_checkpoint

    checkpoint = load_checkpoint(learned)
    checkpoint.meta.pop("learned")
    return save_checkpoint(folder / "plain" / "model.ckpt", checkpoint)


def counts(out) -> pd.DataFrame:
    table = pd.read_parquet(out / "counts")
    table["file"] = table["file"].map(lambda name: name.rsplit("/", 1)[-1])
    return table.set_index(["file", "label"]).sort_index()


def test_counts_per_event_beside_windows_for_a_learned_detector_without_events_on(tmp_path, learned, archive):
    envsound.scan(learned, archive, out=tmp_path / "out", options=QUIET)
    table = counts(tmp_path / "out")
    bird = table.loc[("two-calls.wav", "bird")]
    assert (bird.windows, bird.events) == (3, 2)
    assert bird.events_per_hour == pytest.approx(2 * 3600 / 30.0) and bird.per_hour == pytest.approx(3 * 3600 / 30.0)
    assert table.loc[("rain.wav", "rain")].events == 1 and ("rain.wav", "bird") not in table.index
    assert not (tmp_path / "out" / "events").exists()  # the events table only with --events


def test_the_counted_events_are_those_of_the_events_table(tmp_path, learned, archive):
    envsound.scan(learned, archive, out=tmp_path / "out", tables=envsound.Tables(events=True), options=QUIET)
    events = pd.read_parquet(tmp_path / "out" / "events")
    events["file"] = events["file"].map(lambda name: name.rsplit("/", 1)[-1])
    table = counts(tmp_path / "out")
    assert table["events"].to_dict() == events.groupby(["file", "label"]).size().to_dict()


def test_another_models_events_are_counted_only_with_events_on(tmp_path, learned, archive):
    """A head over the network that `envsound learn` did not make (no meta["learned"]): its counts' events are null
    without --events."""
    plain = plain_model(learned, tmp_path)
    envsound.scan(plain, archive, out=tmp_path / "off", options=QUIET)
    assert counts(tmp_path / "off")["events"].isna().all()
    envsound.scan(plain, archive, out=tmp_path / "on", tables=envsound.Tables(events=True), options=QUIET)
    assert counts(tmp_path / "on").loc[("two-calls.wav", "bird")].events == 2


def files(out) -> pd.DataFrame:
    table = pd.read_parquet(out / "files")
    return table.set_index(table["file"].map(lambda name: name.rsplit("/", 1)[-1]))


def test_a_learned_detectors_file_holds_a_sound_heard_in_few_windows(tmp_path, learned, sparse):
    envsound.scan(learned, sparse, out=tmp_path / "out", options=QUIET)
    table = files(tmp_path / "out")
    two = table.loc["two-calls.wav"]
    assert set(two.labels.split(";")) == {"bird", "rain"}
    windows = pd.read_parquet(tmp_path / "out" / "windows")
    best = windows[windows.file.str.endswith("two-calls.wav") & (windows.label == "bird")].score.max()
    assert {two.label, two.label_2} == {"bird", "rain"} and two.score == pytest.approx(best, abs=1e-3)


def test_a_learned_detectors_top_k_names_no_label_the_file_does_not_hold(tmp_path, learned, sparse):
    envsound.scan(learned, sparse, out=tmp_path / "out", options=QUIET)
    rain = files(tmp_path / "out").loc["rain.wav"]
    assert rain.labels == "rain" and rain.label == "rain" and rain.label_2 is None and pd.isna(rain.score_2)


def test_the_printed_prediction_follows_the_same_rule(learned, sparse):
    from envsound.inference.predictor import Predictor

    predictor = Predictor.from_checkpoint(learned)
    prediction = predictor.predict_file(sparse / "two-calls.wav", top_k=2)
    assert {item["label"] for item in prediction.labels} == {"bird", "rain"} and prediction.events is None
    assert prediction.top[0]["score"] == pytest.approx(0.953, abs=2e-3)  # the best window's, not the mean
    rain = predictor.predict_file(sparse / "rain.wav", top_k=2)
    assert [item["label"] for item in rain.labels] == ["rain"] and len(rain.top) == 2  # top: every label, scored


def test_a_model_learn_did_not_make_keeps_the_mean(tmp_path, learned, sparse):
    plain = plain_model(learned, tmp_path)
    envsound.scan(plain, sparse, out=tmp_path / "out", options=QUIET)
    two = files(tmp_path / "out").loc["two-calls.wav"]
    assert two.labels == "rain" and (two.label, two.label_2) == ("rain", "bird") and two.score_2 < 0.5
