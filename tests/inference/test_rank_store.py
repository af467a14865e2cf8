"""Ranking an embeddings store (`envsound predict MODEL DB --out R`, `envsound.scan(model, DB, out=R)`): the model's
head over the stored embeddings gives the rows `predict --out` gives on the audio, with no audio decoded; and
`ClipModel.head_probs`, the head alone."""

import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import test_embeddings_store

import envsound
from envsound.errors import CheckpointError, ConfigError
from envsound.features.extract import waveform_windows
from envsound.features.mel import logmel_frontend
from envsound.fileio import file_digest
from envsound.inference.embeddings import EmbeddingsStore, embed_archive
from envsound.inference.predictor import Predictor
from envsound.inference.scan.rank import StoredEngine, store_files
from envsound.models.checkpoint import load_checkpoint, save_checkpoint
from envsound.models.open_set import OpenSet

archive = test_embeddings_store.archive  # the stores' archive, a fixture of this module too
FP32 = envsound.ScanOptions(precision="32", progress=False)


@pytest.fixture(scope="module")
def db(tmp_path_factory, trained_run, archive) -> Path:
    """The archive embedded in fp32 by the shared model (one file that is not audio: an error row of the store)."""
    out = tmp_path_factory.mktemp("rank") / "archive.db"
    embed_archive(trained_run.checkpoint, archive, out=out,
                  options=envsound.ScanOptions(workers=1, precision="32", progress=False))
    return out


def _table(out: Path, name: str) -> pd.DataFrame:
    return pd.read_parquet(out / name).sort_values(["file"] + (["start"] if name == "windows" else []),
                                                  kind="stable").reset_index(drop=True)


def _windows(record_path, predictor: Predictor) -> np.ndarray:
    samples, _ = sf.read(record_path, dtype="float32")
    features = predictor.features
    return waveform_windows(samples, features, frontend=logmel_frontend(features).eval())[0]


def test_head_probs_of_window_embeddings_are_window_probs(trained_run, synthetic_manifest):
    predictor = Predictor.from_checkpoint(trained_run.checkpoint, precision="32")
    model = predictor.model
    windows = np.concatenate([_windows(r.path, predictor) for r in synthetic_manifest.records[:6]])
    embeddings = model.window_embeddings(windows)
    assert np.allclose(model.head_probs(embeddings), model.window_probs(windows), atol=1e-5)
    assert np.allclose(model.head_probs(embeddings.astype(np.float16)), model.window_probs(windows), atol=2e-3)
    assert model.head_probs(embeddings[:0]).shape == (0, model.n_classes)


def test_head_probs_apply_the_open_set_gate_as_scored_windows_do(trained_run, synthetic_manifest):
    predictor = Predictor.from_checkpoint(trained_run.checkpoint, precision="32")
    model = predictor.model
    windows = np.concatenate([_windows(r.path, predictor) for r in synthetic_manifest.records[:6]])
    embeddings = model.window_embeddings(windows)
    units = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    prototypes = np.stack([units[k % len(units)] for k in range(model.n_classes)]).astype(np.float32)
    model.open_set = OpenSet(prototypes, np.full(model.n_classes, 0.9, np.float32), share=0.1)
    gated = model.head_probs(embeddings)
    assert np.allclose(gated, model.scored_windows(windows)[0], atol=1e-5)
    assert (gated < 0).any() and (gated > 0).any()  # some classes ruled out (negated: OpenSet.gate), some kept


def test_a_db_ranks_as_predict_out_on_the_audio(tmp_path, db, trained_run, archive):
    audio, stored = tmp_path / "audio", tmp_path / "stored"
    envsound.scan(trained_run.checkpoint, [archive], out=audio, tables=envsound.Tables(events=True), options=FP32)
    summary = envsound.scan(trained_run.checkpoint, db, out=stored, tables=envsound.Tables(events=True),
                            options=FP32)
    assert (summary.files, summary.failed, summary.total_files) == (13, 0, 13)  # notes.wav: not in the store
    assert "no audio decoded" in summary.settings["engine"]
    files, mine = _table(audio, "files"), _table(stored, "files")
    assert list(mine.columns) == list(files.columns)
    assert mine.file.tolist() == files.file.tolist()  # the store's names: the ones predict --out writes
    assert mine.label.tolist() == files.label.tolist() and mine.label_2.tolist() == files.label_2.tolist()
    assert np.allclose(mine.score, files.score, atol=1e-3)
    assert np.allclose(mine.duration, files.duration)
    windows, rows = _table(audio, "windows"), _table(stored, "windows")
    assert list(rows.columns) == list(windows.columns) and len(rows) == len(windows)
    assert np.allclose(rows.start, windows.start, atol=1e-3) and np.allclose(rows.end, windows.end, atol=1e-3)
    assert rows.label.tolist() == windows.label.tolist()
    assert np.allclose(rows.score, windows.score, atol=1e-3)
    events, found = (_table(out, "events").sort_values(["file", "onset", "label"]).reset_index(drop=True)
                     for out in (audio, stored))
    assert found.columns.tolist() == events.columns.tolist() and len(found) == len(events) > 0
    assert found.label.tolist() == events.label.tolist() and found.file.tolist() == events.file.tolist()
    assert np.allclose(found[["onset", "offset"]], events[["onset", "offset"]], atol=1e-3)


