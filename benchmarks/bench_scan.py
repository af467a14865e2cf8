"""Archives: the whole `envsound predict MODEL INPUTS --out DIR` against the pipeline's limit measured in the same run.

    .venv/bin/python benchmarks/bench_scan.py --checkpoint runs/esc10-mn04/model.ckpt \
        --audio ../shared/data/esc50/audio [--copies 10] [--hours 10] [--list-lines 10000000] \
        [--only a,b,c,d,resume,list,ray]

The limit: the bare network's best batched throughput on log-mels already computed (all cores, the runtime the scan
itself chooses, batch 16 and 64), and the plain cost of decoding, resampling and log-mel on one core (one thread),
spread over every core: in x real time, cores / (cores x windows a second of audio / network rate + decode seconds
a second of audio). Archives: (a) the folder given, (b) its files ``--copies`` times under other names (hard links),
(c) ``--hours`` of 1-hour FLAC files made of its clips, (d) one FLAC file of ``--hours``, end to end. Each run is a
fresh `envsound predict` process; wall time, x real time, and the peak memory of the process tree (the scan and its
workers: their proportional set sizes summed, sampled every 0.1 s). Start-up is the same command run again on the
finished folder (it lists the inputs, finds every file done and does nothing). The resume: (b) killed with SIGKILL at
half way, then the same command, against an uninterrupted run; identical results. The list: ``--list-lines`` paths
(the folder's names repeated) through ``--files-from``: peak memory. Ray: the folder through a two-node local Ray
cluster (half the cores each) against the local engine, in fp32.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import soundfile as sf

ENVSOUND = [sys.executable, "-m", "envsound"]


def tree_pss_mb(pid: int) -> float:
    """Memory of ``pid`` and its children, MiB: the sum of their proportional set sizes (/proc/PID/smaps_rollup), so
    the pages a forked worker shares with the scan are counted once, not once per process as RSS would."""
    total, pids = 0, {pid}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                pids.add(int(stat.parent.name))
        except (OSError, ValueError):
            continue
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total / 2**20


def run(command: list[str], *, kill_when=None) -> dict:
    """Run ``command``, sampling the tree's memory; ``kill_when()`` true -> SIGKILL. Wall s, peak MiB, stdout."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0.0
    while process.poll() is None:
        peak = max(peak, tree_pss_mb(process.pid))
        if kill_when is not None and kill_when():
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.1)
    out, err = process.communicate()
    return {"wall_s": time.perf_counter() - started, "peak_mb": peak, "stdout": out.strip(), "rc": process.returncode,
            "stderr_tail": err.strip().splitlines()[-3:] if err.strip() else []}


def pipeline_limit(checkpoint: str, files: list[str]) -> dict:
    import torch

    from envsound.features.parallel import frontend_for
    from envsound.inference.archive.decode import DecodeJob, decode_file
    from envsound.inference.predictor import Predictor

    predictor = Predictor.from_checkpoint(checkpoint)
    job = DecodeJob.of(predictor)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    frontend = frontend_for(predictor.features)
    sample = files[:200]
    started = time.perf_counter()
    windows = [chunk[2] for path in sample for _, chunk in decode_file(job, path, frontend)]
    decode_s = (time.perf_counter() - started) / len(sample)
    torch.set_num_threads(threads)
    batch = np.concatenate(windows)
    rates = {}
    for size in (16, 64):
        predictor.model.batch_size = size
        predictor.model.window_probs(batch[:size])
        started = time.perf_counter()
        predictor.model.window_probs(batch)
        rates[size] = len(batch) / (time.perf_counter() - started)
    cores = len(os.sched_getaffinity(0))
    network = max(rates.values())  # windows/s on every core; one window a 5-s clip for mn04 on ESC-50
    clip_s = sum(sf.info(path).duration for path in sample) / len(sample)
    per_clip_windows = len(batch) / len(sample)
    limit = cores / (cores * per_clip_windows / network + decode_s)
    return {"runtime": predictor.model.runtime.describe(), "cores": cores,
            "decode_ms_per_clip_one_core": decode_s * 1e3,
            "decode_ms_per_audio_s_one_core": decode_s / clip_s * 1e3, "network_windows_per_s_best": network,
            "network_windows_per_s": {str(k): round(v, 1) for k, v in rates.items()},
            "limit_clips_per_s": limit}


