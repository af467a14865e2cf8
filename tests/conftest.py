"""Shared fixtures. Audio is synthetic and seeded; the real ESC-50 copy is used only when ../shared is beside the clone."""

from __future__ import annotations

import contextlib
import http.server
import os
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")
if os.environ.get("PYTEST_XDIST_WORKER") and hasattr(os, "sched_setaffinity"):
    # `make test` runs pytest-xdist workers: each keeps to its share of the cores (the code counts cores by affinity),
    # so the workers' torch threads never contend for the same core; the processes a test starts inherit the share.
    _cores = sorted(os.sched_getaffinity(0))
    _worker = int(os.environ["PYTEST_XDIST_WORKER"].removeprefix("gw"))
    _share = _cores[_worker::int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))] or [_cores[_worker % len(_cores)]]
    os.sched_setaffinity(0, set(_share))
    os.environ["OMP_NUM_THREADS"] = str(len(_share))

REPO = Path(__file__).resolve().parents[1]
SHARED_ESC50 = REPO.parent / "shared" / "data" / "esc50"

# Small enough that a few epochs take seconds on 2 cores, large enough to learn the synthetic classes.
TINY_OVERRIDES = (
    "features.sample_rate=16000", "features.n_fft=512", "features.hop_length=256", "features.n_mels=32",
    "features.window_seconds=1.0", "features.eval_hop_seconds=0.5", "model.filters=8",
    "train.max_epochs=3", "train.patience=0", "train.batch_size=16",
    "train.min_steps=0",  # label-share and semi runs otherwise last >= 1,500 steps (test_semi.py tests that budget)
    # augmentation is on by default; tiny runs learn faster without it (test_train_smoke turns it on explicitly)
    "augment.mixup_alpha=0", "augment.spec_augment=false", "augment.time_roll=false",
    "augment.copies=0",  # offline copies are on by default; the augmentation tests turn them on explicitly
    # the open-set gate ("none of these") is on by default; tests of other things keep every window one of the
    # classes (a tiny model's embeddings are rough), tests/models/test_open_set.py turns it on
    "events.open_set=0",
)


@dataclass
class Ran:
    """What ``envsound ARGS`` did: exit code, stdout and stderr (its log lines included)."""

    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def envsound_main(capsys):
    """``envsound_main(*args)`` runs ``envsound ARGS`` through ``main`` in this process, as a console would see it: no
    interpreter launch and no second torch import (a few seconds each). Only tests of the console script itself,
    pipes or killed processes need a subprocess."""
    import logging
    import sys

    from envsound.cli.main import main

    def run(*args) -> Ran:
        capsys.readouterr()
        root, handler = logging.getLogger(), logging.StreamHandler(sys.stderr)  # capsys's stderr, as the CLI logs
        handler.setFormatter(logging.Formatter("%(message)s"))
        quiet = "-q" in args or "--quiet" in args
        touched = [root, *(logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric"))]
        levels = [logger.level for logger in touched]  # main sets them; the next test starts from what it found
        handler.setLevel(logging.WARNING if quiet else logging.INFO)
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        try:
            code = main([str(arg) for arg in args])
        except SystemExit as exc:  # argparse: --help, usage errors
            code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
        finally:
            root.removeHandler(handler)
            for logger, level in zip(touched, levels):
                logger.setLevel(level)
        out, err = capsys.readouterr()
        return Ran(code, out, err)

    return run


def stopped_when_saved(args: list[str], state: Path | None, *, deadline_s: float,
                       gave_up=lambda said: False) -> tuple[int, str]:
    """Run ``args`` (one torch thread, as make test's workers) and send it SIGTERM once ``state`` exists (``None``:
    never); -> (exit status, stderr). Fails at once when the run ends, or ``gave_up(stderr so far)`` says its chance
    went by, with no ``state`` on disk, and after ``deadline_s`` without one."""
    import os
    import signal
    import subprocess
    import threading
    import time

    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stderr), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + deadline_s
        while state is not None and not state.exists():
            said = "".join(lines)
            assert process.poll() is None, f"the run ended with no {state}:\n{said}"
            assert not gave_up(said), f"the run went past its chance of a {state}:\n{said}"
            assert time.monotonic() < deadline, f"no {state} within {deadline_s} s:\n{said}"
            time.sleep(0.02)
        if state is not None:
            process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=deadline_s)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    reader.join(timeout=10)
    return code, "".join(lines)