def test_a_db_ranks_with_the_audio_removed_and_the_same_command_again_does_nothing(tmp_path, db, trained_run,
                                                                                    archive, envsound_main):
    out = tmp_path / "ranked"
    away = archive.with_name(archive.name + "-away")
    archive.rename(away)  # no audio at all: the store alone
    try:
        ran = envsound_main("predict", trained_run.checkpoint, db, "--out", out, "--window-scores",
                            "--precision", "32", "-q")
        assert ran.returncode == 0, ran.stderr
        again = envsound.scan(trained_run.checkpoint, db, out=out, tables=envsound.Tables(window_scores=True),
                              options=FP32)
    finally:
        away.rename(archive)
    assert (again.files, again.skipped, again.total_files) == (0, 13, 13)
    windows = _table(out, "windows")
    labels = load_checkpoint(trained_run.checkpoint).labels
    assert [c for c in windows.columns if c.startswith("p:")] == [f"p:{label}" for label in labels]
    assert np.allclose(windows[[f"p:{label}" for label in labels]].sum(axis=1), 1.0, atol=1e-3)  # a softmax
    assert set(windows.file) == {str(p) for p in archive.rglob("*.wav") if p.name != "notes.wav"}


def test_a_learned_model_whose_trunk_embedded_the_db_is_accepted(tmp_path, db, trained_run):
    checkpoint = load_checkpoint(trained_run.checkpoint)
    checkpoint.meta["trunk"] = {"digest": file_digest(trained_run.checkpoint), "layer": "embed"}
    learned = save_checkpoint(tmp_path / "learned" / "model.ckpt", checkpoint)
    assert file_digest(learned) != file_digest(trained_run.checkpoint)
    summary = envsound.scan(learned, db, out=tmp_path / "ranked", options=FP32)
    assert (summary.files, summary.failed) == (13, 0)
    same = envsound.scan(trained_run.checkpoint, db, out=tmp_path / "by-trunk", options=FP32)
    assert same.files == 13
    assert _table(tmp_path / "ranked", "files").label.tolist() == _table(tmp_path / "by-trunk", "files").label.tolist()


def test_a_learned_multi_label_model_gives_p_columns_and_decides_labels_at_its_thresholds(tmp_path, db, trained_run):
    """What `envsound learn` writes: its own label names, each a sigmoid, a threshold a label (the network's head
    stands in for the learned one)."""
    from envsound.task import Task

    checkpoint = load_checkpoint(trained_run.checkpoint)
    names = [f"sound{k}" for k in range(len(checkpoint.labels))]
    thresholds = tuple(0.2 + 0.6 * k / max(len(names) - 1, 1) for k in range(len(names)))
    checkpoint.labels, checkpoint.task = names, Task(kind="multi_label", class_thresholds=thresholds)
    checkpoint.meta["trunk"] = {"digest": file_digest(trained_run.checkpoint), "layer": "embed"}
    learned = save_checkpoint(tmp_path / "learned.ckpt", checkpoint)
    envsound.scan(learned, db, out=tmp_path / "ranked", tables=envsound.Tables(window_scores=True), options=FP32)
    files, windows = _table(tmp_path / "ranked", "files"), _table(tmp_path / "ranked", "windows")
    columns = [f"p:{name}" for name in names]
    assert [c for c in windows.columns if c.startswith("p:")] == columns
    for row in files.itertuples():
        means = windows.loc[windows.file == row.file, columns].mean().to_numpy()
        decided = {name for name, mean, t in zip(names, means, thresholds) if mean >= t + 1e-4}
        assert decided <= set(filter(None, (row.labels or "").split(";"))) <= decided | {
            name for name, mean, t in zip(names, means, thresholds) if abs(mean - t) <= 1e-4}


def test_a_db_of_another_network_is_refused_in_one_line(tmp_path, db, trained_run):
    checkpoint = load_checkpoint(trained_run.checkpoint)
    checkpoint.meta["trunk"] = {"digest": "0" * 64, "layer": "embed"}  # learned on another network's DB
    other = save_checkpoint(tmp_path / "other.ckpt", checkpoint)
    with pytest.raises(ConfigError) as refused:
        envsound.scan(other, db, out=tmp_path / "ranked", options=FP32)
    message = str(refused.value)
    assert message == (f"{db}: embedded by model {file_digest(trained_run.checkpoint)[:16]}, not the network of "
                       f"{other} ({'0' * 16}); predict on the audio files instead, or embed them with {other}")
    assert not (tmp_path / "ranked").exists()  # refused before a results folder is made


