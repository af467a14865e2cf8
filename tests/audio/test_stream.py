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
