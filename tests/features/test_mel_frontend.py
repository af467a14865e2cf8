"""The log-mel frontend against librosa (the reference implementation it re-implements in torch)."""

from __future__ import annotations

import copy
import pickle
from pathlib import Path

import librosa
import numpy as np
import pytest
import torch

from envsound.config import FeatureConfig
from envsound.errors import ConfigError
from envsound.features.mel import (DB_FLOOR, LogMel, apply_filterbank, deltas, filterbank_blocks, mel_filterbank,
                                   power_spectrogram, power_to_db, sparse_filterbank)

# Tolerances for log-mel vs librosa, in dB. Both sides run a float32 FFT whose round-off is ~1e-7 of the *frame's*
# energy, so a cell's error grows as it lies further below the loudest band of its frame (not below the dB floor).
# - DB_TOL on cells within 60 dB of their frame's loudest band and above -60 dB: measured max 3e-5 dB on the synthetic
#   signals below and 4.7e-4 dB on 64 ESC-50 clips; 1e-3 dB is 10x below the 0.01 dB the feature cache may add.
# - LOOSE_TOL on every cell above -60 dB (40 dB above the floor): ESC-50 has cells 86 dB below their frame's peak, where
#   MKL's float32 FFT (torch) and pocketfft's (librosa) differ by up to 1.4e-3 dB.
DB_TOL = 1e-3
LOOSE_TOL = 1e-2
WELL_ABOVE_FLOOR = DB_FLOOR + 40.0
ESC50 = Path(__file__).resolve().parents[3] / "shared" / "data" / "esc50"


def assert_close_to_librosa(ours: np.ndarray, ref: np.ndarray) -> None:
    """``ours`` and ``ref`` ``(n_mels, frames)`` in dB agree within the tolerances above."""
    above = ref > WELL_ABOVE_FLOOR
    near_peak = above & (ref > ref.max(axis=0, keepdims=True) - 60.0)
    assert near_peak.any()
    diff = np.abs(ours - ref)
    assert diff[near_peak].max() < DB_TOL
    assert diff[above].max() < LOOSE_TOL
    assert ours.min() >= DB_FLOOR - 1e-4


CASES = [  # sample_rate, n_fft, hop_length, n_mels, f_min, f_max, samples
    (22050, 1024, 512, 128, 0.0, None, 22050 * 2 + 17),
    (16000, 512, 160, 64, 50.0, 7600.0, 16000),
    (44100, 2048, 441, 96, 20.0, None, 30001),
    (8000, 256, 128, 40, 0.0, 4000.0, 5000),
]