def limit_x_real_time(limit: dict, windows_per_audio_s: float) -> float:
    """The pipeline's limit in x real time for an archive whose audio has ``windows_per_audio_s`` windows a second
    (a long file: one every eval hop; a clip as long as a window: one): decoding spread over the cores, plus the
    network's core-time per window."""
    cores = limit["cores"]
    return cores / (cores * windows_per_audio_s / limit["network_windows_per_s_best"]
                    + limit["decode_ms_per_audio_s_one_core"] / 1e3)


def scan_command(checkpoint: str, inputs: list[str], out: Path, extra=()) -> list[str]:
    return [*ENVSOUND, "predict", checkpoint, *inputs, "--out", str(out), "--quiet", *extra]


def measure(name: str, checkpoint: str, inputs: list[str], out: Path, audio_s: float, files: int,
            limit: dict) -> dict:
    first = run(scan_command(checkpoint, inputs, out))
    again = run(scan_command(checkpoint, inputs, out))
    row = {"archive": name, "files": files, "audio_h": audio_s / 3600, "wall_s": first["wall_s"],
           "x_real_time": audio_s / first["wall_s"], "clips_per_s": files / first["wall_s"],
           "peak_mb": first["peak_mb"], "startup_and_listing_s": again["wall_s"], "line": first["stdout"],
           "again": again["stdout"] or again["stderr_tail"]}
    scan_s = first["wall_s"] - again["wall_s"]
    row["x_real_time_after_startup"] = audio_s / scan_s
    import pyarrow.parquet as pq

    windows = pq.read_table(out / "windows", columns=["start"]).num_rows
    row["limit_x_real_time"] = bound = limit_x_real_time(limit, windows / audio_s)
    row["whole_vs_limit"] = row["x_real_time"] / bound
    row["after_startup_vs_limit"] = row["x_real_time_after_startup"] / bound
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--audio", required=True, help="a folder of audio clips")
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--hours", type=int, default=10)
    parser.add_argument("--list-lines", type=int, default=10_000_000)
    parser.add_argument("--only", default="a,b,c,d,resume,list,ray")
    args = parser.parse_args()
    only = set(args.only.split(","))
    files = sorted(glob.glob(os.path.join(args.audio, "*")))
    clip_s = sum(sf.info(f).duration for f in files)
    report = {"date": str(date.today()), "cpu": platform.processor() or platform.machine(),
              "python": platform.python_version()}
    with open("/proc/cpuinfo") as fh:
        report["cpu"] = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
        report["bf16"] = any(flag in Path("/proc/cpuinfo").read_text() for flag in ("avx512_bf16", "amx_bf16"))
    report["limit"] = limit = pipeline_limit(args.checkpoint, files)
    print(json.dumps(report["limit"]), flush=True)
    rows = []
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        work = Path(tmp)
        if "a" in only:
            rows.append(measure("a", args.checkpoint, [args.audio], work / "a", clip_s, len(files), limit))
            print(json.dumps(rows[-1]), flush=True)
        copies = work / "copies"
        if only & {"b", "resume"}:
            for copy in range(args.copies):
                (copies / f"copy{copy}").mkdir(parents=True)
                for f in files:
                    os.link(f, copies / f"copy{copy}" / f"c{copy}-{Path(f).name}")
        if "b" in only:
            rows.append(measure("b", args.checkpoint, [str(copies)], work / "b", clip_s * args.copies,
                                len(files) * args.copies, limit))
            print(json.dumps(rows[-1]), flush=True)
        if "resume" in only:
            report["resume"] = resume(args.checkpoint, copies, work, len(files) * args.copies)
            print(json.dumps(report["resume"]), flush=True)
        if "c" in only:
            long = work / "long"
            write_hours(files, long, args.hours)
            rows.append(measure("c", args.checkpoint, [str(long)], work / "c", args.hours * 3600.0, args.hours,
                                limit))
            print(json.dumps(rows[-1]), flush=True)
        if "d" in only:  # one file of --hours: memory stays bounded by the blocks, whatever the file's length
            one = work / "one"
            write_hours(files, one, args.hours, per_file_hours=args.hours)
            rows.append(measure("d", args.checkpoint, [str(one)], work / "d", args.hours * 3600.0, 1, limit))
            print(json.dumps(rows[-1]), flush=True)
        if "ray" in only:
            report["ray"] = ray_against_local(args.checkpoint, args.audio, work, clip_s, len(files))
            print(json.dumps(report["ray"]), flush=True)
        if "list" in only:
            listing = work / "list.txt"
            with open(listing, "w") as fh:
                for i in range(args.list_lines):
                    fh.write(files[i % len(files)] + "\n")
            result = run([*ENVSOUND, "predict", args.checkpoint, "--files-from", str(listing), "--out",
                          str(work / "list"), "--quiet"])
            report["list"] = {"lines": args.list_lines, "unique": len(files), "wall_s": result["wall_s"],
                              "peak_mb": result["peak_mb"], "line": result["stdout"]}
            print(json.dumps(report["list"]), flush=True)
    report["archives"] = rows
    print(json.dumps(report, indent=1))


