"""What the fuzz tests feed envsound's parsers, and what each parser may answer (issue 68, item 4).

Shared by ``tests/test_fuzz.py`` (a fixed, derandomized budget of examples) and ``benchmarks/bench_fuzz.py`` (a long
run). Every ``check_*`` function hands one input to a parser and lets through only success or the parser's own
errors (:class:`~envsound.errors.EnvsoundError` subclasses); any other exception, or a call that runs past
:data:`HANG_SECONDS`, propagates, and hypothesis reports the input. The inputs:

- audio files: small real WAV (PCM and float), FLAC, Ogg Vorbis and MP3 files written with soundfile, then bytes
  flipped, set, inserted, deleted or cut off; and random bytes, bare or behind a format's magic number;
- the same bytes as a stream on stdin (``envsound listen --input -``), with and without ``--rate`` (raw PCM);
- CSV manifests (the ``csv`` dataset), label maps (``--label-map``) and ``--set`` values;
- the scan journal (``journal.sqlite``) of a results folder handed to a resume, damaged or replaced by random bytes,
  and results folders of random entries (part files of random bytes, folders, links, pipes named like parts);
- a real server's ``POST /v1/report`` bodies and ``/v1/listen`` first messages (:class:`Deployment`).
"""

from __future__ import annotations

import contextlib
import io
import json
import signal
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf
from hypothesis import strategies as st

from envsound.audio.load import audio_info, iter_audio_blocks, load_audio, validate_audio
from envsound.audio.stream import open_stream
from envsound.config import Config
from envsound.config.schema import parse_override
from envsound.data.csv_manifest import prepare_csv
from envsound.errors import AudioLoadError, ConfigError, DatasetLayoutError
from envsound.inference.archive.journal import JOURNAL_NAME, Journal
from envsound.inference.scan.tables import TABLES
from envsound.transfer.source import match_labels, read_label_map

HANG_SECONDS = 10  # one input to one parser; the real files take milliseconds


class Hang(Exception):
    """A parser ran past :data:`HANG_SECONDS` on one input."""


@contextlib.contextmanager
def no_hang(seconds: int = HANG_SECONDS):
    """Raise :class:`Hang` in the main thread when the block runs past ``seconds`` (SIGALRM: a loop in C is stopped
    when it returns to Python; pytest's own timeout is the backstop for one that never does). A timer already set
    (pytest-timeout's, which uses the same signal) is set again afterwards with the time it had left."""
    def alarm(signum, frame):
        raise Hang(f"a parser ran past {seconds} s on one input")

    previous = signal.signal(signal.SIGALRM, alarm)
    left, interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    began = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if left:
            signal.setitimer(signal.ITIMER_REAL, max(left - (time.monotonic() - began), 0.001), interval)


# ------------------------------------------------------------------------------------------------------ audio bytes

@lru_cache(maxsize=None)
def seed_files() -> dict[str, bytes]:
    """Small real files (a 0.1-s stereo tone at 8 kHz) by suffix: what the mutations start from."""
    t = np.arange(800)[:, None] / 8000
    tone = 0.5 * np.sin(2 * np.pi * 440 * t + np.array([[0.0, 1.0]]))
    seeds = {}
    for name, fmt, subtype in (("pcm.wav", "WAV", "PCM_16"), ("float.wav", "WAV", "FLOAT"), ("a.flac", "FLAC", None),
                               ("a.ogg", "OGG", "VORBIS"), ("a.mp3", "MP3", None), ("a.aiff", "AIFF", "PCM_16")):
        buffer = io.BytesIO()
        try:
            sf.write(buffer, tone, 8000, format=fmt, subtype=subtype)
        except (sf.LibsndfileError, TypeError, ValueError):  # a libsndfile built without MP3
            continue
        seeds[name] = buffer.getvalue()
    return seeds


MAGIC = [b"RIFF\x24\x00\x00\x00WAVEfmt ", b"fLaC", b"OggS\x00\x02", b"ID3\x04\x00\x00", b"\xff\xfb\x90\x00",
         b"FORM\x00\x00\x00\x00AIFF", b".snd", b"caff", b"RF64\xff\xff\xff\xffWAVE"]
_INTERESTING = [b"\x00", b"\xff", b"\x7f", b"\x80", b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\xff\xff\xff\x7f",
                b"\x00\x00\x00\x80", b"\x01\x00", b"data", b"fmt ", b"OggS", b"\xff\xfb"]


