"""The page's views in a real browser (Debian's chromium through Playwright), on a real server of a reviewed store and
on one of a model: `serve DB` opens on Review and `serve MODEL` on Classify; every view has an address (#classify,
#monitor, #review) that opens it, a tab sets it, and the back button returns to the view before; the Review view
shows the model it reviews with (network, file, each learned label's threshold and calibration); check's random
sample is a Review mode whose verdicts land in the labels table. One server and one browser for the module."""

from __future__ import annotations

import pytest
from review_page import browser, page, review_server  # noqa: F401 (fixtures)
from reviewed_store import LABEL, reviewed_store

from envsound.agile.labels import labelled
from envsound.agile.review import learned_folder

SHOWN = "(id) => !document.getElementById(id).hidden"


@pytest.fixture(scope="module")
def server(served, trained_run, synthetic_manifest, tmp_path_factory):
    """A server of a reviewed store (with its labels store as the deployment's too): ``(url, db, labels store)``."""
    db, spec = reviewed_store(tmp_path_factory, trained_run.checkpoint, synthetic_manifest)
    with review_server(served, db, spec) as (url, _):
        yield url, db, spec


def shown_view(page) -> str:
    """The view shown, once one tab is selected and its view alone is visible."""
    page.wait_for_function("""() => {
        const tabs = [...document.querySelectorAll('nav button[aria-selected="true"]')];
        return tabs.length === 1 && ['classify', 'monitor', 'review'].every(
            (id) => document.getElementById(id).hidden === (id !== tabs[0].dataset.view));
    }""", timeout=10_000)
    return page.evaluate("document.querySelector('nav button[aria-selected=\"true\"]').dataset.view")


def test_serving_a_store_opens_on_review_at_its_address(server, page):
    url, _, _ = server
    page.goto(url)
    page.wait_for_function("location.hash === '#review'", timeout=10_000)
    assert shown_view(page) == "review"


def test_each_view_has_an_address_and_the_back_button_returns_to_the_view_before(server, page):
    url, _, _ = server
    page.goto(f"{url}/#classify")
    assert shown_view(page) == "classify"
    page.get_by_test_id("tab-monitor").click()
    page.wait_for_function("location.hash === '#monitor'", timeout=10_000)
    assert shown_view(page) == "monitor"
    page.go_back()
    page.wait_for_function("location.hash === '#classify'", timeout=10_000)
    assert shown_view(page) == "classify"
    page.go_forward()
    page.wait_for_function("location.hash === '#monitor'", timeout=10_000)
    assert shown_view(page) == "monitor"
    # an address loaded afresh opens its view, and the view starts (Monitor polls the store)
    page.goto(f"{url}/#review")
    page.reload()
    assert shown_view(page) == "review"
    page.goto(f"{url}/#monitor")
    page.reload()
    assert shown_view(page) == "monitor"
    page.wait_for_function("document.getElementById('monitor-state').textContent.includes('events')", timeout=10_000)


def test_a_model_server_opens_on_classify_and_has_no_review_address(served, page):
    page.goto(f"{served.url}/#review")  # no Review view on a server of a model: the page says which view it shows
    page.wait_for_function("location.hash === '#classify'", timeout=10_000)
    assert shown_view(page) == "classify"


def test_the_review_view_shows_the_network_and_each_learned_labels_model_threshold_and_calibration(server, served,
                                                                                                  page):
    url, db, _ = server
    page.goto(f"{url}/#review")
    network = page.get_by_test_id("review-network")
    network.filter(has_text="Network").wait_for(timeout=10_000)
    assert served.model.describe()["model"] in network.inner_text()
    assert str(served.model.file.path) in network.inner_text()
    learned = page.locator(f"[data-testid=review-learned-label][data-label={LABEL}]")
    learned.wait_for(timeout=10_000)
    text = learned.inner_text()
    assert str(learned_folder(db, LABEL) / "model.ckpt") in text
    assert "threshold 0.500, not calibrated (2 yes, 6 no reviewed; 5 of each calibrate it); review 3 more yes" in text
    calibrated = {"calibrated": True, "threshold": 0.42, "precision": 0.91, "precision_interval": [0.8, 0.96],
                  "reached": False, "target": 0.95}
    assert page.evaluate("(entry) => expectedText(entry)", calibrated) == \
        "threshold 0.420, precision 0.91 (0.80–0.96) expected, below the target 0.95"


def test_checks_random_sample_is_a_review_mode_and_its_verdicts_land_in_the_labels_table(server, page):
    url, db, spec = server
    page.goto(f"{url}/#review")
    page.get_by_test_id("review-mode").select_option("check")
    page.get_by_test_id("review-label").fill(LABEL)
    page.get_by_test_id("review-go").click()
    page.get_by_test_id("review-check").filter(has_text="drawn at random").wait_for(timeout=30_000)
    card = page.get_by_test_id("review-card")
    card.wait_for(timeout=10_000)
    assert "drawn at random for check" in page.get_by_test_id("review-score").inner_text()
    window = int(card.get_attribute("data-window"))
    page.keyboard.press("y")
    page.wait_for_function("document.getElementById('review-counts').textContent.includes('3 yes')",
                           timeout=10_000)
    verdicts = labelled(db, LABEL, store=spec)[LABEL]
    assert dict(zip(verdicts.windows.tolist(), verdicts.verdicts.tolist()))[window] == "yes"
    # the sheet's windows without a verdict are the mode's candidates: this one is no longer offered
    with open(learned_folder(db, LABEL) / f"{LABEL}.check.csv", encoding="utf-8") as sheet:
        assert f"{window}," in sheet.read()