def kill_after_first_checkpoint(args: list[str], out_dir: Path, *, timeout: float = 120) -> Path:
    """Start ``args`` (an envsound training command writing into ``out_dir``) and SIGKILL it once its first Lightning
    checkpoint exists, as a crash or a pulled plug would; return that checkpoint's path."""
    import subprocess
    import time

    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = out_dir / "lightning" / "last.ckpt"
    deadline = time.monotonic() + timeout
    while not last.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.kill()
    process.wait()
    assert last.exists(), "no epoch finished before the deadline"
    return last


@pytest.fixture(scope="session", autouse=True)
def isolated_data_folder(tmp_path_factory):
    """The user's data folder (the default detections store, a sensor's default queue) is a temporary one: no test
    writes to the home of whoever runs them."""
    os.environ["XDG_DATA_HOME"] = str(tmp_path_factory.mktemp("data-home"))


@pytest.fixture(scope="session", autouse=True)
def isolated_probe_cache(tmp_path_factory):
    """Runtime probes (envsound.hardware) keep their answers in a file of this test session, not the user's."""
    os.environ["ENVSOUND_PROBE_CACHE"] = str(tmp_path_factory.mktemp("probes") / "runtime-probes.json")


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    """A small synthetic dataset on disk: 10 classes x 5 folds x 2 clips of 1.5 s (real WAV files)."""
    from envsound.data.synthetic import generate_synthetic

    return generate_synthetic(tmp_path_factory.mktemp("synthetic"), clips_per_class_per_fold=2, seconds=1.5, seed=7)


@pytest.fixture(scope="session")
def synthetic_manifest(synthetic_root):
    from envsound.data.synthetic import prepare_synthetic

    return prepare_synthetic(synthetic_root)


@pytest.fixture
def tiny_config():
    from envsound.config.files import bare_config

    return bare_config(overrides=TINY_OVERRIDES)


@contextlib.contextmanager
def one_thread():
    """Train on one core and one torch thread, as each worker of `make test` does, so that a file run alone tests the
    same model: with two threads the same seed trains another one (the sed fixture of tests/models/test_frame_head.py
    reached event F1 0.30 against 0.61 on a 2-core AMD EPYC, and the shared bf16 model learnt the tone less clearly)."""
    import torch

    threads = torch.get_num_threads()
    cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    if cores:
        os.sched_setaffinity(0, {min(cores)})
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        if cores:
            os.sched_setaffinity(0, cores)


def _train_shared_model(tmp_path_factory, manifest, precision: str):
    from envsound.config.files import bare_config
    from envsound.features.cache import FeatureCache
    from envsound.recipes.context import RunContext
    from envsound.recipes.train import train_model

    out = tmp_path_factory.mktemp(f"run-{precision}")
    config = bare_config(overrides=TINY_OVERRIDES + ("train.max_epochs=20", "train.lr=0.003",
                                                     f"runtime.precision={precision}"))
    with one_thread():
        return train_model(manifest.select_folds([1, 2, 3, 4]), config, out_dir=out,
                           context=RunContext(cache=FeatureCache(out / "cache"), progress=False))


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, synthetic_manifest):
    """A model trained for 20 short epochs on folds 1-4 of the synthetic set (shared by inference and CLI tests).

    Trained in fp32 on every CPU: ``auto`` picks bf16 where the CPU has it and the probe finds it faster, and a
    weakly trained model's near-ties then fall on other windows, so tests that compare labels would hold on one CPU
    kind only. The bf16 numerics are :func:`trained_run_bf16`'s, under the ``bf16`` marker."""
    return _train_shared_model(tmp_path_factory, synthetic_manifest, "32")