@st.composite
def mutated_audio(draw) -> tuple[str, bytes]:
    """(a file name whose suffix is the seed's, the seed's bytes with 1-8 mutations); positions favour the header."""
    seeds = seed_files()
    name = draw(st.sampled_from(sorted(seeds)))
    data = bytearray(seeds[name])
    for _ in range(draw(st.integers(1, 8))):
        end = max(1, len(data))
        at = draw(st.integers(0, min(end, 96) - 1) | st.integers(0, end - 1))
        op = draw(st.sampled_from(("flip", "set", "insert", "delete", "truncate")))
        if op == "flip":
            if data:
                data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            value = draw(st.sampled_from(_INTERESTING) | st.binary(min_size=1, max_size=4))
            data[at:at + len(value)] = value
        elif op == "insert":
            data[at:at] = draw(st.sampled_from(_INTERESTING) | st.binary(min_size=1, max_size=64))
        elif op == "delete":
            del data[at:at + draw(st.integers(1, 64))]
        else:
            del data[at:]
    return name, bytes(data)


@st.composite
def random_audio(draw) -> tuple[str, bytes]:
    """Random bytes, bare or behind a format's magic number, with a random audio suffix."""
    head = draw(st.sampled_from([b""] + MAGIC))
    suffix = draw(st.sampled_from([".wav", ".flac", ".ogg", ".mp3", ".aiff", ".au", ".bin"]))
    return f"r{suffix}", head + draw(st.binary(max_size=2048))


audio_inputs = mutated_audio() | random_audio()


def check_audio_file(folder: Path, name: str, data: bytes) -> None:
    """Every file reader on ``data`` written as ``folder/name``: success or :class:`AudioLoadError`."""
    path = folder / name
    path.write_bytes(data)
    readers = (audio_info, validate_audio, lambda p: load_audio(p, sample_rate=16000),
               lambda p: sum(len(block) for block in iter_audio_blocks(p, sample_rate=11025, block_seconds=0.05)))
    for read in readers:
        with no_hang():
            try:
                read(path)
            except AudioLoadError:
                pass


def check_audio_stream(data: bytes, rate: int | None = None, channels: int = 1, encoding: str = "pcm16") -> None:
    """``data`` as stdin to ``listen`` (read to its end): success or :class:`AudioLoadError`; every sample it gives a
    number (a NaN or infinity made the hops around it vanish)."""
    with no_hang():
        try:
            _, blocks = open_stream(io.BytesIO(data), name="stdin", rate=rate, channels=channels, encoding=encoding)
            for block in blocks:
                assert np.isfinite(block).all(), "a sample that is not a number"
        except AudioLoadError:
            pass


raw_pcm = st.tuples(st.binary(max_size=4096), st.integers(-10, 800_000), st.integers(-2, 70),
                    st.sampled_from(["pcm8", "pcm16", "pcm24", "pcm32", "float32", "pcm12", ""]))


# --------------------------------------------------------------------------------------------------------- manifests

_COLUMNS = ["path", "label", "fold", "source_id", "Path", "", "extra"]
_CELL = st.sampled_from(["a.wav", "b.wav", "gone.wav", "", "manifest.csv", ".", "..", "dog", "dog;cat", ";", "1",
                         "-3", "2.0", "1e9", "nan", "x"]) | st.text(max_size=12)


@st.composite
def manifests(draw) -> bytes:
    """A CSV manifest: a header from real and wrong column names, rows of plausible and random cells, random
    quoting; or random bytes."""
    if draw(st.integers(0, 4)) == 0:
        return draw(st.binary(max_size=512))
    columns = draw(st.lists(st.sampled_from(_COLUMNS) | st.text(max_size=6), min_size=0, max_size=5))
    rows = draw(st.lists(st.lists(_CELL, min_size=0, max_size=len(columns) + 1), max_size=6))
    sep = draw(st.sampled_from([",", ";", "\t", ",\"", "\""]))
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    text = newline.join(sep.join(row) for row in [columns, *rows])
    return text.encode(draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "latin-1"])), errors="replace")


def manifest_folder(folder: Path) -> Path:
    """``folder`` with two real clips (a.wav, b.wav) a manifest may name."""
    from .audiofactory import write_tone

    for name in ("a.wav", "b.wav"):
        if not (folder / name).exists():
            write_tone(folder / name, seconds=0.2, sample_rate=8000)
    return folder


