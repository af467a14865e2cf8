"""Random windows: one stream per loader worker and per process, and the old single-process stream kept."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from envsound.config import FeatureConfig
from envsound.features.windows import train_window
from envsound.training.loop.clips import ClipSet, FitData
from envsound.training.loop.data import RandomWindowDataset

CFG = FeatureConfig(kind="waveform", sample_rate=8000, window_seconds=0.01)  # 80-sample windows


def dataset(n_clips=8, seed=0):
    clip = np.arange(4000, dtype=np.float32)[None, :]  # a window's first sample is its start
    return RandomWindowDataset([clip] * n_clips, np.zeros((n_clips, 1), dtype=np.float32), cfg=CFG, seed=seed)


def starts(loader) -> list[int]:
    return [int(x[0, 0, 0]) for x, _ in loader]


def test_one_process_without_workers_draws_the_seeded_stream():
    data = dataset(seed=3)
    rng = np.random.default_rng(3)
    expected = [int(train_window(data.features[i], CFG, rng=rng)[0, 0]) for i in range(len(data))]
    assert starts(DataLoader(data, batch_size=1)) == expected


def test_loader_workers_draw_different_windows_and_new_ones_each_epoch():
    """Regression: every worker used to replay one copied generator, so workers cut the same crops."""
    torch.manual_seed(0)
    loader = DataLoader(dataset(), batch_size=1, num_workers=2)  # items alternate between the two workers
    first, second = starts(loader), starts(loader)
    assert first[0::2] != first[1::2]
    assert first != second


def test_ranks_draw_different_windows_even_inside_loader_workers():
    """A loader worker cannot ask torch.distributed for its rank: the data module hands it to the dataset."""
    streams = []
    for rank in (0, 1):
        torch.manual_seed(0)  # every rank is seeded alike; the streams must still differ
        data = dataset()
        data.rank = rank
        streams.append(starts(DataLoader(data, batch_size=1, num_workers=2)))
    assert streams[0] != streams[1]


def test_an_epoch_of_every_window_visits_each_evaluation_window_once():
    from envsound.features.windows import eval_starts
    from envsound.training.loop.data import ClipDataModule, EveryWindowDataset
    from envsound.config.files import bare_config

    config = bare_config(overrides=["features.kind=waveform", "features.sample_rate=8000",
                                    "features.window_seconds=0.01", "features.eval_hop_seconds=0.005",
                                    "model.name=aclnet", "train.windows=all", "train.batch_size=7"])
    lengths = [400, 250, 60]  # the last clip is shorter than a window: one padded window
    clips = [np.arange(n, dtype=np.float32)[None, :] for n in lengths]
    targets = np.eye(3, dtype=np.float32)
    module = ClipDataModule(config, FitData(ClipSet(clips, targets)), sampler_weights=np.array([1.0, 1.0, 4.0]))
    assert isinstance(module.train_set, EveryWindowDataset)
    expected = sorted((clip, start) for clip, n in enumerate(lengths) for start in eval_starts(n, config.features))
    assert len(module.train_set) == len(expected) > len(clips)
    seen = sorted((int(np.argmax(y)), int(x[0, 0])) for x, y in (module.train_set[i]
                                                                   for i in range(len(module.train_set))))
    assert seen == expected  # a window's first sample is its start; each window once
    weights = module.sampler_weights  # per window: each clip keeps its own total weight
    clip_of = module.train_set.clip_of
    assert [weights[clip_of == c].sum() for c in range(3)] == pytest.approx([1.0, 1.0, 4.0])
    assert module.train_set[len(expected) - 1][0].shape == (1, 80)


def test_with_every_copy_an_epoch_visits_each_window_of_each_copy():
    from envsound.training.loop.data import EveryWindowDataset

    cfg = FeatureConfig(kind="waveform", sample_rate=8000, window_seconds=0.01, eval_hop_seconds=0.005)
    clip = np.arange(400, dtype=np.float32)[None, :]
    copies = [[clip + 10_000, (np.arange(300, dtype=np.float32) + 20_000)[None, :]]]  # the second copy is shorter
    one_pass = EveryWindowDataset([clip], np.ones((1, 1), dtype=np.float32), cfg=cfg, seed=0, variants=copies)
    every_copy = EveryWindowDataset([clip], np.ones((1, 1), dtype=np.float32), cfg=cfg, seed=0, variants=copies,
                                    every_copy=True)
    assert len(one_pass) == 9 and len(every_copy) == 9 + 9 + 7  # 80-sample windows every 40 samples
    firsts = sorted(int(every_copy[i][0][0, 0]) for i in range(len(every_copy)))
    assert firsts == sorted([s for s in range(0, 321, 40)] + [10_000 + s for s in range(0, 321, 40)]
                            + [20_000 + s for s in [*range(0, 201, 40), 220]])  # the last one ends the copy
