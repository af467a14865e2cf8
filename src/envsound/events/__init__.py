"""Sound events from scores over time: the rules (:class:`Decoding`) and the decoder (:func:`detect_events`, a file
at a time; :class:`EventTracker`, a live stream); a learned model's context over a window track
(:mod:`envsound.events.context`). A low stage: numpy only, no torch, importable by evaluation,
inference and the app alike."""

from envsound.events.decoding import Decoding
from envsound.events.detect import Event, EventTracker, FrameTrack, Timeline, decode, detect_events

__all__ = ["Decoding", "Event", "EventTracker", "FrameTrack", "Timeline", "decode", "detect_events"]
