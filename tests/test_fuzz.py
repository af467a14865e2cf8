"""Fuzzed input (issue 68): random and mutated bytes into the audio file readers and the stdin stream reader, random
CSV manifests, label maps, ``--set`` values and scan journals, report bodies and WebSocket first messages to a real
server. Each parser answers with success or its own error
(:mod:`fuzzcases` says which), never another exception or a hang.

A fixed, derandomized budget of examples per parser keeps the suite deterministic and within seconds; the long run
is ``benchmarks/bench_fuzz.py`` (its counts in docs/benchmarks.md). A failure found and fixed stays here as an
``@example``. The hang guard is SIGALRM inside each check (:func:`fuzzcases.no_hang`), not hypothesis's ``deadline``,
which would fail a slow but finite example on a loaded machine.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings

import fuzzcases as fz

BUDGET = settings(max_examples=300, derandomize=True, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@BUDGET
@given(case=fz.audio_inputs)
@example(case=("a.flac", fz.flac_promising(2 ** 36 - 1)))  # load_audio: MemoryError (512 GiB up front)
def test_audio_files_raise_only_audio_load_error(folder, case):
    fz.check_audio_file(folder, *case)


@BUDGET
@given(case=fz.audio_inputs)
@example(case=("a.flac", fz.seed_without("a.flac", 26, 42)))  # miniaudio.DecodeError from the decoder's start
@example(case=("a.ogg", fz.ogg_with_comments(1, 0x7FFFFF00)))  # stb_vorbis: 20 s on one comment's length
@example(case=("a.ogg", fz.ogg_with_comments(695_496_293, 0)))  # stb_vorbis: SIGSEGV
def test_audio_streams_raise_only_audio_load_error(case):
    fz.check_audio_stream(case[1])


@BUDGET
@given(case=fz.raw_pcm)
@example(case=(b"\x00\x00\x00\x3f\x00\x00\xc0\x7f\x00\x00\x80\xff", 8000, 1, "float32"))  # 0.5, NaN, -inf: kept
def test_raw_pcm_streams_raise_only_audio_load_error(case):
    data, rate, channels, encoding = case
    fz.check_audio_stream(data, rate=rate, channels=channels, encoding=encoding)


@BUDGET
@given(data=fz.manifests())
def test_csv_manifests_raise_only_layout_or_config_errors(folder, data):
    fz.check_manifest(fz.manifest_folder(folder / "manifest"), data)


@BUDGET
@given(data=fz.label_maps())
@example(data=b"\xfe\x82")  # UnicodeDecodeError
def test_label_maps_raise_only_config_error(folder, data):
    fz.check_label_map(folder, data)


@BUDGET
@given(texts=fz.set_values())
def test_set_values_raise_only_config_error(texts):
    fz.check_set(texts)


@BUDGET
@given(case=fz.journals())
@example(case=(fz.journal_of_schema_format(9), True))  # sqlite3.OperationalError: unsupported file format
@example(case=(fz.journal_with_bad_text(), False))  # sqlite3.OperationalError: Could not decode to UTF-8
@example(case=(fz.journal_renaming(b"key TEXT", b"kex TEXT"), True))  # sqlite3.OperationalError: no such column
@example(case=(fz.journal_renaming(b"seconds REAL", b"secondz REAL"), False))  # no such column, at totals()
def test_damaged_journals_are_refused_in_one_line(folder, case):
    fz.check_journal(folder / "out", *case)


@pytest.fixture(scope="module")
def deployed(served, tmp_path_factory):
    """A real server with tokens required over a SQLite store (:func:`fuzzcases.deployment`)."""
    with fz.deployment(served.model, tmp_path_factory.mktemp("deployed")) as deployment:
        yield deployment


@BUDGET
@given(body=fz.report_bodies())
def test_report_bodies_get_200_or_a_4xx_and_a_refused_one_leaves_the_store_as_it_was(deployed, body):
    fz.check_report(deployed, body)


@settings(BUDGET, max_examples=100)
@given(message=fz.hellos())
def test_a_socket_s_first_message_gets_a_close_code_and_stores_no_event(deployed, message):
    fz.check_hello(deployed, message)


@BUDGET
@given(case=fz.results_folders())
@example(case=([("files", "part-000009.parquet", "dir", b"")], True))  # IsADirectoryError: an orphan's name
@example(case=([("windows", "x.tmp", "dir", b"")], False))  # IsADirectoryError: a temporary file's name
@example(case=([("files", "part-\u00b2.parquet", "file", b"PAR1")], True))  # ValueError: int("²")
def test_results_folders_of_random_entries_are_resumed_or_refused_in_one_line(folder, case):
    fz.check_results_folder(folder / "results", *case)
