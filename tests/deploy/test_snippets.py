"""A sensor's snippets before they leave it: the cut (its margins, one window at least, the cap, a ring that reaches
back far enough for an event reported late), the labels whose sound may leave, the codec, and the outbox's budget
(the oldest dropped first, counted)."""

from __future__ import annotations

import numpy as np
import pytest

from envsound.deploy.outbox import Outbox
from envsound.deploy.snippets import (AudioRing, Snipper, SnippetRules, SnippetSettings, decode, encode, opus_rate,
                                      ring_seconds, snippet_span)
from envsound.errors import ConfigError

RATE = 8000


def stream(seconds: float, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).uniform(-0.5, 0.5, int(seconds * RATE))).astype(np.float32)


def snipper(*, window: float = 1.0, cap: float = 10.0, rules: SnippetRules = SnippetRules(), median: float = 0.0,
            gap: float = 0.0) -> Snipper:
    settings = SnippetSettings(rules=rules, cap=cap, codec="flac")  # lossless: the samples can be compared
    return Snipper(settings, stream_rate=RATE, network_rate=RATE, window=window, hop=0.5, median=median, gap=gap)


def heard(cutter: Snipper, audio: np.ndarray, block: float = 0.1) -> None:
    step = int(block * RATE)
    for at in range(0, len(audio), step):
        cutter.hear(audio[at:at + step])


def cut(cutter: Snipper, onset: float, offset: float, label: str = "dog") -> np.ndarray:
    data, media_type, start = cutter.cut({"label": label, "onset": onset, "offset": offset})
    samples, rate = decode(data)
    assert (media_type, rate) == ("audio/flac", RATE)
    return samples


def test_a_snippet_is_its_event_with_half_a_second_each_side():
    audio, cutter = stream(8), snipper()
    heard(cutter, audio)
    samples = cut(cutter, 4.0, 6.0)
    np.testing.assert_allclose(samples, audio[int(3.5 * RATE):int(6.5 * RATE)], atol=1 / 32768)
    heard(cutter, stream(30))  # the ring holds the last 13.5 s (a 10-s cap, a 1-s window): the event is gone
    assert cutter.cut({"label": "dog", "onset": 4.0, "offset": 6.0}) is None


def test_a_snippet_says_where_its_event_begins_in_it():
    audio, cutter = stream(8), snipper()
    heard(cutter, audio)
    assert cutter.cut({"label": "dog", "onset": 4.0, "offset": 6.0})[2] == -0.5  # its margin


def test_a_short_event_is_widened_to_a_window_from_the_sound_around_it():
    audio, cutter = stream(15), snipper(window=5.0)
    heard(cutter, audio)
    np.testing.assert_allclose(cut(cutter, 10.0, 10.2), audio[int(7.6 * RATE):int(12.6 * RATE)], atol=1 / 32768)
    # at the stream's start the window takes more after the event: still a window, no zeros
    np.testing.assert_allclose(cut(cutter, 0.2, 0.4), audio[:5 * RATE], atol=1 / 32768)


def test_after_a_swap_snippets_are_cut_for_the_network_swapped_in_and_nothing_heard_is_lost():
    """listen --follow swapped in a model of 5-s windows where 1-s ones ran: its snippets are at least 5 s, the ring
    grows to reach back as far as its decoding needs, keeping what it held; applied at the stream's next block."""
    audio, cutter = stream(12), snipper(window=1.0)
    heard(cutter, audio[:8 * RATE])
    before = len(cutter.ring.buffer)
    cutter.tune(network_rate=RATE, window=5.0, hop=1.0, median=3.0, gap=1.0)
    assert cutter.window == 1.0  # not yet: the stream thread applies it with its next block
    heard(cutter, audio[8 * RATE:])
    assert cutter.window == 5.0 and len(cutter.ring.buffer) > before
    np.testing.assert_allclose(cut(cutter, 6.0, 6.5), audio[int(3.75 * RATE):int(8.75 * RATE)], atol=1 / 32768)
    np.testing.assert_allclose(cut(cutter, 0.2, 0.4), audio[:5 * RATE], atol=1 / 32768)  # held from before the swap


def test_a_ring_grown_after_it_wrapped_holds_only_what_it_heard():
    """Grown from 2 s to 4 s after 5 s were heard: it holds 3-5 s, never silence in place of 1-3 s."""
    ring, audio = AudioRing(10, 2.0), np.arange(1, 51, dtype=np.float32)
    ring.push(audio)
    ring.grow(4.0)
    assert ring.start == 30 and ring.cut(1.0, 5.0).tolist() == audio[30:].tolist()
    ring.push(audio[:30] + 100)  # and it fills up to its new size
    assert ring.start == 40 and ring.cut(0.0, 8.0).tolist() == [*audio[40:], *(audio[:30] + 100)]


