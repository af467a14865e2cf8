"""Labels on an embeddings store's windows (`envsound label DB --from CSV`, `envsound.label`): both CSV forms, the
0.01-s rule and the centre-in-[start, end) rule, refused rows one line each (the others stored), every verdict kept
with the latest current, labels given in one store found in another of the same files, exports (CSV, Raven) that
read back, the reviewer role; on real audio embedded by the shared trained model, in SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import shutil
import threading
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

import envsound
from envsound.agile.labels import export_labels, label, labelled, store_of
from envsound.deploy.labels import Labels
from envsound.deploy.store import Store
from envsound.errors import ConfigError
from envsound.inference.embeddings import embed_archive

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def archive(tmp_path_factory, synthetic_manifest) -> Path:
    """4 synthetic clips (1.5 s) in two folders and one 6-s file made of 4 others."""
    root = tmp_path_factory.mktemp("labels-archive")
    records = synthetic_manifest.records
    for i, record in enumerate(records[:4]):
        target = root / f"site{i % 2}" / f"clip{i:02d}.wav"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(record.path, target)
    clips = [sf.read(r.path, dtype="float32")[0] for r in records[4:8]]
    sf.write(root / "long.wav", np.concatenate(clips), sf.info(records[0].path).samplerate)
    return root


@pytest.fixture(scope="module")
def db(tmp_path_factory, trained_run, archive) -> Path:
    out = tmp_path_factory.mktemp("labels-db") / "archive.db"
    embed_archive(trained_run.checkpoint, archive, out=out, options=envsound.ScanOptions(workers=1, progress=False))
    return out


@pytest.fixture(scope="module")
def other_db(tmp_path_factory, trained_run, archive) -> Path:
    """The same files embedded in another order (site1 first), so their windows have other ids."""
    out = tmp_path_factory.mktemp("labels-db") / "other.db"
    embed_archive(trained_run.checkpoint, archive / "site1", out=out,
                  options=envsound.ScanOptions(workers=1, progress=False))
    embed_archive(trained_run.checkpoint, archive, out=out, options=envsound.ScanOptions(workers=1, progress=False))
    return out


@pytest.fixture(scope="module")
def windows(db) -> pd.DataFrame:
    return pd.read_parquet(db / "windows").sort_values("window").reset_index(drop=True)


def write_csv(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def in_store(store, call: str, *args, **kwargs):
    """``Labels(Store.open(store)).<call>(...)`` (``Store.open(store).<call>`` for a call not of the labels), the
    store closed after."""
    opened = Store.open(store)
    try:
        return getattr(Labels(opened) if hasattr(Labels, call) else opened, call)(*args, **kwargs)
    finally:
        opened.close()


def current(db, names, store) -> dict[str, dict[int, str]]:
    return {name: dict(zip(v.windows.tolist(), v.verdicts.tolist()))
            for name, v in labelled(db, names, store=store).items()}


def test_a_row_within_10_ms_of_a_window_labels_it_and_any_other_row_the_windows_centred_in_it(db, windows, archive,
                                                                                              tmp_path):
    long = windows[windows["file"] == str(archive / "long.wav")].reset_index(drop=True)
    one = long.iloc[3]
    centres = (long["start"] + long["end"]) / 2
    inside = long[(centres >= 2.0) & (centres < 4.0)]["window"].tolist()
    assert len(inside) >= 3
    source = write_csv(tmp_path / "labels.csv", "file,start,end,label,verdict", [
        f"{one['file']},{one['start'] + 0.008:.4f},{one['end'] - 0.009:.4f},saw,yes",  # one window, though the range
        f"{one['file']},2.0,4.0,saw,no",  # holds other centres; a range: every window centred in [2, 4)
    ])
    summary = label(db, source, store=tmp_path / "review.sqlite", reviewer="ana")
    assert (summary.rows, summary.stored, summary.problems) == (2, 1 + len(inside), [])
    assert summary.line().startswith(f"{1 + len(inside)} verdicts from 2 rows of {source} stored in ")
    got = current(db, ["saw"], tmp_path / "review.sqlite")["saw"]
    expected = {w: "no" for w in inside}
    expected.setdefault(int(one["window"]), "yes")
    assert got == expected
    # the window keeps its own times (not the row's), so another store finds it by them
    stored = in_store(tmp_path / "review.sqlite", "read", label="saw")
    first = stored[0]
    assert (first["window"], first["file"], first["start"], first["end"], first["reviewer"]) == (
        int(one["window"]), one["file"], one["start"], one["end"], "ana")


def test_the_window_form_labels_windows_by_id_with_any_extra_columns(db, windows, tmp_path):
    source = tmp_path / "by_id.csv"
    source.write_text("\ufeffNote,Window,Label,Verdict\nfirst,0,dog,YES\n,5,dog,unsure\n\n,5,cat,no\n")  # Excel BOM
    summary = label(db, source, store=tmp_path / "review.sqlite", reviewer="ana")
    assert (summary.rows, summary.stored, summary.problems) == (3, 3, [])
    assert current(db, ["dog", "cat", "none"], tmp_path / "review.sqlite") == {
        "dog": {0: "yes", 5: "unsure"}, "cat": {5: "no"}, "none": {}}
    verdicts = labelled(db, ["none"], store=tmp_path / "review.sqlite")["none"]
    assert verdicts.windows.dtype == np.int64 and len(verdicts.verdicts) == 0


def test_rows_that_name_no_window_or_hold_a_bad_value_are_one_line_each_exit_1_and_the_others_stored(
        db, windows, archive, tmp_path, envsound_main):
    clip = str(archive / "site0" / "clip00.wav")
    rows = [f"{clip},0.0,1.0,dog,yes",  # line 2: stored
            f"{archive / 'nowhere.wav'},0.0,1.0,dog,yes",  # 3: no such file in the DB
            f"{clip},50.0,60.0,dog,yes",  # 4: past the file's end: no window
            f'{clip},0.0,1.0,"dog,cat",yes',  # 5: a comma in the label
            f"{clip},0.0,1.0,,yes",  # 6: an empty label
            f"{clip},0.0,1.0,dog,maybe",  # 7: not a verdict
            f"{clip},1.0,1.0,dog,no",  # 8: start >= end
            f"{clip},zero,1.0,dog,no",  # 9: not a number
            f"{clip},0.0,1.0,dog",  # 10: a field short
            f"{clip},0.496,1.496,dog,no"]  # 11: stored
    source = write_csv(tmp_path / "labels.csv", "file,start,end,label,verdict", rows)
    store = tmp_path / "review.sqlite"
    ran = envsound_main("label", db, "--from", source, "--store", store, "--reviewer", "ana")
    assert ran.returncode == 1, ran.stderr
    problems = ran.stderr.strip().splitlines()
    assert [line.split(":")[1] for line in problems] == [str(n) for n in range(3, 11)], problems
    assert all(line.startswith(f"{source}:") for line in problems)
    for line, words in zip(problems, ["no file", "no window of", "holds a comma", "an empty label",
                                      "verdict 'maybe' is not yes, no or unsure", "is not before end",
                                      "start 'zero' is not a number", "4 fields where the header has 5"]):
        assert words in line, line
    assert ran.stdout.strip() == f"2 verdicts from 10 rows of {source} stored in sqlite:///{store}; 8 rows refused"
    first = windows[windows["file"] == clip]["window"].tolist()
    assert current(db, ["dog"], store) == {"dog": {first[0]: "yes", first[1]: "no"}}

    by_id = write_csv(tmp_path / "ids.csv", "window,label,verdict", ["0,dog,no", f"{len(windows)},dog,yes", "x,dog,no"])
    ran = envsound_main("label", db, "--from", by_id, "--store", store)
    assert ran.returncode == 1
    assert ran.stderr.strip().splitlines() == [
        f"{by_id}:3: window {len(windows)} is not in {db} (its windows are 0-{len(windows) - 1})",
        f"{by_id}:4: window 'x' is not a window id (a whole number)"]
    ok = write_csv(tmp_path / "ok.csv", "window,label,verdict", ["1,dog,yes"])
    assert envsound_main("label", db, "--from", ok, "--store", store).returncode == 0


def test_a_csv_or_a_folder_that_cannot_be_used_is_refused_in_one_line(db, tmp_path, envsound_main):
    bad = write_csv(tmp_path / "bad.csv", "file,begin,end,label,verdict", ["a.wav,0,1,dog,yes"])
    with pytest.raises(ConfigError, match=r"bad.csv:1: the header must be file,start,end,label,verdict or "
                                          r"window,label,verdict \(got file,begin,end,label,verdict\)"):
        label(db, bad, store=tmp_path / "review.sqlite")
    with pytest.raises(ConfigError, match="missing.csv: cannot read the labels"):
        label(db, tmp_path / "missing.csv", store=tmp_path / "review.sqlite")
    (tmp_path / "plain").mkdir()
    ran = envsound_main("label", tmp_path / "plain", "--from", bad)
    assert ran.returncode == 1 and "not an embeddings store" in ran.stderr and len(ran.stderr.splitlines()) == 1
    assert not (tmp_path / "plain" / "review.sqlite").exists()


def test_the_default_store_is_the_folders_review_sqlite_and_the_reviewer_the_users_name(db, tmp_path, monkeypatch):
    copy = tmp_path / "copy.db"
    shutil.copytree(db, copy)
    monkeypatch.setattr("getpass.getuser", lambda: "field-team")
    summary = envsound.label(copy, write_csv(tmp_path / "l.csv", "window,label,verdict", ["2,dog,yes"]))
    assert summary.stored == 1 and (copy / "review.sqlite").is_file()
    with_store = store_of(copy)
    try:
        assert [row["reviewer"] for row in Labels(with_store).read()] == ["field-team"]
    finally:
        with_store.close()


def test_two_reviewers_at_once_both_kept_the_later_current(db, tmp_path):
    """Issue 67's bad input: two reviewers labelling one window at once: both verdicts kept, the later one current."""
    store = tmp_path / "review.sqlite"
    Store.open(store).close()
    sources = {who: write_csv(tmp_path / f"{who}.csv", "window,label,verdict", [f"7,dog,{verdict}"] * 20)
               for who, verdict in (("ana", "yes"), ("ben", "no"))}
    start = threading.Barrier(2)
    done = {}

    def review(who):
        start.wait()
        done[who] = label(db, sources[who], store=store, reviewer=who)

    threads = [threading.Thread(target=review, args=(who,)) for who in sources]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {who: s.stored for who, s in done.items()} == {"ana": 20, "ben": 20}
    opened = Labels(Store.open(store))
    try:
        rows = opened.read(label="dog")
        assert len(rows) == 40 and {r["reviewer"] for r in rows} == {"ana", "ben"}
        latest = max(rows, key=lambda r: (r["given"], r["id"]))
        assert current(db, ["dog"], store) == {"dog": {7: latest["verdict"]}}
        # a change of mind later on: the newest is current whoever gave it
        opened.add([{**rows[0], "verdict": "unsure"}], reviewer="cleo", given=latest["given"] + timedelta(1))
        assert current(db, ["dog"], store) == {"dog": {7: "unsure"}}
        assert len(opened.read()) == 41
    finally:
        opened.store.close()


