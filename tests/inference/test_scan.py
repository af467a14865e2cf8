"""Archives into a results folder (`envsound predict MODEL INPUTS --out DIR`, `envsound.scan`): the same results as
`predict` file by file, resumable, crash-safe, bad files in an errors table."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

import envsound
from conftest import PRECISIONS, shared_run
from envsound.errors import ConfigError
from envsound.inference.archive.journal import JOURNAL_NAME
from envsound.inference.predictor import Predictor
from modelfiles import release_file


@pytest.fixture(scope="module")
def archive(tmp_path_factory, synthetic_manifest) -> Path:
    """Nested folders of synthetic clips, one 40-s file made of them, and bad files of every kind."""
    root = tmp_path_factory.mktemp("archive")
    for i, record in enumerate(synthetic_manifest.records[:24]):
        target = root / f"site{i % 3}" / f"day{i % 2}" / f"clip{i:02d}.wav"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(record.path, target)
    clips = [sf.read(r.path, dtype="float32")[0] for r in synthetic_manifest.records[:27]]
    sf.write(root / "long.flac", np.concatenate(clips), sf.info(synthetic_manifest.records[0].path).samplerate)
    bad = root / "bad"
    bad.mkdir()
    (bad / "notes.wav").write_text("not audio at all")
    (bad / "empty.wav").write_bytes(b"")
    wav = (root / "site0" / "day0" / "clip00.wav").read_bytes()
    (bad / "truncated.wav").write_bytes(wav[:60])
    return root


@pytest.fixture(scope="module")
def many(tmp_path_factory, archive) -> Path:
    """192 files: 8 folders of the archive's clips (hard links)."""
    root = tmp_path_factory.mktemp("many")
    for copy in range(8):
        for i, clip in enumerate(sorted(archive.rglob("clip*.wav"))):
            (root / f"copy{copy}").mkdir(parents=True, exist_ok=True)
            os.link(clip, root / f"copy{copy}" / f"{i:02d}.wav")
    return root


def _table(out: Path, name: str) -> pd.DataFrame:
    return pd.read_parquet(out / name).sort_values(["file"] + (["start"] if name == "windows" else []),
                                                  kind="stable").reset_index(drop=True)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_a_scan_gives_predict_s_results_and_lists_bad_files(tmp_path, request, precision, archive):
    """Windows of many files in one batch score as each file alone: in fp32, and in bf16 forced (the numerics `auto`
    gives on a CPU with native bf16)."""
    trained_run = shared_run(request, precision)
    out = tmp_path / "scan"
    summary = envsound.scan(trained_run.checkpoint, [archive], out=out,
                            options=envsound.ScanOptions(precision=precision, progress=False))
    files, errors, windows = _table(out, "files"), _table(out, "errors"), _table(out, "windows")
    assert summary.files == 28 and summary.failed == 3 == summary.total_failed
    assert sorted(Path(name).name for name in errors.file) == ["empty.wav", "notes.wav", "truncated.wav"]
    assert all(name in reason and "\n" not in reason for name, reason in zip(errors.file, errors.error))
    assert len(files) == 25 and files.file.is_unique
    assert set(files.file) == {str(p) for p in archive.rglob("*") if p.parent.name != "bad" and p.is_file()}
    predictor = Predictor.from_checkpoint(trained_run.checkpoint, precision=precision)
    for row in files.itertuples():  # the batched scan scores every file as predict does, one by one
        alone = predictor.predict_file(row.file, top_k=3, segments=True)
        assert [row.label, row.label_2, row.label_3] == [t["label"] for t in alone.top]
        assert [row.score, row.score_2, row.score_3] == pytest.approx([t["score"] for t in alone.top], abs=2e-4)
        mine = windows[windows.file == row.file]
        assert mine.start.tolist() == [s["start"] for s in alone.segments]
        assert mine.label.tolist() == [s["label"] for s in alone.segments]
    long = files[files.file.str.endswith("long.flac")].iloc[0]
    assert long.duration == pytest.approx(27 * 1.5, abs=0.01)

    parts = sorted(path.name for path in out.rglob("part-*"))
    again = envsound.scan(trained_run.checkpoint, [archive], out=out,
                          options=envsound.ScanOptions(precision=precision, progress=False))
    assert (again.files, again.skipped, again.total_files) == (0, 28, 28)  # nothing done twice, nothing written
    assert sorted(path.name for path in out.rglob("part-*")) == parts
    assert _table(out, "files").equals(files)


