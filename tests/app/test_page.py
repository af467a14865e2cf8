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
def driver():
    with playwright.sync_playwright() as driver:
        yield driver


def open_page(driver, url: str, *fake_mic_args: str):
    """A page of ``url`` in a new chromium whose fake microphone is allowed (a beep, or ``fake_mic_args``'s file)."""
    browser = driver.chromium.launch(executable_path=CHROMIUM, args=[
        "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream", *fake_mic_args])
    page = browser.new_context(permissions=["microphone"]).new_page()
    failed = []
    page.on("requestfailed", lambda request: failed.append(request.url))
    page.on("response", lambda answer: answer.status >= 400 and failed.append(answer.url))
    page.goto(url)
    return browser, page, failed


@pytest.fixture(scope="module")
def page(served, driver):
    browser, page, failed = open_page(driver, served.url)
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


def test_choosing_a_file_draws_its_events(page, served, synthetic_manifest):
    clip = synthetic_manifest.select_folds([5]).records[5].path
    page.get_by_test_id("file-input").set_input_files(str(clip))
    page.get_by_test_id("result-name").filter(has_text=clip.name).wait_for(timeout=30_000)
    expected = served.model.predict(clip, events=True).events
    assert expected, "a clip of one class gives its class as an event"
    bars = page.get_by_test_id("event")
    bars.first.wait_for(timeout=10_000)
    assert bars.all_inner_texts() == [event["label"] for event in expected]


@pytest.fixture(scope="module")
def two_sounds(served, synthetic_manifest, tmp_path_factory):
    """A WAV of two clips the model tells apart (two labels), 6 s each: what Chromium's fake microphone plays."""
    import numpy as np
    import soundfile as sf

    from envsound.audio.load import load_audio

    chosen = {}
    for record in synthetic_manifest.select_folds([5]).records:
        if served.model.predict(record.path).top[0]["label"] == record.label and record.label not in chosen:
            chosen[record.label] = record.path
        if len(chosen) == 2:
            break
    parts = [np.tile(load_audio(path, sample_rate=48000), 6)[:6 * 48000] for path in chosen.values()]
    path = tmp_path_factory.mktemp("fake-mic") / "two.wav"
    sf.write(path, np.concatenate(parts), 48000, subtype="PCM_16")
    return path, set(chosen)


def test_live_streams_the_microphone_and_the_labels_follow_the_sound(served, driver, two_sounds):
    path, labels = two_sounds
    browser, page, failed = open_page(driver, served.url, f"--use-file-for-fake-audio-capture={path}")
    try:
        page.get_by_test_id("live").click()
        seen, deadline = [], 40_000
        while not labels <= set(seen) and deadline > 0:  # a hop every 0.5 s: the top row's label as it changes
            page.wait_for_timeout(100)
            deadline -= 100
            # a row is (bar, label, score): read the label's own element; between the two sounds a window holds
            # both, and a third class may lead it for a hop
            top = page.evaluate("document.querySelector('[data-testid=top-label] span')?.textContent ?? null")
            if top and (not seen or seen[-1] != top):
                seen.append(top)
        assert labels <= set(seen) <= set(served.model.labels), seen
        assert "s heard" in page.get_by_test_id("live-state").inner_text()
        assert page.get_by_test_id("waveform").is_hidden()  # no file's picture under a live reading
        assert page.get_by_test_id("segment").count() >= 2
        page.get_by_test_id("live").click()
        page.get_by_test_id("live-state").filter(has_text="stopped after").wait_for(timeout=10_000)
        assert page.get_by_test_id("event").count() >= 1 and page.get_by_test_id("status").inner_text() == ""
    finally:
        browser.close()
    assert not failed, failed
