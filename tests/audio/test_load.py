"""envsound.audio.load: every good format loads right, every bad file raises a one-line AudioLoadError naming it."""

from __future__ import annotations

import logging
import struct
import tracemalloc

import numpy as np
import pytest
import soundfile as sf

from audiofactory import (
    dominant_frequency, tone, write_audio, write_clipped, write_empty_wav, write_lying_header_wav, write_noise,
    write_nonfinite_float_wav, write_not_audio, write_overrange_float_wav, write_silence, write_tone,
    write_truncated_wav, write_zero_bytes,
)
from envsound.audio.load import AudioInfo, audio_info, iter_audio_blocks, load_audio, validate_audio
from envsound.errors import AudioLoadError, ConfigError


def _stream(path, *, sample_rate=16000, block_seconds=0.25, **kw) -> np.ndarray:
    blocks = list(iter_audio_blocks(path, sample_rate=sample_rate, block_seconds=block_seconds, **kw))
    return np.concatenate(blocks) if blocks else np.zeros(0, np.float32)


READERS = {
    "load_audio": lambda p, **kw: load_audio(p, sample_rate=16000, **kw),
    "iter_audio_blocks": lambda p, **kw: _stream(p, **kw),
    "validate_audio": lambda p, **kw: validate_audio(p, **kw),
}


# ------------------------------------------------------------------------------------------------------- bad files

def _truncated_flac(path):
    write_noise(path, seconds=2.0)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    return path


def _stereo_silence(path):
    return write_silence(path, channels=2, subtype="FLOAT")


BAD_FILES = {
    # name: (writer taking the path, file name, substrings the message must contain)
    "missing": (lambda p: p, "missing.wav", ["not found"]),
    "directory": (lambda p: (p.mkdir(), p)[1], "adir.wav", ["directory"]),
    "zero_bytes": (write_zero_bytes, "zero.wav", ["0 bytes"]),
    "not_audio": (write_not_audio, "text.wav", ["not a readable audio file"]),
    "not_audio_flac_ext": (write_not_audio, "text.flac", ["not a readable audio file"]),
    "random_bytes": (lambda p: (p.write_bytes(np.random.default_rng(1).bytes(5000)), p)[1], "junk.ogg",
                     ["not a readable audio file"]),
    "empty_wav": (write_empty_wav, "empty.wav", ["0 frames"]),
    "truncated_half": (write_truncated_wav, "cut.wav", ["truncated", "promises 22050 frames", "only 11025"]),
    "truncated_mid_frame": (lambda p: write_truncated_wav(p, keep_fraction=0.3333, channels=2, subtype="PCM_24"),
                            "cut24.wav", ["truncated", "promises 22050 frames"]),
    "truncated_tiny_remainder": (lambda p: write_truncated_wav(p, keep_fraction=0.01), "cut1.wav", ["truncated"]),
    "lying_header": (write_lying_header_wav, "lie.wav", ["truncated", "promises 44100 frames", "only 22050"]),
    "lying_header_float": (lambda p: write_lying_header_wav(p, claim_factor=1.1, subtype="FLOAT"), "lief.wav",
                           ["truncated", "promises 24255 frames"]),
    "truncated_flac": (_truncated_flac, "cut.flac", ["truncated or corrupt"]),
    "nan": (write_nonfinite_float_wav, "nan.wav", ["non-finite", "0.500 s"]),
    "inf": (lambda p: write_nonfinite_float_wav(p, value=np.inf, at_seconds=0.25), "inf.wav",
            ["non-finite", "0.250 s"]),
    "neg_inf_stereo_double": (
        lambda p: write_nonfinite_float_wav(p, value=-np.inf, channels=2, subtype="DOUBLE", at_seconds=0.9),
        "ninf.wav", ["non-finite", "0.900 s"]),
    "digital_zeros": (write_silence, "zeros.wav", ["silent by corruption", "digital zeros"]),
    "digital_zeros_stereo_float": (_stereo_silence, "zeros_f.wav", ["digital zeros"]),
    "digital_zeros_flac": (write_silence, "zeros.flac", ["digital zeros"]),
}


