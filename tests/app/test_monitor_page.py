"""The page's Monitor view in a real browser (Debian's chromium through Playwright) against a server that requires
tokens: the page asks for a token, then shows each sensor (online, what it hears now) and its events on a timeline;
an event reported later appears without a reload; a label filter narrows the timeline."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx
import pytest
from test_page import CHROMIUM, open_page

from envsound.app.auth import Guard
from envsound.app.run import running
from envsound.app.server import create_app
from envsound.deploy.store import Store

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH: apt-get install chromium (as root)")


def report(url: str, secret: str, sensor: str, events: list[tuple[str, str, int]]) -> None:
    now = datetime.now(timezone.utc)
    body = {"sensor": sensor, "events": [
        {"key": key, "label": label, "onset": (now - timedelta(minutes=ago)).isoformat(),
         "offset": (now - timedelta(minutes=ago) + timedelta(seconds=40)).isoformat(), "score": 0.9}
        for key, label, ago in events], "heartbeat": {"time": now.isoformat(), "label": events[-1][1], "score": 0.9}}
    answer = httpx.post(f"{url}/v1/report", json=body, headers={"Authorization": f"Bearer {secret}"}, timeout=30)
    assert answer.status_code == 200, answer.text


def test_the_monitor_shows_sensors_and_their_events_as_they_come(served, tmp_path):
    from playwright.sync_api import sync_playwright

    store = Store.open(tmp_path / "events.sqlite")
    lab, yard = (store.create_token(name, "sensor")[1] for name in ("lab", "yard"))
    _, viewer = store.create_token("me", "viewer")
    labels = served.model.labels
    with running(create_app(served.model, store=store, guard=Guard(store, required=True))) as url, \
            sync_playwright() as driver:
        report(url, lab, "lab", [("a", labels[0], 50), ("b", labels[1], 30)])
        report(url, yard, "yard", [("c", labels[0], 10)])
        browser, page, failed = open_page(driver, url)
        try:
            page.get_by_test_id("token-bar").wait_for(timeout=10_000)
            page.get_by_test_id("token-input").fill(viewer)
            page.get_by_test_id("token-use").click()
            page.get_by_test_id("model").filter(has_text="synthetic").wait_for(timeout=10_000)
            page.get_by_test_id("tab-monitor").click()
            rows = page.get_by_test_id("sensor")
            rows.nth(1).wait_for(timeout=10_000)
            assert [r.split("\t")[0] for r in rows.all_inner_texts()] == ["lab", "yard"]
            assert labels[1] in rows.nth(0).inner_text() and page.locator(".dot.online").count() == 2
            bars = page.get_by_test_id("monitor-event")
            assert sorted(bars.all_inner_texts()) == sorted([labels[0], labels[1], labels[0]])

            report(url, yard, "yard", [("d", labels[2], 1)])  # heard after the page was drawn
            page.wait_for_function("document.querySelectorAll('[data-testid=monitor-event]').length === 4",
                                   timeout=15_000)
            assert page.locator(".sensor-track[data-sensor=yard] div").all_inner_texts() == [labels[2], labels[0]]

            page.get_by_test_id("monitor-label").select_option(labels[0])
            page.wait_for_function("document.querySelectorAll('[data-testid=monitor-event]').length === 2",
                                   timeout=15_000)
        finally:
            browser.close()
    store.close()
    refused = [u for u in failed if "/v1/" in u]  # before the token: the page's first calls are refused (401)
    assert set(u.split("?")[0].rsplit("/", 1)[1] for u in refused) <= {"model"}, failed


def test_the_monitor_says_whose_clock_is_off(served, tmp_path):
    """Issue 68: a sensor whose clock is an hour behind (its report says when it was sent, by that clock) is shown
    with "clock off by about 60 min"; a sensor with the right time is not."""
    from playwright.sync_api import sync_playwright

    store = Store.open(tmp_path / "events.sqlite")
    with running(create_app(served.model, store=store)) as url, sync_playwright() as driver:
        now = datetime.now(timezone.utc)
        for sensor, clock in (("late", now - timedelta(hours=1)), ("right", now)):
            body = {"sensor": sensor, "sent": clock.isoformat(), "events": [
                {"key": "a", "label": served.model.labels[0], "onset": (clock - timedelta(minutes=2)).isoformat(),
                 "offset": (clock - timedelta(minutes=1)).isoformat(), "score": 0.9}]}
            assert httpx.post(f"{url}/v1/report", json=body, timeout=30).status_code == 200
        browser, page, failed = open_page(driver, url)
        try:
            page.get_by_test_id("model").filter(has_text="synthetic").wait_for(timeout=10_000)
            page.get_by_test_id("tab-monitor").click()
            rows = page.get_by_test_id("sensor")
            rows.nth(1).wait_for(timeout=10_000)
            page.get_by_test_id("clock-off").first.wait_for(timeout=10_000)
            assert page.get_by_test_id("clock-off").count() == 1
            assert "clock off by about 60 min, behind the server's" in rows.nth(0).inner_text()
            assert "clock off" not in rows.nth(1).inner_text()
        finally:
            browser.close()
    store.close()
