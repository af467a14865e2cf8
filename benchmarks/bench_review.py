"""The Review view of ``envsound serve DB`` on a large store: the time of its requests through a real server.

    python benchmarks/bench_review.py [--windows 1000000] [--dim 512] [--verdicts 1000] [--rounds 5]
                                      [--keep DIR] [--json]

The store is written as :mod:`bench_rank_store` writes one (random float16 vectors, 600 windows a file, parts of
50,000 windows, names ``siteN/recNNNNNNN.flac`` relative to the folder above the store) and its search index built
(timed apart: ``embed`` builds it); two of its files get real audio (a quiet tone, written where the names point), so
their windows' sound and picture can be served. ``--verdicts`` verdicts of the label ``bench`` (a fifth ``yes``) are
stored in ``DB/review.sqlite`` before the server starts. The server is the app ``envsound serve DB`` makes (with a
learned-like model of the store's width for the spectrogram's settings), run by uvicorn in this process; the
requests come from an httpx client, one at a time, as a page sends them:

- ``next (search)``: ``GET /api/review/next?label=bench&k=10`` when the label's candidates have run out (a round's
  first, as the page asks once it has shown its ten: a search from the label's ``yes`` windows through the index);
- ``next``: the same after each verdict, ``k`` the candidates the round still has queued (no search: the label's
  verdicts and counts, and the queue);
- ``verdict``: ``POST /api/review/label`` on a candidate;
- ``spectrogram`` and ``audio``: ``GET /api/review/spectrogram/{w}`` and ``/audio/{w}`` of windows with audio.

``--rounds`` rounds of 10 verdicts; each figure is the median and the 95th percentile in milliseconds. With ``--keep``
the store is kept there and used again by the next run (only the labels store is made anew).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_rank_store import build_store_apart, learned_model  # noqa: E402  (a script beside this one)

LABEL = "bench"
ROUND = 10
AUDIO_RATE = 16_000


def write_audio(db: Path, files: list[str], *, seconds: float) -> None:
    """A quiet 440 Hz tone of ``seconds`` at each of ``files`` (names relative to the folder above ``db``)."""
    import soundfile as sf

    tone = (0.1 * np.sin(2 * np.pi * 440 * np.arange(int(seconds * AUDIO_RATE)) / AUDIO_RATE)).astype(np.float32)
    for name in files:
        path = db.parent / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            sf.write(path, tone, AUDIO_RATE, format="FLAC")


def store_verdicts(db: Path, *, verdicts: int) -> None:
    """``verdicts`` verdicts of :data:`LABEL` on random windows (seeded; a fifth ``yes``) in ``db/review.sqlite``."""
    from envsound.agile.labels import store_of
    from envsound.deploy.labels import Labels
    from envsound.inference.embeddings.store import EmbeddingsStore

    windows = EmbeddingsStore(db)
    rng = np.random.default_rng(1)
    ids = np.sort(rng.choice(windows.windows, size=verdicts, replace=False))
    rows = [{**row, "label": LABEL, "verdict": "yes" if i % 5 == 0 else "no"}
            for i, row in enumerate(windows.rows(ids))]
    store = store_of(db)
    try:
        Labels(store).add(rows, reviewer="bench")
    finally:
        store.close()


def timed(client, method: str, path: str, **kwargs) -> tuple[float, dict | bytes]:
    started = time.perf_counter()
    answer = client.request(method, path, **kwargs)
    seconds = time.perf_counter() - started
    if answer.status_code != 200:
        raise SystemExit(f"{method} {path} answered {answer.status_code}: {answer.text[:300]}")
    is_json = answer.headers["content-type"].startswith("application/json")
    return seconds * 1000, answer.json() if is_json else answer.content


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--file-windows", type=int, default=600)
    parser.add_argument("--verdicts", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="keep the store here and use it again (default: a temporary "
                                                  "folder, removed)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-review-") as temporary:
        root = args.keep or Path(temporary)
        db = root / "store.db"
        started = time.perf_counter()
        if not (db / "journal.sqlite").exists():
            build_store_apart(db, windows=args.windows, dim=args.dim, file_windows=args.file_windows)
        build = time.perf_counter() - started

        import httpx

        from envsound.agile.review import Review
        from envsound.app.auth import Guard
        from envsound.app.run import running
        from envsound.app.server import ServerLimits, create_app
        from envsound.deploy.store import Store
        from envsound.inference.api import load_model
        from envsound.inference.embeddings.index import INDEX_MIN_WINDOWS, faiss_or_none, update_index
        from envsound.inference.embeddings.store import EmbeddingsStore

        windows = EmbeddingsStore(db)
        started = time.perf_counter()
        if windows.windows >= INDEX_MIN_WINDOWS and faiss_or_none() is not None:
            # one OpenMP thread: on a shared, oversubscribed machine FAISS's threads spin waiting for each other
            # (docs/benchmarks.md, "Search by example": 127.8 s against 27.9 s for one build)
            faiss_or_none().omp_set_num_threads(1)
            update_index(windows)
        indexing = time.perf_counter() - started
        heard = windows.rows(np.arange(2 * args.file_windows, dtype=np.int64))  # the first two files' windows
        write_audio(db, sorted({row["file"] for row in heard}), seconds=args.file_windows + 4.0)
        for stale in db.glob("review.sqlite*"):
            stale.unlink()
        store_verdicts(db, verdicts=args.verdicts)
        model_path = root / "learned" / "model.ckpt"
        if not model_path.exists():
            learned_model(model_path, dim=args.dim, labels=1)
        model = load_model(model_path)

        os.chdir(root)  # an older Review read a store's relative names from the working directory
        spec = db / "review.sqlite"
        store = Store.open(spec)
        review = Review(db, store=store, spec=spec)
        app = create_app(model, store=store, guard=Guard(store, required=False, rate=1_000_000), review=review,
                         limits=ServerLimits(max_seconds=60))
        times: dict[str, list[float]] = {name: [] for name in ("next (search)", "next", "verdict", "spectrogram",
                                                                "audio")}
        rng = np.random.default_rng(2)
        load = os.getloadavg()
        with running(app) as url, httpx.Client(base_url=url, timeout=600) as client:
            timed(client, "GET", "/api/review")
            for _ in range(args.rounds):
                spent, body = timed(client, "GET", "/api/review/next", params={"label": LABEL, "k": ROUND})
                times["next (search)"].append(spent)
                for at, candidate in enumerate(body["candidates"]):
                    spent, _ = timed(client, "POST", "/api/review/label",
                                     json={"window": candidate["window"], "label": LABEL, "verdict": "no"})
                    times["verdict"].append(spent)
                    window = int(rng.integers(len(heard)))
                    times["spectrogram"].append(timed(client, "GET", f"/api/review/spectrogram/{window}")[0])
                    times["audio"].append(timed(client, "GET", f"/api/review/audio/{window}")[0])
                    left = len(body["candidates"]) - at - 1
                    if left:  # the last verdict of a round leaves none queued: the next request searches
                        spent, after = timed(client, "GET", "/api/review/next", params={"label": LABEL, "k": left})
                        assert [c["window"] for c in after["candidates"]] == [
                            c["window"] for c in body["candidates"][at + 1:]], "the queue was not kept"
                        times["next"].append(spent)
        store.close()
        result = {"windows": windows.windows, "dim": args.dim, "verdicts": args.verdicts, "rounds": args.rounds,
                  "cpu": _cpu(), "cores": os.cpu_count(), "load_1min": round(load[0], 2),
                  "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                  "store_bytes": sum(p.stat().st_size for p in db.rglob("*") if p.is_file()),
                  "build_s": round(build, 1), "index_s": round(indexing, 1)}
        for name, values in times.items():
            if values:
                values = sorted(values)
                result[f"{name} p50_ms"] = round(statistics.median(values), 1)
                result[f"{name} p95_ms"] = round(values[min(len(values) - 1, int(0.95 * len(values)))], 1)
        print(json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()), flush=True)


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            return next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


if __name__ == "__main__":
    main()