@pytest.fixture(scope="session")
def trained_run_bf16(tmp_path_factory, synthetic_manifest):
    """:func:`trained_run` trained with bf16 autocast forced (``runtime.precision=bf16-mixed``), on any CPU: the
    numerics a CPU with native bf16 gives under ``auto``, emulated (and slower) on one without. For ``bf16`` tests."""
    return _train_shared_model(tmp_path_factory, synthetic_manifest, "bf16-mixed")


# the precisions a test of numerical agreement runs at: fp32, and bf16 forced (the `bf16` part of the suite)
PRECISIONS = ["32", pytest.param("bf16-mixed", marks=pytest.mark.bf16)]


def shared_run(request, precision: str):
    """The shared trained model of ``precision``: :func:`trained_run` or :func:`trained_run_bf16`."""
    return request.getfixturevalue("trained_run" if precision == "32" else "trained_run_bf16")


@pytest.fixture
def esc50_root() -> Path:
    if not (SHARED_ESC50 / "meta" / "esc50.csv").exists():
        pytest.skip(f"real ESC-50 data not found at {SHARED_ESC50}")
    return SHARED_ESC50


# ------------------------------------------------------------------------------------------ the web app (tests/app)
# Here rather than in tests/app/conftest.py: a second module named `conftest` would shadow this one for the tests that
# import TINY_OVERRIDES from it.

@dataclass
class Served:
    """A real uvicorn server on 127.0.0.1 (a free port) serving the session's trained model, in a thread."""

    url: str
    model: object  # envsound.inference.api.Model
    limits: object  # envsound.app.server.ServerLimits


@pytest.fixture(scope="session")
def served(trained_run):
    import envsound
    from envsound.app.run import running
    from envsound.app.server import ServerLimits, create_app

    limits = ServerLimits(max_upload_mb=12, max_seconds=400, workers=1)
    model = envsound.load_model(trained_run.checkpoint)
    with running(create_app(model, limits=limits)) as url:
        yield Served(url=url, model=model, limits=limits)


# ------------------------------------------------------------------ a download server (tests/data, tests/models)

class RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files`` (name -> bytes) and honours ``Range: bytes=N-`` unless ``server.ignore_range``."""

    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.server.requests.append((self.path, self.headers.get("Range")))
        body = self.server.files.get(self.path.lstrip("/"))
        if body is None:
            self.send_error(404, "Not Found")
            return
        start, status = 0, 200
        wanted = self.headers.get("Range")
        if wanted and not self.server.ignore_range:
            start = int(wanted.removeprefix("bytes=").split("-")[0])
            if start >= len(body):
                self.send_error(416, "Range Not Satisfiable")
                return
            status = 206
        self.send_response(status)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        # counted before writing: the client may finish reading before this thread runs again
        self.server.bytes_sent += len(body) - start
        self.wfile.write(body[start:])

    def log_message(self, *args):  # keep test output quiet
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    httpd.files, httpd.requests, httpd.ignore_range, httpd.bytes_sent = {}, [], False, 0
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}/"
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


# ------------------------------------------------------------------ the detections store (tests/deploy, tests/app)

@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server on 127.0.0.1 for the session (benchmarks/support/pgcluster.py); skips, saying why,
    without one."""
    from benchmarks.support.pgcluster import PostgresServer, postgres_bin

    if postgres_bin() is None:
        pytest.skip("no PostgreSQL server binaries: apt-get install postgresql (make test does, as root)")
    with PostgresServer() as server:
        yield server


@contextlib.contextmanager
def store_at_revision(spec: str, revision: str):
    """A connection to the new store ``spec`` migrated only up to ``revision``, as an older envsound left it (rows
    written through it are committed when the block ends)."""
    import sqlalchemy as sa
    from alembic import command
    from alembic.config import Config

    from envsound.deploy.store import MIGRATIONS, store_url

    engine = sa.create_engine(store_url(spec))
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
            yield connection
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_spec(request, tmp_path):
    """A new, empty store's ``--store`` value: a SQLite file, then a new database on the session's PostgreSQL."""
    if request.param == "sqlite":
        return str(tmp_path / "events.sqlite")
    server = request.getfixturevalue("postgres")
    return server.create_database(f"t{uuid.uuid4().hex[:12]}")
