"""Other representations and another hop for the agile loop's tuning (issue 67): every evaluation window of the
archive of ``agile_review.py`` (run it first) as three of mn04's layers at once, written to one ``.npz`` that
``agile_review_tune.py --features`` reads in place of the store.

- ``embed``: the bottleneck's output (``network.embed``, 512-d for mn04): what the store holds and a learned head reads;
- ``pooled``: the trunk's pooled features before the AudioSet classifier's first linear layer (``network.pooled``,
  the release's own "embedding", 384-d);
- ``logits``: the 527 AudioSet logits (the release's head over ``embed``).

The windows are cut as ``envsound embed`` cuts them (the predictor's blocks, its edge padding and window starts), at
the release's hop or at ``--hop`` seconds; ``files``, ``start``, ``end`` as the store writes them.

    ENVSOUND_MODELS=DIR .venv/bin/python experiments/agile_review_features.py --out experiments/out/agile-review \\
        --hop 0.5
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from envsound.audio.load import iter_audio_blocks
from envsound.features.edges import EdgeStream
from envsound.inference.predictor import Predictor

LAYERS = ("embed", "pooled", "logits")


def layers_of(model: str, *, hop: float | None, precision: str = "32") -> Predictor:
    """A predictor of ``model`` whose window scores are ``[embed, pooled, logits]`` concatenated (hop ``hop`` s)."""
    loaded = Predictor.from_checkpoint(model, device="cpu", precision=precision).model
    if hop is not None:
        loaded.config = replace(loaded.config, features=replace(loaded.config.features, eval_hop_seconds=hop))
    network = loaded.network

    def three(batch: torch.Tensor) -> torch.Tensor:
        pooled = network.pooled(batch)
        embedded = network.bottleneck(pooled)
        return torch.cat([embedded, pooled, network.head(embedded)], dim=1).float()

    loaded.scored_windows = lambda windows, frames=False: (loaded.run_network(windows, three), None)
    return Predictor(loaded)


def file_windows(predictor: Predictor, path: Path) -> tuple[list[float], list[float], np.ndarray]:
    """One file's window starts and ends (seconds) and their concatenated layers, as ``embed`` cuts the windows."""
    feats = predictor.features
    blocks = iter_audio_blocks(path, sample_rate=feats.sample_rate, block_seconds=predictor.block_seconds,
                               min_seconds=feats.min_seconds)
    stream = EdgeStream(blocks, feats)
    begins, rows = [], []
    for offset, probs, starts in predictor._windows(stream):
        begins += [(offset + s * predictor.step + stream.shift) / feats.sample_rate for s in starts]
        rows.append(probs)
    length = stream.read / feats.sample_rate
    start = [round(max(b, 0.0), 3) for b in begins]
    end = [round(max(min(b + feats.window_seconds, length), s), 3) for b, s in zip(begins, start)]
    return start, end, np.concatenate(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="agile_review.py's --out")
    parser.add_argument("--model", default="efficientat-mn04")
    parser.add_argument("--hop", type=float, default=None, help="seconds between windows (default: the release's)")
    args = parser.parse_args()
    started = time.monotonic()
    predictor = layers_of(args.model, hop=args.hop)
    network = predictor.model.network
    widths = [network.embed_dim, network.pooled_dim, predictor.model.n_classes]
    files, starts, ends, rows = [], [], [], []
    for path in sorted((args.out / "archive").glob("*.wav")):
        start, end, vectors = file_windows(predictor, path)
        files += [str(path)] * len(start)
        starts += start
        ends += end
        rows.append(vectors.astype(np.float32))
    x = np.concatenate(rows)
    cuts = np.cumsum([0] + widths)
    hop = args.hop if args.hop is not None else predictor.features.eval_hop_seconds
    target = args.out / f"layers-hop{hop:g}.npz"
    np.savez(target, files=np.array(files), start=np.array(starts), end=np.array(ends),
             window_seconds=predictor.features.window_seconds, hop=hop,
             **{name: x[:, cuts[i]:cuts[i + 1]] for i, name in enumerate(LAYERS)})
    print(f"{target}: {len(x)} windows, {dict(zip(LAYERS, widths))}, {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
