"""The frozen trunk's frame steps are computed once per clip in a process: a second frame-head fit on the same trunk
and clips (a CV's next fold, a grid's next point) reads them back and trains the same head; another trunk, other
feature settings or other clips are computed anew."""

from __future__ import annotations

import numpy as np
import torch

from envsound.config import resolve_config
from envsound.models.efficientat import EfficientAT
from envsound.task import Task
from envsound.transfer.frame_probe import fit_frame_head
from envsound.transfer.source import plan_from_weights
from envsound.transfer.step_cache import STEPS, StepCache, clip_key, trunk_key

LABELS = ["a", "b"]
SETTINGS = ["model.name=efficientat", "features.frontend=efficientat", "model.options.width=0.1",
            "model.options.frame_head=4", "features.window_seconds=1", "train.max_epochs=2", "train.batch_size=2",
            "runtime.accelerator=cpu", "runtime.precision=32"]


def plan(seed: int):
    torch.manual_seed(seed)
    network = EfficientAT(n_classes=len(LABELS), in_channels=1, n_mels=128, n_frames=100, width=0.1, frame_head=4)
    return plan_from_weights(network.state_dict(), LABELS, source=f"seed {seed}")


def test_a_second_fit_on_the_same_trunk_and_clips_reads_the_steps_back_and_trains_the_same_head():
    config = resolve_config(overrides=SETTINGS)
    rng = np.random.default_rng(0)
    clips = [rng.standard_normal((1, 128, frames)).astype(np.float32) for frames in (150, 220, 90)]
    targets = np.array([[1, 0], [0, 1], [1, 1]], dtype=np.float32)
    task = Task.from_flag(True)
    STEPS.clear()
    first = fit_frame_head(plan(0), config, clips, targets, labels=LABELS, task=task)
    assert (STEPS.hits, STEPS.misses) == (0, 3)
    again = fit_frame_head(plan(0), config, clips[:2], targets[:2], labels=LABELS, task=task)
    assert (STEPS.hits, STEPS.misses) == (2, 3)
    repeat = fit_frame_head(plan(0), config, clips, targets, labels=LABELS, task=task)
    assert all(torch.equal(first[k], repeat[k]) for k in first)  # the cached steps are the computed ones
    assert not all(torch.equal(first[k], again[k]) for k in first)  # (two clips train another head)
    fit_frame_head(plan(1), config, clips[:1], targets[:1], labels=LABELS, task=task)  # another trunk
    longer = resolve_config(overrides=[*SETTINGS, "features.window_seconds=2"])  # other windows
    fit_frame_head(plan(0), longer, clips[:1], targets[:1], labels=LABELS, task=task)
    assert (STEPS.hits, STEPS.misses) == (5, 5)
    STEPS.clear()


def test_keys_follow_the_trunk_the_settings_that_cut_its_steps_and_the_clip_but_not_the_heads_size():
    trunk = plan(0).trunk
    config = resolve_config(overrides=SETTINGS)
    key = trunk_key(trunk, config, precision="32")
    assert key == trunk_key(dict(trunk), resolve_config(overrides=[*SETTINGS, "model.options.frame_head=8"]),
                            precision="32")
    changed = {name: tensor.clone() for name, tensor in trunk.items()}
    name = next(iter(changed))
    changed[name].view(-1)[0] += 1e-3
    assert len({key, trunk_key(changed, config, precision="32"), trunk_key(trunk, config, precision="bf16-mixed"),
                trunk_key(trunk, resolve_config(overrides=[*SETTINGS, "model.options.frame_skips=false"]),
                          precision="32")}) == 4
    clip = np.zeros((1, 128, 100), dtype=np.float32)
    other = clip.copy()
    other[0, 0, 0] = 1
    assert clip_key(key, clip) == clip_key(key, clip.copy()) != clip_key(key, other)


def test_the_least_recently_used_steps_go_first_past_the_limit():
    cache = StepCache(max_bytes=3 * 400)  # three entries of 100 float32
    for name in "abc":
        cache.get(name, lambda: np.zeros(100, np.float32))
    cache.get("a", lambda: None)  # a read: "b" is now the oldest
    cache.get("d", lambda: np.zeros(100, np.float32))
    assert list(cache.entries) == ["c", "a", "d"] and cache.bytes == 1200
    cache.get("huge", lambda: np.zeros(1000, np.float32))  # larger than the whole cache: returned, not kept
    assert "huge" not in cache.entries and (cache.hits, cache.misses) == (1, 5)