def test_an_onnx_model_or_the_ray_engine_on_a_db_is_refused_in_one_line(tmp_path, db, trained_run, envsound_main):
    onnx = tmp_path / "model.onnx"
    ran = envsound_main("export", trained_run.checkpoint, "--out", onnx, "-q")
    if ran.returncode != 0:
        pytest.skip(f"no ONNX export here: {ran.stderr.strip()}")
    with pytest.raises(CheckpointError, match="an ONNX export takes audio, not the stored embeddings"):
        envsound.scan(onnx, db, out=tmp_path / "ranked", options=FP32)
    ran = envsound_main("predict", trained_run.checkpoint, db, "--out", tmp_path / "ray", "--engine", "ray", "-q")
    assert ran.returncode != 0 and "a DB is ranked locally" in ran.stderr and len(ran.stderr.splitlines()) == 1


def test_a_db_among_other_inputs_is_refused(tmp_path, db, trained_run, archive):
    with pytest.raises(ConfigError, match="an embeddings store is ranked alone"):
        envsound.scan(trained_run.checkpoint, [db, archive / "long.wav"], out=tmp_path / "ranked", options=FP32)


def test_a_file_longer_than_a_batch_is_scored_in_pieces_as_whole(db, trained_run):
    predictor = Predictor.from_checkpoint(trained_run.checkpoint, precision="32")
    store = EmbeddingsStore(db)
    results = {}
    for rows in (3, 100_000):
        engine = StoredEngine(predictor, store, top_k=3, events=False, window_scores=True, rows=rows)
        found = []
        engine.run(store_files(store), found.append, stop=threading.Event())
        results[rows] = found
    small, large = results[3], results[100_000]
    assert [f.name for f in small] == [f.name for f in large] == list(store_files(store))
    for a, b in zip(small, large):
        assert a.prediction.top == b.prediction.top and np.allclose(a.window_probs, b.window_probs, atol=1e-6)


def test_counts_per_file_and_hour_carry_the_calibrated_precision(tmp_path, db, trained_run):
    """Issue 67 (5): the counts table holds, per file, hour and class, the windows decided as the class, and for a
    class whose threshold `envsound learn` calibrated, the precision expected there and the windows expected true;
    a threshold other than the calibrated one (`threshold=`) carries no precision."""
    from envsound.task import Task

    checkpoint = load_checkpoint(trained_run.checkpoint)
    names = [f"sound{k}" for k in range(len(checkpoint.labels))]
    checkpoint.labels, checkpoint.task = names, Task(kind="multi_label", class_thresholds=(0.3,) * len(names))
    checkpoint.meta["trunk"] = {"digest": file_digest(trained_run.checkpoint), "layer": "embed"}
    checkpoint.meta["learned"] = {"labels": {"sound0": {"calibrated": True, "precision": 0.92,
                                                        "precision_interval": [0.8, 0.97]}}}
    learned = save_checkpoint(tmp_path / "learned.ckpt", checkpoint)
    envsound.scan(learned, db, out=tmp_path / "ranked", tables=envsound.Tables(window_scores=True), options=FP32)
    counts, windows = _table(tmp_path / "ranked", "counts"), _table(tmp_path / "ranked", "windows")
    for name in names:
        above = windows[windows[f"p:{name}"] >= 0.3].groupby("file").size()  # p: columns are rounded to 1e-4
        mine = counts[counts.label == name].set_index("file")["windows"]
        assert (mine.reindex(above.index, fill_value=0) - above).abs().max() <= 1, name
    assert (counts.hour == 0).all() and counts.windows.gt(0).all()
    files = _table(tmp_path / "ranked", "files").set_index("file")["duration"]
    assert np.allclose(counts.seconds, files[counts.file].to_numpy(), atol=1e-3)
    calibrated = counts[counts.label == "sound0"]
    assert len(calibrated) and (calibrated.precision == 0.92).all() and (calibrated.precision_low == 0.8).all()
    assert np.allclose(calibrated.expected, calibrated.windows * 0.92)
    assert counts[counts.label != "sound0"].precision.isna().all()
    envsound.scan(learned, db, out=tmp_path / "other", tables=envsound.Tables(threshold=0.5), options=FP32)
    assert _table(tmp_path / "other", "counts").precision.isna().all()


def test_counts_go_by_the_hour_of_the_file_a_window_starts_in(trained_run):
    from envsound.inference.predictor import FileScores

    predictor = Predictor.from_checkpoint(trained_run.checkpoint, precision="32")
    scores = FileScores(predictor)
    probs = np.zeros((4, len(predictor.labels)), np.float32)
    probs[:, 1] = 0.9  # a single-label model: each window is its best class
    probs[3, 2] = 0.95
    scores.add_at([10.0, 3599.0, 3600.0, 7300.0], probs)
    assert scores.finish("long.wav", 8000 * predictor.features.sample_rate, top_k=1).counts == {
        (0, 1): 2, (1, 1): 1, (2, 2): 1}
