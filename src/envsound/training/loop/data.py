"""What a training run reads: torch datasets over clip features, and the LightningDataModule that owns their loaders.

Features are whole clips, ``(C, n_mels, frames)`` log-mel or ``(1, samples)`` waveform (``features.kind``), held in
memory or memory-mapped from the feature store (:class:`~envsound.features.cache.StoredFeatures`): a dataset only
ever reads the window it returns, so memory is bounded by the batch, not the corpus. A model sees windows
``(C, n_mels, window_frames)`` or ``(1, window_samples)`` (batched: ``(batch, 1, window_samples)``, which the waveform
models accept). Targets are float vectors (one-hot or multi-hot) so mixup and multi-label need no special cases.
"""

from __future__ import annotations

import functools
import math
from typing import Sequence

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler, Sampler, WeightedRandomSampler, get_worker_info

from envsound.config import Config, FeatureConfig
from envsound.data.records import Manifest
from envsound.errors import ConfigError
from envsound.features.windows import eval_starts, eval_window_at, train_window, window_length
from envsound.training.loop.clips import FitData, no_targets


def target_matrix(manifest: Manifest) -> np.ndarray:
    """``(n_clips, n_classes)`` float32 one-hot / multi-hot targets in the manifest's label order."""
    return manifest.task.targets([r.labels for r in manifest.records], manifest.labels)


def process_rank() -> int:
    """This process's rank in a multi-process run (0 when there is only one)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return 0


class RandomWindowDataset(Dataset):
    """One random window per clip per epoch (a random crop: the cheapest augmentation there is).

    ``variants[i]`` (optional) lists offline augmented copies of clip ``i``: each epoch the window is cut from the
    original or one of its copies, chosen uniformly. The epoch keeps one item per clip, so the number of steps, the
    learning-rate schedule and ``train.patience`` mean the same with or without copies.

    Every loader worker and every rank draws its own random stream: the generator is made on first use in the
    process that uses it, from ``seed``, the rank and the worker's torch seed (which the DataLoader draws anew each
    epoch). A single process with no workers draws from ``default_rng(seed)`` exactly as before workers were seeded.
    """

    def __init__(self, features: Sequence[np.ndarray], targets: np.ndarray, *, cfg: FeatureConfig, seed: int,
                 variants: Sequence[Sequence[np.ndarray]] | None = None,
                 noisiness: np.ndarray | None = None) -> None:
        self.features = features
        self.targets = torch.from_numpy(targets)
        # (n,) 1.0 for a clip whose labels may be wrong (origin "noisy"); given, items are (window, target, noisiness)
        self.noisiness = None if noisiness is None else torch.as_tensor(noisiness, dtype=torch.float32)
        self.cfg = cfg
        self.seed = seed
        self.rank: int | None = None  # set by ClipDataModule: loader workers cannot ask torch.distributed
        self._rng: np.random.Generator | None = None
        self._rng_owner: tuple | None = None
        self.variants = variants if variants is not None else [()] * len(features)
        if len(self.variants) != len(self.features):
            raise ValueError(f"{len(self.variants)} variant lists for {len(self.features)} clips")

    @property
    def rng(self) -> np.random.Generator:
        worker, rank = get_worker_info(), self.rank if self.rank is not None else process_rank()
        owner = (rank, None if worker is None else (worker.id, worker.seed))
        if self._rng is None or owner != self._rng_owner:
            entropy = self.seed if owner == (0, None) else [self.seed, rank, *(owner[1] or ())]
            self._rng, self._rng_owner = np.random.default_rng(entropy), owner
        return self._rng

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self._item(i, train_window(self._source(i), self.cfg, rng=self.rng))

    def _source(self, clip: int) -> np.ndarray:
        """Clip ``clip``'s features, or one of its offline copies (uniformly, when it has any)."""
        variants = self.variants[clip]
        choice = int(self.rng.integers(0, 1 + len(variants))) if len(variants) else 0
        return self.features[clip] if choice == 0 else variants[choice - 1]

    def _item(self, clip: int, window: np.ndarray) -> tuple[torch.Tensor, ...]:
        window = torch.from_numpy(np.ascontiguousarray(window, dtype=np.float32))
        if self.noisiness is not None:
            return window, self.targets[clip], self.noisiness[clip]
        return window, self.targets[clip]