def ray_against_local(checkpoint: str, audio: str, work: Path, audio_s: float, files: int) -> dict:
    """The folder through a two-node local Ray cluster (half the cores each) against the local engine, both fp32."""
    import pandas as pd
    import ray
    from ray.cluster_utils import Cluster

    cores = len(os.sched_getaffinity(0))
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": max(1, cores // 2)})
    cluster.add_node(num_cpus=max(1, cores - cores // 2))
    cluster.wait_for_nodes()
    try:
        local = run(scan_command(checkpoint, [audio], work / "local32", ["--precision", "32"]))
        on_ray = run(scan_command(checkpoint, [audio], work / "ray32", ["--precision", "32", "--engine", "ray",
                                                                         "--address", cluster.address]))
    finally:
        ray.shutdown()
        cluster.shutdown()
    mine, theirs = (pd.read_parquet(work / name / "files").sort_values("file").reset_index(drop=True)
                    for name in ("ray32", "local32"))
    return {"local_s": local["wall_s"], "ray_s": on_ray["wall_s"], "ray_over_local": on_ray["wall_s"] / local["wall_s"],
            "ray_x_real_time": audio_s / on_ray["wall_s"], "ray_line": on_ray["stdout"] or on_ray["stderr_tail"],
            "same_labels": bool((mine.label == theirs.label).all()) and len(mine) == len(theirs) == files,
            "max_score_difference": float((mine.score - theirs.score).abs().max())}


def resume(checkpoint: str, copies: Path, work: Path, total: int) -> dict:
    whole = run(scan_command(checkpoint, [str(copies)], work / "whole"))
    out = work / "killed"

    def half_done() -> bool:
        try:
            with sqlite3.connect(f"file:{out / 'journal.sqlite'}?mode=ro", uri=True) as db:
                return db.execute("SELECT COUNT(*) FROM files").fetchone()[0] >= total // 2
        except sqlite3.Error:
            return False

    killed = run(scan_command(checkpoint, [str(copies)], out), kill_when=half_done)
    resumed = run(scan_command(checkpoint, [str(copies)], out))
    import pandas as pd

    def table(folder: Path, name: str):
        frame = pd.read_parquet(folder / name)
        return frame.sort_values(list(frame.columns[:2])).reset_index(drop=True)

    same = all(table(work / "whole", t).equals(table(out, t)) for t in ("files", "windows"))
    return {"uninterrupted_s": whole["wall_s"], "killed_at_s": killed["wall_s"], "killed_rc": killed["rc"],
            "resumed_s": resumed["wall_s"], "resumed_line": resumed["stdout"],
            "total_vs_uninterrupted": (killed["wall_s"] + resumed["wall_s"]) / whole["wall_s"], "identical": same}


def write_hours(files: list[str], folder: Path, hours: int, *, per_file_hours: int = 1) -> None:
    """``hours`` of FLAC in files of ``per_file_hours`` each, the clips one after another (cycled), at their rate."""
    folder.mkdir(parents=True)
    rate = sf.info(files[0]).samplerate
    at = 0
    for number in range(hours // per_file_hours):
        with sf.SoundFile(folder / f"part{number:02d}.flac", "w", samplerate=rate, channels=1, format="FLAC",
                          subtype="PCM_16") as out:
            written, length = 0, 3600 * per_file_hours * rate
            while written < length:
                clip, _ = sf.read(files[at % len(files)], dtype="int16")
                clip = clip[:length - written]
                out.write(clip)
                written += len(clip)
                at += 1


if __name__ == "__main__":
    main()
