"""Issue 55, rough edge 6: `predict --events` on a 29-s file (dog 0-5 s, siren 8-13, rooster 16-21, rain 24-29, 3-s
silences between) gave dog 2-7, siren 7-14, rooster 14-21, rain 22-27: each window stood for the hop at its centre,
so the first and last 2 s of a file could never be in an event and the silences were swallowed. Event boundaries
must lie within one hop of the sound's, 0 s and the file's end included, offline and live alike."""

import numpy as np
import pytest

from envsound.events import Decoding, EventTracker, detect_events

LAYOUT = {"dog": (0.0, 5.0), "siren": (8.0, 13.0), "rooster": (16.0, 21.0), "rain": (24.0, 29.0)}
LABELS = list(LAYOUT)
WINDOW, HOP, DURATION = 5.0, 1.0, 29.0  # features.window_seconds and eval_hop_seconds by default
SETTINGS = dict(window_seconds=WINDOW, hop_seconds=HOP, decoding=Decoding(threshold=0.5))  # events.* defaults


def window_probs(begins: np.ndarray, needs: float) -> np.ndarray:
    """A window model that answers a class (0.9, else 0.1) when the window holds at least ``needs`` seconds of it."""
    held = np.array([[min(b + WINDOW, end) - max(b, start) for start, end in LAYOUT.values()] for b in begins])
    return np.where(held >= needs, 0.9, 0.1)


def live(begins: np.ndarray, probs: np.ndarray, duration: float) -> list:
    tracker = EventTracker(LABELS, **SETTINGS)
    found = [e for begin, row in zip(begins, probs) for e in tracker.push(float(begin), row)]
    return sorted(found + tracker.finish(duration), key=lambda e: (e.onset, e.label))


def check_edges(found: list, duration: float) -> None:
    assert [e.label for e in found] == LABELS, found  # one event a sound, none in the silences
    for event in found:
        start, end = LAYOUT[event.label]
        assert abs(event.onset - start) <= HOP and abs(event.offset - end) <= HOP, event
    assert found[0].onset == 0.0 and found[-1].offset == duration  # the file's first and last seconds


@pytest.mark.parametrize("needs", [0.05, 0.5, 1.0, 2.0])  # seconds of the sound a window needs to answer it
def test_events_of_a_29_s_file_start_at_0_end_at_its_end_and_keep_its_silences(needs):
    begins = np.arange(0.0, DURATION - WINDOW + HOP, HOP)  # 0 .. 24: the last window ends with the file
    probs = window_probs(begins, needs)
    whole = detect_events(begins, probs, LABELS, duration=DURATION, **SETTINGS)
    check_edges(whole, DURATION)
    assert live(begins, probs, DURATION) == whole  # the live decoder finds the same, window by window


def test_a_file_off_the_hop_grid_ends_its_last_event_with_it():
    """29.4 s: windows every second from 0 and one more ending with the file (24.4), as evaluation cuts them."""
    duration = 29.4
    begins = np.append(np.arange(0.0, 25.0), duration - WINDOW)
    global LAYOUT
    layout, LAYOUT = LAYOUT, {**LAYOUT, "rain": (24.0, duration)}
    try:
        probs = window_probs(begins, 0.5)
        whole = detect_events(begins, probs, LABELS, duration=duration, **SETTINGS)
        check_edges(whole, duration)
        assert live(begins, probs, duration) == whole
    finally:
        LAYOUT = layout


def test_the_live_decoder_equals_the_whole_files_on_uneven_windows():
    """Windows that start before the file (edge padding undone), an extra window ending with the file, no median
    filter or a long one: window by window, the same events as the whole timeline."""
    rng = np.random.default_rng(55)
    for trial in range(30):
        n = int(rng.integers(1, 25))
        begins = np.arange(n) * 0.5 - float(rng.choice([0.0, 0.25]))
        duration = float(begins[-1] + 1.0 + rng.uniform(0.0, 0.4))
        begins = np.append(begins, duration - 1.0) if rng.random() < 0.5 and duration - 1.0 > begins[-1] else begins
        probs = (rng.random((len(begins), 2)) < 0.6) * rng.uniform(0.3, 1.0, (len(begins), 2))
        settings = dict(window_seconds=1.0, hop_seconds=0.5, decoding=Decoding(
            threshold=(0.5, 0.7), median_seconds=float(rng.choice([0.0, 1.5])),
            min_seconds=float(rng.choice([0.0, 0.6])), gap_seconds=float(rng.choice([0.0, 0.5, 1.25])),
            hysteresis=float(rng.choice([1.0, 0.6]))))
        whole = detect_events(begins, probs, ["a", "b"], duration=duration, **settings)
        tracker = EventTracker(["a", "b"], **settings)
        found = [e for begin, row in zip(begins, probs) for e in tracker.push(float(begin), row)]
        found = sorted(found + tracker.finish(duration), key=lambda e: (e.onset, e.label))
        assert found == whole, (trial, begins, probs)
        assert all(0.0 <= e.onset < e.offset <= round(duration, 3) for e in whole)  # times in ms


def test_predict_finds_a_sound_from_the_files_first_moment_to_its_last(tmp_path, trained_run, synthetic_manifest):
    """End to end: a held-out siren, 1.5 s of silence, a held-out rain clip, through Predictor.predict_waveform with
    the shared model (windows 1 s, here every 0.1 s, no median filter). The siren's event starts at 0 and the rain's
    ends with the file (the window-centre rule put them 0.45 s inside), and neither runs into the silence. (The
    tiny model answers a class only when it fills most of a window, so its inner boundaries lie inside the sounds
    by more than a hop; that is the model, and the constructed tests above pin the decoder.)"""
    import soundfile as sf

    from envsound.inference.predictor import Predictor
    from envsound.models.checkpoint import load_checkpoint, save_checkpoint

    checkpoint = load_checkpoint(trained_run.checkpoint)
    checkpoint.config.features.eval_hop_seconds, checkpoint.config.events.median_seconds = 0.1, 0.0
    predictor = Predictor.from_checkpoint(save_checkpoint(tmp_path / "fine.ckpt", checkpoint), device="cpu",
                                          precision="32")
    held_out = {r.labels[0]: r for r in synthetic_manifest.records if r.fold == 5}
    siren, rate = sf.read(held_out["siren"].path, dtype="float32")
    rain, _ = sf.read(held_out["rain"].path, dtype="float32")
    wave = np.concatenate([siren, np.zeros(int(1.5 * rate), np.float32), rain])
    duration, hop = len(wave) / rate, 0.1
    found = predictor.predict_waveform(wave, sample_rate=rate, events=True).events
    first = [e for e in found if e["label"] == "siren"]
    last = [e for e in found if e["label"] == "rain"]
    assert len(first) == 1 and len(last) == 1, found
    assert first[0]["onset"] <= hop and last[0]["offset"] >= round(duration, 3) - hop, found
    silence = (len(siren) / rate, duration - len(rain) / rate)
    assert first[0]["offset"] <= silence[0] + hop and last[0]["onset"] >= silence[1] - hop, found