class EveryWindowDataset(RandomWindowDataset):
    """Every evaluation window of every clip once an epoch (``train.windows: all``), in the loader's shuffled order:
    the segment-level epoch of Piczak (2015), where a random crop per clip would see a tenth of the segments.

    Windows start every ``features.eval_hop_seconds``, as :func:`~envsound.features.windows.eval_starts` cuts them for
    evaluation. A clip with offline copies gives each of its windows from the original or a copy (chosen at random
    per item), at the same start, moved back to fit a copy that is shorter (time-stretch). With ``every_copy``
    (``train.windows: all_copies``) the copies count as clips instead: every window of each of them is an item too,
    as in Piczak's code, so an epoch is ``1 + copies`` times longer.
    """

    def __init__(self, *args, every_copy: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.items: list[tuple[int, int | None, int]] = []  # (clip, copy: 0 = original, None = drawn per item, start)
        for clip, features in enumerate(self.features):
            versions = [features, *self.variants[clip]] if every_copy else [features]
            for version, array in enumerate(versions):
                self.items.extend((clip, version if every_copy else None, start)
                                  for start in eval_starts(array.shape[-1], self.cfg))
        self.clip_of = np.asarray([clip for clip, _, _ in self.items], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        clip, version, start = self.items[i]
        if version is None:
            source = self._source(clip)
        else:
            source = self.features[clip] if version == 0 else self.variants[clip][version - 1]
        start = min(start, max(0, source.shape[-1] - window_length(self.cfg)))
        return self._item(clip, eval_window_at(source, self.cfg, start))

    def per_window(self, clip_weights: np.ndarray) -> np.ndarray:
        """Per-clip sampler weights spread over each clip's windows, so a clip weighs the same however long it is."""
        counts = np.bincount(self.clip_of, minlength=len(self.features))
        return np.asarray(clip_weights, dtype=np.float64)[self.clip_of] / counts[self.clip_of]


class AllWindowsDataset(Dataset):
    """Every evaluation window of every clip, with the clip's index so predictions can be averaged per clip.

    Holds (clip, start) pairs only; a window is cut when it is asked for.
    """

    def __init__(self, features: Sequence[np.ndarray], targets: np.ndarray, *, cfg: FeatureConfig) -> None:
        self.features = features
        self.cfg = cfg
        self.items = [(clip, start) for clip in range(len(features))
                      for start in eval_starts(features[clip].shape[-1], cfg)]
        self.targets = torch.from_numpy(targets)
        self.n_clips = len(features)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        clip, start = self.items[i]
        window = eval_window_at(self.features[clip], self.cfg, start)
        return torch.from_numpy(np.ascontiguousarray(window, dtype=np.float32)), self.targets[clip], clip


def clip_noisiness(manifest: Manifest) -> np.ndarray | None:
    """``(n,)`` float32: 1.0 for each clip of origin ``noisy``, else 0.0; ``None`` when no clip is noisy."""
    noisy = np.asarray([r.origin == "noisy" for r in manifest.records], dtype=np.float32)
    return noisy if noisy.any() else None


def origin_sampling(config: Config, weights: np.ndarray | None, noisiness: np.ndarray | None
                    ) -> tuple[np.ndarray | None, int]:
    """The sampler weights and windows per epoch once ``noisy.noisy_share`` is applied: with a share p > 0 and both
    origins present, the noisy clips together weigh p and the curated ones 1 - p (times any class-balance
    ``weights``); ``noisy.epoch_clips`` windows an epoch (0: as many as clips). Otherwise ``(weights, 0)``.

    Raises:
        ConfigError: a share p > 0 where the training clips are all of one origin.
    """
    share = config.noisy.noisy_share
    if share == 0:
        return weights, 0
    noisy = np.zeros(0) if noisiness is None else np.asarray(noisiness) > 0.5
    if not noisy.any() or noisy.all():
        raise ConfigError(f"noisy.noisy_share={share}: the training clips are all of one origin (noisy: "
                          f"{int(noisy.sum())} of {len(noisy)}); mix curated and noisy clips (--subset all) or set "
                          "noisy.noisy_share=0")
    base = np.ones(len(noisy)) if weights is None else np.asarray(weights, dtype=np.float64)
    per_clip = np.where(noisy, share / base[noisy].sum(), (1 - share) / base[~noisy].sum()) * base
    return per_clip, config.noisy.epoch_clips


def _batches_per_process(n: int, drop_last: bool, *, processes: int, batch: int) -> int:
    """Batches of ``batch`` a process loads when ``n`` items are shared out between ``processes``."""
    per_process = math.ceil(n / processes)
    return per_process // batch if drop_last else math.ceil(per_process / batch)


class PoolDraws(Sampler[int]):
    """``num_samples`` random indices into a pool of ``n`` items (a new permutation every ``n``), as
    ``RandomSampler(num_samples=...)`` draws them. A class of its own because under DDP Lightning replaces a
    ``RandomSampler`` by a ``DistributedSampler`` over the whole dataset, dropping ``num_samples`` (every process
    would then pass over the whole pool each epoch), while it splits any other sampler's draws between processes."""

    def __init__(self, n: int, *, num_samples: int) -> None:
        self._draws = RandomSampler(range(n), num_samples=num_samples)

    def __iter__(self):
        return iter(self._draws)

    def __len__(self) -> int:
        return len(self._draws)


class ClipDataModule(L.LightningDataModule):
    """The loaders of one run: training windows (one random crop per clip, or every window with ``train.windows:
    all``; optionally class-balanced, with offline copies), every window of the validation clips, and an unlabelled
    stream for semi-supervised runs.

    ``train.batch_size`` is the global batch: each of N processes loads ``batch_size / N`` per step, and Lightning
    gives each its own share of the clips (a distributed sampler), so 1 process and N see the same number of
    windows per step and per epoch.

    Args:
        config: the run's config (``train.batch_size``, ``train.seed``, ``runtime.num_workers``; ``semi.mu`` and
            ``semi.epoch``).
        data: the clips (:class:`~envsound.training.clips.FitData`): ``train`` (with its offline copies, see
            :class:`RandomWindowDataset`, and noisiness: given, a training item is ``(x, y, noisiness)``, and with
            ``noisy.noisy_share`` p > 0 windows are drawn from the noisy clips with probability p,
            ``noisy.epoch_clips`` a epoch), ``val`` (may be empty) and ``pool``: given, each batch is
            ``{"labelled": (x, y), "unlabelled": (x, _)}``.
        sampler_weights: per-clip weights for a class-balanced sampler (with replacement) instead of shuffling.
    """

    def __init__(self, config: Config, data: FitData, *, sampler_weights: np.ndarray | None = None) -> None:
        super().__init__()
        self.config = config
        windows = config.train.windows
        epoch = {"random": RandomWindowDataset, "all": EveryWindowDataset,
                 "all_copies": functools.partial(EveryWindowDataset, every_copy=True)}[windows]
        train = data.train
        self.train_set = epoch(train.features, train.targets, cfg=config.features, seed=config.train.seed,
                               variants=train.variants or None, noisiness=train.noisiness)
        self.val_set = None
        if len(data.val):
            self.val_set = AllWindowsDataset(data.val.features, data.val.targets, cfg=config.features)
        self.sampler_weights, self.epoch_clips = origin_sampling(config, sampler_weights, train.noisiness)
        if self.sampler_weights is not None and isinstance(self.train_set, EveryWindowDataset):
            self.sampler_weights = self.train_set.per_window(self.sampler_weights)
        self.unlabelled_set = None
        if len(data.pool):
            self.unlabelled_set = RandomWindowDataset(data.pool.features, no_targets(len(data.pool)),
                                                      cfg=config.features, seed=config.train.seed + 1)

    @property
    def has_val(self) -> bool:
        return self.val_set is not None

    def per_process_batch(self, processes: int) -> int:
        return max(1, self.config.train.batch_size // processes)

    def _processes(self) -> int:
        return self.trainer.world_size if self.trainer is not None else 1

    def steps_per_epoch(self, processes: int = 1) -> int:
        """Optimizer steps in one training epoch on ``processes`` processes, as :meth:`train_dataloader` builds it."""
        semi = self.config.semi
        batch = self.per_process_batch(processes)
        steps = _batches_per_process(*self._labelled_epoch(), processes=processes, batch=batch)
        if self.unlabelled_set is not None and semi.epoch == "pool":  # the labelled batches cycle
            steps = max(steps, _batches_per_process(len(self.unlabelled_set), self._pool_drops_last(),
                                                    processes=processes, batch=semi.mu * batch))
        return max(1, steps)

    def _labelled_epoch(self) -> tuple[int, bool]:
        """Windows an epoch draws from the labelled clips, and whether its last short batch is dropped (kept only
        when the epoch has no full batch)."""
        n = self.epoch_clips or len(self.train_set)
        return n, n > self.config.train.batch_size

    def _pool_drops_last(self) -> bool:
        """``semi.epoch=pool``: whether a pass over the pool drops its last short batch (as the labelled one)."""
        return len(self.unlabelled_set) > self.config.semi.mu * self.config.train.batch_size

    def train_dataloader(self):
        for dataset in (self.train_set, self.unlabelled_set):
            if dataset is not None:
                dataset.rank = self.trainer.global_rank if self.trainer is not None else 0
        return self.training_loader(self._processes())

    def training_loader(self, processes: int):
        """The training loader of one of ``processes`` processes, before Lightning gives it a distributed sampler."""
        workers = self.config.runtime.num_workers
        batch = self.per_process_batch(processes)
        n, drop_last = self._labelled_epoch()
        sampler = None
        if self.sampler_weights is not None:
            sampler = WeightedRandomSampler(torch.as_tensor(self.sampler_weights, dtype=torch.double),
                                            num_samples=n, replacement=True)
        labelled = DataLoader(self.train_set, batch_size=batch, shuffle=sampler is None, sampler=sampler,
                              drop_last=drop_last, num_workers=workers, persistent_workers=False)
        if self.unlabelled_set is None:
            return labelled
        from lightning.pytorch.utilities import CombinedLoader

        semi = self.config.semi
        u_batch = semi.mu * batch
        u_set = self.unlabelled_set
        if semi.epoch == "labelled":  # exactly one unlabelled batch per labelled one, reshuffled each pass
            steps = self.steps_per_epoch(processes)
            order = {"sampler": PoolDraws(len(u_set), num_samples=steps * u_batch * processes)}
        else:
            order = {"shuffle": True, "drop_last": self._pool_drops_last()}
        unlabelled = DataLoader(u_set, batch_size=u_batch, num_workers=workers, **order)
        return CombinedLoader({"labelled": labelled, "unlabelled": unlabelled}, mode="max_size_cycle")

    def val_dataloader(self):
        if self.val_set is None:
            return []
        return DataLoader(self.val_set, batch_size=max(self.config.train.batch_size, 64),
                          num_workers=self.config.runtime.num_workers)