def realish(samples: int, sample_rate: int, seed: int) -> np.ndarray:
    """Noise + two tones, a quiet stretch and a stretch of digital silence; float32 in [-1, 1]."""
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / sample_rate
    y = 0.05 * rng.standard_normal(samples) + 0.3 * np.sin(2 * np.pi * 440 * t)
    y += 0.1 * np.sin(2 * np.pi * sample_rate / 5 * t)
    y[samples // 3: samples // 2] *= 1e-3
    y[samples // 2: samples // 2 + samples // 8] = 0.0
    return y.astype(np.float32)


@pytest.mark.parametrize("sr, n_fft, hop, n_mels, f_min, f_max, samples", CASES)
def test_filterbank_equals_librosa(sr, n_fft, hop, n_mels, f_min, f_max, samples):
    ours = mel_filterbank(sample_rate=sr, n_fft=n_fft, n_mels=n_mels, f_min=f_min, f_max=f_max)
    ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=f_min, fmax=f_max)
    assert ours.shape == (n_mels, n_fft // 2 + 1) and ours.dtype == torch.float32
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-6, rtol=0)


@pytest.mark.parametrize("sr, n_fft, hop, n_mels, f_min, f_max, samples", CASES)
def test_logmel_matches_librosa(sr, n_fft, hop, n_mels, f_min, f_max, samples):
    y = realish(samples, sr, seed=samples)
    ref = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr, n_fft=n_fft, hop_length=hop, n_mels=n_mels,
                                                             fmin=f_min, fmax=f_max), ref=1.0, top_db=None)
    frontend = LogMel(sample_rate=sr, n_fft=n_fft, hop_length=hop, n_mels=n_mels, f_min=f_min, f_max=f_max)
    out = frontend(torch.from_numpy(np.stack([y, y[::-1].copy()])))
    assert out.shape == (2, 1, n_mels, 1 + samples // hop) == (2, 1) + ref.shape
    assert out.dtype == torch.float32
    ours = out[0, 0].numpy()
    assert_close_to_librosa(ours, ref)
    assert (ref > ref.max(axis=0, keepdims=True) - 60.0).mean() > 0.5  # the tolerance covers most cells
    silent = ref <= DB_FLOOR + 1e-3  # digital silence: both at the floor
    assert silent.any() and np.all(ours[silent] <= DB_FLOOR + 1e-3)
    # batch items are independent: the reversed clip equals its own single-clip transform
    alone = frontend(torch.from_numpy(y[::-1].copy())[None])[0, 0]
    np.testing.assert_allclose(out[1, 0].numpy(), alone.numpy(), atol=1e-4)


@pytest.mark.realdata
def test_logmel_matches_librosa_on_esc50():
    files = sorted((ESC50 / "audio").glob("*.flac"))[:4]
    if not files:
        pytest.skip(f"ESC-50 not found at {ESC50}")
    from envsound.audio.load import load_audio

    cfg = FeatureConfig()
    frontend = LogMel.from_config(cfg)
    for path in files:
        y = load_audio(path, sample_rate=cfg.sample_rate)
        ref = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=cfg.sample_rate, n_fft=cfg.n_fft,
                                                                 hop_length=cfg.hop_length, n_mels=cfg.n_mels),
                                  ref=1.0, top_db=None)
        assert_close_to_librosa(frontend(torch.from_numpy(y)[None])[0, 0].numpy(), ref)


def test_power_spectrogram_matches_librosa_stft():
    y = realish(10000, 16000, seed=3)
    ref = np.abs(librosa.stft(y, n_fft=512, hop_length=128)) ** 2
    out = power_spectrogram(torch.from_numpy(y)[None], n_fft=512, hop_length=128)
    assert out.is_contiguous()
    ours = out[0].numpy()
    assert ours.shape == ref.shape == (257, 1 + 10000 // 128)
    np.testing.assert_allclose(ours, ref, rtol=1e-3, atol=1e-5 * ref.max())


def hann_scipy(n_fft: int) -> np.ndarray:
    """librosa's default window, periodic Hann (for odd sizes too)."""
    return librosa.filters.get_window("hann", n_fft, fftbins=True).astype(np.float32)


@pytest.mark.filterwarnings("ignore:n_fft=.*is too large:UserWarning")
@pytest.mark.parametrize("samples, n_fft, hop", [(300, 512, 128), (512, 512, 512), (1000, 255, 100), (1, 64, 16)])
def test_power_spectrogram_short_clips_and_odd_n_fft(samples, n_fft, hop):
    y = realish(samples, 16000, seed=samples)
    ref = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop, window=hann_scipy(n_fft))) ** 2
    window = torch.from_numpy(hann_scipy(n_fft))
    ours = power_spectrogram(torch.from_numpy(y)[None], n_fft=n_fft, hop_length=hop, window=window)[0].numpy()
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=1e-3, atol=1e-5 * max(ref.max(), 1e-12))


def test_power_spectrogram_with_grad_equals_without():
    y = torch.from_numpy(realish(5000, 16000, seed=5))[None]
    plain = power_spectrogram(y, n_fft=256, hop_length=64)
    leaf = y.clone().requires_grad_()
    tracked = power_spectrogram(leaf, n_fft=256, hop_length=64)
    assert tracked.is_contiguous() and tracked.shape == plain.shape
    np.testing.assert_allclose(tracked.detach().numpy(), plain.numpy(), rtol=1e-6, atol=0)
    tracked.sum().backward()
    assert leaf.grad is not None and torch.isfinite(leaf.grad).all()


