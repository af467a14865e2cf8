"""The archive scan under faults (issue 68): what each fault costs a run, in rows and in time to recover.

    .venv/bin/python benchmarks/bench_scan_faults.py --checkpoint runs/demo/model/model.ckpt \
        --audio ../shared/data/esc50/audio [--clips 686] [--only kill,stall,stall-ray,term,disk]

The archive: the first ``--clips`` files of the folder (hard links) and one 5-minute WAV made of them (long enough for
a decoding worker to be caught reading it). Each run is `envsound predict CHECKPOINT ARCHIVE --out DIR --workers 1
--precision 32 --quiet` in a process of its own, against one uninterrupted run of the same command (the reference);
after each fault the results folder is compared with the reference's: files and windows rows lost (in the reference,
not here), rows twice (a file, or a file's window start, more than once).

- kill: the decoding worker sent SIGKILL while it reads the long file (what the out-of-memory killer does); recovery
  is the time from the kill to a new worker reading that file again.
- stall: the worker stopped (SIGSTOP: a read that never returns, as on a stalled mount) while it reads the long file,
  ``--file-timeout 5``; recovery is the time from the stop to the stopped worker being ended by the scan (the long
  file is then an errors row, not a loss: it is listed apart).
- stall-ray: the same under ``--engine ray`` (a Ray instance started for the run): the long file held by a write
  lease of this process, so that the scan's ``open`` of it blocks for /proc/sys/fs/lease-break-time (45 s), and
  ``--file-timeout 5``; then the same command without the lease, for the time the stall cost.
- term: SIGTERM once the first part is committed; recovery is the time from the signal to the exit (the finished
  files committed on the way out), then the same command goes on; work redone = files classified twice over the
  two runs.
- disk: the results on an 8 MB tmpfs (needs root to mount) with half the reference's bytes free (and 64 KB for the
  journal to start): the time from the
  start to the one-line stop, then space freed and the same command run: its time and the rows.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from support.stalls import open_blocks, open_names  # the fault tests' stand-ins

ENVSOUND = [sys.executable, "-m", "envsound"]


def children(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def table(out: Path, name: str) -> pd.DataFrame:
    if not (out / name).exists():
        return pd.DataFrame({"file": [], "start": []})
    return pd.read_parquet(out / name)


def compare(out: Path, reference: Path, *, apart: set[str] = frozenset()) -> dict:
    """Rows of ``reference`` missing from ``out`` and rows of ``out`` there twice (files and windows); ``apart``:
    files expected in errors/ instead."""
    result = {}
    for name, key in (("files", ["file"]), ("windows", ["file", "start"])):
        ours, theirs = table(out, name), table(reference, name)
        theirs = theirs[~theirs.file.isin(apart)]
        have = set(map(tuple, ours[key].astype(str).values))
        result[f"{name} lost"] = sum(tuple(row) not in have for row in theirs[key].astype(str).values)
        result[f"{name} twice"] = int(ours.duplicated(key).sum())
    errors = table(out, "errors")
    result["errors rows"] = sorted(Path(f).name for f in errors.file)
    return result


def command(checkpoint: str, archive: Path, out: Path, *extra: str) -> list[str]:
    return [*ENVSOUND, "predict", checkpoint, str(archive), "--out", str(out), "--workers", "1", "--precision", "32",
            "--quiet", *extra]


def watched(argv: list[str], watch) -> tuple[int, float]:
    """Run ``argv`` calling ``watch(process, worker pids)`` every 2 ms until it ends; -> (exit status, seconds)."""
    began = time.monotonic()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    while process.poll() is None:
        watch(process, children(process.pid))
        time.sleep(0.002)
    process.communicate()
    return process.returncode, time.monotonic() - began


def worker_on_long(workers: list[int]) -> int | None:
    return next((pid for pid in workers if "long.wav" in open_names(pid)), None)


def fault_kill(checkpoint, archive, work, reference) -> dict:
    seen: dict = {}

    def watch(process, workers):
        pid = worker_on_long(workers)
        if "killed" not in seen and pid is not None:
            os.kill(pid, signal.SIGKILL)
            seen["killed"], seen["at"] = pid, time.monotonic()
        elif "killed" in seen and "again" not in seen and pid is not None and pid != seen["killed"]:
            seen["again"] = time.monotonic() - seen["at"]

    code, took = watched(command(checkpoint, archive, work / "kill"), watch)
    return {"exit": code, "seconds": round(took, 1), "recovery s": round(seen.get("again", float("nan")), 3),
            **compare(work / "kill", reference)}


def fault_stall(checkpoint, archive, work, reference) -> dict:
    seen: dict = {}

    def watch(process, workers):
        pid = worker_on_long(workers)
        if "stopped" not in seen and pid is not None:
            os.kill(pid, signal.SIGSTOP)
            seen["stopped"], seen["at"] = pid, time.monotonic()
        elif "stopped" in seen and "ended" not in seen and seen["stopped"] not in workers:
            seen["ended"] = time.monotonic() - seen["at"]

    try:
        code, took = watched(command(checkpoint, archive, work / "stall", "--file-timeout", "5"), watch)
    finally:
        if "stopped" in seen:
            try:
                os.kill(seen["stopped"], signal.SIGKILL)
            except ProcessLookupError:
                pass
    return {"exit": code, "seconds": round(took, 1), "recovery s": round(seen.get("ended", float("nan")), 3),
            **compare(work / "stall", reference, apart={str(archive / "long.wav")})}


def fault_term(checkpoint, archive, work, reference) -> dict:
    seen: dict = {}
    out = work / "term"

    def watch(process, workers):
        if "at" not in seen and list((out / "files").glob("part-*.parquet")):
            time.sleep(0.5)  # some files finished after the part, not yet committed
            process.send_signal(signal.SIGTERM)
            seen["at"] = time.monotonic()

    began = time.monotonic()
    code, _ = watched(command(checkpoint, archive, out), watch)
    stopped = time.monotonic() - seen["at"]
    first = len(table(out, "files")) + len(table(out, "errors"))
    again = time.monotonic()
    resumed = subprocess.run(command(checkpoint, archive, out), capture_output=True, text=True)
    return {"exit": code, "seconds to the signal": round(seen["at"] - began, 1), "recovery s": round(stopped, 3),
            "committed": first, "resumed exit": resumed.returncode, "resumed s": round(time.monotonic() - again, 1),
            **compare(out, reference)}


def fault_disk(checkpoint, archive, work, reference) -> dict:
    disk = work / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(disk)], capture_output=True).returncode:
        return {"skipped": "could not mount a tmpfs (not root?)"}
    try:
        size = sum(-(-p.stat().st_size // 4096) * 4096 for p in reference.rglob("*") if p.is_file())
        filler = disk / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.posix_fallocate(fd, 0, shutil.disk_usage(disk).free - size // 2 - 64 * 1024)
        finally:
            os.close(fd)
        out = disk / "scan"
        began = time.monotonic()
        full = subprocess.run(command(checkpoint, archive, out), capture_output=True, text=True)
        stop_s = time.monotonic() - began
        committed = len(table(out, "files")) + len(table(out, "errors"))
        filler.unlink()
        began = time.monotonic()
        again = subprocess.run(command(checkpoint, archive, out), capture_output=True, text=True)
        return {"exit": full.returncode, "stderr": full.stderr.strip()[-300:], "seconds to the stop": round(stop_s, 1),
                "committed": committed, "resumed exit": again.returncode,
                "resumed s": round(time.monotonic() - began, 1), **compare(out, reference)}
    finally:
        subprocess.run(["umount", "--lazy", str(disk)], check=False)


def fault_stall_ray(checkpoint, archive, work, reference) -> dict:
    ray = ["--engine", "ray", "--file-timeout", "5"]
    with open_blocks(archive / "long.wav"):
        began = time.monotonic()
        code = subprocess.run(command(checkpoint, archive, work / "stall-ray", *ray)).returncode
        took = time.monotonic() - began
    began = time.monotonic()
    subprocess.run(command(checkpoint, archive, work / "ray", *ray), check=True)
    return {"exit": code, "seconds": round(took, 1), "without the lease s": round(time.monotonic() - began, 1),
            **compare(work / "stall-ray", reference, apart={str(archive / "long.wav")})}


FAULTS = {"kill": fault_kill, "stall": fault_stall, "stall-ray": fault_stall_ray, "term": fault_term,
          "disk": fault_disk}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--audio", required=True, help="a folder of audio clips (e.g. ESC-50's audio/)")
    parser.add_argument("--clips", type=int, default=686)
    parser.add_argument("--only", default=",".join(FAULTS))
    args = parser.parse_args()
    print(f"{date.today()}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores, python "
          f"{platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        archive = work / "archive"
        archive.mkdir()
        clips = sorted(p for p in Path(args.audio).iterdir() if p.suffix in {".wav", ".flac"})[:args.clips]
        for clip in clips:
            os.link(clip, archive / clip.name)
        waves = [sf.read(c, dtype="float32", always_2d=True)[0].mean(axis=1) for c in clips[:60]]
        rate = sf.info(clips[0]).samplerate
        long = np.tile(np.concatenate(waves), 1 + 300 * rate // sum(map(len, waves)))[:300 * rate]
        sf.write(archive / "long.wav", long, rate, subtype="PCM_16")
        began = time.monotonic()
        subprocess.run(command(args.checkpoint, archive, work / "reference"), check=True)
        print(f"reference: {len(clips) + 1} files, {time.monotonic() - began:.1f} s uninterrupted")
        for name in args.only.split(","):
            print(name, FAULTS[name](args.checkpoint, archive, work, work / "reference"), flush=True)


if __name__ == "__main__":
    main()
