"""Suggestions that teach (issue 77, item 1): while a label lacks the no answers its calibration needs, a round mixes
the uncertain windows with windows drawn from the lower half of the scores; the order by maximal marginal relevance
and a window from below every round are settings (off by default, measured to cost AP); on the shared small store."""

from __future__ import annotations

import numpy as np
import pytest

import small_store
from envsound.agile.learn import learn_verdicts
import envsound.agile.suggest as suggest_module
from envsound.agile.suggest import _mmr_order, low_share, suggest
from envsound.errors import ConfigError
from envsound.inference.embeddings import EmbeddingsStore

TARGET = small_store.TARGET
archive, db, windows = small_store.archive, small_store.db, small_store.windows  # the shared store's fixtures


def first_of_files(windows, kind_is_target: bool, n: int) -> np.ndarray:
    firsts = windows.groupby("file", sort=False).head(1)
    return firsts[(firsts["kind"] == TARGET) == kind_is_target]["window"].to_numpy()[:n]


def median_score(result, db, reviewed) -> float:
    """The median of the learned head's scores over the store's unreviewed windows."""
    from envsound.models.checkpoint import load_checkpoint

    state = load_checkpoint(result.model).state_dict
    store = EmbeddingsStore(db)
    free = np.setdiff1d(np.arange(store.windows), reviewed)
    logits = store.vectors(free) @ state["head.1.weight"].numpy().T + state["head.1.bias"].numpy()
    return float(np.median(1 / (1 + np.exp(-logits))))


@pytest.mark.parametrize(("share", "wanted", "low"), [(10, 0, 0), (10, 5, 5), (10, 9, 5), (2, 3, 1), (1, 5, 0)])
def test_low_share_is_the_no_still_wanted_at_most_half(share, wanted, low):
    assert low_share(share, wanted) == low


@pytest.mark.parametrize(("share", "wanted", "low"), [(10, 0, 1), (20, 0, 2), (3, 0, 1), (2, 0, 0), (10, 5, 5)])
def test_low_every_ten_adds_one_a_round_of_ten(monkeypatch, share, wanted, low):
    monkeypatch.setattr(suggest_module, "LOW_EVERY", 10)
    assert low_share(share, wanted) == low


def test_a_label_without_no_gets_half_its_round_from_well_below(tmp_path, db, windows):
    """One yes, no no: learn asks for the 5 no its calibration lacks; they come from the store's lower half of scores."""
    ids = first_of_files(windows, True, 1)
    result = learn_verdicts(EmbeddingsStore(db), {TARGET: (ids, np.array(["yes"]))}, out=tmp_path, suggest=10)
    scores = [s.score for s in result.suggestions]
    assert len(scores) == 10 and len({s.file for s in result.suggestions}) == 10
    uncertain, low = scores[:5], scores[5:]
    assert max(low) <= median_score(result, db, ids) and sum(0.3 < u < 0.7 for u in uncertain) >= 3
    kinds = windows.set_index("window").loc[[s.window for s in result.suggestions[5:]], "kind"]
    assert (kinds != TARGET).all()  # what the simulated reviewer answers no: the calibration's missing side


def test_a_label_with_its_no_gets_the_uncertain_windows_only(tmp_path, db, windows):
    from test_learn import assert_nearest_half

    ids = np.r_[first_of_files(windows, True, 5), first_of_files(windows, False, 8)]
    said = np.array(["yes"] * 5 + ["no"] * 8)
    result = learn_verdicts(EmbeddingsStore(db), {TARGET: (ids, said)}, out=tmp_path, suggest=10)
    mixed = [s.window for s in result.suggestions]
    assert_nearest_half(result, ids, db, windows)  # the rule "half" gives the same ten
    assert mixed == [s.window for s in result.suggestions]


def test_mmr_prefers_a_window_unlike_the_reviewed_among_equally_uncertain(db, windows, monkeypatch):
    """Two candidates at the same score: the one farther (cosine) from the reviewed window comes first."""
    monkeypatch.setattr(suggest_module, "MMR_LAMBDA", 0.5)
    store = EmbeddingsStore(db)
    reviewed = first_of_files(windows, True, 1)
    others = np.setdiff1d(windows["window"].to_numpy(), reviewed)
    vectors = store.vectors(others)
    ref = store.vectors(reviewed)[0]
    cosine = vectors @ ref / np.linalg.norm(vectors, axis=1) / np.linalg.norm(ref)
    near, far = others[np.argmax(cosine)], others[np.argmin(cosine)]
    order = _mmr_order(store, np.array([near, far]), np.array([0.5, 0.5]), 0.5, reviewed, first=2)
    assert order.tolist() == [1, 0]


def test_an_unknown_rule_is_refused(db):
    store = EmbeddingsStore(db)
    with pytest.raises(ConfigError, match="rule='nearest' is not valid; valid: mix, half"):
        suggest(store, np.zeros((1, 8)), np.zeros(1), [TARGET], labelled={}, top=1, rule="nearest")