@pytest.mark.parametrize("n_mels, f_min, f_max", [(128, 0.0, None), (40, 300.0, 3000.0), (7, 0.0, None)])
def test_blockwise_filterbank_equals_dense_product(n_mels, f_min, f_max):
    fb = mel_filterbank(sample_rate=16000, n_fft=512, n_mels=n_mels, f_min=f_min, f_max=f_max)
    blocks = filterbank_blocks(fb)
    assert blocks[0][0] == 0 and blocks[-1][1] == n_mels
    power = power_spectrogram(torch.from_numpy(realish(8000, 16000, seed=n_mels))[None], n_fft=512, hop_length=128)
    dense = torch.matmul(fb, power.contiguous())
    ours = apply_filterbank(power, fb, blocks)
    assert ours.shape == dense.shape == (1, n_mels, 1 + 8000 // 128)
    np.testing.assert_allclose(ours.numpy(), dense.numpy(), rtol=1e-5, atol=1e-12)
    sparse = sparse_filterbank(fb)
    assert sparse.layout == torch.sparse_csr and sparse.col_indices().dtype == torch.int32
    np.testing.assert_allclose(sparse.to_dense().numpy(), fb.numpy(), rtol=0, atol=0)
    two = torch.cat([power, power.flip(-1)])
    ours = apply_filterbank(two, sparse)
    assert ours.shape == (2, n_mels, power.shape[-1]) and ours.is_contiguous()
    np.testing.assert_allclose(ours.numpy(), torch.matmul(fb, two).numpy(), rtol=1e-5, atol=1e-12)


def test_power_to_db_floor_and_no_top_db():
    power = torch.tensor([0.0, 1e-12, 1e-10, 1.0, 100.0])
    np.testing.assert_allclose(power_to_db(power).numpy(), [DB_FLOOR, DB_FLOOR, DB_FLOOR, 0.0, 20.0], atol=1e-4)
    # no top_db: a quiet cell keeps its value however loud the rest is
    assert power_to_db(torch.tensor([1e-9, 1e6]))[0].item() == pytest.approx(-90.0, abs=1e-3)


@pytest.mark.parametrize("frames", [9, 10, 57, 216])
def test_deltas_match_librosa(frames):
    x = np.random.default_rng(frames).normal(-40, 15, size=(3, 20, frames)).astype(np.float32)
    ref = librosa.feature.delta(x, width=9, order=1, mode="interp")
    ours = deltas(torch.from_numpy(x), width=9).numpy()
    assert ours.shape == x.shape
    np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=1e-5)


def test_deltas_other_width_and_short_clips():
    x = np.random.default_rng(0).normal(size=(4, 30)).astype(np.float32)
    np.testing.assert_allclose(deltas(torch.from_numpy(x), width=5).numpy(),
                               librosa.feature.delta(x, width=5, mode="interp"), atol=1e-5)
    # shorter than the width (librosa raises): the slope of a line fitted to all frames; a ramp gives its slope
    ramp = torch.arange(5, dtype=torch.float32)[None] * 2.5 - 7.0
    np.testing.assert_allclose(deltas(ramp).numpy(), np.full((1, 5), 2.5), atol=1e-6)
    assert torch.equal(deltas(torch.ones(2, 1)), torch.zeros(2, 1))
    with pytest.raises(ConfigError, match="width=4"):
        deltas(ramp, width=4)


