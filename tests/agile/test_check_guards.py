"""`envsound check`'s guard rails (issue 77, item 5): a model `learn` did not make is refused in one line before any
sheet is written (an AudioSet tagger got 527), the model is loaded without the runtime probe (no audio is decoded),
and the line says the count is of the windows at or above the threshold, not of the store."""

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from envsound.agile.check import check
from envsound.agile.labels import label
from envsound.errors import ConfigError
import small_store

TARGET = small_store.TARGET
archive, db, windows = small_store.archive, small_store.db, small_store.windows  # the shared store's fixtures
learned = small_store.learned  # a siren detector learned on it (it decides at 0.5)


@pytest.fixture
def network(tmp_path, trained_run) -> Path:
    """The network that embedded the store (a model trained whole, not learned on the store), in a folder of this
    test's own: a sheet written beside it would land here."""
    (tmp_path / "network").mkdir()
    return Path(shutil.copy(trained_run.checkpoint, tmp_path / "network" / "model.ckpt"))


def test_check_refuses_a_model_learn_did_not_make_in_one_line_and_writes_no_sheet(tmp_path, network, db):
    """It read the store (the same network embedded it) and wrote a sheet per class of the network: 527 for
    efficientat-mn04, and exit 0."""
    with pytest.raises(ConfigError, match=r"is not a model envsound learn made") as caught:
        check(network, db, store=str(tmp_path / "labels.sqlite"))
    assert "\n" not in str(caught.value) and "envsound learn DB --label NAME --out DIR" in str(caught.value)
    assert list(network.parent.glob("*.check.csv")) == []


def test_cli_check_of_a_model_learn_did_not_make_exits_non_zero_with_one_line(tmp_path, network, db, capsys):
    from envsound.cli.main import main

    code = main(["check", str(network), str(db), "--store", str(tmp_path / "labels.sqlite")])
    out, err = capsys.readouterr()
    assert code != 0 and out == ""
    assert len(err.strip().splitlines()) == 1 and "is not a model envsound learn made" in err
    assert list(network.parent.glob("*.check.csv")) == []


def test_check_runs_no_runtime_probe(tmp_path, learned, db, monkeypatch):
    """check decodes no audio, yet timed the network's trunk on windows to pick a memory format (5.9 s of 9.6 s
    for efficientat-mn04); the probe writes its answer to the probe cache, so a fresh cache stays unwritten."""
    cache = tmp_path / "probes.json"
    monkeypatch.setenv("ENVSOUND_PROBE_CACHE", str(cache))
    monkeypatch.delenv("ENVSOUND_NO_PROBE", raising=False)
    (tmp_path / "model").mkdir()
    model = shutil.copy(learned, tmp_path / "model" / "model.ckpt")
    assert check(model, db, sample=2, store=str(tmp_path / "labels.sqlite")).checks[0].drawn == 2
    assert not cache.exists()
    assert "ENVSOUND_NO_PROBE" not in os.environ  # the switch is restored after the load


def test_checks_line_counts_the_windows_at_or_above_the_threshold(tmp_path, learned, db, windows):
    """It said "about 87 rooster windows in the store" of the 87 at or above the threshold."""
    store = tmp_path / "labels.sqlite"
    (tmp_path / "model").mkdir()
    model = shutil.copy(learned, tmp_path / "model" / "model.ckpt")
    drawn = check(model, db, sample=3, store=str(store)).checks[0]
    sheet = pd.read_csv(drawn.sheet, keep_default_na=False)
    kinds = windows.set_index("window").loc[sheet["window"], "kind"].to_numpy()
    sheet["verdict"] = np.where(kinds == TARGET, "yes", "no")
    sheet.to_csv(tmp_path / "filled.csv", index=False)
    label(db, tmp_path / "filled.csv", store=store)
    line = check(model, db, sample=3, store=str(store)).checks[0].line()
    assert f"{TARGET} windows at or above the threshold" in line and "in the store" not in line
