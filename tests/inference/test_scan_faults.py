"""An archive scan under faults (issue 68): a decoding worker killed by the kernel, files the user may not read.
Each test runs the scan as a user meets it, `envsound predict MODEL INPUTS --out DIR` in a process of its own, and
waits on it with a deadline, so that a scan that hangs fails the test instead of hanging the suite."""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from stalls import NoLease, open_blocks, open_names
import test_embed_ray

import envsound

DEADLINE_S = 240
ray_cluster = test_embed_ray.ray_cluster  # a local one-node Ray cluster on 127.0.0.1, a fixture of this module too


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, synthetic_manifest) -> Path:
    """24 short clips and two 5-minute recordings (long enough to be caught reading), all 16-bit WAV."""
    root = tmp_path_factory.mktemp("faults")
    for i, record in enumerate(synthetic_manifest.records[:24]):
        shutil.copy(record.path, root / f"clip{i:02d}.wav")
    waves = [sf.read(r.path, dtype="float32")[0] for r in synthetic_manifest.records[:24]]
    rate = sf.info(synthetic_manifest.records[0].path).samplerate
    long = np.tile(np.concatenate(waves), int(np.ceil(300 * rate / sum(map(len, waves)))))[:300 * rate]
    for name in ("once.wav", "twice.wav"):
        sf.write(root / name, long, rate, subtype="PCM_16")
    return root


def _table(out: Path, name: str) -> pd.DataFrame:
    return pd.read_parquet(out / name).sort_values(["file"] + (["start"] if name == "windows" else []),
                                                  kind="stable").reset_index(drop=True)


def _scan_command(checkpoint, *inputs, out: Path) -> list[str]:
    return [sys.executable, "-m", "envsound", "predict", str(checkpoint), *map(str, inputs), "--out", str(out),
            "--workers", "1", "--precision", "32", "--quiet"]


