"""Checking a learned detector on a random sample of what it finds (`envsound check`, `envsound.check`): the sheet
drawn from the windows at or above the threshold, kept while the threshold stays, read back by `envsound label`
half filled in, and the precision and count it gives against the store's known classes."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from envsound.agile.check import check
from envsound.agile.labels import label
from envsound.errors import ConfigError
from envsound.inference.embeddings import EmbeddingsStore
import small_store

TARGET = small_store.TARGET
archive, db, windows = small_store.archive, small_store.db, small_store.windows  # the shared store's fixtures
learned, model = small_store.learned, small_store.model  # a detector learned on it, copied for each test


def scores(model, db, windows) -> np.ndarray:
    """The learned head's score of every window, with the model's context (each window with its neighbours), as check
    scores them."""
    from envsound.events.context import average_probs, context_seconds
    from envsound.inference.predictor import Predictor

    predictor = Predictor.from_checkpoint(model, device="cpu", precision="32")
    probs = predictor.model.head_probs(EmbeddingsStore(db).vectors(windows["window"].to_numpy()))
    keys = pd.factorize(windows["file"])[0]
    return average_probs(probs, keys, windows["start"].to_numpy(), context_seconds(predictor.model.meta))[:, 0]


def test_a_sheet_is_drawn_at_random_from_the_windows_above_the_threshold_and_kept(tmp_path, model, db, windows):
    store = tmp_path / "labels.sqlite"
    first = check(model, db, sample=4, store=str(store)).checks[0]
    above = windows["window"].to_numpy()[scores(model, db, windows) >= first.threshold]
    assert first.threshold == 0.5 and first.above == len(above) and first.above > 4
    sheet = pd.read_csv(first.sheet, keep_default_na=False)
    assert first.sheet == model.parent / "siren.check.csv" and first.new_sheet and first.drawn == 4
    assert len(sheet) == 4 and set(sheet["window"]) <= set(above) and (sheet["verdict"] == "").all()
    assert (sheet["score"] >= 0.5).all() and (sheet["label"] == TARGET).all()
    assert first.precision is None and "none reviewed yet" in first.line() and "\n" not in first.line()
    again = check(model, db, sample=4, store=str(store), seed=7).checks[0]  # another seed, the same sheet
    assert not again.new_sheet and pd.read_csv(again.sheet, keep_default_na=False).equals(sheet)
    other = check(model, db, sample=3, store=str(store)).checks[0]  # another size: drawn again
    assert other.new_sheet and other.drawn == 3


def test_the_sheet_filled_in_and_labelled_gives_the_precision_and_the_count(tmp_path, model, db, windows):
    store = tmp_path / "labels.sqlite"
    drawn = check(model, db, sample=6, store=str(store)).checks[0]
    sheet = pd.read_csv(drawn.sheet, keep_default_na=False)
    kinds = windows.set_index("window").loc[sheet["window"], "kind"].to_numpy()
    sheet["verdict"] = np.where(kinds == TARGET, "yes", "no")
    sheet.loc[0, "verdict"] = ""  # a sheet given half done: the empty row is left out, not refused
    sheet.to_csv(tmp_path / "filled.csv", index=False)
    summary = label(db, tmp_path / "filled.csv", store=store)
    assert summary.problems == [] and summary.unanswered == 1 and "1 rows without a verdict left out" in summary.line()
    checked = check(model, db, sample=6, store=str(store))
    result = checked.checks[0]
    yes = int((kinds[1:] == TARGET).sum())
    # one line as LearnResult.line() says a learned model (issue 74: CheckResult had only lines())
    assert checked.line() == f"{model}: checked {TARGET} precision {yes / 5:.2f} from 5 of 6"
    assert not result.new_sheet and (result.yes, result.no, result.unsure) == (yes, 5 - yes, 0)
    assert result.precision == pytest.approx(yes / 5)
    low, high = result.precision_interval
    assert low <= result.precision <= high and result.expected[0] == pytest.approx(result.above * yes / 5)
    assert f"precision {yes / 5:.2f}" in result.line() and "1 of the sheet still to review" in result.line()
    refilled = pd.read_csv(result.sheet, keep_default_na=False)
    assert refilled["verdict"].tolist() == [""] + sheet["verdict"].tolist()[1:]  # what is known, filled in


def test_a_label_the_model_does_not_have_is_refused_in_one_line(model, db):
    with pytest.raises(ConfigError, match=r"has no label 'dog' \(its labels: siren\)"):
        check(model, db, labels="dog")
    with pytest.raises(ConfigError, match="sample must be a whole number of windows >= 1"):
        check(model, db, sample=0)


def test_cli_check_json(tmp_path, model, db, capsys):
    from envsound.cli.main import main

    code = main(["check", str(model), str(db), "--sample", "2", "--store", str(tmp_path / "labels.sqlite"),
                 "--json"])
    out, _ = capsys.readouterr()
    assert code == 0
    (row,) = json.loads(out)["checks"]
    assert row["label"] == TARGET and row["drawn"] == 2 and row["precision"] is None and row["above"] > 2


def test_a_sheet_filled_in_and_checked_again_before_it_is_labelled_keeps_its_answers(tmp_path, model, db):
    """Review of the session's change: a second check rewrote the sheet with the store's verdicts only, wiping the
    answers typed into it but not yet given to `envsound label`."""
    store = str(tmp_path / "labels.sqlite")
    sheet = check(model, db, sample=4, store=store).checks[0].sheet
    table = pd.read_csv(sheet, keep_default_na=False)
    table["verdict"] = ["yes", "no", "", "unsure"]
    table.to_csv(sheet, index=False)
    again = check(model, db, sample=4, store=store).checks[0]
    assert pd.read_csv(sheet, keep_default_na=False)["verdict"].tolist() == ["yes", "no", "", "unsure"]
    assert again.unstored == 3 and (again.yes, again.no) == (0, 0)  # counted once stored, not before
    assert "3 verdicts on the sheet are not stored yet" in again.line()
    with pytest.raises(ConfigError, match=r"holds 3 verdicts not in the labels store.*envsound label DB --from"):
        check(model, db, sample=3, store=store)  # a new draw would replace them


def test_a_kept_sheet_whose_windows_are_no_longer_the_stores_is_drawn_again(tmp_path, model, db):
    """`embed` renumbers the windows after a changed file's: a sheet's ids then name other windows."""
    store = str(tmp_path / "labels.sqlite")
    sheet = check(model, db, sample=4, store=store).checks[0].sheet
    table = pd.read_csv(sheet, keep_default_na=False)
    table.loc[0, "start"] += 0.5  # window 0's times are not the store's window's any more
    table.to_csv(sheet, index=False)
    assert check(model, db, sample=4, store=store).checks[0].new_sheet
    table = pd.read_csv(sheet, keep_default_na=False)
    table.loc[0, "window"] = 10 ** 9  # an id beyond the store
    table.to_csv(sheet, index=False)
    assert check(model, db, sample=4, store=store).checks[0].new_sheet
