"""A model swapped mid-stream (LiveListener.replace) takes over at a window boundary: against a known signal, the
window starts run on without a gap or a repeat (on the same grid for the same window; restarted at the boundary on
the new model's grid for another rate and window), the same model swapped in hears exactly what it would have
heard, and the old model's events end at the boundary, the new one's begin there, each tagged with its version."""

from __future__ import annotations

import numpy as np
import pytest
import tinyonnx
from audiofactory import noise, tone

from envsound.inference.live import LiveListener
from envsound.inference.predictor import Predictor

HOP = 31 * 256 / 16000  # the shared model's evaluation hop (s): window 1 s at 16 kHz


@pytest.fixture(scope="module")
def predictor(trained_run):
    return Predictor.from_checkpoint(trained_run.checkpoint, device="cpu", precision="32")


@pytest.fixture
def small(tmp_path, monkeypatch):
    """The tiny ONNX network at 8 kHz, window 0.1 s, hop 0.05 s: another rate and window than the shared model's."""
    models = tmp_path / "models"
    monkeypatch.setenv("ENVSOUND_MODELS", str(models))
    spec = tinyonnx.ONNX_SPEC.replace("sample_rate: 16000\nwindow: 1600\nhop: 800",
                                      "sample_rate: 8000\nwindow: 800\nhop: 400")
    tinyonnx.install_with_spec(models, tinyonnx.write_tiny_onnx(tmp_path / "mine" / "tiny.onnx", window=800,
                                                                samples="n_samples"),
                               spec, ["bark", "siren", "rain"])
    return Predictor.from_checkpoint("my-onnx", device="cpu")


def signal(rate: int) -> np.ndarray:
    """4 s of a tone then 3 s of noise, mono float32 at ``rate``."""
    return np.concatenate([tone(seconds=4, sample_rate=rate, freq=660)[:, 0],
                           noise(seconds=3, sample_rate=rate)[:, 0]]).astype(np.float32)


def run(listener: LiveListener, samples: np.ndarray, pieces: int, swap_after: int | None = None, new=None):
    hops = []
    for i, piece in enumerate(np.array_split(samples, pieces)):
        if i == swap_after:
            listener.replace(new, version=2)
        hops += listener.push(piece)
    return [hop.to_dict() for hop in hops + listener.finish()]


def test_the_same_window_swapped_in_hears_exactly_what_it_would_have(predictor):
    samples = signal(16000)
    alone = run(LiveListener(predictor, sample_rate=16000, version=1), samples, 29)
    swapped = run(LiveListener(predictor, sample_rate=16000, version=1), samples, 29, swap_after=12, new=predictor)
    versions = [hop["version"] for hop in swapped[:-1]]
    switch = versions.index(2)
    assert 0 < switch < len(versions) - 1 and versions == [1] * switch + [2] * (len(versions) - switch)
    # the same windows, neither skipped nor twice, with the same samples in each: the same scores
    assert [h["start"] for h in swapped] == [h["start"] for h in alone]
    assert [h["top"] for h in swapped] == [h["top"] for h in alone]
    boundary = swapped[switch]["start"]
    assert boundary == pytest.approx(swapped[switch - 1]["start"] + HOP, abs=1e-3)
    events = [e for hop in swapped for e in hop["events"]]
    assert events and all(e["offset"] <= boundary + 1e-6 for e in events if e["version"] == 1)
    assert all(e["onset"] >= boundary - 1e-6 for e in events if e["version"] == 2)
    assert {e["version"] for e in events} <= {1, 2} and swapped[-1]["version"] == 2


@pytest.mark.parametrize("rate", [16000, 44100])
def test_another_rate_and_window_restart_the_windows_at_the_boundary(predictor, small, rate):
    samples = signal(rate)
    hops = run(LiveListener(predictor, sample_rate=rate, version=1), samples, 23, swap_after=9, new=small)[:-1]
    old = [h["start"] for h in hops if h["version"] == 1]
    new = [h["start"] for h in hops if h["version"] == 2]
    assert [h["version"] for h in hops] == [1] * len(old) + [2] * len(new) and old and new
    assert old == [round(HOP * k, 3) for k in range(len(old))]  # the old grid from 0, no window skipped
    boundary = old[-1] + HOP  # the next window the old model would have scored: the new one's first
    assert new[0] == pytest.approx(boundary, abs=1e-3)
    assert np.allclose(np.diff(new), 0.05, atol=1e-3)  # the new grid from the boundary, none skipped or twice
    # to the end of the stream: the tail after the last window is shorter than a hop (as without a swap)
    assert 0 <= 7.0 - (new[-1] + 0.1) < 0.05 + 1e-3
    assert len(new) == int((7.0 - boundary - 0.1) / 0.05 + 1e-6) + 1


def test_a_swap_asked_before_the_first_window_takes_it_from_the_start(predictor, small):
    listener = LiveListener(predictor, sample_rate=16000, version=1)
    listener.replace(small, version=2)
    hops = [hop.to_dict() for hop in listener.push(signal(16000)[:16000]) + listener.finish()]
    assert {h["version"] for h in hops} == {2} and hops[0]["start"] == 0.0
    assert [h["start"] for h in hops[:-1]] == [round(0.05 * k, 3) for k in range(19)]
