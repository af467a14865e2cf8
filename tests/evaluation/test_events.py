"""Sound events from the window timeline: median filter, thresholds, runs of windows placed at their centres; and
`predict --events` end to end on a file whose silence and sound are known."""

import json

import numpy as np
import pytest
import soundfile as sf

from envsound.evaluation.events import EventTracker, detect_events, median_smooth

WINDOWS = dict(window_seconds=5.0, hop_seconds=1.0, duration=14.0)
BEGINS = np.arange(10.0)  # windows [0, 5), [1, 6), ... [9, 14): centres 2.5 ... 11.5


def track(*active: int, value: float = 0.9) -> np.ndarray:
    probs = np.zeros((10, 2))
    probs[list(active), 0] = value
    return probs


def events(probs, **kwargs):
    settings = {**WINDOWS, "thresholds": 0.5, **kwargs}
    return [(e.label, e.onset, e.offset) for e in detect_events(BEGINS, probs, ["dog", "cat"], **settings)]


def test_a_run_of_windows_is_one_event_from_its_first_centre_to_its_last():
    # windows 2-4 are centred at 4.5, 5.5, 6.5: each stands for the hop-long stretch around its centre
    assert events(track(2, 3, 4)) == [("dog", 4.0, 7.0)]
    assert events(track(2, 6)) == [("dog", 4.0, 5.0), ("dog", 8.0, 9.0)]
    assert events(track(0, 9)) == [("dog", 2.0, 3.0), ("dog", 11.0, 12.0)]
    assert events(track()) == []
    assert detect_events([], np.zeros((0, 2)), ["dog", "cat"], thresholds=0.5, **WINDOWS) == []


def test_the_median_filter_fills_a_gap_and_removes_a_blip():
    assert events(track(2, 3, 5, 6), median_seconds=3) == [("dog", 4.0, 9.0)]  # window 4 is filled in
    assert events(track(7), median_seconds=3) == []  # one window alone
    assert np.array_equal(median_smooth(np.array([0.0, 1.0, 0.0, 1.0, 1.0]), 3), [0.0, 0.0, 1.0, 1.0, 1.0])


def test_thresholds_are_per_class_and_short_events_can_be_dropped():
    probs = track(2, 3, value=0.6)
    probs[5, 1] = 0.6
    assert events(probs, thresholds=np.array([0.7, 0.5])) == [("cat", 7.0, 8.0)]
    assert events(probs, min_seconds=1.5) == [("dog", 4.0, 6.0)]


def test_events_never_reach_past_the_file():
    assert events(track(9), duration=11.8) == [("dog", 11.0, 11.8)]


def test_a_timeline_that_does_not_fit_its_labels_is_refused():
    with pytest.raises(ValueError, match="does not fit"):
        detect_events(BEGINS, np.zeros((10, 3)), ["dog", "cat"], thresholds=0.5, **WINDOWS)


@pytest.mark.parametrize("median_seconds, min_seconds", [(0, 0), (3, 0), (5, 1.5)])
def test_the_live_tracker_finds_the_events_of_the_whole_track_one_window_at_a_time(median_seconds, min_seconds):
    rng = np.random.default_rng(int(median_seconds * 10 + min_seconds))
    for trial in range(20):
        n = int(rng.integers(1, 30))
        probs = (rng.random((n, 2)) < rng.uniform(0.2, 0.8)) * rng.uniform(0.5, 1.0, (n, 2))
        settings = dict(window_seconds=5.0, hop_seconds=1.0, thresholds=np.array([0.5, 0.7]),
                        median_seconds=median_seconds, min_seconds=min_seconds)
        whole = detect_events(np.arange(n, dtype=float), probs, ["dog", "cat"], duration=n + 3.6, **settings)
        tracker = EventTracker(["dog", "cat"], **settings)
        live = [e for i, row in enumerate(probs) for e in tracker.push(float(i), row)]
        live += tracker.finish(n + 3.6)
        assert sorted(live, key=lambda e: (e.onset, e.label)) == whole, (trial, probs)
        assert len(tracker.recent) <= max(1, int(median_seconds)) + 1  # memory: one filter's windows


def test_the_live_tracker_shows_an_event_under_way_before_it_ends():
    tracker = EventTracker(["dog"], window_seconds=5.0, hop_seconds=1.0, thresholds=0.5, median_seconds=3)
    assert tracker.push(0.0, np.array([0.9])) == [] and tracker.active() == []  # window 0 waits for window 1
    assert tracker.push(1.0, np.array([0.8])) == []
    assert [(e.label, e.onset, e.offset) for e in tracker.active()] == [("dog", 2.0, 3.0)]


def test_predict_events_places_the_sound_between_silences(tmp_path, trained_run, synthetic_manifest, envsound_main):
    """A synthetic clip with 4 s of silence before and after: the class the model gives the clip alone is an event
    overlapping the sound; the settings come from the checkpoint (here a threshold of half the clip's score, no median
    filter); --json carries the events, the text output one line each."""
    from envsound.models.checkpoint import load_checkpoint, save_checkpoint

    record = synthetic_manifest.records[0]
    alone = envsound_main("predict", trained_run.checkpoint, record.path, "--json")
    top = json.loads(alone.stdout)["top"][0]
    checkpoint = load_checkpoint(trained_run.checkpoint)
    checkpoint.config.events.threshold, checkpoint.config.events.median_seconds = top["score"] / 2, 0.0
    model = save_checkpoint(tmp_path / "events.ckpt", checkpoint)
    audio, rate = sf.read(record.path, dtype="float32")
    silence = np.zeros(4 * rate, dtype=np.float32)
    long_file = tmp_path / "long.wav"
    sf.write(long_file, np.concatenate([silence, audio, silence]), rate)
    sound_from, sound_to, duration = 4.0, 4.0 + len(audio) / rate, 8.0 + len(audio) / rate
    run = envsound_main("predict", model, long_file, "--events", "--json")
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout)["events"]
    assert all(set(e) == {"label", "onset", "offset", "score"} for e in found)
    assert all(0 <= e["onset"] < e["offset"] <= duration + 1e-3 for e in found)
    assert any(e["label"] == top["label"] and e["onset"] < sound_to and e["offset"] > sound_from for e in found)
    text = envsound_main("predict", model, long_file, "--events")
    assert text.returncode == 0 and text.stdout.count("  event ") == len(found)