def test_labels_given_in_one_store_are_found_in_another_of_the_same_files(db, other_db, windows, archive, tmp_path):
    store = tmp_path / "shared.sqlite"
    clip = str(archive / "site1" / "clip01.wav")
    ids = windows[windows["file"] == clip]["window"].tolist()
    label(db, write_csv(tmp_path / "a.csv", "window,label,verdict", [f"{ids[0]},dog,yes", f"{ids[1]},dog,no"]),
          store=store, reviewer="ana")
    other = pd.read_parquet(other_db / "windows")
    theirs = other[other["file"] == clip].sort_values("start")["window"].tolist()
    assert theirs != ids  # site1 came first there
    assert current(other_db, ["dog"], store) == {"dog": {theirs[0]: "yes", theirs[1]: "no"}}
    assert current(db, ["dog"], store) == {"dog": {ids[0]: "yes", ids[1]: "no"}}
    # a label of a window that the other store does not hold is left out there
    in_store(store, "add", [{"window": ids[0], "file": clip, "start": 0.2, "end": 1.2, "label": "dog",
                                    "verdict": "unsure"}], reviewer="ben")
    assert current(other_db, ["dog"], store)["dog"] == {theirs[0]: "yes", theirs[1]: "no"}


def test_an_exported_csv_labels_the_same_windows_again_and_raven_tables_hold_the_verdicts(db, archive, tmp_path,
                                                                                          envsound_main):
    store = tmp_path / "review.sqlite"
    long = str(archive / "long.wav")
    label(db, write_csv(tmp_path / "a.csv", "file,start,end,label,verdict",
                        [f"{long},0.0,3.0,saw,yes", f"{long},1.0,2.0,saw,no", f"{long},0.0,6.0,dog,unsure"]),
          store=store, reviewer="ana")
    label(db, write_csv(tmp_path / "b.csv", "window,label,verdict", ["0,dog,yes", "1,dog,no"]), store=store,
          reviewer="ben")
    before = current(db, ["saw", "dog"], store)
    out = tmp_path / "export.csv"
    ran = envsound_main("label", db, "--export", out, "--store", store)
    assert ran.returncode == 0 and ran.stdout.strip() == f"labels of {db} -> {out}"
    exported = pd.read_csv(out)
    assert list(exported.columns) == ["window", "file", "start", "end", "label", "verdict", "reviewer", "given"]
    assert len(exported) == sum(len(v) for v in before.values())
    assert set(exported["reviewer"]) == {"ana", "ben"} and exported["given"].str.endswith("Z").all()
    again = tmp_path / "again.sqlite"
    assert envsound_main("label", db, "--from", out, "--store", again).returncode == 0
    assert current(db, ["saw", "dog"], again) == before

    history = envsound_main("label", db, "--export", tmp_path / "all.csv", "--history", "--store", store)
    assert history.returncode == 0
    assert len(pd.read_csv(tmp_path / "all.csv")) == len(in_store(store, "read"))

    raven = tmp_path / "raven"
    assert envsound_main("label", db, "--export", raven, "--raven", "--store", store).returncode == 0
    tables = sorted(raven.rglob("*.Table.1.selections.txt"))
    assert len(tables) == len(set(exported["file"]))
    read = []
    for table in tables:
        with open(table, newline="") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        assert list(rows[0]) == ["Selection", "View", "Channel", "Begin Time (s)", "End Time (s)", "Low Freq (Hz)",
                                 "High Freq (Hz)", "Annotation", "Verdict"]
        assert [int(r["Selection"]) for r in rows] == list(range(1, len(rows) + 1))
        file = "/" + str(table.relative_to(raven)).removesuffix(".Table.1.selections.txt")
        assert {float(r["High Freq (Hz)"]) for r in rows} == {sf.info(file).samplerate / 2}  # the file's Nyquist
        read += [(file, round(float(r["Begin Time (s)"]), 3), r["Annotation"], r["Verdict"]) for r in rows]
    assert sorted(read) == sorted(zip(exported["file"], exported["start"].round(3), exported["label"],
                                      exported["verdict"]))