def test_a_file_that_fails_after_some_windows_is_an_error_row_and_the_run_goes_on(tmp_path, trained_run, archive):
    """150 s of digital silence in 16-bit PCM: only known at the end of the stream, after two minutes of windows
    were sent to the model; the file becomes an error row and its windows are dropped, the run goes on."""
    silent = tmp_path / "silent" / "silent.wav"
    silent.parent.mkdir()
    sf.write(silent, np.zeros(150 * 16000, np.int16), 16000, subtype="PCM_16")
    clip = next(archive.rglob("clip00.wav"))
    summary = envsound.scan(trained_run.checkpoint, [silent, clip], out=tmp_path / "scan",
                            options=envsound.ScanOptions(workers=1, batch_size=4096, progress=False))
    assert (summary.files, summary.failed) == (2, 1)
    errors = _table(tmp_path / "scan", "errors")
    assert errors.file.tolist() == [str(silent)] and "silen" in errors.error[0]
    assert _table(tmp_path / "scan", "files").file.tolist() == [str(clip)]
    assert set(_table(tmp_path / "scan", "windows").file) == {str(clip)}


def test_a_folder_of_other_results_is_refused_in_one_line(tmp_path, trained_run, archive):
    out = tmp_path / "scan"
    clip = next(archive.rglob("clip00.wav"))
    envsound.scan(trained_run.checkpoint, [clip], out=out, options=envsound.ScanOptions(progress=False))
    with pytest.raises(ConfigError, match="top_k 3, not top_k 5") as caught:
        envsound.scan(trained_run.checkpoint, [clip], out=out, tables=envsound.Tables(top_k=5),
                      options=envsound.ScanOptions(progress=False))
    assert "\n" not in str(caught.value)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not a results folder"):
        envsound.scan(trained_run.checkpoint, [clip], out=tmp_path / "mine",
                      options=envsound.ScanOptions(progress=False))
    assert (tmp_path / "mine" / "thesis.txt").read_text() == "keep me"


def test_csv_tables_events_raven_and_audacity(tmp_path, trained_run, archive):
    out = tmp_path / "scan"
    envsound.scan(trained_run.checkpoint, [archive / "long.flac", archive / "site1"], out=out,
                  tables=envsound.Tables(format="csv", events=True, event_tables=["raven", "audacity"], window_scores=True),
                  options=envsound.ScanOptions(progress=False))
    files = pd.concat(pd.read_csv(p) for p in (out / "files").glob("part-*.csv"))
    windows = pd.concat(pd.read_csv(p) for p in (out / "windows").glob("part-*.csv"))
    events = pd.concat(pd.read_csv(p) for p in (out / "events").glob("part-*.csv"))
    assert len(files) == 9
    labels = Predictor.from_checkpoint(trained_run.checkpoint).labels
    scores = windows[[f"p:{label}" for label in labels]].to_numpy()
    assert np.allclose(scores.sum(axis=1), 1, atol=0.01)  # softmax: every class's probability is there
    assert (windows.label.to_numpy() == np.asarray(labels)[scores.argmax(axis=1)]).all()
    assert {"file", "label", "onset", "offset", "score"} <= set(events.columns) and len(events)
    long = str(archive / "long.flac")
    mine = events[events.file == long].sort_values("onset")
    raven = (out / "raven" / (long.lstrip("/") + ".Table.1.selections.txt")).read_text().splitlines()
    assert raven[0].split("\t")[:5] == ["Selection", "View", "Channel", "Begin Time (s)", "End Time (s)"]
    assert [line.split("\t")[7] for line in raven[1:]] == mine.label.tolist()
    audacity = (out / "audacity" / (long.lstrip("/") + ".labels.txt")).read_text().splitlines()
    assert [float(line.split("\t")[0]) for line in audacity] == pytest.approx(mine.onset.tolist(), abs=1e-3)


