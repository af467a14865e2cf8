"""The Monitor view of a fleet in a real browser (Debian's chromium through Playwright): each sensor shows the model
version it runs (and that it refused one), the version filter narrows the events to one version's, and each
version's events per sensor-hour stand side by side (a canary's old and new)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx
import pytest
from test_page import CHROMIUM, open_page

from envsound.app.run import running
from envsound.app.server import create_app
from envsound.deploy.fleet_files import fleet_dir
from envsound.deploy.store import Store
from envsound.deploy.versions import Fleet

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH: apt-get install chromium (as root)")


def report(url: str, sensor: str, version: int, labels: list[str], refused: str | None = None) -> None:
    now = datetime.now(timezone.utc)
    events = [{"key": f"{sensor}{i}", "label": label, "onset": (now - timedelta(minutes=10 * i + 5)).isoformat(),
               "offset": (now - timedelta(minutes=10 * i + 4)).isoformat(), "score": 0.9, "version": version}
              for i, label in enumerate(labels)]
    beat = {"time": now.isoformat(), "version": version, **({"refused": refused} if refused else {})}
    assert httpx.post(f"{url}/v1/report", json={"sensor": sensor, "events": events, "heartbeat": beat},
                      timeout=30).status_code == 200


def test_the_monitor_shows_versions_filters_by_one_and_compares_their_rates(served, tmp_path):
    from playwright.sync_api import sync_playwright

    path = tmp_path / "events.sqlite"
    store = Store.open(path)
    fleet = Fleet(store, fleet_dir(path))
    for content, note in ((b"one", "first"), (b"two", "canary")):
        (tmp_path / "m.onnx").write_bytes(content)
        fleet.add_version(tmp_path / "m.onnx", name="cnn", note=note)
    labels = served.model.labels
    with running(create_app(served.model, store=store)) as url, sync_playwright() as driver:
        report(url, "lab", 1, [labels[0], labels[0], labels[1]])
        report(url, "yard", 2, [labels[0]], refused="version 3 refused: version 3: unsigned")
        browser, page, failed = open_page(driver, url)
        try:
            page.get_by_test_id("model").filter(has_text="synthetic").wait_for(timeout=10_000)
            page.get_by_test_id("tab-monitor").click()
            page.get_by_test_id("sensor-version").nth(1).wait_for(timeout=10_000)
            versions = page.get_by_test_id("sensor-version")
            assert [text.strip() for text in versions.all_inner_texts()] == ["· v1", "· v2 · refused a version"]
            assert "version 3: unsigned" in versions.nth(1).get_attribute("title")
            page.get_by_test_id("rate").first.wait_for(timeout=10_000)
            assert page.locator("#fleet-rates th").all_inner_texts()[1:] == ["version 1", "version 2"]
            first = page.get_by_test_id("rate").filter(has_text=labels[0]).inner_text().split("\t")
            assert first[0] == labels[0] and first[1].endswith("(2 from 1)") and first[2].endswith("(1 from 1)")
            assert page.get_by_test_id("monitor-event").count() == 4
            page.get_by_test_id("monitor-version").select_option("2")
            page.wait_for_function("document.querySelectorAll('[data-testid=monitor-event]').length === 1",
                                   timeout=15_000)
            assert page.locator(".sensor-track[data-sensor=yard] div").count() == 1
        finally:
            browser.close()
    store.close()
    assert not failed, failed