def test_a_store_keeps_every_verdict_and_refuses_a_bad_one_whole(store_spec):
    store = Store.open(store_spec)
    labels = Labels(store)
    try:
        row = {"window": 3, "file": "/a/b.wav", "start": 0.5, "end": 1.5, "label": "dog", "verdict": "yes"}
        assert labels.add([row, {**row, "window": None, "label": "cat"}], reviewer="ana", given=T0) == 2
        with pytest.raises(ConfigError, match="verdict 'maybe'"):
            labels.add([row, {**row, "verdict": "maybe"}], reviewer="ben")
        with pytest.raises(ConfigError, match="reviewer ''"):
            labels.add([row], reviewer="")
        assert labels.add([{**row, "verdict": "no"}], reviewer="ben", given=T0 + timedelta(seconds=1)) == 1
        rows = labels.read(label="dog")
        assert [(r["verdict"], r["reviewer"], r["given"]) for r in rows] == [
            ("yes", "ana", T0), ("no", "ben", T0 + timedelta(seconds=1))]
        assert rows[0]["window"] == 3 and [r["window"] for r in labels.read(label="cat")] == [None]
        assert labels.names() == ["dog", "cat"] and labels.mark("dog") == (2, rows[-1]["id"])
    finally:
        store.close()


def test_the_stores_label_methods_still_work_with_a_deprecation_warning(tmp_path):
    """Issue 74: the labels table's code moved from the sensors' Store to envsound.deploy.labels; Store's four
    methods of last release keep working for one, each with a DeprecationWarning naming its new place."""
    store = Store.open(tmp_path / "events.sqlite")
    try:
        row = {"window": 1, "file": "a.wav", "start": 0.0, "end": 1.0, "label": "dog", "verdict": "no"}
        with pytest.warns(DeprecationWarning, match=r"Labels\(store\)\.add"):
            assert store.add_labels([row], reviewer="ana") == 1
        with pytest.warns(DeprecationWarning, match=r"Labels\(store\)\.read"):
            assert store.labels()[0]["verdict"] == "no"
        with pytest.warns(DeprecationWarning, match=r"Labels\(store\)\.names"):
            assert store.label_names() == ["dog"]
        with pytest.warns(DeprecationWarning, match=r"Labels\(store\)\.mark"):
            assert store.label_mark("dog")[0] == 1
    finally:
        store.close()


