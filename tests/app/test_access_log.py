"""uvicorn's access log (a line per request, and per live stream opened or closed) only with `serve --access-log`:
`envsound serve` logged every request the page made; its other lines (where it listens, startup) stay."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys

import httpx
from websockets.sync.client import connect

from envsound.app.run import running
from envsound.app.server import create_app
from envsound.cli.main import build_parser


def test_serve_logs_no_line_per_request_without_access_log(trained_run, tmp_path):
    command = [sys.executable, "-m", "envsound.cli.main", "serve", str(trained_run.checkpoint), "--port", "0"]
    env = {**os.environ, "ENVSOUND_NO_PROBE": "1"}  # the runtime probe's seconds are not what this tests
    server = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env)
    try:
        said = []
        while not (found := re.search(r"serving at (http://127\.0\.0\.1:\d+)/", said[-1] if said else "")):
            line = server.stderr.readline()
            assert line, "".join(said)
            said.append(line)
        for path in ("/healthz", "/v1/model", "/"):
            assert httpx.get(found.group(1) + path, timeout=10).status_code == 200
    finally:
        server.terminate()
        rest = server.communicate(timeout=20)[1]
    log = "".join(said) + rest
    assert not re.search(r'"GET /(healthz|v1/model|) HTTP', log), log
    assert "Application startup complete" in log  # uvicorn's other lines are still there


def test_access_log_gives_a_line_per_request_and_per_stream_and_is_off_by_default(served, caplog):
    assert build_parser().parse_args(["serve", "model.ckpt", "--access-log"]).access_log is True
    assert build_parser().parse_args(["serve", "model.ckpt"]).access_log is False
    app = create_app(served.model)
    said = {}
    for access_log in (False, True, False):  # uvicorn's switch once off must come on again, and off again
        caplog.clear()
        with caplog.at_level(logging.INFO), running(app, quiet=False, access_log=access_log) as url:
            httpx.get(f"{url}/healthz", timeout=10)
            with connect(f"{url.replace('http', 'ws')}/v1/listen?rate=16000"):
                pass
        messages = [record.getMessage() for record in caplog.records]
        said[access_log] = ([m for m in messages if '"GET /healthz HTTP' in m],
                            [m for m in messages if '"WebSocket /v1/listen' in m or m.startswith("connection ")])
        assert any("Application startup complete" in m for m in messages), messages
    assert said[False] == ([], [])
    requests, streams = said[True]
    assert len(requests) == 1 and any("[accepted]" in m for m in streams), said[True]
