"""`envsound listen`: a stream on stdin (WAV, FLAC or raw PCM), a file in real time; one JSON object a hop; a stream
that breaks off, says nothing or is not audio ends with one line."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf
from audiofactory import noise, tone

RATE = 8000


def stream_samples() -> np.ndarray:
    return np.concatenate([tone(seconds=3, sample_rate=RATE, freq=660), noise(seconds=2, sample_rate=RATE)])


def wav_bytes(samples: np.ndarray, rate: int = RATE, fmt: str = "WAV") -> bytes:
    out = io.BytesIO()
    sf.write(out, samples, rate, format=fmt, subtype="PCM_16")
    return out.getvalue()


@pytest.fixture
def stdin_from(monkeypatch, tmp_path):
    """Make ``data`` (bytes) the process's stdin, unbuffered underneath as a pipe is."""
    def use(data: bytes) -> None:
        path = tmp_path / "stdin.bin"
        path.write_bytes(data)
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(io.FileIO(path, "rb"))))
    return use


def hops(ran) -> list[dict]:
    return [json.loads(line) for line in ran.stdout.splitlines()]


def test_a_wav_stream_on_stdin_gives_one_object_a_hop(trained_run, stdin_from, envsound_main):
    stdin_from(wav_bytes(stream_samples()))
    ran = envsound_main("listen", trained_run.checkpoint, "--input", "-", "--json")
    assert ran.returncode == 0, ran.stderr
    objects = hops(ran)
    times = [o["time"] for o in objects[:-1]]  # window 1 s, hop 31 x 256 samples at 16 kHz
    assert times == [round(1 + i * 31 * 256 / 16000, 3) for i in range(len(times))] and len(times) == 9
    assert all(o["top"] and set(o["top"][0]) == {"label", "score"} for o in objects[:-1])
    assert objects[-1]["end"] and objects[-1]["time"] == 5.0 and not objects[-1]["active"]


def test_raw_pcm_with_its_rate_reads_as_the_same_wav(trained_run, stdin_from, envsound_main):
    wav = wav_bytes(stream_samples())
    assert wav[36:40] == b"data"  # soundfile's plain 44-byte header: the samples follow
    stdin_from(wav)
    from_wav = hops(envsound_main("listen", trained_run.checkpoint, "--input", "-", "--json"))
    stdin_from(wav[44:])
    from_raw = hops(envsound_main("listen", trained_run.checkpoint, "--input", "-", "--json", "--rate", str(RATE)))
    strip = [{**o, "model_ms": 0} for o in from_wav], [{**o, "model_ms": 0} for o in from_raw]
    assert strip[0] == strip[1]


def test_flac_on_stdin_hears_what_the_same_wav_gives(trained_run, stdin_from, envsound_main):
    """The same 16-bit samples as WAV and as FLAC (decoded as it arrives, in other pieces): the same hops."""
    samples = np.round(stream_samples() * 2 ** 15) / 2 ** 15  # exact in 16 bits: both writers store the same values
    stdin_from(wav_bytes(samples))
    from_wav = hops(envsound_main("listen", trained_run.checkpoint, "--input", "-", "--json"))
    stdin_from(wav_bytes(samples, fmt="FLAC"))
    from_flac = hops(envsound_main("listen", trained_run.checkpoint, "--input", "-", "--json"))
    assert len(from_wav) == 10 and [{**o, "model_ms": 0} for o in from_flac] == [{**o, "model_ms": 0} for o in from_wav]


@pytest.mark.parametrize("data, args, reason", [
    (b"", [], "stdin: no audio (the stream was empty)"),
    (b"hello, this is text\n", [], "stdin: not a WAV, FLAC, Ogg Vorbis or MP3 stream (it starts with b'hell'); raw "
                                     "PCM needs its sample rate given (envsound listen --rate)"),
    (b"\x00\x01" * 4000 + b"\x07", ["--rate", "8000"],
     "stdin: the stream stopped inside a frame (1 stray byte(s); a frame is 2 bytes: 1 channel(s) of pcm16)"),
    (b"\x00" * 16, ["--rate", "0"], "stdin: 0 Hz, 1 channel(s), pcm16 is not a stream envsound reads"),
])
def test_a_bad_stream_ends_with_one_line(trained_run, stdin_from, envsound_main, data, args, reason):
    stdin_from(data)
    ran = envsound_main("listen", trained_run.checkpoint, "--input", "-", "--json", *args)
    assert ran.returncode == 1
    assert ran.stderr.strip().splitlines()[-1].startswith(f"envsound listen: error: {reason}"), ran.stderr