def check_manifest(folder: Path, data: bytes) -> None:
    """The ``csv`` dataset listed from ``data``: success or DatasetLayoutError / ConfigError (AudioLoadError for a
    row naming a file that is not audio, such as the manifest itself)."""
    (folder / "manifest.csv").write_bytes(data)
    with no_hang():
        try:
            prepare_csv(folder)
        except (DatasetLayoutError, ConfigError, AudioLoadError):
            pass


# -------------------------------------------------------------------------------------------------------- label maps

_CLASS = st.sampled_from(["dog", "cat", "Dog", "rooster", "Chicken, rooster", "source", "target", "", " "]) \
    | st.text(max_size=8)


@st.composite
def label_maps(draw) -> bytes:
    """A label map CSV: rows of 0-3 class names, quoted or not; or random bytes."""
    if draw(st.integers(0, 4)) == 0:
        return draw(st.binary(max_size=256))
    rows = draw(st.lists(st.lists(_CLASS, max_size=3), max_size=6))
    quote = draw(st.booleans())
    lines = [",".join(f'"{cell}"' if quote else cell for cell in row) for row in rows]
    return "\n".join(lines).encode("utf-8", errors="replace")


def check_label_map(folder: Path, data: bytes) -> None:
    """``data`` read as ``--label-map`` and matched to two label sets: success or :class:`ConfigError`."""
    path = folder / "map.csv"
    path.write_bytes(data)
    with no_hang():
        try:
            mapping = read_label_map(path)
            match_labels(["dog", "rooster"], ["Dog", "Chicken, rooster", "cat"], mapping)
        except ConfigError:
            pass


# ------------------------------------------------------------------------------------------------------ --set values

@lru_cache(maxsize=None)
def config_keys() -> tuple[str, ...]:
    """Every ``section.key`` of the default config, sub-sections included."""
    def walk(data, prefix):
        for key, value in data.items():
            if isinstance(value, dict) and value:
                yield from walk(value, f"{prefix}{key}.")
            yield f"{prefix}{key}"

    return tuple(walk(Config().to_dict(), ""))


_VALUE = st.sampled_from(["", "0", "-1", "1e400", "-.inf", ".nan", "nan", "true", "null", "~", "[]", "{}", "[1, 2]",
                          "{a: 1}", "a,b", ",", "0x10", "1_000", "'", "\"", "[", "{", ": ", "- a", "!!python/none",
                          "&a [*a]", "2026-11-28", "9" * 40, "1.5", "auto", "none", "cpu", "logmel"]) \
    | st.text(max_size=16)


@st.composite
def set_values(draw) -> list[str]:
    """One to three ``--set`` texts: a real key (or a near miss, or random text) ``=`` a random value."""
    texts = []
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(config_keys()) | st.sampled_from(["train", "train.", ".lr", "model.options.x",
                                                                   "semi.fixmatch", "a.b.c", ""]) | st.text(max_size=8))
        texts.append(f"{key}{draw(st.sampled_from(['=', '==', ' = ', '']))}{draw(_VALUE)}")
    return texts


def check_set(texts: list[str]) -> None:
    """``--set`` with ``texts``: a validated config or :class:`ConfigError`."""
    with no_hang():
        try:
            for text in texts:
                parse_override(text)
            Config().with_overrides(texts)
        except ConfigError:
            pass


# -------------------------------------------------------------------------------------------------------- journals

