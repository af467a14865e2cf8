"""Answers to look at again in a real browser (Debian's chromium through Playwright), on a real server of a reviewed
store with two mistaken answers: the Review view's "Windows" choice offers the reviewed windows farthest from their
verdicts, each with its verdict and the head's out-of-fold score; a key answers one again into the labels table; a
learning round's summary says how many answers disagree with the head. One server and one browser for the module."""

from __future__ import annotations

import pytest
from review_page import browser, page, review_server  # noqa: F401 (fixtures)
from reviewed_store import reviewed_store
from test_review_disagreements_api import AGAIN, answer_with_two_mistakes, current


@pytest.fixture(scope="module")
def server(served, trained_run, synthetic_manifest, tmp_path_factory):
    """A server of a reviewed store with :data:`AGAIN` answered with two mistakes: ``(url, db, labels store, the
    mistakes)``."""
    db, spec = reviewed_store(tmp_path_factory, trained_run.checkpoint, synthetic_manifest)
    mistakes = answer_with_two_mistakes(db, spec)
    with review_server(served, db, spec) as (url, _):
        yield url, db, spec, mistakes


def test_the_review_view_offers_the_answers_to_look_at_again_and_the_summary_counts_them(server, page):
    url, db, spec, mistakes = server
    page.goto(f"{url}/#review")
    page.get_by_test_id("review-mode").select_option("again")
    page.get_by_test_id("review-label").fill(AGAIN)
    page.get_by_test_id("review-go").click()
    page.get_by_test_id("review-again").filter(has_text="2 reviewed windows disagree with the head out of fold") \
        .wait_for(timeout=60_000)
    card = page.get_by_test_id("review-card")
    card.wait_for(timeout=10_000)
    window = int(card.get_attribute("data-window"))
    assert window in mistakes  # the farthest from its verdict first
    was = current(db, spec, AGAIN)[window]
    score = page.get_by_test_id("review-score").inner_text()
    assert f"answered {was}; out-of-fold score" in score and "it would decide otherwise" in score
    page.keyboard.press("n" if was == "yes" else "y")  # answered again, with the same keys
    page.wait_for_function(f"document.getElementById('review-card').dataset.window !== '{window}'", timeout=10_000)
    assert current(db, spec, AGAIN)[window] != was

    page.get_by_test_id("review-learn").click()
    page.get_by_test_id("review-summary").filter(has_text="Learned").wait_for(timeout=60_000)
    assert "1 reviewed window disagrees with the head out of fold" in \
        page.get_by_test_id("review-disagreeing").inner_text()
