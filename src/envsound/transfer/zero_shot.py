"""Zero-shot: a tagger's classes paired with a dataset's by a label map (``source,target`` rows, e.g. ``Dog,dog``),
so the untrained tagger scores the dataset.

The new head has one row per target class: the mean of the rows of the source classes mapped to it (the mean of
their logits), so the decision is taken among the mapped classes only. Every target class needs a source.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Sequence

import torch

from envsound.errors import ConfigError
from envsound.models.checkpoint import Checkpoint
from envsound.models.pretrained import closest_labels
from envsound.task import Task
from envsound.transfer.source import head_keys, read_label_map


def zero_shot_checkpoint(checkpoint: Checkpoint, label_map: str | Path, labels: Sequence[str], *,
                         task: Task) -> Checkpoint:
    """``checkpoint`` with its head cut down to ``labels`` through ``label_map`` (a CSV read by
    :func:`~envsound.transfer.source.read_label_map`), predicting ``task`` (the dataset's).

    >>> tagger = open_model_file("mn04_as_mAP_432.pt").checkpoint  # or "efficientat-mn04"
    >>> esc10 = zero_shot_checkpoint(tagger, "audioset-esc10", manifest.labels, task=manifest.task)  # the shipped map

    Raises:
        ConfigError: the map names a source class the tagger lacks (the closest names are given) or a target the
            dataset lacks, or leaves a dataset class without a source; the model has no linear head.
    """
    mapping, rows = mapped_rows(label_map, checkpoint.labels, labels)
    state = dict(checkpoint.state_dict or {})
    weight_key, bias_key = head_keys(state)
    state[weight_key] = torch.stack([state[weight_key][r].mean(0) for r in rows])
    state[bias_key] = torch.stack([state[bias_key][r].mean(0) for r in rows])
    meta = copy.deepcopy(checkpoint.meta)
    meta["zero_shot"] = {"label_map": str(label_map), "pairs": {t: [s for s, u in mapping.items() if u == t]
                                                                for t in labels}}
    return Checkpoint(config=checkpoint.config, labels=list(labels), task=task, state_dict=state, meta=meta,
                      trained_on=checkpoint.trained_on, trained_prints=checkpoint.trained_prints)


def mapped_rows(label_map: str | Path, source_labels: Sequence[str], labels: Sequence[str]
                ) -> tuple[dict[str, str], list[list[int]]]:
    """(the map ``source -> target`` read from ``label_map``, for each of ``labels`` the indices in
    ``source_labels`` of the source classes mapped to it): what a zero-shot head averages, a network's head rows
    (:func:`zero_shot_checkpoint`) or a frozen network's logits (:mod:`envsound.evaluation.frozen`).

    Raises:
        ConfigError: the map names a source class ``source_labels`` lacks (the closest names are given) or a target
            ``labels`` lacks, or leaves one of ``labels`` without a source; the map is unreadable.
    """
    mapping = read_label_map(label_map)
    source_labels = list(source_labels)
    index = {name: i for i, name in reversed(list(enumerate(source_labels)))}  # a name twice: its first row
    for source in mapping:
        if source not in index:
            near = closest_labels(source, source_labels)
            raise ConfigError(f"{label_map}: {source!r} is not a class of the model"
                              f"{'; closest: ' + ', '.join(map(repr, near)) if near else ''}")
    missing = [name for name in labels if name not in mapping.values()]
    unknown = [t for t in mapping.values() if t not in labels]
    if unknown:
        raise ConfigError(f"{label_map}: target {unknown[0]!r} is not a class of the dataset "
                          f"({', '.join(labels)})")
    if missing:
        raise ConfigError(f"{label_map}: no source class for {', '.join(map(repr, missing))}; zero-shot needs one "
                          "for every class of the dataset")
    return mapping, [[index[s] for s, t in mapping.items() if t == name] for name in labels]