@pytest.mark.parametrize("reader", list(READERS))
@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_file_raises_audio_load_error_naming_file_and_problem(tmp_path, case, reader):
    writer, name, needles = BAD_FILES[case]
    path = writer(tmp_path / name)
    with pytest.raises(AudioLoadError) as info:
        READERS[reader](path)
    message = str(info.value)
    assert name in message
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message


@pytest.mark.parametrize("reader", list(READERS))
def test_too_short_names_duration_minimum_and_config_key(tmp_path, reader):
    path = write_tone(tmp_path / "short.wav", seconds=0.05)
    with pytest.raises(AudioLoadError) as info:
        READERS[reader](path, min_seconds=0.1)
    message = str(info.value)
    for needle in ("short.wav", "too short", "0.050 s", "0.1 s", "features.min_seconds"):
        assert needle in message, message
    READERS[reader](path, min_seconds=0.05)  # exactly the minimum is fine


@pytest.mark.parametrize("case", ["missing", "not_audio", "empty_wav", "zero_bytes", "truncated_half", "lying_header"])
def test_audio_info_raises_on_unusable_headers(tmp_path, case):
    writer, name, needles = BAD_FILES[case]
    with pytest.raises(AudioLoadError, match=needles[0]):
        audio_info(writer(tmp_path / name))


def test_stream_raises_on_truncated_wav_at_the_call(tmp_path):
    with pytest.raises(AudioLoadError, match="truncated"):
        iter_audio_blocks(write_truncated_wav(tmp_path / "cut.wav"), sample_rate=22050, block_seconds=0.1)


def test_stream_reports_time_offset_of_nan_in_a_later_block(tmp_path):
    path = write_nonfinite_float_wav(tmp_path / "late.wav", seconds=3.0, at_seconds=2.5, sample_rate=8000)
    with pytest.raises(AudioLoadError, match=r"at 2\.500 s"):
        _stream(path, sample_rate=8000, block_seconds=0.5)


def test_bad_arguments_are_config_errors_and_keyword_only(tmp_path):
    path = write_tone(tmp_path / "a.wav")
    with pytest.raises(TypeError):
        load_audio(path, 22050)  # type: ignore[misc]
    with pytest.raises(TypeError):
        iter_audio_blocks(path, 22050, 1.0)  # type: ignore[misc]
    for bad in (0, -1, 22050.0, True):
        with pytest.raises(ConfigError, match="sample_rate"):
            load_audio(path, sample_rate=bad)
    with pytest.raises(ConfigError, match="block_seconds"):
        iter_audio_blocks(path, sample_rate=22050, block_seconds=0)
    with pytest.raises(ConfigError, match="min_seconds"):
        load_audio(path, sample_rate=22050, min_seconds=-1)


# ------------------------------------------------------------------------------------------------------ good files

GOOD_FORMATS = [
    # (file name, sample rate, subtype, channels)
    ("pcm16_8k.wav", 8000, "PCM_16", 1),
    ("pcm24_96k.wav", 96000, "PCM_24", 1),
    ("pcmu8.wav", 22050, "PCM_U8", 1),
    ("pcm16_stereo.wav", 44100, "PCM_16", 2),
    ("pcm32_6ch.wav", 48000, "PCM_32", 6),
    ("float.wav", 22050, "FLOAT", 1),
    ("double_stereo.wav", 32000, "DOUBLE", 2),
    ("pcm16.flac", 44100, "PCM_16", 1),
    ("pcm24_stereo.flac", 48000, "PCM_24", 2),
    ("vorbis.ogg", 44100, None, 1),
]


