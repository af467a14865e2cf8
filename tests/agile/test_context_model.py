"""Context as a model setting (issue 77 item 2): `envsound learn --context` records it in the model, learns and
calibrates on each window's mean embedding over its file's windows within it, and every scorer (predict on audio and
on a store, listen, suggest, check, check --density) averages each window's logit with those neighbours'; a model
without the setting, or at 0, scores each window alone, as before."""

import json
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

import envsound
from envsound.agile.calibrate import calibrate
from envsound.agile.check import check
from envsound.agile.head import LinearHead, context_vectors, store_scores
from envsound.agile.learn import _head, _weak_sample, learn_verdicts
from envsound.features.windows import eval_hop_length
from envsound.events.context import average_probs
from envsound.inference.embeddings import EmbeddingsStore
from envsound.inference.live import LiveListener
from envsound.inference.predictor import Predictor
from envsound.inference.scan.rank import StoredEngine, store_files
from envsound.models.checkpoint import FORMAT_VERSION, load_checkpoint
import small_store

TARGET = small_store.TARGET
archive, db, windows = small_store.archive, small_store.db, small_store.windows  # the shared store's fixtures
FP32 = envsound.ScanOptions(precision="32", progress=False, workers=1)


def reviews(windows: pd.DataFrame, *, yes: int, no: int) -> tuple[np.ndarray, np.ndarray]:
    positive = windows[windows["kind"] == TARGET]["window"].to_numpy()[:yes]
    negative = windows[windows["kind"] != TARGET]["window"].to_numpy()[:no]
    return np.r_[positive, negative], np.array(["yes"] * len(positive) + ["no"] * len(negative))


@pytest.fixture(scope="module")
def models(tmp_path_factory, db, windows) -> dict[str, Path]:
    """The same reviews learned at the default context (1 s), at 0, and the default's file without the key (a model
    learned before the setting)."""
    out = {}
    for name, context in (("default", None), ("off", 0.0)):
        folder = tmp_path_factory.mktemp(f"context-{name}")
        extra = {} if context is None else {"context": context}
        out[name] = learn_verdicts(EmbeddingsStore(db), {TARGET: reviews(windows, yes=5, no=8)}, out=folder,
                                   progress=False, **extra).model
    payload = torch.load(out["default"], weights_only=True)
    del payload["meta"]["learned"]["context_seconds"]
    payload["format_version"] = 27
    out["before"] = tmp_path_factory.mktemp("context-before") / "model.ckpt"
    torch.save(payload, out["before"])
    return out


def raw_scores(model: Path, db: Path, windows: pd.DataFrame) -> np.ndarray:
    """Each stored window's score by the model's head alone (no context)."""
    predictor = Predictor.from_checkpoint(model, device="cpu", precision="32")
    return predictor.model.head_probs(EmbeddingsStore(db).vectors(windows["window"].to_numpy()))[:, 0]


def averaged(model: Path, db: Path, windows: pd.DataFrame, seconds: float = 1.0) -> np.ndarray:
    keys = pd.factorize(windows["file"])[0]
    return average_probs(raw_scores(model, db, windows)[:, None], keys, windows["start"].to_numpy(), seconds)[:, 0]


def ranked(model: Path, source, out: Path) -> pd.DataFrame:
    """`predict MODEL SOURCE --out OUT --window-scores`'s windows, by file and start."""
    envsound.scan(model, source, out=out, tables=envsound.Tables(format="csv", window_scores=True), options=FP32)
    table = pd.concat(pd.read_csv(p) for p in (out / "windows").glob("part-*.csv"))
    return table.assign(start=table["start"].round(3)).sort_values(["file", "start"]).reset_index(drop=True)


def test_the_context_round_trips_through_the_checkpoint_and_older_files_load_without_it(models):
    assert torch.load(models["default"], weights_only=True)["format_version"] == FORMAT_VERSION == 28
    assert load_checkpoint(models["default"]).meta["learned"]["context_seconds"] == 1.0
    assert load_checkpoint(models["off"]).meta["learned"]["context_seconds"] == 0.0
    assert "context_seconds" not in load_checkpoint(models["before"]).meta["learned"]
    seconds = {name: Predictor.from_checkpoint(path, precision="32").context_seconds for name, path in models.items()}
    assert seconds == {"default": 1.0, "off": 0.0, "before": 0.0}


