"""Issue 77 (3): the precision `counts/` carries is `envsound check`'s (the random sample's verdicts on its sheet
beside the model, at the threshold used) when there is one, else `learn`'s, and `precision_from` says which. Before,
it was always learn's (from the windows the loop chose: optimistic)."""

from __future__ import annotations

import csv

import pytest

pytest.importorskip("ai_edge_litert")
pytest.importorskip("flatbuffers")
pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")

import envsound  # noqa: E402 (after the skips)
from learnedhead import learned_head, recording  # noqa: E402
from envsound.agile.calibrate import wilson  # noqa: E402
from envsound.agile.check import SHEET_COLUMNS  # noqa: E402
from envsound.models.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402

QUIET = envsound.ScanOptions(progress=False, workers=1)
LEARN = {"bird": {"calibrated": True, "precision": 0.95, "precision_interval": [0.8, 0.99]},
         "rain": {"calibrated": True, "precision": 0.9, "precision_interval": [0.7, 0.97]}}


@pytest.fixture
def model(tmp_path, monkeypatch):
    """A learned head both of whose labels learn calibrated (bird at 0.5, rain at 0.4)."""
    monkeypatch.setenv("ENVSOUND_MODELS", str(tmp_path / "models"))
    checkpoint = load_checkpoint(learned_head(tmp_path))
    checkpoint.meta["learned"] = {"labels": LEARN}
    return save_checkpoint(tmp_path / "detector" / "model.ckpt", checkpoint)


@pytest.fixture
def archive(tmp_path):
    (tmp_path / "archive").mkdir()
    return recording(tmp_path / "archive" / "clip.wav", 48_000, 3.0, "rbbrrb")


def sheet(path, label: str, threshold: float, verdicts: list[str]) -> None:
    """A check sheet as `envsound check` writes it (envsound.agile.check._write_sheet's columns)."""
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(SHEET_COLUMNS)
        for k, verdict in enumerate(verdicts):
            writer.writerow([k, "x.wav", 3.0 * k, 3.0 * k + 3, 0.9, label, verdict, repr(threshold)])


def counts(out) -> pd.DataFrame:
    return pd.read_parquet(out / "counts").set_index("label")


def test_counts_carry_checks_precision_when_a_check_exists_for_that_threshold(tmp_path, model, archive):
    sheet(model.parent / "bird.check.csv", "bird", 0.5, ["yes", "yes", "no", "yes", "", "unsure"])
    envsound.scan(model, archive.parent, out=tmp_path / "out", options=QUIET)
    table = counts(tmp_path / "out")
    bird, rain = table.loc["bird"], table.loc["rain"]
    low, high = wilson(3, 4)
    assert bird.precision_from == "check" and bird.precision == pytest.approx(0.75)
    assert (bird.precision_low, bird.precision_high) == pytest.approx((float(low), float(high)))
    assert bird.expected == pytest.approx(bird.windows * 0.75)
    assert rain.precision_from == "learn" and rain.precision == 0.9  # no sheet for rain: learn's


def test_a_check_at_another_threshold_or_without_verdicts_leaves_learns(tmp_path, model, archive):
    sheet(model.parent / "bird.check.csv", "bird", 0.45, ["yes", "no"])  # drawn before bird was learned again
    sheet(model.parent / "rain.check.csv", "rain", 0.4, ["", "unsure"])  # drawn, not reviewed yet
    envsound.scan(model, archive.parent, out=tmp_path / "out", options=QUIET)
    table = counts(tmp_path / "out")
    assert table.precision_from.tolist() == ["learn", "learn"]
    assert table.precision.tolist() == [0.95, 0.9]


def test_a_threshold_given_to_predict_carries_no_precision(tmp_path, model, archive):
    sheet(model.parent / "bird.check.csv", "bird", 0.5, ["yes", "no"])
    envsound.scan(model, archive.parent, out=tmp_path / "out", tables=envsound.Tables(threshold=0.3), options=QUIET)
    table = counts(tmp_path / "out")
    assert table.precision.isna().all() and table.precision_from.isna().all()