@lru_cache(maxsize=None)
def seed_journal() -> bytes:
    """The bytes of a real journal: settings, two committed parts, three files."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        journal = Journal.open(Path(tmp), {"model": "ab" * 32, "hop": 0.5}, tables=TABLES)
        journal.commit(1, [("a.wav", True, 5.0), ("b.wav", False, 0.0)])
        journal.commit(2, [("c.wav", True, 5.0)])
        journal.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        journal.close()
        return (Path(tmp) / JOURNAL_NAME).read_bytes()


@st.composite
def journals(draw) -> tuple[bytes, bool]:
    """(a journal's bytes: the real one mutated, cut short, or random; whether the folder holds a part file)."""
    choice = draw(st.integers(0, 3))
    data = bytearray(seed_journal())
    if choice == 0:
        data = bytearray(draw(st.binary(max_size=4096)))
    elif choice == 1:
        del data[draw(st.integers(0, len(data))):]
    else:
        for _ in range(draw(st.integers(1, 6))):
            at = draw(st.integers(0, 99) | st.integers(0, len(data) - 1))
            data[at:at + 4] = draw(st.sampled_from(_INTERESTING) | st.binary(min_size=1, max_size=4))
    return bytes(data), draw(st.booleans())


def _resume(out: Path) -> None:
    """What a resume does with the results folder ``out``: its journal opened, read and closed, or a
    :class:`ConfigError` of one line; never another exception or a hang."""
    with no_hang():
        try:
            journal = Journal.open(out, {"model": "ab" * 32, "hop": 0.5}, tables=TABLES)
        except ConfigError as exc:
            assert "\n" not in str(exc), str(exc)
        else:
            journal.next_part()
            journal.totals()
            journal.close()


def check_journal(out: Path, data: bytes, with_part: bool) -> None:
    """A results folder whose journal holds ``data`` handed to a resume: opened, or :class:`ConfigError` (one line)."""
    import shutil

    shutil.rmtree(out, ignore_errors=True)
    (out / "files").mkdir(parents=True)
    (out / JOURNAL_NAME).write_bytes(data)
    if with_part:
        (out / "files" / "part-000001.parquet").write_bytes(b"PAR1")
    _resume(out)



_ENTRY_NAMES = (st.sampled_from(["part-000001.parquet", "part-000002.parquet", "part-000009.parquet", "part-000001.csv",
                                 "part-000003.parquet.tmp", "x.tmp", "part-", "part-.parquet", "part-0000001",
                                 "part-\u00b2.parquet", "part-\u0663.parquet", "notes.txt", ""])
                | st.text(min_size=1, max_size=10).map(lambda t: f"part-{t}") | st.text(min_size=1, max_size=10)) \
    .filter(lambda name: "/" not in name and "\0" not in name and name not in (".", ".."))


@st.composite
def results_folders(draw) -> tuple[list[tuple[str, str, str, bytes]], bool]:
    """(what a results folder holds beside its journal: (table folder, name, kind, bytes) each, the name "" for the
    table's own path; whether the folder has the real journal of two committed parts). Kinds: a file of random bytes
    or Parquet's magic, a folder, a symbolic link to nowhere or to the journal, a named pipe."""
    entries = draw(st.lists(st.tuples(st.sampled_from([*TABLES, "raven", "audacity", "other"]), _ENTRY_NAMES,
                                      st.sampled_from(["file", "dir", "link", "journal link", "fifo"]),
                                      st.sampled_from([b"", b"PAR1", b"PAR1" * 3]) | st.binary(max_size=64)),
                            max_size=6))
    return entries, draw(st.booleans())


def check_results_folder(out: Path, entries: list[tuple[str, str, str, bytes]], with_journal: bool) -> None:
    """A results folder holding ``entries`` handed to a resume: opened (orphans removed), or :class:`ConfigError`
    in one line."""
    import os
    import shutil

    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    if with_journal:
        (out / JOURNAL_NAME).write_bytes(seed_journal())
    for table, name, kind, data in entries:
        path = out / table / name if name else out / table
        if os.path.lexists(path) or (os.path.lexists(path.parent) and not path.parent.is_dir()):
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind == "file":
            path.write_bytes(data)
        elif kind == "dir":
            path.mkdir()
        elif kind == "fifo":
            os.mkfifo(path)
        else:
            path.symlink_to(out / JOURNAL_NAME if kind == "journal link" else out / "nowhere")
    _resume(out)


# ----------------------------------------------------------------------- the server: report bodies, a socket's hello

@dataclass
class Deployment:
    """A real server (uvicorn in a thread) over a SQLite store with tokens required: ``url``, its ``store``, a sensor
    token ``lab`` (``secret``) and a client. The per-token rate and the per-address failure limits are set beyond
    reach, so that every input reaches the parser under test instead of a 429."""

    url: str
    store: object
    secret: str
    client: object


@contextlib.contextmanager
def deployment(model, folder: Path):
    """A :class:`Deployment` serving ``model`` (an ``envsound.load_model`` model) with its store in ``folder``."""
    import httpx

    from envsound.app.auth import Guard
    from envsound.app.run import running
    from envsound.app.server import create_app
    from envsound.deploy.store import Store

    store = Store.open(folder / "events.sqlite")
    _, secret = store.create_token("lab", "sensor")
    guard = Guard(store, required=True, rate=1e9, failures=10**9)
    try:
        with running(create_app(model, store=store, guard=guard)) as url, \
                httpx.Client(base_url=url, timeout=30, headers={"Authorization": f"Bearer {secret}"}) as client:
            yield Deployment(url, store, secret, client)
    finally:
        store.close()


def _store_rows(store) -> tuple[int, list[dict]]:
    return store.count_events(), store.sensors()


def _times() -> dict:
    from datetime import datetime, timedelta, timezone

    now = datetime.now(timezone.utc)
    return {"onset": (now - timedelta(minutes=5)).isoformat(), "offset": (now - timedelta(minutes=4)).isoformat(),
            "now": now.isoformat()}


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
                     lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)
