"""How much of each labelled event in an ``envsound mix`` set can be heard: the part of its onset and offset the
strong labels place where the event is still below the background.

    .venv/bin/python experiments/sed_esc10_audible.py --root ../shared/data/esc50 --mix experiments/out/sed-esc10/mix

An event's extent in ``strong_labels.csv`` is its source clip trimmed at ``trim_top_db`` (40 dB) below its loudest
20 ms; the clip is mixed at ``snr_db`` (its RMS over that extent against the background's). Each curated event's
clip is decoded and trimmed as ``envsound mix`` did, cut into 20-ms frames, and a frame is audible where its RMS is
above the background's (local SNR > 0 dB). Prints the quantiles of the inaudible lead-in (labelled onset -> first
audible frame) and tail, and the share of events whose lead-in exceeds the event-F1 onset collar (200 ms) or whose
tail exceeds the offset tolerance (200 ms or 20 % of the event): a detector that finds exactly what can be heard
misses those.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from envsound.audio.load import load_audio
from envsound.data.mixtures import trim_silence

FRAME_SECONDS = 0.02


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, required=True, help="the ESC-50 folder the mixtures were made from")
    parser.add_argument("--mix", type=Path, required=True, help="the envsound mix folder")
    args = parser.parse_args()
    settings = json.loads((args.mix / "mix.json").read_text())["settings"]
    rate, top_db = settings["sample_rate"], settings["trim_top_db"]
    sources = {path.name: path for path in args.root.rglob("*") if path.suffix in (".wav", ".flac", ".ogg")}
    with open(args.mix / "strong_labels.csv", newline="", encoding="utf-8") as f:
        rows = [row for row in csv.DictReader(f) if row["subset"] == "curated"]
    lead, tail, length = [], [], []
    frame = int(FRAME_SECONDS * rate)
    for row in rows:
        wave = load_audio(sources[row["source_clip"]], sample_rate=rate)
        start, stop = trim_silence(wave, sample_rate=rate, top_db=top_db)
        event = wave[start:stop]
        background = np.sqrt(np.mean(event ** 2)) * 10 ** (-float(row["snr_db"]) / 20)
        n = len(event) // frame
        audible = np.flatnonzero(np.sqrt(np.mean(event[:n * frame].reshape(n, frame) ** 2, axis=1)) > background)
        lead.append(audible[0] * FRAME_SECONDS if len(audible) else np.nan)
        tail.append((n - 1 - audible[-1]) * FRAME_SECONDS if len(audible) else np.nan)
        length.append(len(event) / rate)
    lead, tail, length = np.array(lead), np.array(tail), np.array(length)
    heard = ~np.isnan(lead)
    print(f"{len(rows)} curated events, {np.sum(~heard)} never above the background")
    for name, values in (("lead-in", lead[heard]), ("tail", tail[heard])):
        q = np.quantile(values, [0.5, 0.75, 0.9])
        print(f"inaudible {name}: median {q[0]:.2f} s, 75 % {q[1]:.2f} s, 90 % {q[2]:.2f} s")
    late = lead[heard] > 0.2
    early = tail[heard] > np.maximum(0.2, 0.2 * length[heard])
    print(f"lead-in > 200 ms: {late.mean():.1%}; tail > the offset tolerance: {early.mean():.1%}; "
          f"either: {(late | early).mean():.1%}")


if __name__ == "__main__":
    main()
