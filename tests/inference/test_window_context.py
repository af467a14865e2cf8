"""A learned model's context (envsound.events.context): each window's logit averaged with its file's windows
starting within ``context_seconds``; the same whether the windows come at once or in pieces of any size."""

import numpy as np
import pytest

from envsound.events.context import ContextStream, average_probs, context_seconds, neighbour_bounds, sigmoid


def track(seed: int = 0):
    """Three files: 7 windows at a 1-s hop (mn04), 9 at 0.48 s (YAMNet), 3 at 3 s (BirdNET); 2 labels."""
    rng = np.random.default_rng(seed)
    keys = np.r_[np.zeros(7), np.ones(9), np.full(3, 2)].astype(np.int64)
    starts = np.r_[np.arange(7.0), np.arange(9) * 0.48, np.arange(3) * 3.0]
    return keys, starts, rng.random((len(keys), 2)).astype(np.float32)


def test_the_neighbours_are_the_files_windows_starting_within_the_seconds():
    keys, starts, _ = track()
    lo, hi = neighbour_bounds(keys, starts, 1.0)
    assert (lo[:7].tolist(), hi[:7].tolist()) == ([0, 0, 1, 2, 3, 4, 5], [2, 3, 4, 5, 6, 7, 7])  # +-1 window at 1 s
    assert (hi - lo)[7:16].tolist() == [3, 4, 5, 5, 5, 5, 5, 4, 3]  # +-2 windows at 0.48 s, never past the file
    assert (hi - lo)[16:].tolist() == [1, 1, 1]  # 3-s hop: each window alone


def test_the_logits_are_averaged_then_the_sigmoid():
    keys, starts, probs = track()
    got = average_probs(probs, keys, starts, 1.0)
    logit = np.log(probs[:2].astype(np.float64) / (1 - probs[:2]))
    assert got.dtype == np.float32 and got[0] == pytest.approx(sigmoid(logit.mean(axis=0)), abs=1e-6)
    assert np.array_equal(got[16:], probs[16:])  # no neighbour within 1 s: unchanged
    assert average_probs(probs, keys, starts, 0.0) is probs  # off: the probabilities as given


@pytest.mark.parametrize("hop", [None, 1.0])
def test_a_stream_in_pieces_of_any_size_gives_the_whole_tracks_scores(hop):
    keys, starts, probs = track()
    keys, starts, probs = keys[:7], starts[:7], probs[:7]  # one live stream: one file, a 1-s hop
    whole = average_probs(probs, keys, starts, 1.0)
    for cuts in ([3], [1, 2, 3, 4, 5, 6], [6]):
        stream, ids, got = ContextStream(1.0, hop=hop), [], []
        for part in np.split(np.arange(7), cuts):
            done, scores = stream.push(keys[part], starts[part], probs[part], part)
            ids += done.tolist()
            got.append(scores)
        done, scores = stream.finish()
        assert ids + done.tolist() == list(range(7))
        assert np.allclose(np.concatenate(got + [scores]), whole, atol=1e-7)


def test_a_live_window_waits_for_its_last_neighbour_only():
    """With the hop known, the window at 2 s is given out as soon as the window at 3 s is in (mn04: one hop)."""
    stream = ContextStream(1.0, hop=1.0)
    given = [stream.push([0], [float(t)], np.full((1, 1), 0.5, np.float32), [t])[0].tolist() for t in range(4)]
    assert given == [[], [0], [1], [2]]
    assert ContextStream(1.0, hop=3.0).push([0], [0.0], np.full((1, 1), 0.5, np.float32), [0])[0].tolist() == [0]


def test_the_setting_is_read_from_the_learned_meta_and_missing_is_off():
    assert context_seconds({"learned": {"context_seconds": 1.0}}) == 1.0
    for meta in (None, {}, {"learned": {}}, {"learned": {"context_seconds": 0}}, {"trunk": {}},
                 {"learned": {"context_seconds": "x"}}, {"learned": {"context_seconds": -1.0}}):
        assert context_seconds(meta) == 0.0