_REPORT_KEYS = ["sensor", "model", "fingerprint", "events", "heartbeat", "sent", "key", "label", "onset", "offset",
                "score", "time"]


@st.composite
def report_bodies(draw) -> bytes:
    """A ``POST /v1/report`` body: a valid report (sensor ``lab``, an event, a heartbeat, ``sent``) with fields
    removed, replaced by random JSON (NaN and infinities included) or added; its text with bytes changed; random
    JSON; or random bytes."""
    choice = draw(st.integers(0, 5))
    if choice == 0:
        return draw(st.binary(max_size=512))
    if choice == 1:
        return json.dumps(draw(_JSON)).encode()
    times = _times()
    event = {"key": draw(st.text(min_size=1, max_size=8)), "label": "dog", "onset": times["onset"],
             "offset": times["offset"], "score": 0.5}
    heartbeat = {"time": times["now"], "label": "dog", "score": 0.5}
    report = {"sensor": "lab", "model": "m", "fingerprint": "0123456789abcdef", "events": [event],
              "heartbeat": heartbeat, "sent": times["now"]}
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from([report, event, heartbeat]))
        key = draw(st.sampled_from(_REPORT_KEYS) | st.text(max_size=6))
        if draw(st.booleans()):
            where.pop(key, None)
        else:
            where[key] = draw(_JSON | st.sampled_from(["lab", "x" * 65, "2026-13-01T00:00:00Z", "1999-01-01T00:00:00Z",
                                                       "2099-01-01T00:00:00Z", "2026-11-28T10:00:00", "", "\u0000"]))
    if choice == 5:  # the event repeated: a large report, or none
        report["events"] = [event] * draw(st.integers(0, 1200))
    data = bytearray(json.dumps(report).encode())
    if choice == 4:
        for _ in range(draw(st.integers(1, 4))):
            at = draw(st.integers(0, len(data) - 1))
            data[at:at + 1] = draw(st.binary(min_size=0, max_size=2))
    return bytes(data)


def check_report(deployed: Deployment, body: bytes) -> None:
    """``body`` posted to ``/v1/report`` with the sensor's token: 200 (the store holds what it says it stored) or a
    4xx with one line and the store unchanged; never a 5xx, a dropped connection or a hang."""
    before = _store_rows(deployed.store)
    with no_hang(30):  # a report of 1,000 events on a loaded machine: time, not a hang
        answer = deployed.client.post("/v1/report", content=body, headers={"content-type": "application/json"})
    if answer.status_code == 200:
        assert deployed.store.count_events() == before[0] + answer.json()["stored"], answer.text
        return
    assert 400 <= answer.status_code < 500 and answer.status_code != 429, (answer.status_code, answer.text)
    error = answer.json()["error"]
    assert isinstance(error, str) and "\n" not in error, error
    assert _store_rows(deployed.store) == before, "a refused report changed the store"


@st.composite
def hellos(draw) -> str | bytes:
    """A WebSocket's first message: a hello (``token``, ``sensor``, ``start``, or other keys, with good or random
    values; ``{token}`` stands for the real token), random JSON or text, or binary bytes."""
    choice = draw(st.integers(0, 4))
    if choice == 0:
        return draw(st.binary(max_size=64))
    if choice == 1:
        return draw(st.text(max_size=32))
    if choice == 2:
        return json.dumps(draw(_JSON))
    good = {"token": "{token}", "sensor": "lab", "start": _times()["onset"]}
    hello = {key: value for key, value in good.items() if draw(st.integers(0, 3))}  # each kept 3 times in 4
    for key in draw(st.lists(st.sampled_from(["token", "sensor", "start", "other"]), max_size=2, unique=True)):
        hello[key] = draw(st.sampled_from(["", "lab ", "es_guess", "other", "x" * 65, "2099-01-01T00:00Z",
                                           "2026-11-28T10:00:00", "{token}", "lab"]) | _JSON)
    text = json.dumps(hello)
    if choice == 4 and text:
        at = draw(st.integers(0, len(text) - 1))
        text = text[:at] + draw(st.text(max_size=2)) + text[at + 1:]
    return text