def test_labels_go_into_a_postgresql_store_by_url(db, postgres, tmp_path, envsound_main):
    url = postgres.create_database(f"t{uuid.uuid4().hex[:12]}")
    source = write_csv(tmp_path / "l.csv", "window,label,verdict", ["0,dog,yes", "0,dog,no", "4,cat,yes"])
    ran = envsound_main("label", db, "--from", source, "--store", url, "--reviewer", "ana")
    assert ran.returncode == 0, ran.stderr
    assert current(db, ["dog", "cat"], url) == {"dog": {0: "no"}, "cat": {4: "yes"}}


def test_a_reviewer_token_can_be_made_and_may_read_and_review_only(tmp_path, envsound_main):
    from envsound.deploy.tokens import MAY

    store = tmp_path / "review.sqlite"
    ran = envsound_main("token", "create", "ana", "--role", "reviewer", "--store", store, "--new-store")
    assert ran.returncode == 0, ran.stderr
    secret = ran.stdout.strip().splitlines()[-1]
    made = in_store(store, "token_for", secret)
    assert made.role == "reviewer"
    assert {action for action, roles in MAY.items() if "reviewer" in roles} == {"read", "review"}
    assert MAY["review"] == {"reviewer", "admin"}


def test_export_refuses_an_unknown_format(db, tmp_path):
    with pytest.raises(ConfigError, match="labels export format 'xlsx' is unknown; valid: csv, raven"):
        export_labels(db, tmp_path / "x", format="xlsx", store=tmp_path / "review.sqlite")


