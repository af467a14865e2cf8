"""The page in a real browser: Playwright driving Debian's chromium (never Playwright's own download). Upload a clip and
read the top labels; record through Chromium's fake microphone and get a result. Skips with the reason when no
chromium can be had (the Makefile installs it when missing and allowed to)."""

from __future__ import annotations

import shutil

import pytest

playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e .[dev])")
CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser"))), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH: apt-get install chromium (as root)")


@pytest.fixture(scope="module")
def page(served):
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=[
            "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"])
        context = browser.new_context(permissions=["microphone"])
        page = context.new_page()
        failed = []
        page.on("requestfailed", lambda request: failed.append(request.url))
        page.on("response", lambda answer: answer.status >= 400 and failed.append(answer.url))
        page.goto(served.url)
        yield page
        browser.close()
        assert not failed, f"the page could not load: {failed}"


def test_choosing_a_file_shows_its_top_labels(page, served, synthetic_manifest):
    clip = synthetic_manifest.select_folds([5]).records[3].path
    assert page.get_by_test_id("top-label").count() == 0
    page.get_by_test_id("file-input").set_input_files(str(clip))
    page.get_by_test_id("top-label").first.wait_for(timeout=30_000)
    expected = served.model.predict(clip, top_k=5).top
    rows = page.get_by_test_id("top-label").all_inner_texts()
    assert [row.split()[0] for row in rows] == [entry["label"] for entry in expected]
    assert page.get_by_test_id("result-name").inner_text() == clip.name
    assert "synthetic" in page.get_by_test_id("model").inner_text()


def test_a_recording_from_the_microphone_is_classified(page, served):
    page.get_by_test_id("record").click()
    page.wait_for_function("document.getElementById('record').getAttribute('aria-pressed') === 'true'")
    page.wait_for_timeout(1500)
    page.get_by_test_id("record").click()
    page.get_by_test_id("result-name").filter(has_text="recording.wav").wait_for(timeout=30_000)
    labels = [row.split()[0] for row in page.get_by_test_id("top-label").all_inner_texts()]
    assert len(labels) == 5 and set(labels) <= set(served.model.labels)
    assert page.get_by_test_id("status").inner_text() == ""
