"""The page's Detections view in a real browser (Debian's chromium through Playwright) against a server that requires
tokens: a reviewer hears each event a sensor sent with its sound, answers with a key, and sees the sensor's precision
from its random sample, there and in the Monitor view beside the sensor's events. The events are reported over the API; their sounds kept as the server keeps a sensor's
snippets (a file in the fleet folder and the event's snippet columns)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx
import numpy as np
import pytest
import soundfile as sf
from test_page import CHROMIUM, open_page

from envsound.app.auth import Guard
from envsound.app.run import running
from envsound.app.server import create_app
from envsound.deploy import schema
from envsound.deploy.fleet_files import snippet_path
from envsound.deploy.snippet_files import SnippetFiles
from envsound.deploy.store import Store

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH: apt-get install chromium (as root)")


def test_a_reviewer_hears_the_fleets_detections_and_sees_each_sensors_precision(served, tmp_path):
    from playwright.sync_api import sync_playwright

    store = Store.open(tmp_path / "events.sqlite")
    folder = tmp_path / "events-fleet"
    lab = store.create_token("lab", "sensor")[1]
    reviewer = store.create_token("ana", "reviewer")[1]
    now = datetime.now(timezone.utc)
    body = {"sensor": "lab", "events": [
        {"key": f"k{i}", "label": "rooster", "onset": (now - timedelta(minutes=i)).isoformat(),
         "offset": (now - timedelta(minutes=i) + timedelta(seconds=2)).isoformat(), "score": 0.8} for i in range(3)]}
    app = create_app(served.model, store=store, guard=Guard(store, required=True), snippets=SnippetFiles(store, folder))
    with running(app) as url, \
            sync_playwright() as driver:
        sent = httpx.post(f"{url}/v1/report", json=body, headers={"Authorization": f"Bearer {lab}"}, timeout=30)
        assert sent.status_code == 200, sent.text
        with store.engine.begin() as connection:
            for row in connection.execute(schema.events.select()).all():
                path = snippet_path(folder, "lab", row.id, "audio/flac")
                path.parent.mkdir(parents=True, exist_ok=True)
                sf.write(path, 0.1 * np.sin(np.arange(48000) * 0.1).astype(np.float32), 16000, format="FLAC")
                connection.execute(schema.events.update().where(schema.events.c.id == row.id).values(
                    snippet_bytes=path.stat().st_size, snippet_type="audio/flac", snippet_start=-0.5))
        browser, page, failed = open_page(driver, f"{url}/#fleet")
        try:
            page.get_by_test_id("token-bar").wait_for(timeout=10_000)
            page.get_by_test_id("token-input").fill(reviewer)
            page.get_by_test_id("token-use").click()
            failed.clear()  # what the page asked before it had a token was refused (401), as it should be
            page.get_by_test_id("fleet-order").select_option("sample")
            page.get_by_test_id("fleet-go").click()
            page.get_by_test_id("fleet-where").filter(has_text="lab · rooster").wait_for(timeout=10_000)
            assert "3 event(s)" in page.get_by_test_id("fleet-status").inner_text()
            page.wait_for_function("document.getElementById('fleet-audio').src.startsWith('blob:')", timeout=10_000)
            page.wait_for_function("document.getElementById('fleet-audio').duration > 2.9", timeout=10_000)
            for key in ("y", "y", "n"):
                page.keyboard.press(key)
            page.get_by_test_id("fleet-status").filter(has_text="No event with its sound kept").wait_for(
                timeout=10_000)
            row = page.get_by_test_id("fleet-precision-row")
            row.filter(has_text="0.667").wait_for(timeout=10_000)
            assert row.inner_text().split("\t")[:2] == ["lab", "rooster"]
            assert "3 (2 yes, 1 no)" in row.inner_text()
            page.get_by_test_id("tab-monitor").click()  # the same precision beside the sensor's events
            page.get_by_test_id("sensor-precision").filter(has_text="rooster 0.67").wait_for(timeout=10_000)
        finally:
            browser.close()
    verdicts = [r.verdict for r in store.engine.connect().execute(schema.labels.select()).all()]
    store.close()
    assert sorted(verdicts) == ["no", "yes", "yes"]
    assert not failed, f"requests failed: {failed}"
