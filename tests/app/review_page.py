"""What the Review page's tests share: a real server of a reviewed store (:func:`review_server`), one Chromium a
module and a page that fails its test on any script error (fixtures ``browser`` and ``page``: a test module imports
them), and the check of a one-line error answer (:func:`one_line`)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

import httpx
import pytest
from test_page import CHROMIUM

from envsound.agile.review import Review
from envsound.app.auth import Guard
from envsound.app.run import running
from envsound.app.server import create_app
from envsound.deploy.store import Store


@contextlib.contextmanager
def review_server(served, db: Path, spec: Path, *, tokens: tuple[tuple[str, str], ...] = ()) -> Iterator[tuple]:
    """The page and REST API of the store ``db`` (its labels store ``spec``, the deployment's store too) on
    127.0.0.1: ``(url, [token of each (name, role) in tokens])``; with ``tokens``, every request needs one."""
    store = Store.open(spec)
    made = [store.create_token(name, role)[1] for name, role in tokens]
    app = create_app(served.model, store=store, guard=Guard(store, required=bool(tokens), rate=1000),
                     review=Review(db, store=store, spec=spec))
    try:
        with running(app) as url:
            yield url, made
    finally:
        store.close()


@pytest.fixture(scope="module")
def browser():
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e .[dev])")
    if CHROMIUM is None:
        pytest.skip("no chromium on PATH: apt-get install chromium (as root)")
    with playwright.sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, args=["--autoplay-policy=no-user-gesture-required"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser):
    context = browser.new_context()
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, errors


def one_line(answer: httpx.Response, status: int, *words: str) -> None:
    """``answer`` has ``status`` and a one-line ``error`` holding every one of ``words``."""
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert "\n" not in error and all(word in error for word in words), error