def test_windows_of_files_that_interleave_in_a_store_are_matched(tmp_path):
    """embed writes a file's windows together; a store whose files interleave (and whose ids are not in part order)
    is matched all the same: by the window's own times, by centres and by id."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from envsound.inference.archive.journal import Journal
    from envsound.inference.embeddings.store import STORE_KIND, TABLES

    out = tmp_path / "mixed.db"
    journal = Journal.open(out, {"store": STORE_KIND, "model": "x", "model_file": "x", "precision": "auto",
                                 "layer": "embed", "window_seconds": 1.0}, tables=TABLES)
    parts = [(["a.wav", "b.wav", "a.wav", "b.wav"], [0.5, 0.0, 0.0, 0.5], [3, 2, 1, 0]),
             (["b.wav", "a.wav"], [1.0, 1.0], [5, 4])]
    for number, (files, starts, ids) in enumerate(parts, start=1):
        for folder in ("windows", "embeddings"):
            (out / folder).mkdir(exist_ok=True)
        pq.write_table(pa.table({"window": pa.array(ids, pa.int64()), "file": files, "start": starts,
                                 "end": [s + 1.0 for s in starts]}), out / "windows" / f"part-{number:06d}.parquet")
        np.save(out / "embeddings" / f"part-{number:06d}.npy", np.zeros((len(ids), 4), np.float16))
        journal.commit(number, [(name, True, 2.0) for name in set(files)])
    journal.close()
    source = write_csv(tmp_path / "l.csv", "file,start,end,label,verdict",
                       ["a.wav,0.5,1.5,dog,yes", "b.wav,0.9,2.0,dog,no", "a.wav,0.0,0.9,cat,yes"])
    summary = label(out, source, store=tmp_path / "review.sqlite", reviewer="ana")
    assert summary.problems == [] and summary.stored == 4
    assert current(out, ["dog", "cat"], tmp_path / "review.sqlite") == {"dog": {3: "yes", 0: "no", 5: "no"},
                                                                        "cat": {1: "yes"}}
    by_id = write_csv(tmp_path / "ids.csv", "window,label,verdict", ["4,cat,no"])
    label(out, by_id, store=tmp_path / "review.sqlite", reviewer="ana")
    stored = in_store(tmp_path / "review.sqlite", "read", label="cat")[-1]
    assert (stored["window"], stored["file"], stored["start"]) == (4, "a.wav", 1.0)


def test_a_store_made_before_labels_gets_the_labels_table_and_keeps_its_tokens(store_spec):
    """Migration 0003 adds the labels table to a store of 0002 (a deployment's, with its tokens)."""
    import sqlalchemy as sa
    from conftest import store_at_revision

    with store_at_revision(store_spec, "0002") as connection:
        assert not sa.inspect(connection).has_table("labels")
        connection.execute(sa.text("INSERT INTO tokens (name, role, digest, created) "
                                   "VALUES ('me', 'viewer', 'ab', '2026-11-01 00:00:00')"))
    store = Store.open(store_spec)
    try:
        assert [t.name for t in store.tokens()] == ["me"]
        row = {"window": 1, "file": "a.wav", "start": 0.0, "end": 1.0, "label": "dog", "verdict": "no"}
        assert Labels(store).add([row], reviewer="ana") == 1 and Labels(store).read()[0]["verdict"] == "no"
    finally:
        store.close()


def test_a_label_name_never_becomes_a_path(tmp_path):
    """Found in review: a curve's file was named after the label as given, so a reviewer's label `../../x` (or an
    absolute one) wrote outside the learned model's folder. One check of a name (labels, learn, the page) and one
    safe file name for what is written after it."""
    from envsound.agile.calibrate import calibrate, write_curve
    from envsound.agile.names import check_label, file_name
    from envsound.agile.review import learned_folder

    assert file_name("chainsaw") == "chainsaw" and learned_folder("db", "dog_bark") == Path("db/learned/dog_bark")
    for name in ("../../x", "/tmp/x", ".hidden", "a/b", "Chicken rooster"):
        safe = file_name(name)
        assert "/" not in safe and not safe.startswith(".") and safe != file_name(name + "2"), name
    scores = np.linspace(0.05, 0.95, 12)
    truth = scores > 0.5
    files = np.array([f"f{i % 6}" for i in range(12)])
    calibration = calibrate("../../outside", scores[:, None], truth, files, lambda x, t: (lambda held: held[:, 0]))
    out = tmp_path / "model"
    out.mkdir()
    written = write_curve(calibration, out)
    assert written and all(path.parent == out for path in written)
    assert not (tmp_path.parent / "outside.curve.csv").exists()
    for bad in ("a,b", " padded", "", "x" * 201, "bell\x07"):
        with pytest.raises(ConfigError):
            check_label(bad)
