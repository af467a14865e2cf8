"""How the review of a fleet's detections scales with the events a store holds (issue 78): the Detections view's
next events (newest first, and each sensor's random sample), the precision table Monitor reads every 30 s, and one
verdict, on a store of N events with their sound kept.

    .venv/bin/python benchmarks/bench_fleet_review.py [--events 200000] [--sensors 100] [--labels 10]
        [--verdicts 2000] [--store sqlite|postgresql]

The events are real rows of a real store (``Store.add_report``, as sensors report them, 500 a report), their
snippet columns set as an upload sets them (no audio files: the review reads the store only). The verdicts are
given through ``FleetReview.answer`` on the first events of each sensor's random sample of one label (so the
precision has runs to count), the rest on random events. Each call is timed 5 times after one warm-up; the median
is printed. One JSON line at the end.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_deploy import _cpu, store_spec  # noqa: E402 (the deployment benchmarks' store and CPU name)

from envsound.agile.fleet_review import Filters, FleetReview  # noqa: E402
from envsound.deploy import schema  # noqa: E402
from envsound.deploy.store import Detection, Store  # noqa: E402


def fill(store: Store, *, events: int, sensors: int, labels: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    start = datetime(2026, 11, 1, tzinfo=timezone.utc)
    per_report = 500
    for first in range(0, events, per_report):
        sensor = f"s{(first // per_report) % sensors:03d}"
        batch = []
        for i in range(first, min(first + per_report, events)):
            onset = start + timedelta(seconds=float(i * 3))
            batch.append(Detection(str(uuid.UUID(bytes=rng.bytes(16), version=4)), f"label{rng.integers(labels)}",
                                   onset, onset + timedelta(seconds=2), float(rng.uniform(0.5, 1.0))))
        store.add_report(sensor, batch)
    with store.engine.begin() as connection:  # as an upload leaves them: their sound kept
        connection.execute(sa.update(schema.events).values(snippet_bytes=31_000, snippet_type="audio/ogg",
                                                           snippet_start=-0.5))


def timed(call, repeats: int = 5) -> float:
    call()
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        call()
        times.append(time.perf_counter() - began)
    return round(statistics.median(times), 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--sensors", type=int, default=100)
    parser.add_argument("--labels", type=int, default=10)
    parser.add_argument("--verdicts", type=int, default=2_000)
    parser.add_argument("--store", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="envsound-bench-review-") as scratch:
        spec, postgres = store_spec(args.store, Path(scratch), "review")
        try:
            store = Store.open(spec)
            began = time.perf_counter()
            fill(store, events=args.events, sensors=args.sensors, labels=args.labels)
            filled = time.perf_counter() - began
            review = FleetReview(store, Path(scratch) / "fleet")
            rng = np.random.default_rng(1)
            given = 0
            for sensor in (f"s{i:03d}" for i in range(args.sensors)):  # each sensor's sample of label0, in order
                drawn, _ = review.candidates(Filters(sensor=sensor, label="label0"), sample=True, k=10)
                for item in drawn:
                    review.answer(item["event"], "yes" if rng.random() < 0.9 else "no", reviewer="ann")
                    given += 1
                if given >= args.verdicts // 2:
                    break
            ids = rng.choice(np.arange(1, args.events + 1), args.verdicts - given, replace=False)
            for event in ids.tolist():
                review.answer(int(event), "yes", reviewer="bob")
            figures = {
                "candidates_newest_s": timed(lambda: review.candidates(k=10)),
                "candidates_sample_s": timed(lambda: review.candidates(sample=True, k=10)),
                "candidates_one_sensor_label_sample_s": timed(
                    lambda: review.candidates(Filters(sensor="s001", label="label0"), sample=True, k=10)),
                "precision_all_s": timed(lambda: review.precision()),
                "precision_one_sensor_s": timed(lambda: review.precision(Filters(sensor="s001"))),
                "answer_s": timed(lambda: review.answer(1, "yes", reviewer="carl")),
            }
            result = {"store": args.store, "events": args.events, "sensors": args.sensors, "labels": args.labels,
                      "verdicts": args.verdicts, "fill_s": round(filled, 1), **figures, "cpu": _cpu(),
                      "date": date.today().isoformat()}
            store.close()
        finally:
            if postgres is not None:
                postgres.__exit__(None, None, None)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
