"""The runtime probe (envsound.hardware.probe_candidates) as a user meets it: short, said once with what it does and
why, and never paid twice for a model and input shape this machine has already probed."""

import logging

import pytest
import torch
from torch import nn

from envsound import hardware
from envsound.hardware import probe_candidates

CANDIDATES = [("32", True), ("32", False)]


class Recording(nn.Module):
    """A small CNN that records the batch sizes it is run on."""

    def __init__(self, seen: list):
        super().__init__()
        self.seen = seen
        self.layers = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                                    nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))

    def forward(self, x):
        self.seen.append(x.shape[0])
        return self.layers(x)


@pytest.fixture
def probe_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ENVSOUND_PROBE_CACHE", str(tmp_path / "probes.json"))
    return tmp_path / "probes.json"


def test_predict_reuses_the_inference_probe_a_cv_made_in_a_process_that_kept_freed_memory(probe_cache, monkeypatch):
    """A `cv` evaluates each fold in the process that trained it, which keeps freed memory (keep_freed_memory); a
    later `predict` does not. The two probed the same one-window batches under two keys, so predict probed again."""
    seen: list = []
    monkeypatch.setattr(hardware, "_KEPT_HEAP", True)  # inside cv, after a fold trained
    first = probe_candidates(lambda: Recording(seen), (1, 16, 20), mode="infer", batch=1, identity={"name": "m"},
                             seconds=0.01)(CANDIDATES, "cpu")
    runs = len(seen)
    monkeypatch.setattr(hardware, "_KEPT_HEAP", False)  # predict, a new process
    again = probe_candidates(lambda: Recording(seen), (1, 16, 20), mode="infer", batch=1, identity={"name": "m"},
                             seconds=0.01)(CANDIDATES, "cpu")
    assert again == first and len(seen) == runs  # read from the cache, nothing run


def test_a_training_probe_times_small_batches_and_one_answer_serves_every_batch_size(probe_cache):
    seen: list = []
    for batch in (32, 64):
        probe_candidates(lambda: Recording(seen), (1, 16, 20), mode="train", batch=batch, identity={"name": "m"},
                         seconds=0.01)(CANDIDATES, "cpu")
    assert seen and set(seen) == {2}  # PROBE_TRAIN_BATCH: timed at 2 examples a step, and once: batch 64 reused it


def test_a_probe_keeps_to_its_time_budget(probe_cache):
    """The old probe ran two warm-up steps and 0.4 s per candidate whatever a step cost (48.7 s of a 63-s train)."""
    seen: list = []
    probe_candidates(lambda: Recording(seen), (1, 16, 20), mode="infer", batch=1, identity={"name": "m"},
                     seconds=0.0)(CANDIDATES, "cpu")
    assert len(seen) == 2 * len(CANDIDATES)  # a budget spent: one warm-up and one timed step each


def test_the_probe_says_what_it_does_why_and_that_it_is_kept(probe_cache, caplog):
    with caplog.at_level(logging.INFO, logger="envsound.hardware"):
        probe_candidates(lambda: Recording([]), (1, 16, 20), mode="infer", batch=1, identity={"name": "cnn"},
                         seconds=0.01)(CANDIDATES, "cpu")
    lines = [r.getMessage() for r in caplog.records if "runtime probe" in r.getMessage()]
    assert len(lines) == 1 and "\n" not in lines[0]
    assert "to run it the fastest" in lines[0] and "once per model and input shape" in lines[0]
    assert str(probe_cache) in lines[0]
