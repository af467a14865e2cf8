"""Take docs/app.png: serve a checkpoint, open the page in Debian's chromium, classify one file, screenshot.

    .venv/bin/python experiments/app_screenshot.py runs/demo/model/model.ckpt runs/demo/fresh/audio/1-alarm_beep-000.wav
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from playwright.sync_api import sync_playwright

from envsound import load_model
from envsound.app.run import running
from envsound.app.server import create_app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("audio", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs/app.png"))
    args = parser.parse_args()
    with running(create_app(load_model(args.checkpoint))) as url, sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=shutil.which("chromium"))
        page = browser.new_page(viewport={"width": 960, "height": 900})
        page.goto(url)
        page.get_by_test_id("file-input").set_input_files(str(args.audio))
        page.get_by_test_id("top-label").first.wait_for()
        page.screenshot(path=str(args.out), full_page=True)
        browser.close()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
