"""Which codec a sensor's snippets use: bytes for a 5-s snippet, encode and decode time, and how far a frozen
network's embedding of the clip moves once encoded and decoded, for FLAC, Ogg Vorbis and Ogg Opus at a few bit rates,
on real ESC-50 clips (5 s each, 44.1 kHz).

    ENVSOUND_MODELS=../shared/pretrained/efficientat .venv/bin/python benchmarks/snippet_codecs.py \\
        [--esc50 ../shared/data/esc50] [--clips 10] [--model efficientat-mn04] [--json]

Each clip is resampled (soxr, as a sensor does) to the codec's rate, encoded by
:func:`envsound.deploy.snippets.encode` (soundfile / libsndfile) and decoded; times are the median over the clips of
the best of 3 runs, one thread. The decoded audio is clipped to [-1, 1] before it is embedded. The embedding change
is ``1 - cos`` between the network's clip embedding of the original and of the decoded audio
(``envsound.inference.embed.embed_inputs``); for scale, ``spread`` is the median ``1 - cos`` between two different
clips of one class.
Skips (exit 0) when the ESC-50 folder is absent.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CODECS = [  # (name, codec, rate Hz, kbit/s or Vorbis quality)
    ("flac-32k", "flac", 32000, None),
    ("vorbis-24k-q0.5", "vorbis", 24000, 0.5),
    ("opus-48k-24kbps", "opus", 48000, 24.0),
    ("opus-48k-32kbps", "opus", 48000, 32.0),
    ("opus-48k-48kbps", "opus", 48000, 48.0),
    ("opus-24k-48kbps", "opus", 24000, 48.0),
    ("opus-48k-64kbps", "opus", 48000, 64.0),
]


def encode_any(samples: np.ndarray, rate: int, codec: str, setting: float | None) -> bytes:
    import io

    import soundfile as sf

    from envsound.deploy.snippets import encode

    if codec == "vorbis":
        out = io.BytesIO()
        sf.write(out, samples, rate, format="OGG", subtype="VORBIS", compression_level=setting)
        return out.getvalue()
    return encode(samples, rate, codec=codec, **({"kbps": setting} if setting else {}))[0]


def best_ms(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return min(times) * 1000


def clips(esc50: Path, count: int) -> list[tuple[Path, str]]:
    """``count`` fold-4 clips, two of each of the first classes in the CSV's order (so the spread has pairs)."""
    with open(esc50 / "meta" / "esc50.csv", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["fold"] == "4"]
    by_class: dict[str, list[Path]] = {}
    for row in rows:
        path = esc50 / "audio" / row["filename"]
        if path.is_file() and len(by_class.setdefault(row["category"], [])) < 2:
            by_class[row["category"]].append(path)
    chosen = [(path, label) for label, paths in by_class.items() if len(paths) == 2 for path in paths]
    return chosen[:count - count % 2]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--esc50", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/esc50")
    parser.add_argument("--clips", type=int, default=10)
    parser.add_argument("--model", default="efficientat-mn04")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not (args.esc50 / "meta" / "esc50.csv").is_file():
        print(f"skipped: no ESC-50 at {args.esc50}", file=sys.stderr)
        return 0
    import soundfile as sf
    import soxr
    import torch

    from envsound.deploy.snippets import decode
    from envsound.inference.embed import embed_inputs

    torch.set_num_threads(1)
    chosen = clips(args.esc50, args.clips)
    rows, decoded_paths = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name, codec, rate, setting in CODECS:
            sizes, enc_ms, dec_ms = [], [], []
            for i, (path, _) in enumerate(chosen):
                samples, native = sf.read(path, dtype="float32")
                resampled = soxr.resample(samples, native, rate, quality="HQ").astype(np.float32)
                data = encode_any(resampled, rate, codec, setting)
                enc_ms.append(best_ms(lambda: encode_any(resampled, rate, codec, setting)))
                dec_ms.append(best_ms(lambda: decode(data)))
                sizes.append(len(data) * 5.0 / (len(samples) / native))  # bytes for 5 s
                back, back_rate = decode(data)
                out = tmp / name / f"{i:03d}.wav"
                out.parent.mkdir(exist_ok=True)
                # clipped as a sensor's encoder clips its input: a lossy decode overshoots 1.0 a little, and the
                # loader would scale the whole clip down by its peak (a change of loudness, not of the codec)
                sf.write(out, np.clip(back, -1.0, 1.0), back_rate, subtype="FLOAT")
            rows[name] = {"bytes_5s": round(statistics.median(sizes)), "bytes_5s_max": round(max(sizes)),
                          "encode_ms": round(statistics.median(enc_ms), 1),
                          "decode_ms": round(statistics.median(dec_ms), 1)}
            decoded_paths[name] = sorted((tmp / name).glob("*.wav"))
        original = embed_inputs(args.model, [p for p, _ in chosen], progress=False).embeddings
        unit = original / np.linalg.norm(original, axis=1, keepdims=True)
        spread = [1 - float(unit[i] @ unit[i + 1]) for i in range(0, len(chosen), 2)]
        for name, paths in decoded_paths.items():
            moved = embed_inputs(args.model, paths, progress=False).embeddings
            moved = moved / np.linalg.norm(moved, axis=1, keepdims=True)
            change = 1 - np.sum(unit * moved, axis=1)
            rows[name].update(embedding_change_median=round(float(np.median(change)), 5),
                              embedding_change_max=round(float(change.max()), 5))
    result = {"clips": len(chosen), "model": args.model,
              "spread_same_class_median": round(statistics.median(spread), 4), "codecs": rows}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{len(chosen)} ESC-50 clips (fold 4), {args.model}; 1 - cos between two clips of one class: median "
              f"{result['spread_same_class_median']}")
        print(f"{'codec':18} {'bytes/5s':>9} {'max':>7} {'enc ms':>7} {'dec ms':>7} {'emb 1-cos med':>14} {'max':>8}")
        for name, row in rows.items():
            print(f"{name:18} {row['bytes_5s']:9d} {row['bytes_5s_max']:7d} {row['encode_ms']:7.1f} "
                  f"{row['decode_ms']:7.1f} {row['embedding_change_median']:14.5f} {row['embedding_change_max']:8.5f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