@pytest.mark.parametrize("target_rate", [16000, 22050])
@pytest.mark.parametrize("name,rate,subtype,channels", GOOD_FORMATS)
def test_good_format_loads_mono_float32_right_length_and_pitch(tmp_path, name, rate, subtype, channels, target_rate):
    freq, seconds = 1000.0, 1.0
    data = np.repeat(tone(seconds=seconds, sample_rate=rate, freq=freq, amplitude=0.5), channels, axis=1)
    path = write_audio(tmp_path / name, data, sample_rate=rate, subtype=subtype)
    info = audio_info(path)
    assert (info.sample_rate, info.channels, info.frames) == (rate, channels, int(seconds * rate))

    wave = load_audio(path, sample_rate=target_rate)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert abs(len(wave) - seconds * target_rate) <= 1
    assert np.abs(wave).max() <= 1.0
    assert dominant_frequency(wave, sample_rate=target_rate) == pytest.approx(freq, abs=2.0)
    rms = float(np.sqrt(np.mean(wave[100:-100] ** 2)))
    assert rms == pytest.approx(0.5 / np.sqrt(2), rel=0.05)  # channels averaged, not summed


def test_multichannel_is_the_channel_mean(tmp_path):
    left = tone(seconds=1.0, sample_rate=22050, freq=440.0, amplitude=0.6)
    right = tone(seconds=1.0, sample_rate=22050, freq=3000.0, amplitude=0.2, seed=1)
    path = write_audio(tmp_path / "lr.wav", np.hstack([left, right]), subtype="FLOAT")
    wave = load_audio(path, sample_rate=22050)
    np.testing.assert_allclose(wave, (left[:, 0] + right[:, 0]) / 2, atol=1e-6)


def test_same_rate_is_bit_exact_to_soundfile(tmp_path):
    path = write_noise(tmp_path / "n.wav", subtype="PCM_24")
    expected, _ = sf.read(str(path), dtype="float32")
    np.testing.assert_array_equal(load_audio(path, sample_rate=22050), expected)


def test_overrange_float_is_scaled_by_peak_with_a_warning(tmp_path, caplog):
    path = write_overrange_float_wav(tmp_path / "loud.wav", peak=3.0)
    with caplog.at_level(logging.WARNING, logger="envsound.audio.load"):
        wave = load_audio(path, sample_rate=22050)
    assert "peak amplitude 3.000" in caplog.text and "loud.wav" in caplog.text
    assert np.abs(wave).max() == pytest.approx(1.0, abs=1e-6)
    expected = tone(seconds=1.0, sample_rate=22050, amplitude=1.0)[:, 0]  # shape kept: scaled, not clipped
    np.testing.assert_allclose(wave, expected, atol=1e-5)


def test_a_file_over_full_scale_is_warned_about_once_however_often_it_is_decoded(tmp_path, caplog):
    """Issue 69: training decodes a file for its features, then for its fingerprint: two warnings per file."""
    from envsound.features.fingerprint import clip_fingerprints

    path = write_overrange_float_wav(tmp_path / "hot.wav", peak=2.0)
    with caplog.at_level(logging.WARNING, logger="envsound.audio.load"):
        load_audio(path, sample_rate=16000)
        clip_fingerprints([path], cache=None)
        list(iter_audio_blocks(path, sample_rate=16000, block_seconds=0.5))
    assert caplog.text.count("peak amplitude 2.000") == 1, caplog.text


def test_clipped_pcm_loads_within_unit_range_after_resampling(tmp_path):
    path = write_clipped(tmp_path / "clip.wav", gain=8.0)
    wave = load_audio(path, sample_rate=48000)  # upsampling a square-ish wave overshoots; the loader clips it
    assert wave.dtype == np.float32 and np.abs(wave).max() <= 1.0


def test_streamed_wav_with_unknown_length_is_read_with_a_warning(tmp_path, caplog):
    path = write_tone(tmp_path / "piped.wav")
    raw = bytearray(path.read_bytes())
    at = raw.find(b"data")
    raw[at + 4:at + 8] = struct.pack("<I", 0xFFFFFFFF)
    path.write_bytes(bytes(raw))
    with caplog.at_level(logging.WARNING, logger="envsound.audio.load"):
        wave = load_audio(path, sample_rate=22050)
    assert len(wave) == 22050 and "no data length" in caplog.text


