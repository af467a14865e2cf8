"""The embeddings store and the agile loop on real audio: ``embed`` against ``predict --out`` on the same files with
the same model, the store's bytes a window, and ``learn`` on 1,000 reviewed windows.

    ENVSOUND_MODELS=DIR .venv/bin/python benchmarks/bench_agile.py --inputs experiments/out/agile-review/archive \\
        [--model efficientat-mn04] [--labels 1000] [--repeats 3] [--json]

``embed`` (``envsound.embed_archive``) and ``predict --out`` (``envsound.scan``, its default tables: top 3 labels a
file) each run ``--repeats`` times, alternately, into fresh folders (no resume), with the same workers, batch size,
device and precision (the engine's defaults); the figure is audio seconds (and windows) a second of wall time, the
model's loading included (the calls timed from outside), the fastest run of each. Bytes a window: everything in the store folder (journal, windows
parquet, float16 embeddings) over its windows, and the embeddings alone. ``learn``: ``learn_verdicts`` on ``--labels``
windows of the store drawn at random (seeded), a tenth of them ``yes``, with the weak negatives (the default) and 10
suggestions; the model written, its threshold calibrated (5 folds by file) and its curve drawn, as ``envsound learn``
does; the fastest of ``--repeats``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", required=True, help="audio files or a folder (the same for both commands)")
    parser.add_argument("--model", default="efficientat-mn04")
    parser.add_argument("--labels", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import envsound
    from envsound.agile.learn import learn_verdicts
    from envsound.inference.embeddings import EmbeddingsStore

    embed_runs, predict_runs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for repeat in range(args.repeats):
            db = tmp / f"db-{repeat}"
            started = time.perf_counter()
            embedded = envsound.embed_archive(args.model, args.inputs, out=db, progress=False)
            embed_runs.append((time.perf_counter() - started, embedded))
            started = time.perf_counter()
            predicted = envsound.scan(args.model, args.inputs, out=tmp / f"results-{repeat}",
                                      options=envsound.ScanOptions(progress=False))
            predict_runs.append((time.perf_counter() - started, predicted))
        store = EmbeddingsStore(tmp / "db-0")
        rng = np.random.default_rng(0)
        ids = rng.choice(store.windows, size=min(args.labels, store.windows), replace=False)
        said = np.where(rng.random(len(ids)) < 0.1, "yes", "no")
        learn_seconds = []
        for repeat in range(args.repeats):
            started = time.perf_counter()
            learn_verdicts(store, {"sound": (ids, said)}, out=tmp / "learned", suggest=10, progress=False)
            learn_seconds.append(time.perf_counter() - started)
        total = folder_bytes(tmp / "db-0")
        vectors = folder_bytes(tmp / "db-0" / "embeddings")
    embed_wall, best_embed = min(embed_runs, key=lambda run: run[0])
    predict_wall, best_predict = min(predict_runs, key=lambda run: run[0])
    result = {
        "files": best_embed.files, "audio_hours": round(best_embed.audio_seconds / 3600, 3),
        "windows": best_embed.windows, "width": best_embed.width,
        "embed_seconds": [round(wall, 2) for wall, _ in embed_runs],
        "predict_seconds": [round(wall, 2) for wall, _ in predict_runs],
        "embed_audio_s_per_s": round(best_embed.audio_seconds / embed_wall, 1),
        "predict_audio_s_per_s": round(best_predict.audio_seconds / predict_wall, 1),
        "embed_windows_per_s": round(best_embed.windows / embed_wall, 1),
        "embed_over_predict": round(predict_wall / embed_wall, 3),
        "bytes_a_window": round(total / best_embed.total_windows, 1),
        "embedding_bytes_a_window": round(vectors / best_embed.total_windows, 1),
        "learn_labels": int(len(ids)), "learn_yes": int((said == "yes").sum()),
        "learn_seconds": [round(s, 2) for s in learn_seconds],
        "settings": best_embed.settings,
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")


if __name__ == "__main__":
    main()
