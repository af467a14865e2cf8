"""WAV streams and raw PCM decoded as they arrive (envsound.audio.stream) equal soundfile's reading of the file."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
from audiofactory import tone

from envsound.audio.stream import PcmFormat, iter_pcm, read_wav_header
from envsound.errors import AudioLoadError


@pytest.mark.parametrize("subtype, fmt", [("PCM_U8", "WAV"), ("PCM_16", "WAV"), ("PCM_24", "WAV"), ("PCM_32", "WAV"),
                                          ("FLOAT", "WAV"), ("PCM_24", "WAVEX")])
def test_a_wav_stream_reads_as_soundfile_reads_the_file(subtype, fmt):
    data = io.BytesIO()
    sf.write(data, tone(seconds=0.3, sample_rate=11025, channels=2), 11025, format=fmt, subtype=subtype)
    expected, rate = sf.read(io.BytesIO(data.getvalue()), dtype="float32")
    stream = io.BytesIO(data.getvalue())
    pcm = read_wav_header(stream, name="s")
    got = np.concatenate(list(iter_pcm(stream, pcm, name="s", max_bytes=999)))  # reads that split frames
    assert (pcm.sample_rate, pcm.channels) == (rate, 2)
    np.testing.assert_allclose(got, expected, atol=1e-7)


def test_a_header_that_is_not_a_stream_envsound_reads_is_named():
    data = io.BytesIO()
    sf.write(data, tone(seconds=0.1), 22050, format="WAV", subtype="ULAW")
    with pytest.raises(AudioLoadError, match="s: WAV stream of format 0x7 with 8-bit samples"):
        read_wav_header(io.BytesIO(data.getvalue()), name="s")
    with pytest.raises(AudioLoadError, match="ended inside a WAV chunk header"):
        read_wav_header(io.BytesIO(data.getvalue()[:14]), name="s")
    with pytest.raises(AudioLoadError, match="1-64 channels"):
        PcmFormat(16000, 0).check("s")


def test_raw_float32_samples_that_are_not_numbers_are_set_to_0_and_said_once(caplog):
    """Issue 68: NaN or infinity in a float32 stream (`listen --input - --encoding float32`, a float WAV on stdin, the
    server's socket) went into the model as they were: every window they fell in scored NaN and its hops vanished
    from listen's output, silently. They are now 0, said in one line with the time of the first."""
    samples = tone(seconds=2.0, sample_rate=8000, channels=2).astype("<f4")
    samples[8000, 1], samples[12000:12100, 0], samples[15000, 0] = np.nan, np.inf, -np.inf
    with caplog.at_level("WARNING", logger="envsound.audio.stream"):
        got = np.concatenate(list(iter_pcm(io.BytesIO(samples.tobytes()), PcmFormat(8000, 2, "float32"),
                                           name="stdin", max_bytes=4096)))
    expected = np.where(np.isfinite(samples), samples, 0)
    assert np.isfinite(got).all() and np.array_equal(got, expected)
    assert [r.getMessage() for r in caplog.records] == [
        "stdin: samples that are not numbers (NaN or infinity) from 1.00 s, set to 0 (said once a stream)"]
