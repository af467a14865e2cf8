"""strong_labels.csv: read as `envsound mix` writes it, and every bad row named in one line."""

from __future__ import annotations

import pytest

from envsound.data.strong_labels import StrongEvent, check_within, read_strong_labels
from envsound.errors import DatasetLayoutError

HEADER = "fname,subset,label,onset,offset,source_clip,snr_db\n"


def write(tmp_path, rows: str):
    (tmp_path / "strong_labels.csv").write_text(HEADER + rows, encoding="utf-8")
    return tmp_path


def test_rows_become_events_by_clip_sorted_by_onset(tmp_path):
    write(tmp_path, "a.wav,curated,dog,2.0,3.5,x,0\na.wav,curated,cat,0.5,1.0,y,0\nb.wav,noisy,dog,0,1,z,0\n")
    events = read_strong_labels(tmp_path, labels=["cat", "dog"])
    assert events == {"train_curated/a.wav": [StrongEvent("cat", 0.5, 1.0), StrongEvent("dog", 2.0, 3.5)],
                      "train_noisy/b.wav": [StrongEvent("dog", 0.0, 1.0)]}
    assert read_strong_labels(tmp_path / "elsewhere") is None


@pytest.mark.parametrize("row, problem", [
    ("a.wav,curated,dog,3.0,3.0,x,0", "row 2: onset 3 s is not before offset 3 s"),
    ("a.wav,curated,dog,4.0,3.0,x,0", "row 2: onset 4 s is not before offset 3 s"),
    ("a.wav,curated,dog,soon,3.0,x,0", "row 2: onset 'soon' is not a number of seconds"),
    ("a.wav,curated,dog,-1,3.0,x,0", "row 2: onset -1 is not a time in the clip"),
    ("a.wav,curated,cow,1,3.0,x,0", "row 2: label 'cow' is not one of the dataset's labels"),
])
def test_a_bad_row_is_named(tmp_path, row, problem):
    write(tmp_path, row + "\n")
    with pytest.raises(DatasetLayoutError, match=problem.replace("(", r"\(")):
        read_strong_labels(tmp_path, labels=["dog"])


def test_a_missing_column_and_an_event_past_its_clip_are_refused(tmp_path):
    (tmp_path / "strong_labels.csv").write_text("fname,label,onset,offset\na.wav,dog,0,1\n", encoding="utf-8")
    with pytest.raises(DatasetLayoutError, match="no column subset"):
        read_strong_labels(tmp_path)
    events = {"train_curated/a.wav": [StrongEvent("dog", 1.0, 5.5, row=7)]}
    check_within(events, {"train_curated/a.wav": 5.505})
    with pytest.raises(DatasetLayoutError, match="row 7: train_curated/a.wav: dog ends at 5.5 s, after the clip's end"):
        check_within(events, {"train_curated/a.wav": 5.0})


def test_narrowing_the_classes_narrows_the_events_to_find():
    from pathlib import Path

    from envsound.data.records import ClipRecord, Manifest

    record = ClipRecord(path=Path("a.wav"), labels=("cat", "dog"), fold=1, source_id="a", clip_id="train_curated/a.wav")
    strong = {"train_curated/a.wav": [StrongEvent("cat", 0.5, 1.0), StrongEvent("dog", 2.0, 3.5)]}
    manifest = Manifest(name="mix", records=[record], labels=["cat", "dog"], multi_label=True, strong=strong)
    assert manifest.select_classes(["dog"]).strong == {"train_curated/a.wav": [StrongEvent("dog", 2.0, 3.5)]}
    assert manifest.select_folds([1]).strong == strong