def test_a_model_without_the_setting_or_at_0_scores_each_window_alone_as_before(tmp_path, models, db, windows):
    alone = raw_scores(models["before"], db, windows)
    by_store = ranked(models["before"], db, tmp_path / "before")
    assert np.abs(by_store[f"p:{TARGET}"].to_numpy() - np.round(alone, 4)).max() < 1e-4  # the csv's 4 decimals
    off = ranked(models["off"], db, tmp_path / "off")
    assert np.abs(off[f"p:{TARGET}"].to_numpy() - np.round(raw_scores(models["off"], db, windows), 4)).max() < 1e-4
    with_context = ranked(models["default"], db, tmp_path / "default")
    assert np.abs(with_context[f"p:{TARGET}"].to_numpy() - by_store[f"p:{TARGET}"].to_numpy()).max() > 1e-3


def test_predict_on_audio_and_on_the_store_give_each_window_its_neighbours_mean_logit(tmp_path, models, db,
                                                                                     windows, archive):
    model = models["default"]
    files = sorted(str(p) for p in archive.glob("*.wav"))[:8]
    audio = ranked(model, files, tmp_path / "audio")
    store = ranked(model, db, tmp_path / "store")
    expected = windows.assign(start=windows["start"].round(3), expected=averaged(model, db, windows))
    both = audio.merge(store, on=["file", "start"], suffixes=("", "_store")).merge(expected, on=["file", "start"])
    assert len(both) == len(audio) > 0
    assert np.abs(both[f"p:{TARGET}"] - both[f"p:{TARGET}_store"]).max() < 2e-3  # stored embeddings: float16
    assert np.abs(store[f"p:{TARGET}"].to_numpy() - np.round(expected["expected"].to_numpy(), 4)).max() < 1e-4
    # the store ranked one window a batch (every file cut between batches) scores as in one batch
    predictor = Predictor.from_checkpoint(model, precision="32")
    probs = {}
    for rows in (1, 1000):
        got: list = []
        engine = StoredEngine(predictor, EmbeddingsStore(db), top_k=1, events=False, window_scores=True, rows=rows)
        engine.run(store_files(EmbeddingsStore(db)), got.append, stop=threading.Event())
        probs[rows] = np.concatenate([f.window_probs for f in got])
    assert np.allclose(probs[1], probs[1000], atol=1e-6)  # the head's batched float32 sums: not bit-equal


def test_a_recording_cut_in_blocks_scores_and_decodes_as_in_one(models, archive):
    samples = np.concatenate([sf.read(archive / f"{name}.wav", dtype="float32")[0]
                              for name in ("rain-1", "siren-1", "siren-2", "rain-2")])
    rate = sf.info(archive / "rain-1.wav").samplerate
    one, cut = (Predictor.from_checkpoint(models["default"], precision="32", block_seconds=seconds)
                .predict_waveform(samples, sample_rate=rate, segments=True, events=True) for seconds in (60.0, 1.0))
    assert [s["start"] for s in one.segments] == [s["start"] for s in cut.segments]
    assert max(abs(a["score"] - b["score"]) for a, b in zip(one.segments, cut.segments)) < 2e-3  # block edges' STFT
    assert [e["label"] for e in one.events] == [e["label"] for e in cut.events]


