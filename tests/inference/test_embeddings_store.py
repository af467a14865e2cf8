"""An embeddings store of an archive (`envsound embed MODEL INPUTS --out DB`, `envsound.embed_archive`) and search by
example in it (`envsound search DB --example FILE`, `envsound.search`): real audio, the shared trained model."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

import envsound
from envsound.errors import ConfigError, EnvsoundError
from envsound.inference.embeddings import EmbeddingsStore, embed_archive, search


@pytest.fixture(scope="module")
def archive(tmp_path_factory, synthetic_manifest) -> Path:
    """12 synthetic clips (1.5 s) in two folders, one 9-s file made of 6 of them, and a file that is not audio."""
    root = tmp_path_factory.mktemp("store-archive")
    records = synthetic_manifest.records
    for i, record in enumerate(records[:12]):
        target = root / f"site{i % 2}" / f"clip{i:02d}.wav"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(record.path, target)
    clips = [sf.read(r.path, dtype="float32")[0] for r in records[12:18]]
    sf.write(root / "long.wav", np.concatenate(clips), sf.info(records[0].path).samplerate)
    (root / "site1" / "notes.wav").write_text("not audio at all")
    return root


@pytest.fixture(scope="module")
def store(tmp_path_factory, trained_run, archive) -> tuple[Path, list]:
    """The archive embedded in two runs: one folder first, then the whole archive (the first folder's files skipped);
    returns the store and the two summaries."""
    out = tmp_path_factory.mktemp("stores") / "archive.db"
    first = embed_archive(trained_run.checkpoint, archive / "site0", out=out,
                          options=envsound.ScanOptions(workers=1, progress=False))
    second = embed_archive(trained_run.checkpoint, [archive], out=out,
                           options=envsound.ScanOptions(workers=1, progress=False))
    return out, [first, second]


def test_a_store_holds_every_window_of_every_file_once_with_its_embedding(store, archive):
    out, (first, second) = store
    assert (first.files, first.failed, first.skipped) == (6, 0, 0)
    assert (second.files, second.failed, second.skipped) == (8, 1, 6)  # 6 clips of site1, long.wav, notes.wav
    windows = pd.read_parquet(out / "windows").sort_values("window").reset_index(drop=True)
    assert windows["window"].tolist() == list(range(len(windows)))  # ids run on across runs and parts
    assert second.total_windows == len(windows) == first.windows + second.windows
    assert set(windows["file"]) == {str(p) for p in archive.rglob("*.wav") if p.name != "notes.wav"}
    assert not windows.duplicated(["file", "start"]).any()
    clip = windows[windows["file"] == str(archive / "site0" / "clip00.wav")]
    # 1-s windows at a 0.5-s hop (a whole number of 256-sample STFT hops at 16 kHz: 0.496 s), as predict cuts them
    assert clip["start"].tolist() == [0.0, 0.496] and clip["end"].tolist() == [1.0, 1.496]
    long = windows[windows["file"] == str(archive / "long.wav")]
    assert long["start"].max() == pytest.approx(8.0, abs=0.1) and long["end"].max() == pytest.approx(9.0)
    parts = sorted((out / "embeddings").glob("part-*.npy"))
    vectors = [np.load(path, mmap_mode="r") for path in parts]
    assert all(v.dtype == np.float16 and v.shape[1] == second.width for v in vectors)
    assert sum(len(v) for v in vectors) == len(windows)
    errors = pd.read_parquet(out / "errors")
    assert errors["file"].tolist() == [str(archive / "site1" / "notes.wav")]
    assert EmbeddingsStore(out).errors()[0]["file"] == errors["file"][0]


def test_the_same_command_again_embeds_nothing_and_drops_an_uncommitted_part(store, trained_run, archive):
    out, (_, second) = store
    # what a run killed between writing a part and committing it leaves: parts the journal does not list
    np.save(out / "embeddings" / "part-000099.npy", np.ones((3, second.width), np.float16))
    shutil.copy(next((out / "windows").glob("part-*.parquet")), out / "windows" / "part-000099.parquet")
    again = embed_archive(trained_run.checkpoint, archive, out=out,
                          options=envsound.ScanOptions(workers=1, progress=False))
    assert (again.files, again.skipped, again.windows) == (0, 14, 0)
    assert again.total_windows == second.total_windows
    assert not any(out.glob("*/part-000099.*"))


def test_an_archive_window_as_example_finds_itself_first_with_score_one(store, archive):
    out, _ = store
    clip = archive / "site1" / "clip05.wav"
    hits = search(out, str(clip), start=0.6, end=1.4, top=5)
    assert (hits[0].file, hits[0].start, hits[0].end) == (str(clip), 0.496, 1.496)  # the window centred in 0.6-1.4
    assert hits[0].score == pytest.approx(1.0, abs=2e-3)  # float16 storage
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)
    whole = search(out, [clip], top=3)  # every window of the clip: the clip's windows come first
    assert whole[0].file == str(clip) and whole[0].score > 0.95


def test_windows_of_one_file_are_collapsed_to_the_best_within_a_window_length(store, archive):
    out, _ = store
    long = str(archive / "long.wav")
    plain = search(out, long, start=3.0, end=6.0, top=12, collapse=False)
    collapsed = search(out, long, start=3.0, end=6.0, top=12)
    assert len(plain) == len(collapsed) == 12
    near = [(a, b) for i, a in enumerate(plain) for b in plain[:i] if a.file == b.file and abs(a.start - b.start) < 1.0]
    assert near  # without collapsing, neighbouring windows of one file both come back
    for i, hit in enumerate(collapsed):
        assert all(abs(hit.start - other.start) >= 1.0 for other in collapsed[:i] if other.file == hit.file)
    assert collapsed[0] == plain[0]


def test_several_examples_are_averaged(store, archive):
    out, _ = store
    a, b = archive / "site0" / "clip00.wav", archive / "site1" / "clip01.wav"
    both = search(out, [a, b], top=6, collapse=False)
    assert {hit.file for hit in both[:2]} | {str(a), str(b)} == {str(a), str(b)}  # one of theirs is best
    # the mean stands for both: windows of each come back (a bar on its score depended on the CPU's numerics: two
    # clips of the tiny model scored 0.99929 against each other's mean with bf16 off)
    assert {str(a), str(b)} <= {hit.file for hit in both}


def test_search_json_lines_parse_and_number_exactly_top(store, archive, envsound_main):
    out, _ = store
    ran = envsound_main("search", out, "--example", archive / "site0" / "clip02.wav", "--top", "7", "--json", "-q")
    assert ran.returncode == 0, ran.stderr
    lines = [json.loads(line) for line in ran.stdout.splitlines()]
    assert len(lines) == 7 and all(set(line) == {"window", "file", "start", "end", "score"} for line in lines)
    assert lines[0]["file"] == str(archive / "site0" / "clip02.wav")
    table = envsound_main("search", out, "--example", archive / "site0" / "clip02.wav", "--top", "3", "-q")
    assert table.returncode == 0 and len(table.stdout.splitlines()) == 4 and "score" in table.stdout


def test_a_bad_file_is_an_errors_row_and_exit_1(tmp_path, trained_run, archive, envsound_main):
    ran = envsound_main("embed", trained_run.checkpoint, archive / "site1" / "notes.wav",
                        archive / "site1" / "clip01.wav", "--out", tmp_path / "db", "--workers", "1", "-q")
    assert ran.returncode == 1, ran.stderr
    assert "1 failed" in ran.stdout
    errors = pd.read_parquet(tmp_path / "db" / "errors")
    assert errors["file"].tolist() == [str(archive / "site1" / "notes.wav")]
    assert len(pd.read_parquet(tmp_path / "db" / "windows")) == 2


def test_bad_searches_say_what_is_wrong_in_one_line(store, archive, tmp_path, envsound_main):
    out, _ = store
    with pytest.raises(EnvsoundError, match="notes.wav"):
        search(out, archive / "site1" / "notes.wav")
    with pytest.raises(ConfigError, match="outside the file"):
        search(out, archive / "site0" / "clip00.wav", start=4.0, end=5.0)
    with pytest.raises(ConfigError, match="not an embeddings store"):
        search(tmp_path, archive / "site0" / "clip00.wav")
    ran = envsound_main("search", out, "--example", archive / "site1" / "notes.wav")
    assert ran.returncode == 1 and len(ran.stderr.strip().splitlines()) == 1


def test_a_store_of_another_model_or_a_results_folder_is_refused(store, trained_run, archive, tmp_path):
    out, _ = store
    other = tmp_path / "other.ckpt"
    other.write_bytes(Path(trained_run.checkpoint).read_bytes() + b"\0")  # another file, another digest
    with pytest.raises(ConfigError, match="embedded by model .*, not the network of .*other.ckpt"):
        search(out, archive / "site0" / "clip00.wav", model=other)


def test_npz_out_keeps_the_clip_embeddings(tmp_path, trained_run, archive, envsound_main):
    ran = envsound_main("embed-clips", trained_run.checkpoint, archive / "site0", "--out", tmp_path / "e.npz", "-q")
    assert ran.returncode == 0, ran.stderr
    assert np.load(tmp_path / "e.npz")["embeddings"].shape[0] == 6


def test_a_window_of_the_store_is_an_example_without_the_model(store, archive, envsound_main):
    out, _ = store
    windows = pd.read_parquet(out / "windows")
    chosen = windows[windows["file"] == str(archive / "long.wav")].iloc[5]
    hits = search(out, windows=[int(chosen["window"])], top=3, model="no such model: not needed")
    assert hits[0].window == chosen["window"] and hits[0].score == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ConfigError, match="window 100000 is not in this store"):
        search(out, windows=[100000])
    ran = envsound_main("search", out, "--window", str(int(chosen["window"])), "--top", "2", "--json")
    assert ran.returncode == 0 and json.loads(ran.stdout.splitlines()[0])["window"] == chosen["window"]
    assert envsound_main("search", out).returncode == 1  # no example at all: one line


def test_the_windows_are_those_predict_out_writes(store, trained_run, archive, tmp_path):
    import envsound

    out, _ = store
    envsound.scan(trained_run.checkpoint, archive, out=tmp_path / "scan",
                  options=envsound.ScanOptions(workers=1, progress=False))
    scanned = pd.read_parquet(tmp_path / "scan" / "windows")[["file", "start", "end"]]
    stored = pd.read_parquet(out / "windows")[["file", "start", "end"]]
    key = ["file", "start"]
    pd.testing.assert_frame_equal(scanned.sort_values(key).reset_index(drop=True),
                                  stored.sort_values(key).reset_index(drop=True))
    with pytest.raises(ConfigError, match="not an embeddings store"):  # a results folder is neither written nor read
        embed_archive(trained_run.checkpoint, archive, out=tmp_path / "scan",
                      options=envsound.ScanOptions(workers=1, progress=False))
    with pytest.raises(ConfigError, match="not an embeddings store"):
        search(tmp_path / "scan", archive / "site0" / "clip00.wav")


def test_embed_takes_its_run_settings_as_scan_options_and_the_old_keywords_with_a_warning(tmp_path, trained_run,
                                                                                        archive):
    """Issue 67 (6): every public function takes at most 10 parameters; embed's run settings are scan's
    ScanOptions (engine, workers, precision ...), its keywords of last release still work, with a warning."""
    with pytest.warns(DeprecationWarning, match=r"options=ScanOptions"):
        old = envsound.embed(trained_run.checkpoint, archive / "site0", out=tmp_path / "db", workers=1,
                             progress=False)
    assert old.files > 0
    with pytest.raises(envsound.ConfigError, match=r"unknown keyword 'worker' \(did you mean workers=\?\)"):
        envsound.embed(trained_run.checkpoint, archive, out=tmp_path / "db", worker=1)


def test_the_store_is_read_through_chunks_and_part_columns_in_id_order(store):
    """Issue 74: EmbeddingsStore is the one reader of its folder: chunks() (the one loop over the vectors, every
    window once, in id order, of the parts asked for) and part_columns()/columns() (the one read of the windows'
    Parquet) give what the files hold; a reader of another width is refused naming the part."""
    out, _ = store
    opened = EmbeddingsStore(out)
    assert len(opened.parts) == 2 and all(part.rows for part in opened.parts)
    ids, vectors = zip(*opened.chunks(rows=5))
    assert max(len(i) for i in ids) == 5 and np.concatenate(ids).tolist() == list(range(opened.windows))
    assert np.array_equal(np.concatenate(vectors), opened.vectors(np.arange(opened.windows)))
    assert all(v.dtype == np.float32 and v.flags.writeable for v in vectors)
    last = opened.parts[-1]
    only = np.concatenate([chunk.ids for chunk in opened.chunks(parts=[last])])
    assert only.tolist() == list(range(last.first, last.first + last.rows))
    width = vectors[0].shape[1]
    with pytest.raises(ConfigError, match=rf"part {opened.parts[0].number} holds {width}-d embeddings, not the 3-d"):
        next(opened.chunks(width=3))
    table = opened.columns(dictionary=True)
    assert table.column("window").to_pylist() == list(range(opened.windows))
    assert table.column("file").type.value_type == "string" and str(table.column("file").type).startswith("dict")
    windows = pd.read_parquet(out / "windows").sort_values("window").reset_index(drop=True)
    assert table.column("file").to_pylist() == windows["file"].tolist()
    part = opened.part_columns(last, ["file", "start"])
    assert part.column_names == ["file", "start"] and part.num_rows == last.rows
    assert opened.base == Path.cwd()  # embed ran here: relative names are relative to it


def test_one_digest_check_refuses_another_network_and_takes_a_learned_heads_trunk(store, trained_run, tmp_path):
    """Issue 74: search, learn, check, the Review page and predict on a store check a model against the store's
    network with one function and one message (the form the search guide quotes)."""
    from envsound.fileio import file_digest

    out, _ = store
    opened = EmbeddingsStore(out)
    digest = file_digest(trained_run.checkpoint)
    assert opened.network_digest == digest and opened.network_file() == Path(trained_run.checkpoint).absolute()
    opened.check_network("model.ckpt", "f" * 64, digest, fix="unused")  # a learned head's trunk is the network
    with pytest.raises(ConfigError) as refused:
        opened.check_network("other.ckpt", "a" * 64, fix="use the model that made it")
    assert str(refused.value) == (f"{out}: embedded by model {digest[:16]}, not the network of other.ckpt "
                                  f"({'a' * 16}); use the model that made it")
    with pytest.raises(ConfigError, match=r"its model .*gone.ckpt is missing; searching needs the model file"):
        opened.network_file(tmp_path / "gone.ckpt", needed_for="searching")
