"""The REST API over real HTTP: results equal the CLI's, every bad request is a 4xx {"error": one line}, limits hold,
uploads leave nothing behind, and the server answers /healthz while a long file is classified."""

from __future__ import annotations

import glob
import tempfile
import threading
import time

import httpx
import numpy as np
import pytest
import soundfile as sf

from audiofactory import (write_empty_wav, write_noise, write_nonfinite_float_wav, write_not_audio,
                          write_truncated_wav, write_zero_bytes)
from envsound.errors import AudioLoadError


@pytest.fixture(scope="module")
def clip(synthetic_manifest):
    return synthetic_manifest.select_folds([5]).records[0].path


def post(served, path, *, name=None, params=None, timeout=60):
    with open(path, "rb") as handle:
        return httpx.post(f"{served.url}/v1/predict", params=params, timeout=timeout,
                          files={"file": (name or path.name, handle, "application/octet-stream")})


def error_of(answer, status):
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"error"} and "\n" not in body["error"] and "Traceback" not in body["error"]
    return body["error"]


def test_a_prediction_is_one_line_of_predict_json(served, clip):
    answer = post(served, clip, params={"top_k": 4, "segments": "true"})
    assert answer.status_code == 200
    expected = served.model.predict(clip, top_k=4, segments=True).to_dict()
    assert answer.json() == {**expected, "file": clip.name}
    with_events = post(served, clip, params={"events": "true"}).json()  # as predict --events --json
    assert with_events == {**served.model.predict(clip, events=True).to_dict(), "file": clip.name}
    assert isinstance(with_events["events"], list)
    picture = post(served, clip, params={"overview": "true"}).json()["overview"]
    spectrogram = picture["spectrogram"]
    assert picture["seconds"] == pytest.approx(sf.info(str(clip)).duration, abs=0.01)
    assert spectrogram["mels"] == served.model.config.features.n_mels and len(picture["envelope"]) >= 10


def test_the_page_s_static_files_are_served_under_the_body_deadline(served):
    """The slow-body deadline read a bodyless GET's body beside StaticFiles' own wait for a disconnect: every
    /static/ file hung (the page never loaded in the browser tests)."""
    for path in ("/static/app.js", "/static/app.css", "/static/live.js", "/static/monitor.js"):
        answer = httpx.get(f"{served.url}{path}", timeout=10)
        assert answer.status_code == 200 and answer.content, path


def test_model_and_health(served):
    described = httpx.get(f"{served.url}/v1/model").json()
    assert described["labels"] == served.model.labels and described["model"] == served.model.config.model.name
    assert described["features"]["sample_rate"] == served.model.config.features.sample_rate
    assert described["training"]["dataset"] == "synthetic"
    assert httpx.get(f"{served.url}/healthz").json() == {"status": "ok", "running": 0, "queued": 0, "auth": False}
    page = httpx.get(f"{served.url}/")
    assert page.status_code == 200 and 'data-testid="file-input"' in page.text
    assert "cdn" not in httpx.get(f"{served.url}/docs").text.lower()  # the API docs work offline too


@pytest.mark.parametrize("make, status, reason", [
    (write_not_audio, 415, "not an audio file"),
    (write_zero_bytes, 422, "empty"),
    (write_empty_wav, 422, "0 frames"),
    (write_truncated_wav, 422, "truncated"),
    (write_nonfinite_float_wav, 422, "non-finite"),
])
def test_bad_audio_gets_the_reason_predict_gives(served, tmp_path, make, status, reason):
    path = make(tmp_path / "sound.wav")
    message = error_of(post(served, path, name="my sound.wav"), status)
    assert message.startswith("my sound.wav: ") and reason in message
    assert str(tmp_path) not in message and "envsound-upload" not in message  # no server path is ever named
    if status == 422 and make is not write_zero_bytes:
        with pytest.raises(AudioLoadError) as raised:
            served.model.predict(path)
        assert message == str(raised.value).replace(str(path), "my sound.wav")


