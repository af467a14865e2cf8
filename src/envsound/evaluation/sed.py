"""Score *when* a model hears each sound: its events on clips with strong labels (``strong_labels.csv``).

Each clip's window timeline (the windows ``predict --events`` decodes, here from the clip's cached features) gives
its events at the checkpoint's ``events.*`` settings: segment-based F1 (1-s segments) and event-based F1 (onset
collar 200 ms, offset 200 ms or 20 % of the event) against the reference events
(:mod:`envsound.evaluation.sed_metrics`). PSDS needs the system at many operating points: the same timelines decoded
at every threshold of ``PSDS_THRESHOLDS`` (the median filter and minimum length kept), scored by psds_eval in DCASE
2021's two scenarios (``psds``: 1, strict localisation; ``psds2``: 2, tolerant localisation, cross-triggers counted).

``baseline``: today's ``--segments`` read as events, every window labelled with its top label and runs of one label
merged (what the issue measures detection against).
"""

from __future__ import annotations

import itertools
from typing import Mapping, Sequence

import numpy as np

from envsound.audio.load import audio_info
from envsound.data.records import ClipRecord
from envsound.data.strong_labels import check_within
from envsound.events import Decoding, FrameTrack, Timeline, decode, detect_events
from envsound.events.context import average_probs, context_seconds
from envsound.events.detect import smoothed_stretches, stretch_events
from envsound.evaluation.sed_metrics import Events, event_f1, psds, segment_f1
from envsound.features.windows import start_seconds
from envsound.models.clip import ClipModel, pooled_probs

PSDS_THRESHOLDS = tuple(np.round(np.linspace(0.05, 0.95, 19), 2))


def clip_timeline(model: ClipModel, record: ClipRecord, features: np.ndarray) -> tuple[Timeline, np.ndarray]:
    """(timeline, clip probabilities ``(K,)``): a clip's evaluation windows from its features (as ``predict`` reads
    the file: the same windows), or for a frame model their frames (:class:`~envsound.events.detect.FrameTrack`),
    and the mean of its windows' probabilities (a learned detector's with its context: :func:`window_track`), each
    window scored once (closed-set: no open-set gate). Edge padding is undone; a
    ``features.trim_zeros`` model's leading zeros are not known here, so its times are off by them."""
    feats = model.config.features
    windows, starts = model.clip_windows(features)
    begins = start_seconds(starts, feats)
    duration = audio_info(record.path).duration
    if model.has_frames:
        track = FrameTrack(window_seconds=feats.window_seconds, step_seconds=model.frame_seconds,
                           n_classes=model.n_classes)
        framed = model.frame_probs(windows)
        for begin, frames in zip(begins, framed):
            track.push(float(begin), frames)
        return track.finish(duration), pooled_probs(framed).mean(axis=0)
    probs = window_track(model, windows, begins)
    return Timeline(begins, probs, duration, feats.window_seconds, feats.eval_hop_seconds), probs.mean(axis=0)


def window_track(model: ClipModel, windows: np.ndarray, begins: np.ndarray) -> np.ndarray:
    """One clip's window probabilities ``(n, K)`` float32 as ``predict`` scores its file: a learned detector's with
    its context (:mod:`envsound.events.context`: each window's mean logit over the clip's windows starting within
    ``context_seconds`` of it, ``begins`` in seconds)."""
    probs = model.window_probs(windows).astype(np.float32)
    seconds = context_seconds(getattr(model, "meta", None))
    return average_probs(probs, np.zeros(len(probs)), begins, seconds) if seconds else probs


def sed_report(model: ClipModel, records: Sequence[ClipRecord], timelines: Sequence[Timeline], strong: dict) -> dict:
    """``{"segment_f1", "event_f1", "psds", "psds2", "sed": {details}}`` of ``model`` on ``records`` (their
    :func:`clip_timeline`; a clip without strong labels has no events). Raises DatasetLayoutError for a strong label
    past its clip."""
    timelines = {r.clip_id: t for r, t in zip(records, timelines)}
    durations = {clip: timeline.duration for clip, timeline in timelines.items()}
    check_within(strong, durations)
    reference = reference_events(strong, timelines)
    labels = model.labels

    decoding = Decoding.of(model.config.events).resolved(model.task, len(labels))

    def decoded(rules: Decoding) -> dict:
        return {clip: [(e.label, e.onset, e.offset) for e in decode(t, labels, rules)] for clip, t in timelines.items()}

    system = decoded(decoding)
    segments, events = segment_f1(reference, system, labels, durations=durations), event_f1(reference, system, labels)
    points = [decoded(decoding.with_threshold(threshold)) for threshold in PSDS_THRESHOLDS]
    baseline = {clip: _top_label_runs(t, labels) for clip, t in timelines.items()}
    feats = model.config.features
    return {"segment_f1": segments["f1"], "event_f1": events["f1"],
            "psds": psds(reference, points, durations=durations),
            "psds2": psds(reference, points, durations=durations, dtc=0.1, gtc=0.1, cttc=0.3, alpha_ct=0.5),
            "sed": {"clips": len(timelines), "reference_events": sum(len(v) for v in reference.values()),
                    "system_events": sum(len(v) for v in system.values()), "segment": segments, "event": events,
                    "baseline": {"segment_f1": segment_f1(reference, baseline, labels, durations=durations)["f1"],
                                 "event_f1": event_f1(reference, baseline, labels)["f1"]},
                    "settings": {**{key: getattr(model.config.events, key) for key in TUNED},
                                 "hop_seconds": feats.eval_hop_seconds, "window_seconds": feats.window_seconds}}}