def test_a_file_list_streams_and_a_name_listed_twice_is_scanned_once(tmp_path, trained_run, archive):
    listing = tmp_path / "list.txt"
    clips = sorted(str(p) for p in archive.rglob("clip*.wav"))[:5]
    listing.write_text("# my recordings\n" + "\n".join(clips + clips[:2]) + "\n\n" + str(archive / "site2") + "\n")
    out = tmp_path / "scan"
    summary = envsound.scan(trained_run.checkpoint, [], files_from=listing, out=out,
                            tables=envsound.Tables(format="jsonl"),
                            options=envsound.ScanOptions(progress=False))
    files = pd.concat(pd.read_json(p, lines=True) for p in (out / "files").glob("*.jsonl"))
    expected = set(clips) | {str(p) for p in (archive / "site2").rglob("*.wav")}
    assert sorted(files.file) == sorted(expected)
    assert summary.skipped == 2 + len(set(clips) & expected) - len(set(clips))


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.skipif(not Path("/proc").exists(), reason="reads process parents from /proc")
def test_kill_9_loses_only_the_uncommitted_part_and_the_same_command_completes(tmp_path, trained_run, many):
    """The CLI killed with SIGKILL once parts are committed: no worker left behind; the same command then finishes
    with the results an uninterrupted run gives, nothing lost or duplicated."""
    out = tmp_path / "scan"
    script = ("import sys, envsound; s = envsound.scan(sys.argv[1], [sys.argv[2]], out=sys.argv[3], options="
              "envsound.ScanOptions(precision='32', workers=2, batch_size=1, part_files=10, progress=False)); "
              "print(s.files, s.skipped)")
    command = [sys.executable, "-c", script, str(trained_run.checkpoint), str(many), str(out)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while len(list((out / "files").glob("part-*.parquet"))) < 2 and process.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    workers = _children(process.pid)
    process.kill()
    process.wait()
    assert process.returncode == -signal.SIGKILL and len(workers) == 2
    time.sleep(0.5)
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()
                and "Z" not in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]]
    resumed = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)
    done, skipped = map(int, resumed.stdout.split())
    assert skipped >= 10 and done + skipped == 192
    whole = tmp_path / "whole"
    envsound.scan(trained_run.checkpoint, [many], out=whole,
                  options=envsound.ScanOptions(precision="32", progress=False))
    assert _table(out, "files").equals(_table(whole, "files"))
    assert _table(out, "windows").equals(_table(whole, "windows"))


