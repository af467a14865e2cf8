"""Issue 77 (3): `counts/` by date and site: a file's start time from its name (AudioMoth `YYYYMMDD_HHMMSS`,
Wildlife Acoustics `NAME_YYYYMMDD_HHMMSS`, or `predict --time-from REGEX`) and its site from its folder under the
input folder; a name without a time leaves date, time and hour_of_day null."""

from __future__ import annotations

from datetime import datetime

import pytest

from envsound.errors import ConfigError
from envsound.inference.file_time import Places, start_time, time_pattern


@pytest.mark.parametrize("name, expected", [
    ("/data/site/20240501_053000.WAV", datetime(2024, 5, 1, 5, 30)),  # AudioMoth
    ("20240501_053000T.WAV", datetime(2024, 5, 1, 5, 30)),  # AudioMoth, a triggered recording
    ("/data/SM4A01234_20231231_235959.wav", datetime(2023, 12, 31, 23, 59, 59)),  # Wildlife Acoustics
    ("S4A01234_0+1_20230601_040000.wav", datetime(2023, 6, 1, 4)),
    ("rooster-3.wav", None), ("20241301_000000.wav", None),  # no time; month 13
    ("x20240501_0530001.wav", None),  # digits run on: not the form
])
def test_the_recorders_names_give_the_start_time(name, expected):
    assert start_time(name) == expected


def test_time_from_reads_named_groups_anywhere_in_the_path():
    pattern = time_pattern(r"(?P<year>\d{4})-(?P<month>\d\d)-(?P<day>\d\d)/(?P<hour>\d\d)h")
    assert start_time("/arch/north/2024-05-01/06h.flac", pattern) == datetime(2024, 5, 1, 6)
    assert start_time("/arch/north/misc/06h.flac", pattern) is None


@pytest.mark.parametrize("regex", [r"(?P<year>\d{4})", r"(?P<year>\d{4})(?P<month>\d\d)(?P<day>\d\d)(?P<x>.)",
                                   r"(?P<year>\d{4}"])
def test_a_time_from_without_the_groups_or_not_a_regex_is_refused_in_one_line(regex):
    with pytest.raises(ConfigError, match="--time-from") as refused:
        time_pattern(regex)
    assert "\n" not in str(refused.value)


def test_the_site_is_the_folder_under_the_input_folder(tmp_path):
    for folder in ("arch/north/may", "arch/south", "other"):
        (tmp_path / folder).mkdir(parents=True)
    places = Places([tmp_path / "arch", tmp_path / "arch" / "south"])
    assert places.site(str(tmp_path / "arch" / "north" / "may" / "a.wav")) == "north/may"
    assert places.site(str(tmp_path / "arch" / "south" / "a.wav")) == "south"  # directly in an input folder
    assert places.site(str(tmp_path / "other" / "a.wav")) == "other"  # a file named on its own
    row = places.at(str(tmp_path / "arch" / "north" / "20240501_233000.wav"), 1)  # its second hour: the next day
    assert row == {"site": "north", "time": "2024-05-02T00:30:00", "date": "2024-05-02", "hour_of_day": 0}
    assert places.at(str(tmp_path / "other" / "a.wav"), 0) == {"site": "other", "time": None, "date": None,
                                                               "hour_of_day": None}


def learned_detector(tmp_path, monkeypatch):
    """pandas, a head learned over the tiny frozen network and the recording writer (tests/learnedhead.py),
    skipping without their packages."""
    pytest.importorskip("ai_edge_litert")
    pytest.importorskip("flatbuffers")
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    from learnedhead import learned_head, recording

    monkeypatch.setenv("ENVSOUND_MODELS", str(tmp_path / "models"))
    return pd, learned_head(tmp_path), recording


def test_predict_out_writes_date_and_site_in_counts(tmp_path, monkeypatch, envsound_main):
    pd, learned, recording = learned_detector(tmp_path, monkeypatch)
    for site, name in (("north", "20240501_053000.wav"), ("south", "SMA01_20240502_220000.wav"),
                       ("south", "noise.wav")):
        (tmp_path / "arch" / site).mkdir(parents=True, exist_ok=True)
        recording(tmp_path / "arch" / site / name, 48_000, 3.0, "rbbr")
    ran = envsound_main("predict", learned, tmp_path / "arch", "--out", tmp_path / "out", "-q")
    assert ran.returncode == 0, ran.stderr
    counts = pd.read_parquet(tmp_path / "out" / "counts")
    counts["name"] = counts["file"].map(lambda name: name.rsplit("/", 1)[-1])
    rows = counts[counts.label == "bird"].set_index("name")
    assert rows.loc["20240501_053000.wav", ["site", "date", "time", "hour_of_day"]].tolist() == [
        "north", "2024-05-01", "2024-05-01T05:30:00", 5]
    assert rows.loc["SMA01_20240502_220000.wav", ["site", "date", "hour_of_day"]].tolist() == ["south", "2024-05-02",
                                                                                                22]
    plain = rows.loc["noise.wav"]
    assert plain.site == "south" and plain.date is None and plain.time is None and pd.isna(plain.hour_of_day)
    by_day = counts[counts.label == "bird"].groupby(["site", "date"])["events"].sum()
    assert by_day.to_dict() == {("north", "2024-05-01"): 1, ("south", "2024-05-02"): 1}
    files = pd.read_parquet(tmp_path / "out" / "files")  # the audio by site and date: counts/ has only the finds
    files["name"] = files["file"].map(lambda name: name.rsplit("/", 1)[-1])
    files = files.set_index("name")
    assert files.site.to_dict() == {"20240501_053000.wav": "north", "SMA01_20240502_220000.wav": "south",
                                    "noise.wav": "south"}
    began = pd.to_datetime(files.start, unit="s")
    assert began["20240501_053000.wav"] == pd.Timestamp("2024-05-01 05:30") and pd.isna(began["noise.wav"])


def test_predict_time_from_goes_with_out_and_a_bad_one_is_refused_in_one_line(tmp_path, envsound_main):
    ran = envsound_main("predict", "model.ckpt", "a.wav", "--time-from", r"(?P<year>\d{4})")
    assert ran.returncode != 0 and "--time-from are for a results folder" in ran.stderr
    ran = envsound_main("predict", "model.ckpt", "a.wav", "--out", tmp_path / "out", "--time-from", r"(?P<year>\d{4})")
    assert ran.returncode != 0 and len(ran.stderr.strip().splitlines()) == 1 and "(?P<month>" in ran.stderr
    assert not (tmp_path / "out").exists()


def test_predict_time_from_dates_files_by_their_folder(tmp_path, monkeypatch, envsound_main):
    pd, learned, recording = learned_detector(tmp_path, monkeypatch)
    (tmp_path / "arch" / "north" / "2024-05-01").mkdir(parents=True)
    recording(tmp_path / "arch" / "north" / "2024-05-01" / "0530.wav", 48_000, 3.0, "rbbr")
    ran = envsound_main("predict", learned, tmp_path / "arch", "--out", tmp_path / "out", "-q", "--time-from",
                        r"(?P<year>\d{4})-(?P<month>\d\d)-(?P<day>\d\d)/(?P<hour>\d\d)(?P<minute>\d\d)\.wav")
    assert ran.returncode == 0, ran.stderr
    row = pd.read_parquet(tmp_path / "out" / "counts").query("label == 'bird'").iloc[0]
    assert (row.site, row.time, row.hour_of_day) == ("north/2024-05-01", "2024-05-01T05:30:00", 5)