# events.tune's grid (docs/guide/events.md): thresholds, median filters, minimum lengths, gaps joined and hysteresis
# factors tried on the validation clips
TUNE_THRESHOLDS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
TUNE_MEDIANS = (0.0, 0.2, 0.5, 1.0, 1.5, 2.0)
TUNE_MIN_SECONDS = (0.0, 0.2, 0.4)
TUNE_GAPS = (0.0, 0.5, 1.0, 1.5, 2.0)
TUNE_HYSTERESIS = (1.0, 0.75, 0.5)
TUNED = Decoding.keys()  # every decoding setting is tuned


def tune_decoding(timelines: Mapping[str, Timeline], reference: Events, labels: Sequence[str]) -> dict:
    """The ``events`` settings (:data:`TUNED`) of the grid above with the best event F1 on ``timelines`` (``{clip:
    timeline}`` of validation clips, :func:`clip_timeline`) against their ``reference`` events; of equal ones, the
    plainest (one threshold before hysteresis, no gap joined before one, then the earlier median filter, shortest
    event and threshold) -> ``{**settings, "event_f1", "clips"}``."""
    scores = {}
    for median in TUNE_MEDIANS:
        stretches = {clip: smoothed_stretches(np.asarray(t.begins, dtype=np.float64),
                                              np.asarray(t.probs, dtype=np.float64), window_seconds=t.window_seconds,
                                              hop_seconds=t.hop_seconds, duration=t.duration, median_seconds=median)
                     for clip, t in timelines.items() if len(t.begins)}
        for threshold, shortest, gap, hysteresis in itertools.product(TUNE_THRESHOLDS, TUNE_MIN_SECONDS, TUNE_GAPS,
                                                                      TUNE_HYSTERESIS):
            rules = Decoding(threshold=threshold, median_seconds=median, min_seconds=shortest, gap_seconds=gap,
                             hysteresis=hysteresis)
            system = {clip: [] for clip in timelines}
            system.update({clip: [(e.label, e.onset, e.offset) for e in stretch_events(parts, labels, rules)]
                           for clip, parts in stretches.items()})
            scores[rules] = float(event_f1(reference, system, labels)["f1"] or 0.0)
    order = [Decoding(threshold=threshold, median_seconds=median, min_seconds=shortest, gap_seconds=gap,
                      hysteresis=hysteresis) for hysteresis, gap, median, shortest, threshold in
             itertools.product(TUNE_HYSTERESIS, TUNE_GAPS, TUNE_MEDIANS, TUNE_MIN_SECONDS, TUNE_THRESHOLDS)]
    best = max(order, key=scores.__getitem__)  # the first of equal ones
    return {**best.to_dict(), "event_f1": scores[best], "clips": len(timelines)}


def decoded_event_f1(timelines: Mapping[str, Timeline], reference: Events, labels: Sequence[str],
                     decoding: Decoding) -> float:
    """The event F1 of ``timelines`` decoded with ``decoding`` (its thresholds set) against ``reference`` (0 where
    undefined)."""
    system = {clip: [(e.label, e.onset, e.offset) for e in decode(t, labels, decoding)] for clip, t in timelines.items()}
    return float(event_f1(reference, system, labels)["f1"] or 0.0)


def reference_events(strong: dict, clips) -> Events:
    """``{clip: [(label, onset, offset), ...]}`` of ``clips`` (ids) from their strong labels (none: no events)."""
    return {clip: [(e.label, e.onset, e.offset) for e in strong.get(clip, ())] for clip in clips}


def _top_label_runs(timeline: Timeline, labels: Sequence[str]) -> list[tuple[str, float, float]]:
    """The ``--segments`` baseline: each window's top label is active there (one-hot tracks, no filter)."""
    top = np.zeros_like(timeline.probs)
    if len(top):
        top[np.arange(len(top)), timeline.probs.argmax(axis=1)] = 1.0
    return [(e.label, e.onset, e.offset) for e in detect_events(
        timeline.begins, top, labels, window_seconds=timeline.window_seconds, hop_seconds=timeline.hop_seconds,
        duration=timeline.duration, decoding=Decoding(threshold=0.5, median_seconds=0.0))]
