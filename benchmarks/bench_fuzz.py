"""Fuzzed input, the long run (issue 68): many examples into each parser of ``support/fuzzcases.py``, counting the
inputs tried and the distinct failures (an exception outside the parser's own errors, or a hang), each kept with
its first input.

    .venv/bin/python benchmarks/bench_fuzz.py [--examples 20000] [--only audio_file,set] [--seed 0] [--keep DIR] \
        [--checkpoint MODEL]

``--checkpoint`` (any model ``serve`` takes) adds the server's parsers: ``report`` (``POST /v1/report`` bodies) and
``hello`` (a ``/v1/listen`` socket's first message), against a real server with tokens over a SQLite store.

The suite runs the same checks with a fixed budget (``tests/test_fuzz.py``); a failure found here is fixed in the
parser and added there as an ``@example``. A failure is "distinct" by its exception type and the place it was raised
(file and line). Prints one JSON object: per parser the inputs tried, the seconds, and the failures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
import traceback
from datetime import date
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import seed as seed_

from support import fuzzcases as fz


def targets(folder: Path, deployed=None) -> dict:
    """name -> (strategy, check taking one drawn input); ``deployed``: a :class:`fuzzcases.Deployment`, for the
    server's parsers."""
    server = {} if deployed is None else {
        "report": (fz.report_bodies(), lambda body: fz.check_report(deployed, body)),
        "hello": (fz.hellos(), lambda message: fz.check_hello(deployed, message)),
    }
    return {
        "audio_file": (fz.audio_inputs, lambda case: fz.check_audio_file(folder, *case)),
        "audio_stream": (fz.audio_inputs, lambda case: fz.check_audio_stream(case[1])),
        "raw_pcm_stream": (fz.raw_pcm, lambda case: fz.check_audio_stream(case[0], rate=case[1], channels=case[2],
                                                                         encoding=case[3])),
        "csv_manifest": (fz.manifests(), lambda data: fz.check_manifest(fz.manifest_folder(folder / "m"), data)),
        "label_map": (fz.label_maps(), lambda data: fz.check_label_map(folder, data)),
        "set": (fz.set_values(), fz.check_set),
        "journal": (fz.journals(), lambda case: fz.check_journal(folder / "out", *case)),
        "results_folder": (fz.results_folders(), lambda case: fz.check_results_folder(folder / "results", *case)),
        **server,
    }


def run(strategy, check, *, examples: int, seed: int, keep: Path | None = None) -> dict:
    tried, failures = 0, {}

    @settings(max_examples=examples, deadline=None, database=None, derandomize=False, phases=["generate"],
              suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def fuzz(case):
        nonlocal tried
        tried += 1
        if keep is not None:  # a crash of the process (a segfault in a decoder) leaves its input here
            keep.mkdir(parents=True, exist_ok=True)
            (keep / "last-input.txt").write_text(f"{case!r}\n")
        try:
            check(case)
        except Exception as exc:  # noqa: BLE001 - counting what escapes, not handling it
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            key = f"{type(exc).__name__} at {Path(frame.filename).name}:{frame.lineno}"
            if key not in failures:
                failures[key] = {"count": 0, "message": str(exc)[:200], "input": repr(case)[:300]}
                if keep is not None:  # the whole input, as a Python literal, for an @example
                    keep.mkdir(parents=True, exist_ok=True)
                    (keep / f"{len(failures)}-{type(exc).__name__}.txt").write_text(f"{key}\n{case!r}\n")
            failures[key]["count"] += 1

    seed_(seed)(fuzz)()
    return {"inputs": tried, "failures": failures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=20_000, help="inputs per parser")
    parser.add_argument("--only", default="", help="comma-separated parsers (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, help="write each distinct failure's whole input into this folder")
    parser.add_argument("--checkpoint", help="a model to serve: adds the server's parsers (report, hello)")
    args = parser.parse_args()
    report = {"date": date.today().isoformat(), "examples": args.examples, "seed": args.seed, "parsers": {}}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        deployed = None
        if args.checkpoint:
            import envsound

            deployed = stack.enter_context(fz.deployment(envsound.load_model(args.checkpoint), Path(tmp)))
        chosen = targets(Path(tmp), deployed)
        for name in (args.only.split(",") if args.only else chosen):
            began = time.perf_counter()
            keep = args.keep / name if args.keep else None
            result = run(*chosen[name], examples=args.examples, seed=args.seed, keep=keep)
            result["seconds"] = round(time.perf_counter() - began, 1)
            report["parsers"][name] = result
            print(json.dumps({name: result}), file=sys.stderr, flush=True)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
