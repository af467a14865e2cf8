"""Issue 77 (3): `counts/` counts events as `events/` decodes them, beside the overlapping windows (a file with two
calls: 3 windows, 2 events); a learned detector's events are counted without --events, another model's only with
it (null without). The model is a head over the tiny frozen network of tests/tinytflite.py (tests/learnedhead.py)."""

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
    recording(folder / "two-calls.wav", RATE, WINDOW, "rrbbrrrrbr")  # bird in windows 2-3 and 8: 2 events
    recording(folder / "rain.wav", RATE, WINDOW, "rrrrrr", seed=1)
    return folder


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
    from envsound.models.checkpoint import load_checkpoint, save_checkpoint

    checkpoint = load_checkpoint(learned)
    checkpoint.meta.pop("learned")
    plain = save_checkpoint(tmp_path / "plain" / "model.ckpt", checkpoint)
    envsound.scan(plain, archive, out=tmp_path / "off", options=QUIET)
    assert counts(tmp_path / "off")["events"].isna().all()
    envsound.scan(plain, archive, out=tmp_path / "on", tables=envsound.Tables(events=True), options=QUIET)
    assert counts(tmp_path / "on").loc[("two-calls.wav", "bird")].events == 2
