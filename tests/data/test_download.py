"""Downloads against a real HTTP server on 127.0.0.1 (a tiny handler with Range support); nothing leaves the machine."""

from __future__ import annotations

import hashlib
import http.server
import io
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest
from audiofactory import write_tone

from envsound.data.download import download_dataset, download_file, extract_archive
from envsound.data.registry import load_dataset
from envsound.errors import ConfigError, DownloadError


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


def mini_esc50_zip(tmp_path: Path) -> bytes:
    """GitHub's zip layout: ESC-50-master/{meta/esc50.csv, audio/*.wav, README.md} with 2 classes x 2 folds."""
    lines = ["filename,fold,target,category,esc10,src_file,take"]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for fold in (1, 2):
            for target, category in ((0, "dog"), (1, "rooster")):
                name = f"{fold}-{fold}{target}-A-{target}.wav"
                wav = write_tone(tmp_path / "src" / name, seconds=0.3, sample_rate=8000, freq=300 + 200 * target,
                                 seed=fold)
                zf.write(wav, f"ESC-50-master/audio/{name}")
                lines.append(f"{name},{fold},{target},{category},True,{fold}{target},A")
        zf.writestr("ESC-50-master/meta/esc50.csv", "\n".join(lines) + "\n")
        zf.writestr("ESC-50-master/README.md", "mini ESC-50 for tests\n")
    return buffer.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_download_dataset_verifies_extracts_and_loads(server, tmp_path):
    archive = mini_esc50_zip(tmp_path)
    server.files["master.zip"] = archive
    root = tmp_path / "esc50"
    out = download_dataset("esc50", root, url=server.url + "master.zip", sha256=sha(archive).upper(),
                           progress=False)
    assert out == root and (root / "meta" / "esc50.csv").is_file() and not (root / "ESC-50-master").exists()
    manifest = load_dataset("esc50", root)
    assert len(manifest) == 4 and manifest.labels == ["dog", "rooster"] and manifest.folds == [1, 2]
    assert not list(root.rglob("*.part")) and not list(root.rglob("*.zip"))

    # idempotent: a completed download is not redone
    n_requests = len(server.requests)
    download_dataset("esc50", root, url=server.url + "master.zip", progress=False)
    assert len(server.requests) == n_requests


def test_resume_sends_range_and_gives_identical_bytes(server, tmp_path):
    data = bytes(range(256)) * 4000  # ~1 MB
    server.files["blob.bin"] = data
    dest = tmp_path / "blob.bin"
    half = len(data) // 2
    (tmp_path / "blob.bin.part").write_bytes(data[:half])
    download_file(server.url + "blob.bin", dest, sha256=sha(data), progress=False, chunk_size=4096)
    assert server.requests == [("/blob.bin", f"bytes={half}-")]
    assert server.bytes_sent == len(data) - half  # only the missing half travelled
    assert dest.read_bytes() == data and not (tmp_path / "blob.bin.part").exists()


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    data = b"0123456789" * 1000
    server.files["blob.bin"] = data
    server.ignore_range = True
    (tmp_path / "blob.bin.part").write_bytes(b"garbage that must not be kept")
    dest = download_file(server.url + "blob.bin", tmp_path / "blob.bin", sha256=sha(data), progress=False)
    assert server.requests[0][1] is not None  # it did ask to resume
    assert dest.read_bytes() == data


def test_stale_part_longer_than_file_restarts(server, tmp_path):
    data = b"abc" * 100
    server.files["blob.bin"] = data
    (tmp_path / "blob.bin.part").write_bytes(b"x" * 1000)  # the server answers 416 to this range
    dest = download_file(server.url + "blob.bin", tmp_path / "blob.bin", sha256=sha(data), progress=False)
    assert dest.read_bytes() == data
    assert [r for _, r in server.requests] == ["bytes=1000-", None]


def test_wrong_checksum_raises_and_leaves_nothing_complete(server, tmp_path):
    server.files["blob.bin"] = b"payload" * 100
    dest = tmp_path / "blob.bin"
    wrong = "0" * 64
    with pytest.raises(DownloadError) as err:
        download_file(server.url + "blob.bin", dest, sha256=wrong, progress=False)
    message = str(err.value)
    assert str(dest) in message and wrong in message and sha(b"payload" * 100) in message
    assert not dest.exists() and not (tmp_path / "blob.bin.part").exists()


def test_wrong_checksum_in_download_dataset_writes_no_marker(server, tmp_path):
    server.files["master.zip"] = mini_esc50_zip(tmp_path)
    root = tmp_path / "esc50"
    with pytest.raises(DownloadError, match="SHA-256 mismatch"):
        download_dataset("esc50", root, url=server.url + "master.zip", sha256="1" * 64, progress=False)
    assert not list(root.glob(".envsound-*.done")) and not (root / "meta").exists()


def test_404_raises_download_error_with_url(server, tmp_path):
    with pytest.raises(DownloadError, match=r"missing\.zip: HTTP 404"):
        download_file(server.url + "missing.zip", tmp_path / "missing.zip", progress=False)
    assert not (tmp_path / "missing.zip").exists()


def test_connection_refused_raises_download_error(tmp_path):
    with socket_closed_port() as port:
        url = f"http://127.0.0.1:{port}/x.zip"
    with pytest.raises(DownloadError, match="cannot connect"):
        download_file(url, tmp_path / "x.zip", progress=False)


def test_download_dataset_rejects_unknown_and_multi_archive_checksum(tmp_path):
    with pytest.raises(ConfigError, match="folder"):
        download_dataset("folder", tmp_path)
    with pytest.raises(ConfigError, match="sha256"):
        download_dataset("fsdkaggle2018", tmp_path, sha256="0" * 64)


def test_extract_archive_refuses_members_escaping_dest(tmp_path):
    evil_zip = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil_zip, "w") as zf:
        zf.writestr("ok.txt", "fine")
        zf.writestr("../escaped.txt", "bad")
    with pytest.raises(DownloadError, match="escaped.txt"):
        extract_archive(evil_zip, tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "out" / "ok.txt").exists()

    evil_tar = tmp_path / "evil.tar.gz"
    with tarfile.open(evil_tar, "w:gz") as tf:
        link = tarfile.TarInfo("link")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(link)
    with pytest.raises(DownloadError, match="outside"):
        extract_archive(evil_tar, tmp_path / "out2")


def test_extract_tar_gz(tmp_path):
    src = tmp_path / "UrbanSound8K" / "metadata" / "UrbanSound8K.csv"
    src.parent.mkdir(parents=True)
    src.write_text("slice_file_name,fsID\n")
    archive = tmp_path / "us.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(tmp_path / "UrbanSound8K", arcname="UrbanSound8K")
    out = extract_archive(archive, tmp_path / "out")
    assert (out / "UrbanSound8K" / "metadata" / "UrbanSound8K.csv").read_text() == "slice_file_name,fsID\n"


class socket_closed_port:
    """A port on 127.0.0.1 that was free a moment ago (bound, then closed)."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return self.sock.getsockname()[1]

    def __exit__(self, *exc) -> None:
        self.sock.close()