def test_raw_float32_with_nan_and_infinity_hears_every_hop_and_says_so_once(trained_run, stdin_from, envsound_main):
    """Issue 68: NaN or infinity in raw float32 on stdin made every hop whose window held one vanish from the
    output, silently; they are now heard as 0 (the hops of the same stream with zeros there), with one line."""
    samples = stream_samples().astype("<f4")
    samples[RATE], samples[2 * RATE:2 * RATE + 50], samples[4 * RATE] = np.nan, np.inf, -np.inf
    stdin_from(samples.tobytes())
    bad = envsound_main("listen", trained_run.checkpoint, "--input", "-", "--json", "--rate", str(RATE),
                        "--encoding", "float32")
    stdin_from(np.where(np.isfinite(samples), samples, 0).astype("<f4").tobytes())
    zeros = envsound_main("listen", trained_run.checkpoint, "--input", "-", "--json", "--rate", str(RATE),
                          "--encoding", "float32")
    assert bad.returncode == zeros.returncode == 0, bad.stderr
    strip = lambda ran: [{**o, "model_ms": 0} for o in hops(ran)]  # noqa: E731
    assert len(strip(bad)) == 10 and strip(bad) == strip(zeros)
    assert bad.stderr.count("not numbers") == 1 and "stdin: samples that are not numbers (NaN or infinity) from " \
        "1.00 s, set to 0" in bad.stderr


def test_a_stream_that_breaks_off_still_reports_what_was_heard(trained_run, stdin_from, envsound_main):
    stdin_from(wav_bytes(stream_samples())[:-1])  # the last sample cut in half
    ran = envsound_main("listen", trained_run.checkpoint, "--input", "-", "--json")
    assert ran.returncode == 1 and "stopped inside a frame" in ran.stderr
    assert len(hops(ran)) == 10 and hops(ran)[-1]["end"]


def test_a_silent_pipe_is_given_up_after_idle_seconds(trained_run, monkeypatch, envsound_main):
    read_end, write_end = os.pipe()
    os.write(write_end, wav_bytes(tone(seconds=0.5, sample_rate=RATE)))  # the header and half a second, then nothing
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(io.FileIO(read_end, "rb"))))
    try:
        ran = envsound_main("listen", trained_run.checkpoint, "--input", "-", "--idle-seconds", "0.5")
    finally:
        os.close(write_end)
    assert ran.returncode == 1
    assert ran.stderr.strip().splitlines()[-1] == "envsound listen: error: stdin: no audio for 0.5 s; the stream " \
                                                  "was closed"
    assert "end of stream" in ran.stdout  # the half second heard is still scored


def test_a_file_in_real_time_takes_as_long_as_it_plays(trained_run, tmp_path, envsound_main):
    path = tmp_path / "two.wav"
    sf.write(path, tone(seconds=2, sample_rate=RATE), RATE)
    began = time.monotonic()
    ran = envsound_main("listen", trained_run.checkpoint, "--input", path, "--realtime")
    assert ran.returncode == 0 and time.monotonic() - began >= 1.9
    lines = ran.stdout.splitlines()
    assert lines[0].split()[:2] == ["1.00", "s"] and lines[-1].endswith("end of stream")


def test_the_microphone_without_sounddevice_names_the_install(trained_run, envsound_main):
    try:
        import sounddevice  # noqa: F401
        pytest.skip("sounddevice is installed here")
    except (ImportError, OSError):
        pass
    ran = envsound_main("listen", trained_run.checkpoint)
    assert ran.returncode == 1 and "pip install sounddevice, or pipe audio in (envsound listen --input -)" in ran.stderr


def test_the_console_script_reads_a_pipe_as_it_arrives(trained_run):
    """A real pipe, written in pieces with pauses: hops come out before the stream ends."""
    process = subprocess.Popen([sys.executable, "-m", "envsound", "listen", str(trained_run.checkpoint), "--input",
                                "-", "--json"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=False)
    data = wav_bytes(stream_samples())
    process.stdin.write(data[:len(data) // 2])
    process.stdin.flush()
    first = json.loads(process.stdout.readline())  # before the second half is sent
    process.stdin.write(data[len(data) // 2:])
    process.stdin.close()
    rest = [json.loads(line) for line in process.stdout.read().splitlines()]
    assert process.wait(timeout=60) == 0
    assert first["time"] == 1.0 and rest[-1]["end"] and len(rest) == 9