def test_the_cli_exit_code_says_whether_a_file_failed_and_sigterm_keeps_the_finished(tmp_path, trained_run,
                                                                                    archive, many, envsound_main):
    good = tmp_path / "good"
    assert envsound_main("predict", trained_run.checkpoint, archive / "site0", "--out", good, "-q").returncode == 0
    some_bad = envsound_main("predict", trained_run.checkpoint, archive / "bad", archive / "site0", "--out",
                             tmp_path / "some-bad")
    assert some_bad.returncode == 1 and "3 failed" in some_bad.stdout.splitlines()[-1]
    other = envsound_main("predict", trained_run.checkpoint, archive / "site0", "--out", good, "--top-k", "4")
    assert other.returncode == 1 and other.stderr.strip().splitlines() == [other.stderr.strip()]  # refused, one line
    assert "holds results of top_k 3, not top_k 4" in other.stderr
    out = tmp_path / "termed"  # names come on stdin: the scan waits for more while the test sends SIGTERM
    command = [sys.executable, "-m", "envsound", "predict", str(trained_run.checkpoint), "--files-from", "-",
               "--out", str(out), "--quiet"]
    # the same command, whose progress meter also says on stdout each file it counts as finished
    counting = ("import sys\nfrom envsound.cli.main import main\nfrom envsound.inference.archive.progress import "
                "ScanProgress\ncounted = ScanProgress.file\ndef file(self, *args, **kwargs):\n"
                "    counted(self, *args, **kwargs)\n    print('finished', self.files, flush=True)\n"
                "ScanProgress.file = file\nsys.exit(main())\n")
    process = subprocess.Popen([sys.executable, "-c", counting, *command[3:]], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = sorted(str(p) for p in many.rglob("*.wav"))[:20]
    process.stdin.write("\n".join(first) + "\n")
    process.stdin.flush()
    import select

    said, deadline = b"", time.monotonic() + 120
    while b"finished 20\n" not in said:  # the 20 files finish, uncommitted unless they took 5 s
        assert time.monotonic() < deadline and process.poll() is None, said
        if select.select([process.stdout], [], [], 0.1)[0]:
            said += os.read(process.stdout.fileno(), 4096)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert err.strip().endswith("--resume") and "finished files are complete" in err
    assert sorted(_table(out, "files").file) == first  # committed on the way out
    resumed = subprocess.run(command, input="\n".join(str(p) for p in many.rglob("*.wav")), capture_output=True,
                             text=True)
    assert resumed.returncode == 0 and "20 already done" in resumed.stdout
    assert len(_table(out, "files")) == 192 and _table(out, "files").file.is_unique


def _ray_workers(pattern: str) -> list[int]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if pattern in cmdline.read_bytes().decode(errors="replace"):
                found.append(int(cmdline.parent.name))
        except OSError:
            continue
    return found


@pytest.fixture(scope="module")
def two_node_ray():
    """A local Ray cluster of two nodes on 127.0.0.1 (Ray's own cluster utilities), one CPU each."""
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": 200 * 2**20})
    cluster.add_node(num_cpus=1, object_store_memory=200 * 2**20)
    cluster.wait_for_nodes()
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def test_the_ray_engine_gives_the_local_results_though_a_worker_is_killed(tmp_path, trained_run, many, archive,
                                                                         two_node_ray):
    """`--engine ray` on a two-node cluster: the local engine's rows and labels, scores within 1e-5 in fp32, bad
    files in errors/; a model actor killed mid-run is restarted and nothing is lost or duplicated."""
    inputs = [many, archive / "bad", archive / "long.flac"]
    local = envsound.scan(trained_run.checkpoint, inputs, out=tmp_path / "local",
                          options=envsound.ScanOptions(precision="32", progress=False))
    killed = []

    def kill_an_actor():
        deadline = time.monotonic() + 60
        while not killed and time.monotonic() < deadline:
            actors = _ray_workers("_Scorer")
            if actors and (tmp_path / "ray" / JOURNAL_NAME).exists():
                time.sleep(0.5)
                os.kill(actors[0], signal.SIGKILL)
                killed.append(actors[0])
            time.sleep(0.05)

    import threading

    killer = threading.Thread(target=kill_an_actor)
    killer.start()
    summary = envsound.scan(trained_run.checkpoint, inputs, out=tmp_path / "ray",
                            options=envsound.ScanOptions(engine="ray", address=two_node_ray.address, precision="32", progress=False))
    killer.join()
    assert killed, "no model actor was seen to kill"
    assert (summary.files, summary.failed) == (local.files, local.failed) == (196, 3)
    _assert_same_rows(tmp_path / "ray", tmp_path / "local")


def _assert_same_rows(mine: Path, theirs: Path) -> None:
    """The results folders ``mine`` and ``theirs`` hold the same rows: labels identical, scores within 1e-5 (fp32)."""
    for table in ("files", "windows", "errors"):
        ours, others = _table(mine, table), _table(theirs, table)
        assert len(ours) == len(others) and ours.file.is_unique == others.file.is_unique
        assert list(ours.columns) == list(others.columns), table
        for column in ours.columns:
            if ours[column].dtype.kind == "f":  # stored rounded to 4 decimals: 1e-5 apart may round 1e-4 apart
                assert np.allclose(ours[column], others[column], rtol=0, atol=1e-4 + 1e-5, equal_nan=True), column
            else:
                assert (ours[column] == others[column]).all(), column


@pytest.fixture(scope="module")
def few(tmp_path_factory, archive) -> Path:
    """A few clips, a 2-minute file (three chunks of a minute) and a file that is not audio."""
    root = tmp_path_factory.mktemp("few")
    for clip in sorted(archive.rglob("clip*.wav"))[:3]:
        os.link(clip, root / clip.name)
    audio, rate = sf.read(archive / "long.flac", dtype="float32")
    sf.write(root / "long.flac", np.concatenate([audio] * 3), rate)
    (root / "notes.wav").write_text("not audio at all")
    return root


def test_the_ray_engine_runs_an_installed_audioset_release_with_the_local_rows(tmp_path, monkeypatch, few,
                                                                               two_node_ray, envsound_main):
    """Issue 66: the actors reloaded the model with load_checkpoint, so `envsound predict efficientat-mn04 FOLDER
    --out R --engine ray` (the README's AudioSet tagger over an archive) died with an actor traceback and exit 1.
    Now each actor opens the file the driver opened, as it did: an installed name resolved on the driver (the
    workers were started without this ENVSOUND_MODELS) and its label names, the local engine's rows."""
    models = tmp_path / "models"
    models.mkdir()
    release_file(models)
    monkeypatch.setenv("ENVSOUND_MODELS", str(models))
    for engine in (["local"], ["ray", "--address", two_node_ray.address]):
        ran = envsound_main("predict", "efficientat-mn01", few, "--out", tmp_path / engine[0], "--engine", *engine,
                            "--precision", "32", "--top-k", "5", "--quiet")
        assert ran.returncode == 1, ran.stderr  # 1: a file failed (notes.wav), the others classified
    files = _table(tmp_path / "ray", "files")
    assert len(files) == 4 and files.label.str.fullmatch(r"Dog|Sound \d+").all()  # the driver's label names
    assert _table(tmp_path / "ray", "errors").file.tolist() == [str(few / "notes.wav")]
    _assert_same_rows(tmp_path / "ray", tmp_path / "local")


def test_the_ray_engine_runs_an_onnx_export_with_the_local_rows(tmp_path, trained_run, few, two_node_ray):
    """An exported model, which cuts its own windows from each chunk's waveform, runs on Ray too (it was refused)."""
    pytest.importorskip("onnxruntime")
    from envsound.cli.main import main

    exported = tmp_path / "model.onnx"
    assert main(["export", "--quiet", str(trained_run.checkpoint), "--format", "onnx", "--out", str(exported)]) == 0
    summaries = [envsound.scan(exported, few, out=tmp_path / engine, tables=envsound.Tables(events=True),
                               options=envsound.ScanOptions(engine=engine, address=two_node_ray.address, progress=False)) for engine in ("local", "ray")]
    assert [(s.files, s.failed) for s in summaries] == [(5, 1)] * 2
    windows = _table(tmp_path / "ray", "windows")
    assert windows[windows.file == str(few / "long.flac")].end.max() > 115  # its three chunks are all there
    _assert_same_rows(tmp_path / "ray", tmp_path / "local")


def test_a_ray_address_that_does_not_answer_is_one_line_and_exit_1(tmp_path, trained_run, archive, envsound_main):
    pytest.importorskip("ray")
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ran = envsound_main("predict", trained_run.checkpoint, archive / "site0", "--out", tmp_path / "scan",
                        "--engine", "ray", "--address", f"127.0.0.1:{port}", "--quiet")
    assert ran.returncode == 1 and ran.stderr.strip().splitlines() == [ran.stderr.strip()]
    assert f"127.0.0.1:{port} does not answer" in ran.stderr and not (tmp_path / "scan").exists()


def test_one_path_as_a_string_is_one_input_not_its_letters(tmp_path, trained_run, archive):
    """Issue 69: `envsound.scan(model, "archive/site1", out=...)` scanned "a", "r", "c" ... as missing files (and "/"
    walked the whole filesystem)."""
    summary = envsound.scan(trained_run.checkpoint, str(archive / "site1"), out=tmp_path / "scan",
                            options=envsound.ScanOptions(progress=False))
    expected = sorted(str(p) for p in (archive / "site1").rglob("*.wav"))
    assert (summary.files, summary.failed) == (len(expected), 0)
    assert sorted(_table(tmp_path / "scan", "files").file) == expected
    assert summary.audio_seconds == summary.seconds == pytest.approx(1.5 * len(expected), abs=0.1)
    model = envsound.load_model(trained_run.checkpoint)
    assert [Path(p.file) for p in model.predict_many(archive / "site1")] == [Path(p) for p in expected]


def test_standard_input_as_the_file_list_is_read_whole_with_the_progress_shown(tmp_path, trained_run, archive):
    """Issue 69: without --quiet, `--files-from -` ended with 0 files: the progress counter read the same stdin."""
    clips = sorted(str(p) for p in archive.rglob("clip*.wav"))[:5]
    command = [sys.executable, "-m", "envsound", "predict", str(trained_run.checkpoint), "--files-from", "-",
               "--out", str(tmp_path / "scan")]
    ran = subprocess.run(command, input="\n".join(clips) + "\n", capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines()[-1].startswith("5 files")
    assert sorted(_table(tmp_path / "scan", "files").file) == clips


def test_event_tables_are_written_for_the_files_with_events_only(tmp_path, trained_run, archive):
    """Issue 69: `--event-tables raven,audacity` wrote a header-only Raven table and an empty Audacity file for every
    file without events, where the guide says "per file with events"."""
    out = tmp_path / "scan"
    envsound.scan(trained_run.checkpoint, [archive / "site1", archive / "long.flac"], out=out,
                  tables=envsound.Tables(events=True, event_tables=["raven", "audacity"], threshold=0.9),
                  options=envsound.ScanOptions(progress=False))
    with_events = set(_table(out, "events").file)
    files = set(_table(out, "files").file)
    assert with_events and files - with_events  # some files have events and some have none: both cases are seen
    for kind, suffix in (("raven", ".Table.1.selections.txt"), ("audacity", ".labels.txt")):
        written = {"/" + str(p.relative_to(out / kind))[:-len(suffix)] for p in (out / kind).rglob(f"*{suffix}")}
        assert written == with_events, kind


def test_a_folder_of_another_model_is_refused_in_one_short_line(tmp_path):
    """Issue 69: a folder made by another model printed all 527 AudioSet label names (the labels were compared
    before the model); the model's file name and digest come first now, and a long value is cut."""
    from envsound.inference.archive.journal import Journal
    from envsound.inference.scan.tables import TABLES

    mine = {"model": "a" * 64, "model_file": "/models/mine/model.ckpt", "labels": ["dog", "rain"], "top_k": 3}
    tagger = {"model": "b" * 64, "model_file": "/cache/mn04_as_mAP_432.pt",
              "labels": [f"AudioSet class {i}" for i in range(527)], "top_k": 3}
    Journal.open(tmp_path, tagger, tables=TABLES).close()
    with pytest.raises(ConfigError) as caught:
        Journal.open(tmp_path, mine, tables=TABLES)
    message = str(caught.value)
    assert "mn04_as_mAP_432.pt (sha256 bbbbbbbbbbbb)" in message and "model.ckpt (sha256 aaaaaaaaaaaa)" in message
    assert len(message) < 300 and "AudioSet class" not in message
    with pytest.raises(ConfigError) as caught:  # the same digest with other labels: the list is cut, its size said
        Journal.open(tmp_path, {**tagger, "labels": tagger["labels"][::-1]}, tables=TABLES)
    assert "527 in all" in str(caught.value) and len(str(caught.value)) < 400


def test_the_old_keywords_of_scan_still_work_for_a_release_and_a_misspelt_one_is_named(tmp_path, trained_run,
                                                                                      archive):
    """Issue 66: scan took 18 keywords; its tables and its run settings are values now (Tables, ScanOptions), the
    old keywords go through them with a DeprecationWarning."""
    clip = next(archive.rglob("clip00.wav"))
    with pytest.warns(DeprecationWarning, match="tables=Tables"):
        old = envsound.scan(trained_run.checkpoint, clip, out=tmp_path / "old", top_k=2, progress=False)
    new = envsound.scan(trained_run.checkpoint, clip, out=tmp_path / "new", tables=envsound.Tables(top_k=2),
                        options=envsound.ScanOptions(progress=False))
    assert _table(tmp_path / "old", "files").equals(_table(tmp_path / "new", "files")) and old.files == new.files == 1
    with pytest.raises(ConfigError, match=r"unknown keyword 'event' \(did you mean events=\?\)"):
        envsound.scan(trained_run.checkpoint, clip, out=tmp_path / "typo", event=True)


def test_engines_are_chosen_by_name_and_ray_is_imported_only_for_the_ray_engine(tmp_path):
    """One registry of engines, which scan and embed both build from: an unknown name is refused with the valid ones
    before any model loads, and neither loads Ray until a Ray engine is built."""
    from envsound.inference.embeddings import embed_archive

    slurm = envsound.ScanOptions(engine="slurm")
    for run in (envsound.scan, embed_archive):
        with pytest.raises(ConfigError, match="engine 'slurm' is unknown; valid: local, ray"):
            run(tmp_path / "no-model.ckpt", [tmp_path], out=tmp_path / "out", options=slurm)
    code = ("import sys\nimport envsound.inference.scan.run, envsound.inference.embeddings.archive\n"
            "from envsound.inference.archive.engines import engine_kind\nengine_kind('local')\n"
            "print('ray' in sys.modules)")
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert ran.stdout.strip() == "False"