def test_audio_info_reads_header(tmp_path):
    path = write_tone(tmp_path / "s.flac", seconds=2.0, sample_rate=44100, channels=2, subtype="PCM_24")
    assert audio_info(path) == AudioInfo(path=path, sample_rate=44100, frames=88200, channels=2, format="FLAC",
                                         subtype="PCM_24")
    assert audio_info(path).duration == pytest.approx(2.0)


# -------------------------------------------------------------------------------------------------------- streaming

@pytest.mark.parametrize("name,rate,subtype,channels,target,block", [
    ("a.wav", 44100, "PCM_16", 2, 22050, 0.3),
    ("b.wav", 8000, "PCM_16", 1, 22050, 0.7),
    ("c.wav", 22050, "PCM_24", 1, 22050, 0.25),  # no resampling
    ("d.flac", 48000, "PCM_24", 6, 16000, 1.0),
    ("e.wav", 96000, "FLOAT", 1, 22050, 0.05),
    ("f.ogg", 44100, None, 2, 16000, 0.5),
])
def test_stream_blocks_concatenate_to_load_audio(tmp_path, name, rate, subtype, channels, target, block):
    data = np.random.default_rng(3).uniform(-0.4, 0.4, size=(int(2.3 * rate), channels))
    path = write_audio(tmp_path / name, data, sample_rate=rate, subtype=subtype)
    blocks = list(iter_audio_blocks(path, sample_rate=target, block_seconds=block))
    size = round(block * target)
    assert all(len(b) == size for b in blocks[:-1]) and 0 < len(blocks[-1]) <= size
    assert all(b.dtype == np.float32 and b.ndim == 1 for b in blocks)
    whole = load_audio(path, sample_rate=target)
    streamed = np.concatenate(blocks)
    assert len(streamed) == len(whole)
    np.testing.assert_allclose(streamed, whole, atol=1e-5)


def test_stream_of_overrange_float_matches_load_audio(tmp_path):
    path = write_overrange_float_wav(tmp_path / "loud.wav", seconds=2.0, peak=2.5)
    np.testing.assert_allclose(_stream(path, sample_rate=16000, block_seconds=0.2),
                               load_audio(path, sample_rate=16000), atol=1e-6)


def test_stream_of_long_file_keeps_memory_bounded_by_blocks(tmp_path):
    rate, minutes, block_seconds, target = 8000, 10, 10.0, 16000
    path = tmp_path / "long.wav"
    with sf.SoundFile(str(path), "w", samplerate=rate, channels=1, subtype="PCM_16") as fh:
        for minute in range(minutes):
            fh.write(np.random.default_rng(minute).uniform(-0.3, 0.3, size=60 * rate).astype(np.float32))
    decoded_bytes = minutes * 60 * target * 4  # the whole file as float32 at the output rate: 38.4 MB
    block_bytes = int(block_seconds * target * 4)  # one output block: 640 kB

    tracemalloc.start()
    try:
        total = 0
        for block in iter_audio_blocks(path, sample_rate=target, block_seconds=block_seconds):
            total += len(block)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == minutes * 60 * target
    # ~2.6 blocks measured (the block being filled, the one the caller holds, decoded and resampled pieces); the
    # margin covers a ~1 MB cache cffi allocates inside soundfile after a few thousand reads.
    assert peak < 5 * block_bytes, f"peak {peak} B for blocks of {block_bytes} B"
    assert peak < decoded_bytes / 10


def test_stream_of_float_file_with_nan_raises_before_the_first_block(tmp_path):
    blocks = iter_audio_blocks(write_nonfinite_float_wav(tmp_path / "nan.wav", seconds=2.0, at_seconds=1.9),
                               sample_rate=22050, block_seconds=0.1)
    with pytest.raises(AudioLoadError, match=r"nan.wav: non-finite sample .* at 1\.900 s"):
        next(blocks)


def test_validate_audio_returns_the_header_of_a_good_file(tmp_path):
    path = write_tone(tmp_path / "ok.flac", seconds=0.5, sample_rate=44100, channels=2)
    assert validate_audio(path, min_seconds=0.1) == audio_info(path)
