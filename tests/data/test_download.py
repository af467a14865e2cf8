"""Downloads against a real HTTP server on 127.0.0.1 (a tiny handler with Range support); nothing leaves the machine."""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import tarfile
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
from audiofactory import write_noise, write_tone

from envsound.data import download as download_module
from envsound.data.download import ARCHIVES, download_dataset, download_file, extract_archive
from envsound.data.registry import load_dataset
from envsound.errors import ConfigError, DownloadError


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


def _zip_of(files: dict[str, Path | str]) -> bytes:
    """A zip of ``{member name: file to store, or text}``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, content in files.items():
            zf.write(content, name) if isinstance(content, Path) else zf.writestr(name, content)
    return buffer.getvalue()


def mini_fsdkaggle2019(tmp_path: Path) -> dict[str, bytes]:
    """Zenodo's FSDKaggle2019 archives in miniature; the noisy audio is a split zip (``zip -s 64k``, 3 volumes)."""
    src = tmp_path / "src"
    curated = {f"c{i}.wav": ("Bark" if i % 2 else "Cello,Bark") for i in range(4)}
    noisy = {f"n{i}.wav": "Bark" for i in range(3)}
    meta = "FSDKaggle2019.meta/"
    files = {
        "FSDKaggle2019.meta.zip": _zip_of({
            meta + "train_curated_post_competition.csv": "fname,labels,freesound_id,license\n" + "".join(
                f'{name},"{labels}",{i},CC0\n' for i, (name, labels) in enumerate(curated.items())),
            meta + "train_noisy_post_competition.csv": "fname,labels,flickr_video_URL,license\n" + "".join(
                f"{name},{labels},http://flickr.example/{i},CC-BY\n" for i, (name, labels) in enumerate(noisy.items())),
            meta + "test_post_competition.csv": "fname,labels,usage,freesound_id,license\nt0.wav,Cello,Public,9,CC0\n",
            meta + "vocabulary.csv": "0,Bark\n1,Cello\n"}),
        "FSDKaggle2019.audio_train_curated.zip": _zip_of({
            f"FSDKaggle2019.audio_train_curated/{name}": write_tone(src / name, seconds=0.1, sample_rate=8000, seed=i)
            for i, name in enumerate(curated)}),
        "FSDKaggle2019.audio_test.zip": _zip_of({
            "FSDKaggle2019.audio_test/t0.wav": write_tone(src / "t0.wav", seconds=0.1, sample_rate=8000)}),
    }
    split = tmp_path / "split"
    for i, name in enumerate(noisy):  # stored (-0): 3 x 44 kB make 3 volumes of 64 kB
        write_noise(split / "FSDKaggle2019.audio_train_noisy" / name, seconds=0.5, sample_rate=44100, seed=i)
    subprocess.run(["zip", "-q", "-0", "-r", "-s", "64k", "FSDKaggle2019.audio_train_noisy.zip",
                    "FSDKaggle2019.audio_train_noisy"], cwd=split, check=True)
    for volume in sorted(split.glob("FSDKaggle2019.audio_train_noisy.z*")):
        files[volume.name] = volume.read_bytes()
    return files


def test_fsdkaggle2019_archives_are_zenodos():
    archives = ARCHIVES["fsdkaggle2019"]
    assert [a.filename for a in archives] == ["FSDKaggle2019.meta.zip", "FSDKaggle2019.audio_train_curated.zip",
                                              "FSDKaggle2019.audio_test.zip", "FSDKaggle2019.audio_train_noisy.zip"]
    assert archives[-1].parts == tuple(f"FSDKaggle2019.audio_train_noisy.z0{i}" for i in range(1, 7))
    assert all(a.url == "https://zenodo.org/record/3612637/files/" + a.filename for a in archives)


@pytest.mark.skipif(shutil.which("zip") is None, reason="Info-ZIP zip is needed to make and join split zips")
def test_fsdkaggle2019_download_joins_the_split_noisy_zip(server, tmp_path, monkeypatch):
    server.files.update(mini_fsdkaggle2019(tmp_path))
    volumes = tuple(sorted(name for name in server.files if ".audio_train_noisy.z0" in name))
    assert len(volumes) >= 2  # a real split archive
    noisy = replace(ARCHIVES["fsdkaggle2019"][-1], parts=volumes)  # the miniature has fewer volumes than Zenodo's
    monkeypatch.setitem(ARCHIVES, "fsdkaggle2019", ARCHIVES["fsdkaggle2019"][:-1] + (noisy,))
    root = tmp_path / "fsd19"

    which = shutil.which
    monkeypatch.setattr(download_module.shutil, "which", lambda name, *args, **kwargs: None)
    with pytest.raises(DownloadError, match=r"split zip archive.*'zip' program.*volumes are kept"):
        download_dataset("fsdkaggle2019", root, url=server.url, progress=False)
    # everything before the noisy audio is unpacked and usable; the noisy volumes wait in .downloads
    assert len(load_dataset("fsdkaggle2019", root, subset="curated", n_folds=2)) == 4
    assert all((root / ".downloads" / name).is_file() for name in volumes)

    monkeypatch.setattr(download_module.shutil, "which", which)
    n_requests = len(server.requests)
    download_dataset("fsdkaggle2019", root, url=server.url, progress=False)
    assert len(server.requests) == n_requests  # the kept volumes were not downloaded again
    assert not (root / ".downloads").exists() and not (root / "FSDKaggle2019.audio_train_noisy.zip").exists()
    both = load_dataset("fsdkaggle2019", root, subset="all", n_folds=2)
    assert len(both) == 7 and both.labels == ["Bark", "Cello"]
    assert {r.origin for r in both.records} == {"curated", "noisy"}
    assert len(load_dataset("fsdkaggle2019", root, subset="test")) == 1


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