CLOSE_CODES = {1000, 1003, 1008, 1009, 1013}  # normal, unsupported, policy, too big, try later: never 1011 (a crash)


def check_hello(deployed: Deployment, message: str | bytes) -> None:
    """``message`` as the first message of ``/v1/listen`` (then the text ``end``): the socket closed with one of
    :data:`CLOSE_CODES`, no events stored, and the store unchanged unless the stream was let in (1000)."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    if isinstance(message, str):
        message = message.replace("{token}", deployed.secret)
    before = _store_rows(deployed.store)
    with no_hang(60):  # a loaded 2-core machine once took over 5 s to answer a handshake: time, not a hang
        with connect(deployed.url.replace("http://", "ws://") + "/v1/listen?rate=8000&encoding=pcm16",
                     open_timeout=20) as socket:
            try:
                socket.send(message)
                socket.send("end")
                while True:
                    socket.recv(timeout=20)
            except ConnectionClosed as closed:
                code, said = (closed.rcvd.code if closed.rcvd is not None else None), str(closed)
    assert code in CLOSE_CODES, (code, said)
    assert deployed.store.count_events() == before[0]
    if code != 1000:
        assert _store_rows(deployed.store) == before, "a refused stream changed the store"


# ----------------------------------------------------------------------------- failures found, kept as @example inputs

def flac_promising(frames: int) -> bytes:
    """The seed FLAC whose STREAMINFO promises ``frames`` frames (36 bits): load_audio allocated them all up front
    (a MemoryError of 70 GiB) before finding the file short."""
    data = bytearray(seed_files()["a.flac"])
    data[21] = data[21] & 0xF0 | frames >> 32 & 0x0F  # STREAMINFO starts at byte 8; its sample count at bit 108
    data[22:26] = (frames & 0xFFFFFFFF).to_bytes(4, "big")
    return bytes(data)


def ogg_with_comments(count: int, first_length: int) -> bytes:
    """The seed Ogg Vorbis file whose comment header claims ``count`` comments, the first of ``first_length`` bytes.
    stb_vorbis (the stream decoder) looped over such a length past the packet's end (2 GB: 20 s), and crashed the
    process (SIGSEGV) on some counts."""
    data = bytearray(seed_files()["a.ogg"])
    at = data.index(b"\x03vorbis") + 7
    at += 4 + int.from_bytes(data[at:at + 4], "little")  # past the vendor string, to the number of comments
    data[at:at + 8] = count.to_bytes(4, "little") + first_length.to_bytes(4, "little")
    return bytes(data)


def journal_of_schema_format(number: int) -> bytes:
    """The seed journal with its header's schema format number (bytes 44-47) set: SQLite says "unsupported file
    format", which the journal took for an error of its own, not damage."""
    data = bytearray(seed_journal())
    data[44:48] = number.to_bytes(4, "big")
    return bytes(data)
def seed_without(name: str, start: int, end: int) -> bytes:
    """A seed file with bytes ``start:end`` deleted. ``("a.flac", 26, 42)``: STREAMINFO without its MD5, which
    miniaudio's header reader takes and its decoder refuses (``miniaudio.DecodeError`` escaped ``listen``)."""
    data = bytearray(seed_files()[name])
    del data[start:end]
    return bytes(data)


def journal_with_bad_text() -> bytes:
    """The seed journal with one byte of a stored setting made invalid UTF-8: SQLite's check passes (it does not
    read text), and Python's sqlite3 raised ``OperationalError: Could not decode to UTF-8`` reading it."""
    data = bytearray(seed_journal())
    data[data.index(b'"abab') + 1] = 0xFF
    return bytes(data)


def journal_renaming(column: bytes, to: bytes) -> bytes:
    """The seed journal with a column renamed in its stored schema (``b"key TEXT"`` -> ``b"kex TEXT"``): a resume
    ended in ``sqlite3.OperationalError: no such column: key``."""
    data = bytearray(seed_journal())
    at = data.index(column)
    data[at:at + len(to)] = to
    return bytes(data)