def test_logmel_deltas_channel_from_config():
    cfg = FeatureConfig(sample_rate=16000, n_fft=512, hop_length=256, n_mels=40, deltas=True)
    frontend = LogMel.from_config(cfg)
    y = realish(16000, 16000, seed=7)
    out = frontend(torch.from_numpy(y)[None])
    assert out.shape == (1, 2, 40, 1 + 16000 // 256)
    ref = librosa.feature.delta(out[0, 0].numpy(), width=9, mode="interp")
    np.testing.assert_allclose(out[0, 1].numpy(), ref, atol=1e-3)
    assert frontend.frames(16000) == out.shape[-1]


def test_logmel_buffers_not_persistent_and_autocast_float32():
    frontend = LogMel.from_config(FeatureConfig(sample_rate=16000, n_fft=512, hop_length=256, n_mels=40))
    assert frontend.state_dict() == {}
    assert {name for name, _ in frontend.named_buffers()} == {"window", "filterbank"}
    y = torch.from_numpy(realish(8000, 16000, seed=2))[None].to(torch.bfloat16)  # exactly representable in bf16
    plain = frontend(y.float())
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        mixed = frontend(y.float())
        from_bf16 = frontend(y)
    # a bf16 filterbank product would be off by ~0.03 dB; the frontend keeps float32 inside autocast
    assert mixed.dtype == torch.float32 and from_bf16.dtype == torch.float32
    np.testing.assert_allclose(mixed.numpy(), plain.numpy(), atol=1e-4)
    np.testing.assert_allclose(from_bf16.numpy(), plain.numpy(), atol=1e-4)


def test_logmel_cpu_paths_agree_and_chunks_are_independent():
    """On a CPU the frontend works a few clips at a time with a sparse filterbank; with a waveform that requires grad
    (as on CUDA) it runs batched with a dense one. Both give the same log-mel."""
    frontend = LogMel(sample_rate=16000, n_fft=512, hop_length=160, n_mels=64)
    clips = torch.from_numpy(np.stack([realish(16000, 16000, seed=s) for s in range(5)]))
    with torch.inference_mode():
        fast = frontend(clips)
    frontend.CHUNK_SAMPLES = 2 * 16000  # two clips per chunk: chunks of 2, 2, 1
    with torch.inference_mode():
        chunked = frontend(clips)
    leaf = clips.clone().requires_grad_()
    tracked = frontend(leaf)
    assert fast.shape == chunked.shape == tracked.shape == (5, 1, 64, 1 + 16000 // 160)
    np.testing.assert_allclose(chunked.numpy(), fast.numpy(), atol=1e-4)
    np.testing.assert_allclose(tracked.detach().numpy(), fast.numpy(), atol=1e-4)
    tracked.sum().backward()
    assert leaf.grad is not None and torch.isfinite(leaf.grad).all()


def test_logmel_deep_copies_and_pickles():
    """A sparse CSR tensor cannot be deep-copied (EMA teachers, AveragedModel): LogMel leaves its own out."""
    frontend = LogMel.from_config(FeatureConfig(sample_rate=16000, n_fft=512, hop_length=256, n_mels=40))
    y = torch.from_numpy(realish(8000, 16000, seed=4))[None]
    assert torch.equal(copy.deepcopy(frontend)(y), frontend(y))
    assert torch.equal(pickle.loads(pickle.dumps(frontend))(y), frontend(y))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_logmel_on_cuda_equals_cpu():
    frontend = LogMel.from_config(FeatureConfig())
    clips = torch.from_numpy(np.stack([realish(22050 * 2, 22050, seed=s) for s in range(3)]))
    cpu = frontend(clips)
    gpu = frontend.to("cuda")(clips.to("cuda"))
    assert gpu.device.type == "cuda" and gpu.dtype == torch.float32
    near_peak = (cpu > WELL_ABOVE_FLOOR) & (cpu > cpu.amax(dim=2, keepdim=True) - 60.0)  # cuFFT vs MKL: as librosa
    assert (gpu.cpu() - cpu).abs()[near_peak].max() < DB_TOL
    assert torch.equal(frontend.to("cpu")(clips), cpu)


def test_bad_parameters_raise_config_error():
    with pytest.raises(ConfigError, match="f_max=30000"):
        mel_filterbank(sample_rate=22050, n_fft=1024, n_mels=64, f_max=30000.0)
    with pytest.raises(ConfigError, match="hop_length=2048"):
        LogMel(sample_rate=22050, n_fft=1024, hop_length=2048, n_mels=64)
    with pytest.raises(ValueError, match=r"\(batch, samples\)"):
        power_spectrogram(torch.zeros(100), n_fft=64, hop_length=16)