def _children(pid: int) -> list[int]:
    try:  # Linux with CONFIG_PROC_CHILDREN: the children of each thread; the workers are the main thread's
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        pass
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def _watched(command: list[str], watch, *, deadline_s: float, failing) -> tuple[int, str, str]:
    """Run ``command``, calling ``watch(worker pid)`` for each of its decoding workers until it returns True or the
    run ends; -> (exit status, stdout, stderr). A run not over within ``deadline_s`` fails the test with
    ``failing()`` (a hang is what these tests exist to catch)."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + deadline_s
    try:
        watching = True
        while watching and process.poll() is None and time.monotonic() < deadline:
            watching = not any([watch(pid) for pid in _children(process.pid)])
            time.sleep(0.002)
        stdout, stderr = process.communicate(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        pytest.fail(f"{failing()}: {stderr}")
    finally:
        if process.poll() is None:
            process.kill()
    return process.returncode, stdout, stderr


@pytest.mark.skipif(not Path("/proc").exists(), reason="finds the decoding worker and its open files in /proc")
def test_a_decoding_worker_killed_by_the_kernel_costs_its_file_one_retry_then_an_error_row(tmp_path, trained_run,
                                                                                          inputs):
    """Issue 68: its one decoding worker sent SIGKILL (what the OOM killer does), the scan hung for ever (the
    worker a zombie, nothing printed). Now: the worker is killed while reading `once.wav` (once) and `twice.wav`
    (each time it is read): `once.wav` is read again and classified, `twice.wav` gets an errors row saying the worker
    was killed, every other file is classified, nothing twice, exit status 1 (a file failed)."""
    out = tmp_path / "scan"
    wanted, killed = {"once.wav": 1, "twice.wav": 2}, {}  # killed: worker pid -> the file it was reading

    def kill_while_reading(pid: int) -> bool:
        for name in (open_names(pid) & set(wanted)) if pid not in killed else ():
            if list(killed.values()).count(name) < wanted[name]:
                os.kill(pid, signal.SIGKILL)
                killed[pid] = name
        return False  # every worker is watched to the end

    returncode, stdout, stderr = _watched(
        _scan_command(trained_run.checkpoint, inputs, out=out), kill_while_reading, deadline_s=DEADLINE_S,
        failing=lambda: f"the scan did not end within {DEADLINE_S} s after its worker was killed ({killed})")
    assert sorted(killed.values()) == ["once.wav", "twice.wav", "twice.wav"], "a worker was not seen reading"
    assert returncode == 1, stderr
    assert stdout.splitlines()[-1].startswith("26 files") and "; 1 failed" in stdout.splitlines()[-1]
    errors = _table(out, "errors")
    assert errors.file.tolist() == [str(inputs / "twice.wav")]
    assert "the decoding worker was killed (signal 9, SIGKILL, maybe out of memory) while reading it, twice" in \
        errors.error[0]
    files = _table(out, "files")
    assert files.file.is_unique and sorted(files.file) == sorted(str(p) for p in inputs.glob("*.wav")
                                                                 if p.name != "twice.wav")
    windows = _table(out, "windows")
    assert str(inputs / "twice.wav") not in set(windows.file)
    alone = tmp_path / "alone"  # the file read twice has the rows of a run that read it once: none twice
    envsound.scan(trained_run.checkpoint, [inputs / "once.wav"], out=alone,
                  options=envsound.ScanOptions(workers=1, precision="32", progress=False))
    mine = windows[windows.file == str(inputs / "once.wav")].reset_index(drop=True)
    assert len(mine) > 500 and mine.start.is_unique and mine.equals(_table(alone, "windows"))
    assert files[files.file == str(inputs / "once.wav")].reset_index(drop=True).equals(_table(alone, "files"))


def _without_root_override(command: list[str], probe: Path) -> list[str]:
    """``command`` as root without the capabilities that let it read any file (or as it is, for another user);
    skips the test where setpriv is missing or cannot drop them."""
    if os.geteuid() != 0:
        return command
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("runs as root, and setpriv (util-linux) is missing to drop root's override of file permissions")
    drop = [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-dac_override,-dac_read_search"]
    check = subprocess.run(drop + [sys.executable, "-c", f"open({str(probe)!r}, 'rb')"], capture_output=True,
                           text=True)
    if "PermissionError" not in check.stderr:
        pytest.skip(f"setpriv could not drop root's override of file permissions ({check.stderr.strip()[-200:]!r})")
    return drop + command


def test_a_file_the_user_may_not_read_is_an_error_row_that_says_permission_denied(tmp_path, trained_run, inputs):
    """Issue 68: a mode-000 file gave "not a readable audio file (System error.) ... re-download or remove it"."""
    folder = tmp_path / "recordings"
    folder.mkdir()
    for name in ("clip00.wav", "clip01.wav", "locked.wav"):
        shutil.copy(inputs / name.replace("locked", "clip02"), folder / name)
    (folder / "locked.wav").chmod(0)
    out = tmp_path / "scan"
    command = _without_root_override(_scan_command(trained_run.checkpoint, folder, out=out), folder / "locked.wav")
    ran = subprocess.run(command, capture_output=True, text=True, timeout=DEADLINE_S)
    assert ran.returncode == 1, ran.stderr
    errors = _table(out, "errors")
    assert errors.file.tolist() == [str(folder / "locked.wav")]
    assert "locked.wav: permission denied" in errors.error[0] and "re-download" not in errors.error[0]
    assert sorted(_table(out, "files").file) == [str(folder / "clip00.wav"), str(folder / "clip01.wav")]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are a POSIX thing")
def test_a_named_pipe_among_the_recordings_is_an_error_row_that_says_so(tmp_path, trained_run, inputs):
    """Issue 68: a FIFO named like audio was "file is empty (0 bytes); re-download or remove it"; it is never opened
    (that would wait for a writer for ever)."""
    folder = tmp_path / "recordings"
    folder.mkdir()
    shutil.copy(inputs / "clip00.wav", folder / "clip00.wav")
    os.mkfifo(folder / "pipe.wav")
    summary = envsound.scan(trained_run.checkpoint, folder, out=tmp_path / "scan",
                            options=envsound.ScanOptions(workers=1, progress=False))
    assert (summary.files, summary.failed) == (2, 1)
    errors = _table(tmp_path / "scan", "errors")
    assert errors.file.tolist() == [str(folder / "pipe.wav")]
    assert "pipe.wav: is a named pipe (FIFO), not a regular file" in errors.error[0]


@pytest.mark.skipif(not Path("/proc").exists(), reason="finds the decoding worker and its open files in /proc")
def test_a_read_that_never_returns_is_an_error_row_after_the_file_timeout_and_the_scan_goes_on(tmp_path, trained_run,
                                                                                             inputs):
    """Issue 68: a read that never returns (a stalled network mount) held its decoding worker, and so the scan, for
    ever. The stand-in for the stalled read: the worker is stopped (SIGSTOP) while it has `stalled.wav` open; seen
    from the scan this is what a worker stuck in `read` on a hung mount is (no message, no CPU time, no bytes read),
    and it needs neither root, FUSE nor a hook in the library. With `--file-timeout 2` the worker is ended after
    2 s without progress, `stalled.wav` is one errors row saying so (not retried), every other file is classified,
    exit status 1."""
    folder = tmp_path / "recordings"
    folder.mkdir()
    for name in ("clip00.wav", "clip01.wav", "clip02.wav"):
        shutil.copy(inputs / name, folder / name)
    shutil.copy(inputs / "once.wav", folder / "stalled.wav")  # 5 minutes: long enough to be caught reading
    out = tmp_path / "scan"
    deadline_s = 120
    stopped: list[int] = []

    def stop_while_reading(pid: int) -> bool:
        if stopped or "stalled.wav" not in open_names(pid):
            return bool(stopped)
        os.kill(pid, signal.SIGSTOP)
        stopped.append(pid)
        return True

    try:
        returncode, stdout, stderr = _watched(
            _scan_command(trained_run.checkpoint, folder, out=out) + ["--file-timeout", "2"], stop_while_reading,
            deadline_s=deadline_s,
            failing=lambda: f"the scan did not end within {deadline_s} s with its worker stuck on stalled.wav")
    finally:
        for pid in stopped:  # ended by the scan; should it not be, it must not stay stopped
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert len(stopped) == 1, "the worker was not seen reading stalled.wav"
    assert returncode == 1, stderr
    assert stdout.splitlines()[-1].startswith("4 files") and "; 1 failed" in stdout.splitlines()[-1]
    errors = _table(out, "errors")
    assert errors.file.tolist() == [str(folder / "stalled.wav")]
    assert "stalled.wav: no data for 2 s while reading it (a stalled mount?)" in errors.error[0]
    assert sorted(_table(out, "files").file) == [str(folder / f"clip0{i}.wav") for i in range(3)]
    assert str(folder / "stalled.wav") not in set(_table(out, "windows").file)


def test_a_long_file_that_keeps_being_read_never_trips_the_file_timeout(tmp_path, trained_run, inputs):
    """The timeout counts time without progress, not a file's length: two 5-minute recordings, each read for
    longer than a 1-s `file_timeout` (about 2 s each on a 2-core CPU), are classified as with no limit."""
    options = envsound.ScanOptions(workers=1, precision="32", progress=False)
    summary = envsound.scan(trained_run.checkpoint, [inputs / "once.wav", inputs / "twice.wav"], out=tmp_path / "a",
                            options=replace(options, file_timeout=1.0))
    assert (summary.files, summary.failed) == (2, 0)
    envsound.scan(trained_run.checkpoint, [inputs / "once.wav", inputs / "twice.wav"], out=tmp_path / "b",
                  options=replace(options, file_timeout=None))
    assert _table(tmp_path / "a", "windows").equals(_table(tmp_path / "b", "windows"))


@contextlib.contextmanager
def _open_blocks(path: Path):
    """:func:`stalls.open_blocks` (a write lease: any other process's ``open`` of ``path`` blocks while ``stat``
    works), skipping the test where the kernel or file system grants no lease, or breaks one too soon."""
    with contextlib.suppress(OSError, ValueError):
        if int(Path("/proc/sys/fs/lease-break-time").read_text()) < 30:
            pytest.skip("/proc/sys/fs/lease-break-time is under 30 s: an open would not block long enough")
    pytest.importorskip("fcntl")
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(open_blocks(path))
        except NoLease as exc:
            pytest.skip(str(exc))
        yield


@pytest.mark.parametrize("engine", ["local", "ray"])
def test_a_file_whose_open_never_returns_is_an_error_row_after_the_file_timeout_on_either_engine(
        request, tmp_path, trained_run, inputs, engine):
    """Issue 68: under `--engine ray` a read that never returns held its decoding task, and so the run, for ever
    (`--file-timeout` was the local engine's only). The stall here is the kernel's own: a write lease held by the
    test makes the scan's `open` of `stalled.wav` block for 45 s (the lease-break time). With `--file-timeout 2`
    either engine gives `stalled.wav` one errors row saying so, well before the 45 s (read, it would be classified),
    classifies every other file and exits 1."""
    folder = tmp_path / "recordings"
    folder.mkdir()
    for name in ("clip00.wav", "clip01.wav", "clip02.wav"):
        shutil.copy(inputs / name, folder / name)
    shutil.copy(inputs / "clip03.wav", folder / "stalled.wav")
    out = tmp_path / "scan"
    command = _scan_command(trained_run.checkpoint, folder, out=out) + ["--file-timeout", "2"]
    if engine == "ray":
        command += ["--engine", "ray", "--address", request.getfixturevalue("ray_cluster").address]
    with _open_blocks(folder / "stalled.wav"):
        ran = subprocess.run(command, capture_output=True, text=True, timeout=DEADLINE_S)
    assert ran.returncode == 1, ran.stderr
    assert ran.stdout.splitlines()[-1].startswith("4 files") and "; 1 failed" in ran.stdout.splitlines()[-1]
    errors = _table(out, "errors")
    assert errors.file.tolist() == [str(folder / "stalled.wav")]
    assert f"{folder / 'stalled.wav'}: no data for 2 s while reading it (a stalled mount?)" in errors.error[0]
    assert sorted(_table(out, "files").file) == [str(folder / f"clip0{i}.wav") for i in range(3)]
