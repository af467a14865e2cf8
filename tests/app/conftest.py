"""A real uvicorn server on 127.0.0.1 (a free port) serving the session's trained model, in a thread of the test."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import pytest
import uvicorn

import envsound
from envsound.app.run import AppServer
from envsound.app.server import ServerLimits, create_app

LIMITS = ServerLimits(max_upload_mb=12, max_seconds=400, workers=1)


@dataclass
class Served:
    url: str
    model: envsound.inference.api.Model
    limits: ServerLimits


@pytest.fixture(scope="package")
def served(trained_run):
    model = envsound.load_model(trained_run.checkpoint)
    server = AppServer(uvicorn.Config(create_app(model, limits=LIMITS), host="127.0.0.1", port=0,
                                      log_level="warning"), announce=False)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while server.port is None:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield Served(url=f"http://127.0.0.1:{server.port}", model=model, limits=LIMITS)
    server.should_exit = True
    thread.join(timeout=10)
