"""Sound events from the window timeline: median filter, thresholds, a moment in an event when every window holding
it is active; and `predict --events` end to end on a file whose silence and sound are known."""

import json

import numpy as np
import pytest
import soundfile as sf

from envsound.events import Decoding, EventTracker, detect_events
from envsound.events.detect import median_smooth

WINDOWS = dict(window_seconds=5.0, hop_seconds=1.0, duration=14.0)
BEGINS = np.arange(10.0)  # windows [0, 5), [1, 6), ... [9, 14): a moment inside is held by up to 5 of them


def track(*active: int, value: float = 0.9) -> np.ndarray:
    probs = np.zeros((10, 2))
    probs[list(active), 0] = value
    return probs


def rules(thresholds=0.5, **settings) -> Decoding:
    """A Decoding of these settings (no median filter unless given); ``thresholds`` one, or one per class."""
    threshold = tuple(float(t) for t in thresholds) if np.ndim(thresholds) else thresholds
    return Decoding(threshold=threshold, **{"median_seconds": 0.0, **settings})


def events(probs, duration=14.0, **kwargs):
    windows = {**WINDOWS, "duration": duration}
    return [(e.label, e.onset, e.offset) for e in detect_events(BEGINS, probs, ["dog", "cat"], **windows,
                                                                decoding=rules(**kwargs))]


def test_a_moment_is_in_an_event_when_every_window_holding_it_is_active():
    # [6, 7) is held by windows 2-6 only; [5, 6) also by window 1 and [7, 8) by window 7, which are not active
    assert events(track(2, 3, 4, 5, 6)) == [("dog", 6.0, 7.0)]
    # the file's first second is held by window 0 alone, its last by window 9 alone
    assert events(track(0, 1, 2, 3, 4)) == [("dog", 0.0, 5.0)]
    assert events(track(5, 6, 7, 8, 9)) == [("dog", 9.0, 14.0)]
    assert events(track(2, 3, 4)) == []  # no moment that only active windows hold: a window alone claims no moment
    assert events(track()) == []
    assert detect_events([], np.zeros((0, 2)), ["dog", "cat"], decoding=rules(), **WINDOWS) == []


def test_the_median_filter_fills_a_gap_that_would_cut_a_window_long_hole():
    dip = track(0, 1, 2, 3, 5, 6, 7, 8, 9)  # window 4 below the threshold clears all of [4, 9)
    assert events(dip) == [("dog", 0.0, 4.0), ("dog", 9.0, 14.0)]
    assert events(dip, median_seconds=3) == [("dog", 0.0, 14.0)]  # window 4 is filled in
    assert events(track(*range(10)), median_seconds=3) == [("dog", 0.0, 14.0)]
    assert np.array_equal(median_smooth(np.array([0.0, 1.0, 0.0, 1.0, 1.0]), 3), [0.0, 0.0, 1.0, 1.0, 1.0])


def test_thresholds_are_per_class_and_short_events_can_be_dropped():
    probs = track(0, 1, 2, 3, 4, value=0.6)
    probs[7:, 1] = 0.6  # cat: windows 7-9, alone holding [11, 14)
    assert events(probs, thresholds=np.array([0.7, 0.5])) == [("cat", 11.0, 14.0)]
    assert events(probs, min_seconds=4) == [("dog", 0.0, 5.0)]


def frame_events(dog, **kwargs):
    """The dog's events of a track of 1-s frames (each window holds its own second only, as a frame model's)."""
    probs = np.stack([np.asarray(dog, dtype=float), np.zeros(len(dog))], axis=1)
    return [(e.label, e.onset, e.offset, e.score) for e in detect_events(
        np.arange(len(dog), dtype=float), probs, ["dog", "cat"], window_seconds=1.0, hop_seconds=1.0,
        duration=float(len(dog)), decoding=rules(**kwargs))]


