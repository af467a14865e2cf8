"""A frame model (``--preset sed``) exported to ONNX: export time, file size, agreement with the checkpoint, and the
time to find a mixture's events through either.

    ENVSOUND_MODELS=DIR .venv/bin/python benchmarks/bench_onnx_frames.py \
        --model experiments/out/sed-esc10/frames-skips/fold_1/model.ckpt \
        --clips 'experiments/out/sed-esc10/mix/train_curated/curated_f1_*.wav'

Exports ``--model`` (``export_onnx``, timed once), runs ``parity_check`` (window and frame probabilities on 3 s of
noise), then ``predict --events`` of every clip of ``--clips`` (the model's test fold) through the checkpoint (torch,
fp32, CPU) and through the ``.onnx`` file (onnxruntime): how many clips get the same events (label, onset, offset),
the largest score difference, and the median time a clip through each (after one warm-up clip).
"""

from __future__ import annotations

import argparse
import glob
import json
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

from envsound.hardware import describe_machine
from envsound.inference.onnx_export import export_onnx, parity_check
from envsound.inference.predictor import Predictor


def events(predictor: Predictor, clip: str) -> tuple[list, float]:
    start = time.perf_counter()
    found = predictor.predict_file(clip, events=True).events
    return found, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a frame model's model.ckpt")
    parser.add_argument("--clips", required=True, help="a glob of audio files (quoted)")
    args = parser.parse_args()
    clips = sorted(glob.glob(args.clips))
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "model.onnx"
        start = time.perf_counter()
        export_onnx(args.model, onnx_path)
        export_seconds = time.perf_counter() - start
        parity = parity_check(args.model, onnx_path)
        torch_model = Predictor.from_checkpoint(args.model, device="cpu", precision="32")
        onnx_model = Predictor.from_checkpoint(onnx_path)
        events(torch_model, clips[0]), events(onnx_model, clips[0])  # warm-up
        same, worst, times = 0, 0.0, {"torch": [], "onnx": []}
        for clip in clips:
            want, torch_seconds = events(torch_model, clip)
            got, onnx_seconds = events(onnx_model, clip)
            times["torch"].append(torch_seconds)
            times["onnx"].append(onnx_seconds)
            same += [(e["label"], e["onset"], e["offset"]) for e in want] == \
                [(e["label"], e["onset"], e["offset"]) for e in got]
            if len(want) == len(got):
                worst = max([worst, *[abs(a["score"] - b["score"]) for a, b in zip(want, got)]])
        result = {
            "model": args.model, "clips": len(clips), "export_seconds": round(export_seconds, 1),
            "onnx_megabytes": round(onnx_path.stat().st_size / 1e6, 1), "parity_max_difference": parity,
            "clips_with_identical_events": same, "largest_event_score_difference": worst,
            "median_seconds_a_clip": {name: round(float(np.median(values)), 3) for name, values in times.items()},
            "machine": describe_machine(), "date": date.today().isoformat(),
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