def test_a_long_event_keeps_its_last_seconds_up_to_the_cap():
    audio, cutter = stream(32), snipper(cap=10.0)
    heard(cutter, audio)
    np.testing.assert_allclose(cut(cutter, 2.0, 30.0), audio[int(20.5 * RATE):int(30.5 * RATE)], atol=1 / 32768)


def test_the_ring_reaches_back_to_a_whole_snippet_when_the_event_is_reported_late():
    """An event is reported ended a window, a hop, half the median filter and the gap after its end: by then the
    stream has moved on, and the ring must still hold the event's last cap seconds and their margin."""
    window, hop, median, gap, cap = 5.0, 0.5, 3.0, 2.0, 10.0
    cutter = snipper(window=window, cap=cap, median=median, gap=gap)
    reported = 30.0 + window + hop + median / 2 + gap + 0.1  # a block more heard than the hop said
    audio = stream(reported)
    heard(cutter, audio)
    np.testing.assert_allclose(cut(cutter, 2.0, 30.0), audio[int(20.5 * RATE):int(30.5 * RATE)], atol=1 / 32768)
    assert ring_seconds(window=window, hop=hop, median=median, gap=gap, cap=cap, margin=0.5) < 30  # bounded


def test_the_ring_keeps_the_last_seconds_across_pushes_of_any_size():
    ring, audio = AudioRing(RATE, 2.0), stream(5)
    for size in (3, 17000, 1, 100, 6000):  # one push longer than the ring
        ring.push(audio[ring.end:ring.end + size])
    assert (ring.start, ring.end) == (ring.end - 2 * RATE, 23104)
    np.testing.assert_array_equal(ring.cut(0, 10), audio[ring.start:ring.end])
    assert len(ring.cut(0.0, 0.5)) == 0  # long gone


def test_snippet_span_stays_within_what_is_held():
    assert snippet_span(1.0, 1.2, margin=0.5, minimum=5.0, cap=10.0, start=0.0, end=3.0) == (0.0, 3.0)


def test_a_label_not_allowed_is_never_cut():
    cutter = snipper(rules=SnippetRules.parse(None, "speech"))
    heard(cutter, stream(5))
    assert cutter.cut({"label": "speech", "onset": 1.0, "offset": 2.0}) is None
    assert cutter.cut({"label": "dog", "onset": 1.0, "offset": 2.0}) is not None
    only = SnippetRules.parse("dog,rain", "rain")
    assert [only.allows(label) for label in ("dog", "rain", "speech")] == [True, False, False]
    assert SnippetRules.parse("", None).allows("anything")
    with pytest.raises(ConfigError, match="none empty"):
        SnippetRules.parse("dog,,rain", None)


def test_five_seconds_of_opus_fit_in_32_kb_and_decode_to_five_seconds():
    samples = np.random.default_rng(1).normal(0, 0.3, 5 * 48000).astype(np.float32)  # noise: the hardest
    data, media_type = encode(samples, 48000)
    back, rate = decode(data)
    assert media_type == "audio/ogg" and len(data) <= 32 * 1024 and rate == 48000
    assert abs(len(back) - len(samples)) < 48000 * 0.05
    assert [opus_rate(22050, 44100), opus_rate(32000, 44100), opus_rate(22050, 16000)] == [24000, 48000, 16000]
    with pytest.raises(ConfigError, match="22050"):
        encode(samples, 22050)


def test_the_outbox_keeps_snippets_within_its_budget_dropping_the_oldest(tmp_path):
    outbox = Outbox(tmp_path / "queue.sqlite")
    keys = outbox.put_events([{"label": "dog", "onset": "x", "offset": "y", "score": 0.9}] * 5)
    dropped = [outbox.put_snippet(key, bytes(100), "audio/ogg", budget=350) for key in keys]
    assert dropped == [0, 0, 0, 1, 1] and outbox.snippets_dropped == 2 and outbox.snippets_queued() == 3
    assert outbox.put_snippet("big", bytes(400), "audio/ogg", budget=350) == 4  # alone over: it goes too
    assert outbox.snippets_queued() == 0 and outbox.snippets_dropped == 6
    outbox.close()


def test_a_snippet_waits_for_its_event_and_goes_with_it_when_the_event_is_set_aside(tmp_path):
    outbox = Outbox(tmp_path / "queue.sqlite")
    first, second = outbox.put_events([{"label": "dog", "onset": "x", "offset": "y", "score": 0.9}] * 2)
    for key in (first, second):
        outbox.put_snippet(key, b"OggS", "audio/ogg", budget=1000)
    assert outbox.take_snippet() is None and outbox.pending()  # both events still queued
    ids, _, _ = outbox.take(10)
    outbox.delivered(ids[:1], None)
    assert outbox.take_snippet() == (first, "audio/ogg", b"OggS", None)
    outbox.set_aside(ids[1:], "refused")
    outbox.snippet_done(first)
    assert outbox.snippets_queued() == 0 and not outbox.pending()
    outbox.close()
