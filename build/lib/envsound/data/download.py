"""Download, verify and unpack the public datasets (``download_<corpus>`` to each loader's ``prepare_<corpus>``).

Downloads stream to ``<file>.part`` and resume an interrupted ``.part`` with an HTTP Range request; a file appears under
its final name only complete and (when a checksum is known) verified. Nothing is downloaded unless asked.

Why not a library: urllib does the HTTP; resuming, verifying and safe extraction are the ~100 lines no dependency in
our stack (Lightning, torch, soundfile) offers without pulling in ``requests`` or ``torchaudio``.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import shutil
import subprocess
import tarfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

from envsound.errors import ConfigError, DownloadError

logger = logging.getLogger(__name__)

USER_AGENT = "envsound-downloader/0.1 (+https://github.com)"
TIMEOUT_SECONDS = 60
DOWNLOAD_DIR = ".downloads"  # archives are kept here (under root) until they are unpacked


@dataclass(frozen=True)
class Archive:
    """One archive of a dataset. ``strip`` names the single top folder whose contents go straight into ``root``.

    ``parts`` names the earlier volumes of a split zip (``x.z01``, ``x.z02``, ... beside ``x.zip``, downloaded from
    the folder of ``url``); they are joined into one zip with Info-ZIP's ``zip -s 0`` before unpacking.
    """

    filename: str
    url: str
    sha256: str | None = None
    strip: str | None = None
    parts: tuple[str, ...] = ()


# Official archives. No SHA-256 is published for any of them: ESC-50's zip is GitHub's archive of the moving master
# branch (its bytes change with every commit), and Zenodo publishes MD5 sums only. Pass sha256= (--sha256) to verify
# a download against a digest you trust; without one the archive's digest is logged and recorded in the marker file.
_ZENODO_FSD = "https://zenodo.org/record/2552860/files/"
_ZENODO_FSD19 = "https://zenodo.org/record/3612637/files/"
_FSD19_NOISY = "FSDKaggle2019.audio_train_noisy"
ARCHIVES: dict[str, tuple[Archive, ...]] = {
    "esc50": (Archive("ESC-50-master.zip", "https://github.com/karoldvl/ESC-50/archive/master.zip",
                      strip="ESC-50-master"),),
    "urbansound8k": (Archive("UrbanSound8K.tar.gz", "https://zenodo.org/record/1203745/files/UrbanSound8K.tar.gz",
                             strip="UrbanSound8K"),),
    "fsdkaggle2018": (Archive("FSDKaggle2018.audio_train.zip", _ZENODO_FSD + "FSDKaggle2018.audio_train.zip"),
                      Archive("FSDKaggle2018.meta.zip", _ZENODO_FSD + "FSDKaggle2018.meta.zip")),
    # Smallest first, so that the curated set is usable even if the large split noisy archive fails.
    "fsdkaggle2019": tuple(Archive(f"FSDKaggle2019.{part}.zip", f"{_ZENODO_FSD19}FSDKaggle2019.{part}.zip")
                           for part in ("meta", "audio_train_curated", "audio_test"))
                     + (Archive(f"{_FSD19_NOISY}.zip", f"{_ZENODO_FSD19}{_FSD19_NOISY}.zip",
                                parts=tuple(f"{_FSD19_NOISY}.z{i:02d}" for i in range(1, 7))),),
}
_ALIASES = {"esc10": "esc50"}  # ESC-10 is read from the ESC-50 tree


def download_dataset(name: str, root: str | os.PathLike | None, *, url: str | None = None,
                     sha256: str | None = None, progress: bool = True) -> Path:
    """Download, verify and unpack dataset ``name`` so that ``load_dataset(name, root)`` reads it.

    Idempotent: each unpacked archive leaves a marker file ``root/.envsound-<archive>.done``; a second call finds it
    and downloads nothing. An interrupted download resumes from its ``.part`` file.

    Args:
        name: ``esc50`` (also ``esc10``), ``urbansound8k``, ``fsdkaggle2018`` or ``fsdkaggle2019`` (its noisy
            audio is a split zip: joining it needs Info-ZIP's ``zip`` on the PATH).
        root: folder to fill (created if needed); ``None`` uses ``$ENVSOUND_DATA_<NAME>`` or ``$ENVSOUND_DATA/<name>``.
        url: replaces the official archive URL (a mirror, or a local server); for ``fsdkaggle2018`` and
            ``fsdkaggle2019`` (several archives) it is a base URL the archive file names are appended to.
        sha256: expected SHA-256 of the archive (single-archive datasets only); default: the table's, if known.
        progress: show a tqdm progress bar per download (only on a terminal).

    Returns:
        ``root`` as a :class:`~pathlib.Path`.

    Raises:
        ConfigError: a dataset with no download (e.g. ``folder``), or ``sha256`` for a multi-archive dataset.
        DownloadError: a network error, an HTTP error, a checksum mismatch, a corrupt/unsafe archive, or a split
            zip with no ``zip`` program to join it (the downloaded volumes are kept for the next run).
        DatasetLayoutError: ``root`` is ``None`` and no environment variable is set.

    >>> download_dataset("esc50", "data/ESC-50")
    PosixPath('data/ESC-50')
    """
    key = _ALIASES.get(name, name)
    if key not in ARCHIVES:
        raise ConfigError(f"no download for dataset {name!r}; downloadable: {', '.join(sorted(ARCHIVES))} "
                          "(for your own data use the 'folder' or 'csv' datasets)")
    archives = ARCHIVES[key]
    if len(archives) > 1 and sha256 is not None:
        raise ConfigError(f"dataset {name!r} has {len(archives)} archives; sha256= cannot name all of them, "
                          "leave it unset")
    if url is not None:
        if len(archives) == 1:
            archives = (replace(archives[0], url=url),)
        else:
            base = url if url.endswith("/") else url + "/"
            archives = tuple(replace(a, url=base + a.filename) for a in archives)
    if sha256 is not None:
        archives = (replace(archives[0], sha256=sha256),)

    from envsound.data.registry import dataset_root  # same root resolution as load_dataset

    root = dataset_root(name, root, must_exist=False)
    root.mkdir(parents=True, exist_ok=True)
    for archive in archives:
        marker = root / f".envsound-{archive.filename}.done"
        if marker.is_file():
            logger.info("%s: already downloaded and unpacked (%s); delete it to download again", archive.filename,
                        marker)
            continue
        path = _fetch(archive, root / DOWNLOAD_DIR, progress=progress)
        digest = archive.sha256 or sha256_of(path)
        if archive.sha256 is None:
            logger.warning("%s: no published SHA-256 to verify against; its SHA-256 is %s", path.name, digest)
        _unpack(path, root, strip=archive.strip)
        marker.write_text(json.dumps({"url": archive.url, "sha256": digest}) + "\n", encoding="utf-8")
        path.unlink()
    downloads = root / DOWNLOAD_DIR
    if downloads.is_dir() and not any(downloads.iterdir()):
        downloads.rmdir()
    return root


def download_file(url: str, dest: str | os.PathLike, *, sha256: str | None = None, progress: bool = True,
                  chunk_size: int = 1 << 20) -> Path:
    """Stream ``url`` to ``dest``, resuming ``dest.part`` if an earlier attempt left one.

    A ``.part`` file is continued with ``Range: bytes=<size>-``; a server that ignores the range (HTTP 200) restarts
    the download from zero. ``dest`` appears (one rename) only complete and, with ``sha256``, verified. An existing
    ``dest`` that matches ``sha256`` (or any existing ``dest`` when ``sha256`` is None) is returned as it is.

    Args:
        url: an ``http(s)://`` or ``file://`` URL.
        dest: the final file path (parent folders are created).
        sha256: expected hex digest (any case), or None to skip verification.
        progress: show a tqdm bar (only on a terminal).
        chunk_size: bytes per read, >= 1.

    Returns:
        ``dest`` as a :class:`~pathlib.Path`.

    Raises:
        DownloadError: HTTP error (e.g. 404) or network failure (names the URL; a partial ``.part`` is kept for
            resuming), a body shorter than announced, or a checksum mismatch (names the file and both digests; the
            ``.part`` is removed).

    >>> download_file("https://example.org/a.zip", "downloads/a.zip", sha256="9f86d08...")
    """
    if chunk_size < 1:
        raise ConfigError(f"chunk_size={chunk_size!r} is out of range; valid: >= 1 byte")
    dest = Path(dest)
    expected = sha256.lower().strip() if sha256 else None
    if dest.is_file():
        if expected is None or sha256_of(dest) == expected:
            logger.info("%s: already downloaded", dest)
            return dest
        logger.warning("%s: exists but its SHA-256 does not match; downloading it again", dest)
        dest.unlink()
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.is_file() else 0
    digest = hashlib.sha256()

    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # the range starts at or past the end: the .part is stale, start over
            logger.warning("%s: server refused to resume at byte %d; downloading from the start", url, offset)
            part.unlink()
            return download_file(url, dest, sha256=sha256, progress=progress, chunk_size=chunk_size)
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}; check the URL (pass --url for a mirror)") from exc
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        raise DownloadError(f"{url}: cannot connect ({_reason(exc)}); check the network and the URL, "
                            "then run again") from exc

    with response:
        status = getattr(response, "status", 200)
        if offset and status == 206 and _range_start(response.headers.get("Content-Range")) == offset:
            with open(part, "rb") as fh:
                for block in iter(lambda: fh.read(chunk_size), b""):
                    digest.update(block)
            mode = "ab"
            logger.info("%s: resuming at byte %d", dest.name, offset)
        else:
            if offset:
                logger.warning("%s: server ignored the resume request; downloading from the start", url)
            offset, mode = 0, "wb"
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length and length.isdigit() else None
        received = offset
        try:
            with open(part, mode) as out, _bar(total, offset, dest.name, progress) as bar:
                for block in iter(lambda: response.read(chunk_size), b""):
                    out.write(block)
                    digest.update(block)
                    received += len(block)
                    bar.update(len(block))
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
            raise DownloadError(f"{url}: download interrupted at byte {received} ({_reason(exc)}); run again to "
                                f"resume from {part}") from exc
    if total is not None and received != total:
        raise DownloadError(f"{url}: received {received} of {total} bytes; run again to resume from {part}")

    actual = digest.hexdigest()
    if expected is not None and actual != expected:
        part.unlink()
        raise DownloadError(f"{dest}: SHA-256 mismatch: expected {expected}, got {actual}; the download is "
                            "corrupt or the checksum is wrong (the partial file was removed; run again)")
    os.replace(part, dest)
    return dest


def _fetch(archive: Archive, folder: Path, *, progress: bool) -> Path:
    """Download ``archive`` into ``folder``; a split zip is downloaded volume by volume and joined into one zip
    (the volumes are deleted once joined). Returns the file to unpack."""
    dest = folder / archive.filename
    if not archive.parts:
        return download_file(archive.url, dest, sha256=archive.sha256, progress=progress)
    joined = folder / f"{Path(archive.filename).stem}.joined.zip"
    if joined.is_file():  # joined by an earlier run that stopped before unpacking
        return joined
    base = archive.url.rsplit("/", 1)[0] + "/"
    volumes = [download_file(base + part, folder / part, progress=progress) for part in archive.parts]
    volumes.append(download_file(archive.url, dest, sha256=archive.sha256, progress=progress))
    _join_split_zip(dest, joined)
    for volume in volumes:
        volume.unlink()
    return joined


def _join_split_zip(last: Path, joined: Path) -> None:
    """Join the split zip ending in ``last`` (its volumes ``.z01``, ``.z02``, ... beside it) into ``joined``.

    Python's zipfile cannot read split archives, so this runs ``zip -s 0`` (Info-ZIP), the tool the FSDKaggle2019
    README itself prescribes. The result appears under its final name only complete.
    """
    program = shutil.which("zip")
    if program is None:
        raise DownloadError(f"{last}: a split zip archive, and joining it needs Info-ZIP's 'zip' program, which is "
                            f"not on the PATH; install it (e.g. 'apt install zip') and run again (the downloaded "
                            f"volumes are kept in {last.parent})")
    partial = joined.with_name(joined.name[:-len(".zip")] + ".partial.zip")
    partial.unlink(missing_ok=True)
    done = subprocess.run([program, "-q", "-s", "0", str(last), "--out", str(partial)], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0 or not partial.is_file():
        partial.unlink(missing_ok=True)
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise DownloadError(f"{last}: joining the split zip failed (zip exit {done.returncode}: "
                            f"{detail[-1] if detail else 'no message'}); a volume may be incomplete: delete the "
                            f"volumes in {last.parent} and run again")
    os.replace(partial, joined)


def extract_archive(archive: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Unpack a ``.zip``, ``.tar.gz``/``.tgz`` or ``.tar`` into ``dest`` (created if needed) and return ``dest``.

    Members that would land outside ``dest`` (absolute paths, ``..``, links pointing out, device files) are refused
    before anything is written.

    Raises:
        DownloadError: an unknown archive type, a corrupt archive, or an unsafe member (names the archive and member).
    """
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    base = dest.resolve()
    name = archive.name.lower()
    try:
        if name.endswith(".zip"):
            with zipfile.ZipFile(archive) as zf:
                for member in zf.namelist():
                    _inside(base, member, archive)
                zf.extractall(dest)
        elif name.endswith((".tar.gz", ".tgz", ".tar")):
            with tarfile.open(archive, "r:*") as tf:
                for member in tf.getmembers():
                    _inside(base, member.name, archive)
                    if member.issym() or member.islnk():
                        target = member.linkname if member.islnk() else os.path.join(
                            os.path.dirname(member.name), member.linkname)
                        if os.path.isabs(member.linkname) or not _is_inside(base, target):
                            raise DownloadError(f"{archive}: link {member.name!r} points to {member.linkname!r}, "
                                                f"outside {base}; refusing to unpack this archive")
                    elif not (member.isfile() or member.isdir()):
                        raise DownloadError(f"{archive}: member {member.name!r} is a device or special file; "
                                            "refusing to unpack this archive")
                tf.extractall(dest, filter="data")
        else:
            raise DownloadError(f"{archive}: unknown archive type; expected .zip, .tar.gz, .tgz or .tar")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as exc:
        raise DownloadError(f"{archive}: corrupt archive ({exc}); delete it and download again") from exc
    return dest


def _unpack(archive: Path, root: Path, *, strip: str | None) -> None:
    """Extract into a scratch folder under ``root``, then move the contents (of ``strip``, if given) into ``root``."""
    scratch = root / f".extracting-{archive.name}"
    if scratch.exists():
        shutil.rmtree(scratch)
    extract_archive(archive, scratch)
    top = scratch
    if strip:
        children = [c for c in scratch.iterdir() if not c.name.startswith(".")]
        if (scratch / strip).is_dir():
            top = scratch / strip
        elif len(children) == 1 and children[0].is_dir():  # a mirror's archive with another top folder name
            top = children[0]
    for item in sorted(top.iterdir()):
        target = root / item.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        os.replace(item, target)
    shutil.rmtree(scratch)


def _inside(base: Path, member: str, archive: Path) -> None:
    if os.path.isabs(member) or member.startswith(("/", "\\")):
        raise DownloadError(f"{archive}: member {member!r} has an absolute path; refusing to unpack this archive")
    if not _is_inside(base, member):
        raise DownloadError(f"{archive}: member {member!r} would be written outside {base}; "
                            "refusing to unpack this archive")


def _is_inside(base: Path, member: str) -> bool:
    resolved = (base / member).resolve()
    return resolved == base or base in resolved.parents


def _range_start(content_range: str | None) -> int | None:
    """The first byte of ``Content-Range: bytes <start>-<end>/<total>``."""
    if not content_range or not content_range.startswith("bytes "):
        return None
    start = content_range[6:].split("-", 1)[0].strip()
    return int(start) if start.isdigit() else None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or exc
    return str(reason).splitlines()[0] if str(reason) else type(exc).__name__


def _bar(total: int | None, initial: int, desc: str, progress: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
                disable=(not progress) or None, leave=False)