def test_events_at_most_the_gap_apart_become_one_and_the_shortest_is_measured_after_joining():
    barks = [0.9, 0, 0, 0.8, 0, 0.7, 0, 0, 0]  # barks at 0, 3 and 5 s, pauses of 2 and 1 s
    assert frame_events(barks) == [("dog", 0.0, 1.0, 0.9), ("dog", 3.0, 4.0, 0.8), ("dog", 5.0, 6.0, 0.7)]
    assert frame_events(barks, gap_seconds=1.0) == [("dog", 0.0, 1.0, 0.9), ("dog", 3.0, 6.0, 0.8)]
    assert frame_events(barks, gap_seconds=2.0) == [("dog", 0.0, 6.0, 0.9)]  # its score: the highest inside
    assert frame_events(barks, min_seconds=2.0) == []
    assert frame_events(barks, gap_seconds=1.0, min_seconds=2.0) == [("dog", 3.0, 6.0, 0.8)]


def test_hysteresis_holds_an_event_down_to_the_lower_threshold_once_it_reached_the_threshold():
    dog = [0.3, 0.6, 0.4, 0.3, 0.1, 0.4, 0.45, 0.2]
    assert frame_events(dog) == [("dog", 1.0, 2.0, 0.6)]
    assert frame_events(dog, hysteresis=0.5) == [("dog", 0.0, 4.0, 0.6)]  # >= 0.25 around its 0.6; 0.4-0.45 never
    assert frame_events(dog, hysteresis=0.5, gap_seconds=1.0) == [("dog", 0.0, 4.0, 0.6)]  # joins only events
    assert frame_events(dog, thresholds=0.45, hysteresis=0.5, gap_seconds=1.0) == [("dog", 0.0, 7.0, 0.6)]


def test_events_never_reach_past_the_file():
    assert events(track(5, 6, 7, 8, 9), duration=11.8) == [("dog", 9.0, 11.8)]


def test_a_timeline_that_does_not_fit_its_labels_is_refused():
    with pytest.raises(ValueError, match="does not fit"):
        detect_events(BEGINS, np.zeros((10, 3)), ["dog", "cat"], decoding=rules(), **WINDOWS)


@pytest.mark.parametrize("median_seconds, min_seconds, gap_seconds, hysteresis",
                         [(0, 0, 0, 1), (3, 0, 0, 1), (5, 1.5, 0, 1), (0, 0, 2, 1), (0, 1.5, 1, 0.5), (3, 0, 3, 0.6)])
def test_the_live_tracker_finds_the_events_of_the_whole_track_one_window_at_a_time(median_seconds, min_seconds,
                                                                                  gap_seconds, hysteresis):
    rng = np.random.default_rng(int(median_seconds * 10 + min_seconds + gap_seconds * 100 + hysteresis * 1000))
    for trial in range(20):
        n = int(rng.integers(1, 30))
        probs = (rng.random((n, 2)) < rng.uniform(0.2, 0.8)) * rng.uniform(0.2, 1.0, (n, 2))
        settings = dict(window_seconds=5.0, hop_seconds=1.0, decoding=rules(
            np.array([0.5, 0.7]), median_seconds=median_seconds, min_seconds=min_seconds, gap_seconds=gap_seconds,
            hysteresis=hysteresis))
        whole = detect_events(np.arange(n, dtype=float), probs, ["dog", "cat"], duration=n + 3.6, **settings)
        tracker = EventTracker(["dog", "cat"], **settings)
        live = [e for i, row in enumerate(probs) for e in tracker.push(float(i), row)]
        live += tracker.finish(n + 3.6)
        assert sorted(live, key=lambda e: (e.onset, e.label)) == whole, (trial, probs)
        assert len(tracker.recent) <= max(1, int(median_seconds)) + 1  # memory: one filter's windows ...
        assert len(tracker.held) <= 6  # ... and the windows holding an undecided moment (window / hop + 1)


def test_the_live_tracker_shows_an_event_under_way_before_it_ends():
    tracker = EventTracker(["dog"], window_seconds=5.0, hop_seconds=1.0, decoding=rules(median_seconds=3))
    assert tracker.push(0.0, np.array([0.9])) == [] and tracker.active() == []  # window 0 waits for window 1
    assert tracker.push(1.0, np.array([0.8])) == []  # window 0 is decided: [0, 1), held by it alone, is dog
    assert [(e.label, e.onset, e.offset) for e in tracker.active()] == [("dog", 0.0, 1.0)]


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