def test_listen_reports_predicts_averaged_scores_once_the_neighbours_are_heard(models, archive):
    samples = np.concatenate([sf.read(archive / f"{name}.wav", dtype="float32")[0]
                              for name in ("rain-1", "siren-1", "siren-2", "rain-2")])
    rate = sf.info(archive / "rain-1.wav").samplerate
    predictor = Predictor.from_checkpoint(models["default"], precision="32")
    listener = LiveListener(predictor, sample_rate=rate)
    hops = [h for piece in np.array_split(samples, 13) for h in listener.push(piece)] + listener.finish()
    live = [h for h in hops if not h.end]
    offline = predictor.predict_waveform(samples, sample_rate=rate, segments=True).segments
    feats = predictor.features
    hop, window = eval_hop_length(feats) * predictor.step / feats.sample_rate, feats.window_seconds
    late = hop * int(1.0 // hop)  # the last neighbour within 1 s: 2 hops of 0.496 s
    heard = len(samples) / rate
    assert [h.time for h in live] == [round(min(h.start + window + late, heard), 3) for h in live]
    assert [h.start for h in live] == [s["start"] for s in offline[:len(live)]]
    # each live window sees zero padding in its last STFT frames (test_live.py: 0.014 apart at most), and predict's
    # last window, which ends with the recording, is a neighbour of the last ones: compared up to those
    inner = [(h, s) for h, s in zip(live, offline) if h.start + 1.0 + 1e-6 < offline[-1]["start"]]
    assert len(inner) >= len(live) - 3
    assert max(abs(h.top[0]["score"] - s["score"]) for h, s in inner) < 0.05
    alone = LiveListener(Predictor.from_checkpoint(models["off"], precision="32"), sample_rate=rate)
    first = [h for piece in np.array_split(samples, 13) for h in alone.push(piece)]
    assert first[0].time == round(window, 3)  # without context: a window as soon as it is heard


def test_learn_calibrates_on_the_averaged_out_of_fold_scores(models, db, windows):
    store = EmbeddingsStore(db)
    ids, said = reviews(windows, yes=5, no=8)
    yes, no = ids[said == "yes"], ids[said == "no"]
    weak = _weak_sample(store, ids, yes, np.random.default_rng(0))
    x, weak_x = context_vectors(store, np.r_[yes, no], 1.0), context_vectors(store, weak, 1.0)
    files = np.array([row["file"] for row in store.rows(np.r_[yes, no])], dtype=object)

    def fit(x_train, truth_train):
        head = _head().fit(x_train, truth_train, weak_x)
        return lambda x_held: head.predict_proba(np.asarray(x_held, np.float64))[:, 0]

    truth = np.r_[np.ones(len(yes), bool), np.zeros(len(no), bool)]
    expected = calibrate(TARGET, x, truth, files, fit, target=0.9, seed=0)
    learned = load_checkpoint(models["default"]).meta["learned"]["labels"][TARGET]
    assert learned["threshold"] == pytest.approx(expected.threshold, abs=1e-9)
    again = learn_verdicts(store, {TARGET: (ids, said)}, out=Path(models["default"]).parent / "again", progress=False)
    assert np.allclose(again.labels[0].calibration.scores, expected.scores, atol=1e-9)
    alone = learn_verdicts(store, {TARGET: (ids, said)}, out=Path(models["off"]).parent / "again", progress=False,
                           context=0.0)
    assert np.abs(alone.labels[0].calibration.scores - expected.scores).max() > 1e-3


def test_check_density_and_suggest_score_the_store_with_the_context(tmp_path, models, db, windows):
    from envsound.agile.density import _all_scores

    model = Path(tmp_path / "model" / "model.ckpt")
    model.parent.mkdir()
    model.write_bytes(models["default"].read_bytes())
    scores = averaged(model, db, windows)
    result = check(model, db, sample=4, store=str(tmp_path / "labels.sqlite")).checks[0]
    assert result.above == int((scores >= result.threshold).sum())
    sheet = pd.read_csv(result.sheet, keep_default_na=False)
    assert np.abs(sheet["score"].to_numpy() - scores[sheet["window"].to_numpy()]).max() < 1e-4
    ids, probs = _all_scores(EmbeddingsStore(db), Predictor.from_checkpoint(model, precision="32"))
    assert np.array_equal(ids, windows["window"].to_numpy()) and np.abs(probs[:, 0] - scores).max() < 1e-5
    # suggest's linear head over the store, with context, is the head on the neighbours' mean embedding
    state = load_checkpoint(model).state_dict
    head = LinearHead(state["head.1.weight"].numpy(), state["head.1.bias"].numpy())
    got = np.concatenate([p for _, p in store_scores(EmbeddingsStore(db), head, context=1.0)])[:, 0]
    mean = head.predict_proba(context_vectors(EmbeddingsStore(db), windows["window"].to_numpy(), 1.0))[:, 0]
    assert np.abs(got - mean).max() < 1e-5 and np.abs(got - scores).max() < 1e-5


def test_events_are_decoded_from_the_averaged_scores(models, db, windows):
    from envsound.events import Timeline
    from envsound.inference.predictor import FileScores

    predictor = Predictor.from_checkpoint(models["default"], precision="32")
    siren = windows["kind"] == TARGET
    ids = np.r_[windows[~siren]["window"].to_numpy()[:5], windows[siren]["window"].to_numpy()[:6],
                windows[~siren]["window"].to_numpy()[5:10]]
    raw = predictor.model.head_probs(EmbeddingsStore(db).vectors(ids))
    starts = np.arange(16) * 0.5  # one 8.5-s recording of those windows (sirens in its middle), at the model's hop
    scores = FileScores(predictor, events=True, window_scores=True)
    scores.add_at(starts[:5].tolist(), raw[:5])  # in two pieces: the fifth waits for its neighbours
    scores.add_at(starts[5:].tolist(), raw[5:])
    length = 8.5
    found = scores.finish("joined.wav", round(length * predictor.features.sample_rate), top_k=1)
    smooth = average_probs(raw, np.zeros(16), starts, 1.0)
    assert np.allclose(scores.window_probs(), smooth, atol=1e-6)
    timeline = Timeline(starts, smooth, length, predictor.features.window_seconds, predictor.features.eval_hop_seconds)
    assert found.events == [e.to_dict() for e in predictor.timeline_events(timeline)] and found.events


def test_a_learned_model_swapped_mid_stream_reports_every_window_once_in_order(models, archive):
    samples = np.concatenate([sf.read(archive / f"{name}.wav", dtype="float32")[0]
                              for name in ("rain-1", "siren-1", "siren-2", "rain-2")])
    rate = sf.info(archive / "rain-1.wav").samplerate
    predictor = Predictor.from_checkpoint(models["default"], precision="32")
    listener = LiveListener(predictor, sample_rate=rate, version=1)
    pieces = np.array_split(samples, 12)
    hops = [h for piece in pieces[:6] for h in listener.push(piece)]
    listener.replace(Predictor.from_checkpoint(models["default"], precision="32"), version=2)
    hops += [h for piece in pieces[6:] for h in listener.push(piece)] + listener.finish()
    starts = [h.start for h in hops if not h.end]
    whole = LiveListener(predictor, sample_rate=rate)
    alone = [h.start for piece in pieces for h in whole.push(piece)] + [h.start for h in whole.finish() if not h.end]
    assert starts == alone and [h.version for h in hops if not h.end] == sorted(h.version for h in hops if not h.end)


def test_evaluate_scores_a_learned_models_clips_with_its_context(tmp_path, db, windows, synthetic_manifest):
    from dataclasses import replace

    from envsound.data.records import Manifest
    from envsound.evaluation.evaluate import evaluate_model
    from envsound.features.extract import extract_features
    from envsound.features.windows import start_seconds
    from envsound.models.clip import ClipModel

    names = [TARGET, "rain"]  # two labels: sklearn reads a one-column multi-label report as a binary one
    verdicts = {}
    for name in names:
        positive = windows[windows["kind"] == name]["window"].to_numpy()[:3]
        negative = windows[windows["kind"] != name]["window"].to_numpy()[:6]
        verdicts[name] = (np.r_[positive, negative], np.array(["yes"] * len(positive) + ["no"] * len(negative)))
    records = [replace(r, labels=tuple(n for n in names if r.labels[0] == n)) for r in synthetic_manifest.records]
    records = [r for r in records if r.labels][:6] + [r for r in records if not r.labels][:6]
    manifest = Manifest("sirens", records, names, multi_label=True)
    results, loaded = {}, {}
    for context in (1.0, 0.0):
        model = learn_verdicts(EmbeddingsStore(db), verdicts, out=tmp_path / str(context), progress=False,
                               context=context).model
        loaded[context] = ClipModel.from_checkpoint(load_checkpoint(model), device="cpu", precision="32")
        results[context] = evaluate_model(loaded[context], manifest, progress=False).y_prob
    _, features, _ = extract_features(records, loaded[1.0].config.features, progress=False)
    expected = []
    for clip in features:
        windows_, starts = loaded[1.0].clip_windows(clip)
        seconds = start_seconds(starts, loaded[1.0].config.features)
        probs = loaded[1.0].window_probs(windows_)
        expected.append(average_probs(probs, np.zeros(len(seconds)), seconds, 1.0).mean(axis=0))
    assert np.allclose(results[1.0], expected, atol=1e-6)
    assert np.abs(results[1.0] - loaded[1.0].predict_clips(features)).max() > 1e-4  # not the windows alone
    assert np.allclose(results[0.0], loaded[0.0].predict_clips(features), atol=1e-6)  # no context: as before


def test_an_export_with_context_says_so_and_one_without_stays_readable_by_older_sensors(models):
    """ONNX export format 8 only when the model scores with its neighbours (an envsound reading 7 would score each
    window alone: it says "upgrade" instead); a model without context is still written as format 7."""
    from envsound.inference.onnx_export import metadata
    from envsound.inference.predictor import Predictor

    def version(path: Path) -> int:
        model = Predictor.from_checkpoint(path, timed=False).model
        return json.loads(metadata(model)["envsound.format_version"])

    assert version(models["default"]) == 8 and version(models["off"]) == version(models["before"]) == 7