def test_malformed_requests_get_json_errors(served, clip):
    assert "top_k" in error_of(post(served, clip, params={"top_k": 0}), 422)
    assert "top_k" in error_of(post(served, clip, params={"top_k": "many"}), 422)
    assert "file" in error_of(httpx.post(f"{served.url}/v1/predict"), 422)
    assert "multipart" in error_of(httpx.post(f"{served.url}/v1/predict", content=b"not a form",
                                              headers={"content-type": "multipart/form-data; boundary=x"}), 400)
    error_of(httpx.get(f"{served.url}/v1/predict"), 405)
    error_of(httpx.get(f"{served.url}/../../etc/passwd"), 404)
    error_of(httpx.get(f"{served.url}/static/../server.py"), 404)


def test_a_body_over_the_limit_gets_413_not_a_reset(served):
    size = int(served.limits.max_upload_mb * 1e6) + 1_000_000
    declared = httpx.post(f"{served.url}/v1/predict", files={"file": ("big.wav", b"RIFF" + bytes(size))}, timeout=60)
    assert "--max-upload-mb" in error_of(declared, 413)

    def chunked():  # no Content-Length: counted as it arrives
        yield b'--x\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n\r\nRIFF'
        for _ in range(size // 1_000_000 + 1):
            yield b"\0" * 1_000_000

    streamed = httpx.post(f"{served.url}/v1/predict", content=chunked(), timeout=60,
                          headers={"content-type": "multipart/form-data; boundary=x"})
    assert "--max-upload-mb" in error_of(streamed, 413)
    assert httpx.get(f"{served.url}/healthz").status_code == 200


def test_audio_longer_than_max_seconds_gets_413(served, tmp_path):
    path = tmp_path / "long.flac"
    sf.write(path, np.zeros(int(4000 * (served.limits.max_seconds + 5)), dtype=np.int16) + 1, 4000)
    assert "--max-seconds" in error_of(post(served, path), 413)


def test_uploads_leave_no_file_behind(served, clip, tmp_path):
    before = set(glob.glob(f"{tempfile.gettempdir()}/envsound-upload-*"))
    post(served, clip)
    post(served, write_not_audio(tmp_path / "x.wav"))
    post(served, write_truncated_wav(tmp_path / "t.wav"))
    assert set(glob.glob(f"{tempfile.gettempdir()}/envsound-upload-*")) == before


def test_long_files_queue_while_health_answers(served, tmp_path):
    path = write_noise(tmp_path / "long.wav", seconds=360, sample_rate=8000, seed=3)  # ~6 MB, a few seconds' work
    answers = []
    threads = [threading.Thread(target=lambda: answers.append(post(served, path, params={"segments": "true"})))
               for _ in range(2)]
    for thread in threads:
        thread.start()
    seen, deadline = set(), time.monotonic() + 60
    while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
        health = httpx.get(f"{served.url}/healthz", timeout=2).json()  # answered while a prediction runs
        assert health["running"] <= served.limits.workers
        seen.add((health["running"], health["queued"]))
        time.sleep(0.02)
    for thread in threads:
        thread.join()
    assert [a.status_code for a in answers] == [200, 200]
    assert (1, 1) in seen  # one classified while the other waited in line


def test_serve_without_store_opens_no_database(trained_run, clip, tmp_path):
    """A plain ``serve MODEL`` (no --store, --auth or --keep-days) makes no database anywhere, says so, classifies,
    and answers the deployment's routes with a 404 that says why; it used to make the default events.sqlite."""
    import os
    import re
    import subprocess
    import sys

    home = tmp_path / "home"
    env = {**os.environ, "HOME": str(home), "XDG_DATA_HOME": str(home / "data"), "XDG_CONFIG_HOME": str(home / "cfg")}
    command = [sys.executable, "-m", "envsound.cli.main", "serve", str(trained_run.checkpoint), "--port", "0", "-q"]
    server = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        store_line, line = server.stderr.readline(), server.stderr.readline()
        assert store_line.startswith("envsound: no detections store"), store_line
        address = re.search(r"serving at (http://127\.0\.0\.1:\d+)/", line)
        assert address, line
        url = address.group(1)
        assert httpx.get(f"{url}/healthz", timeout=10).json()["status"] == "ok"
        assert httpx.get(f"{url}/v1/model", timeout=10).status_code == 200
        with open(clip, "rb") as handle:
            answer = httpx.post(f"{url}/v1/predict", files={"file": (clip.name, handle)}, timeout=60)
        assert answer.status_code == 200 and answer.json()["top"], answer.text
        for method, path in [("GET", "/v1/events"), ("GET", "/v1/sensors"), ("POST", "/v1/report")]:
            refused = httpx.request(method, f"{url}{path}", json={}, timeout=10)
            assert "runs without a detections store" in error_of(refused, 404), path
        assert "/v1/events" not in httpx.get(f"{url}/openapi.json", timeout=10).json()["paths"]
    finally:
        server.terminate()
        server.wait(timeout=20)
    made = [p for p in tmp_path.rglob("*") if p.suffix in (".sqlite", ".sqlite-wal") or p.name == "events.sqlite"]
    assert not made, made


@pytest.mark.parametrize("flags", [["--workers", "0"], ["--max-upload-mb", "-1"], ["--ssl-keyfile", "key.pem"]])
def test_serve_refuses_bad_settings(trained_run, flags, capsys):
    from envsound.cli.main import main

    assert main(["serve", "--quiet", str(trained_run.checkpoint), *flags]) == 1
    assert "error" in capsys.readouterr().err


def test_slow_bodies_are_cut_off_at_the_deadline_and_other_clients_go_on(served, tmp_path):
    """Issue 68: many requests whose bodies come a byte at a time (a "slowloris") each get 408 within
    ``body_seconds`` and their connections are closed; meanwhile another client's report and the page answer at
    once."""
    import socket
    import time

    from envsound.app.run import running
    from envsound.app.server import ServerLimits, create_app
    from envsound.deploy.store import Store

    FORM = "multipart/form-data; boundary=x"
    store = Store.open(tmp_path / "events.sqlite")
    with running(create_app(served.model, store=store, limits=ServerLimits(body_seconds=2))) as url:
        host, port = url.removeprefix("http://").split(":")
        slow = []
        upload = '--x\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\nRIFF'
        for path, kind, start in [("/v1/report", "application/json", "{")] * 10 + [("/v1/predict", FORM, upload)] * 10:
            conn = socket.create_connection((host, int(port)), timeout=10)
            conn.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {kind}\r\n"
                         f"Content-Length: 1000\r\n\r\n{start}".encode())
            slow.append(conn)
        began = time.monotonic()
        answers = [b""] * len(slow)
        other = []
        while time.monotonic() - began < 10 and not all(a.endswith(b"}") for a in answers):
            for conn in slow:
                try:
                    conn.sendall(b" ")  # a byte every quarter second, on each of them
                except OSError:  # closed by the server: its answer is there to read
                    pass
            t0 = time.monotonic()
            ok = httpx.post(f"{url}/v1/report", json={"sensor": "quick", "events": []}, timeout=5)
            other.append((ok.status_code, time.monotonic() - t0))
            time.sleep(0.25)
            for i, conn in enumerate(slow):
                conn.setblocking(False)
                try:
                    answers[i] += conn.recv(65536)
                except (BlockingIOError, OSError):
                    pass
        took = time.monotonic() - began
        for conn in slow:
            conn.setblocking(True)
            conn.settimeout(5)
            try:  # closed by the server after its answer: reading gives b"" (or a reset), never blocks
                assert conn.recv(65536) == b""
            except ConnectionResetError:
                pass
            conn.close()
    store.close()
    assert [a for a in answers if not a.startswith(b"HTTP/1.1 408")] == []
    assert all(b"did not arrive within 2 s (serve --body-seconds)" in a for a in answers)
    assert all(b"connection: close" in a.lower() for a in answers)
    assert took < 8, took  # the deadline is 2 s
    assert other and all(code == 200 and seconds < 2.0 for code, seconds in other), other
