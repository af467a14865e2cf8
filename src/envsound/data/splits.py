"""Splits that never leak: clips of one source recording stay on one side (CONVENTIONS #8).

- :func:`cv_splits` - leave-one-fold-out over the official folds.
- :func:`train_val_split` - a validation split carved from the training clips, stratified by label, grouped by source.
- :func:`stratified_group_folds` - folds for datasets that have none (FSDKaggle2018, a folder of files).
- :func:`with_made_folds` - those folds, as many as the smallest class has recordings (up to 5), for ``cv`` and
  ``--folds`` on a set without any (:func:`recordings_per_class` says which class limits them).
- :func:`check_no_leakage` - the guard every train/test pair passes through.
- :func:`labelled_subset` / :func:`few_shot_subset` - which training clips keep their labels (a share, or K a class).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections import Counter, defaultdict
from dataclasses import replace
from typing import Sequence

import numpy as np

from envsound.data.records import ClipRecord, Manifest
from envsound.errors import ConfigError, DatasetLayoutError

logger = logging.getLogger(__name__)


def train_val_split(manifest: Manifest, *, val_fraction: float, seed: int) -> tuple[Manifest, Manifest]:
    """Split ``manifest`` into training and validation clips.

    Stratified by label, grouped by ``source_id`` (no source recording on both sides), deterministic for a given
    ``seed`` and record order. Source groups are visited in a seeded random order and a group goes to validation while
    that brings its class closer to ``val_fraction`` of the class's clips, and only if every class it contains keeps at
    least one training clip. So a class with very few clips may get none in validation, and the validation share is
    approximate. Multi-label clips: iterative stratification over the label sets (:func:`iterative_group_split`).

    Args:
        manifest: the clips to split (pass training folds only).
        val_fraction: ``0 <= val_fraction < 1``; 0 gives an empty validation manifest.
        seed: any integer.

    Returns:
        ``(train, val)``: manifests with ``manifest``'s label vocabulary, records in their original order.

    Raises:
        ConfigError: ``val_fraction`` outside ``[0, 1)``.

    >>> train, val = train_val_split(manifest, val_fraction=0.1, seed=0)
    >>> len(val) / len(manifest)  # about 0.1
    """
    if not (isinstance(val_fraction, (int, float)) and 0 <= val_fraction < 1):
        raise ConfigError(f"val_fraction={val_fraction!r} is out of range; valid: 0 <= val_fraction < 1 "
                          "(train.val_fraction)")
    records = manifest.records
    if val_fraction == 0 or not records:
        return manifest.subset(records), manifest.subset([])
    if _has_label_sets(records):
        side = iterative_group_split(records, [1 - val_fraction, val_fraction], seed=seed)
        return (manifest.subset([r for r, k in zip(records, side) if k == 0]),
                manifest.subset([r for r, k in zip(records, side) if k == 1]))

    classes = [_stratum(r) for r in records]
    groups: dict[str, list[int]] = defaultdict(list)
    for i, record in enumerate(records):
        groups[record.source_id].append(i)
    total = Counter(classes)
    in_train = Counter(classes)
    in_val: Counter = Counter()
    target = {c: val_fraction * n for c, n in total.items()}

    keys = sorted(groups)
    order = np.random.default_rng(seed).permutation(len(keys))
    val_idx: set[int] = set()
    for k in order:
        members = groups[keys[k]]
        counts = Counter(classes[i] for i in members)
        main = counts.most_common(1)[0][0]  # ties: the class met first in the group
        need = target[main] - in_val[main]
        if need <= 0 or counts[main] >= 2 * need:  # taking it would move further from the target than leaving it
            continue
        if any(in_train[c] - n < 1 for c, n in counts.items()):  # every class keeps a training clip
            continue
        val_idx.update(members)
        in_train.subtract(counts)
        in_val.update(counts)

    train = manifest.subset([r for i, r in enumerate(records) if i not in val_idx])
    val = manifest.subset([r for i, r in enumerate(records) if i in val_idx])
    logger.debug("train/val split of %s: %d training, %d validation clips", manifest.name, len(train), len(val))
    return train, val


def cv_splits(manifest: Manifest, folds: Sequence[int]) -> list[tuple[int, Manifest, Manifest]]:
    """Leave-one-fold-out over ``folds``: ``[(test_fold, train_manifest, test_manifest), ...]`` in ``folds`` order.

    The training manifest of each split holds the clips of the other folds in ``folds`` (folds not listed are unused).
    The test manifest leaves out the fold's clips of origin ``noisy`` (FSDKaggle2019's noisy set, an ``envsound mix``
    set's noisy part: their labels may be wrong) where it has others: such clips train, they are never scored.

    Raises:
        DatasetLayoutError: fewer than two distinct folds, a repeated fold, or a fold the dataset does not have.

    >>> for test_fold, train, test in cv_splits(load_dataset("esc50", root), [1, 2, 3, 4, 5]):
    ...     check_no_leakage(train, test)
    """
    folds = [int(f) for f in folds]
    repeated = sorted(f for f, n in Counter(folds).items() if n > 1)
    if repeated:
        raise DatasetLayoutError(f"fold(s) {repeated} given more than once in {folds}; list each fold once")
    if len(folds) < 2:
        raise DatasetLayoutError(f"cross-validation needs at least 2 folds; got {folds} for dataset "
                                 f"{manifest.name!r} whose folds are {manifest.folds or 'none'}")
    manifest.select_folds(folds)  # raises for a fold the dataset does not have
    return [(test_fold, manifest.select_folds([f for f in folds if f != test_fold]),
             scored_clips(manifest.select_folds([test_fold]))) for test_fold in folds]


def scored_clips(test: Manifest) -> Manifest:
    """``test`` without its clips of origin ``noisy`` (labels that may be wrong), unless they are all it has (then
    said in a warning: its score rests on such labels)."""
    kept = [r for r in test.records if r.origin != "noisy"]
    if not kept and test.records:
        logger.warning("fold(s) %s hold only clips of origin noisy: scored against labels that may be wrong",
                       test.folds)
        return test
    return test.subset(kept) if len(kept) < len(test.records) else test


def check_no_leakage(train: Manifest, test: Manifest) -> None:
    """Raise if ``train`` and ``test`` share a clip id, a file, or a source recording.

    Raises:
        DatasetLayoutError: naming how many are shared and the first few, e.g. a ``source_id`` on both sides.
    """
    problems = []
    for what, key in (("clip id", lambda r: r.clip_id), ("file", lambda r: os.path.abspath(r.path)),
                      ("source recording", lambda r: r.source_id)):
        shared = sorted({key(r) for r in train.records} & {key(r) for r in test.records})
        if shared:
            shown = ", ".join(str(s) for s in shared[:3]) + (", ..." if len(shared) > 3 else "")
            problems.append(f"{len(shared)} {what}(s) ({shown})")
    if problems:
        raise DatasetLayoutError(
            f"train/test leak in dataset {train.name!r}: {'; '.join(problems)} on both sides; use the official "
            "folds, or give clips of one recording the same source_id and fold")


def stratified_group_folds(records: Sequence[ClipRecord], *, n_folds: int, seed: int) -> list[int]:
    """Assign folds ``1..n_folds`` (one per record, in order) for a dataset without official folds.

    Stratified by label, grouped by ``source_id`` (:class:`sklearn.model_selection.StratifiedGroupKFold` with
    ``shuffle=True, random_state=seed``), so clips of one recording share a fold; multi-label clips by iterative
    stratification over their label sets (:func:`iterative_group_split`). Deterministic for given records,
    ``n_folds`` and ``seed``.

    Raises:
        ConfigError: ``n_folds`` < 2.
        DatasetLayoutError: fewer source recordings than ``n_folds``, or classes too small to stratify.
    """
    if isinstance(n_folds, bool) or not isinstance(n_folds, int) or n_folds < 2:
        raise ConfigError(f"n_folds={n_folds!r} is out of range; valid: an integer >= 2")
    n_groups = len({r.source_id for r in records})
    if n_groups < n_folds:
        raise DatasetLayoutError(f"cannot make {n_folds} folds from {n_groups} source recording(s) "
                                 f"({len(records)} clips); use fewer folds or more data")
    if _has_label_sets(records):
        return [k + 1 for k in iterative_group_split(records, [1.0 / n_folds] * n_folds, seed=seed)]
    from sklearn.model_selection import StratifiedGroupKFold  # imported only when folds are assigned

    y = [_stratum(r) for r in records]
    groups = [r.source_id for r in records]
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    folds = [0] * len(records)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            for k, (_, test_idx) in enumerate(splitter.split(np.zeros(len(records)), y, groups), start=1):
                for i in test_idx:
                    folds[i] = k
        except ValueError as exc:  # e.g. every class has fewer members than n_folds
            raise DatasetLayoutError(f"cannot make {n_folds} stratified folds of {len(records)} clips: {exc}; "
                                     "use fewer folds or more data") from exc
    for w in caught:  # e.g. "the least populated class has only 2 members": worth knowing, not fatal
        logger.warning("fold assignment: %s", w.message)
    return folds


def _stratum(record: ClipRecord) -> str:
    return record.labels[0] if record.labels else ""


def _has_label_sets(records: Sequence[ClipRecord]) -> bool:
    return any(len(r.labels) > 1 for r in records)


def iterative_group_split(records: Sequence[ClipRecord], proportions: Sequence[float], *, seed: int) -> list[int]:
    """Split multi-label clips into ``len(proportions)`` parts of about those shares, every label spread in
    proportion, clips of one ``source_id`` together: the subset index of each record, in order.

    Iterative stratification (Sechidis, Tsoumakas & Vlahavas, ECML PKDD 2011) over source groups instead of clips:
    the groups of the label with the fewest unassigned clips are placed first, each into the part that still wants its
    labels and its clips most (wants as shares, so a rare label counts as much as a common one; ties: a seeded draw).
    Scoring every label of a group, not only the one being placed, kept 4 folds of 120 label sets within 5 points
    of each label's overall share where the original rule strayed 13. Written here because scikit-learn has no multi-label stratification and
    iterative-stratification / scikit-multilearn do not group.

    >>> folds = iterative_group_split(manifest.records, [0.2] * 5, seed=0)
    """
    shares = np.asarray(proportions, dtype=np.float64)
    shares = shares / shares.sum()
    rng = np.random.default_rng([seed, 0x17e5])
    groups: dict[str, list[int]] = defaultdict(list)
    for i, record in enumerate(records):
        groups[record.source_id].append(i)
    keys = sorted(groups)
    keys = [keys[k] for k in rng.permutation(len(keys))]
    label_counts = {key: Counter(label for i in groups[key] for label in records[i].labels) for key in keys}
    totals: Counter = Counter()
    for counts in label_counts.values():
        totals.update(counts)
    wants_label = {label: shares * n for label, n in totals.items()}
    wants_clips = shares * len(records)
    part_of: dict[str, int] = {}

    def place(key: str) -> None:
        # how much each part still wants this group: the share of each of its labels' target that the part still
        # lacks (so rare labels and small parts weigh as much as common ones and large parts), and of its clip target
        desire = sum(wants_label[name] / (shares * totals[name]) * n for name, n in label_counts[key].items())
        desire = desire + wants_clips / (shares * len(records)) * len(groups[key])
        score = np.lexsort((rng.random(len(shares)), -wants_clips, -desire))
        part = int(score[0])
        part_of[key] = part
        wants_clips[part] -= len(groups[key])
        for name, n in label_counts[key].items():
            wants_label[name][part] -= n

    remaining = Counter(totals)
    unplaced = set(keys)
    while remaining:
        label = min(remaining, key=lambda name: (remaining[name], name))  # the rarest label left
        for key in [k for k in keys if k in unplaced and label in label_counts[k]]:
            place(key)
            unplaced.discard(key)
            remaining.subtract(label_counts[key])
        remaining = Counter({name: n for name, n in remaining.items() if n > 0})
    for key in [k for k in keys if k in unplaced]:
        place(key)
    return [part_of[record.source_id] for record in records]


def labelled_subset(manifest: Manifest, *, fraction: float, seed: int) -> tuple[Manifest, Manifest]:
    """Keep a stratified ``fraction`` of ``manifest``'s clips labelled; the rest become unlabelled data.

    Stratified by label and grouped by ``source_id``: source groups are visited in a seeded random order and a group is
    kept while its class has fewer than ``max(1, round(fraction * n_class))`` clips kept (a group can overshoot by its
    own size); multi-label clips by iterative stratification (:func:`iterative_group_split`). Deterministic for given records, ``fraction`` and ``seed``, so
    every method of a comparison sees the same labelled clips. Pass training clips only (after the test fold is gone).

    Args:
        manifest: the training clips.
        fraction: ``0 < fraction <= 1``; 1 keeps every clip.
        seed: any integer (``train.seed``).

    Returns:
        ``(labelled, rest)``: manifests with ``manifest``'s label vocabulary, records in their original order.

    Raises:
        ConfigError: ``fraction`` outside ``(0, 1]``.

    >>> labelled, rest = labelled_subset(train_folds, fraction=0.25, seed=0)
    """
    if not (isinstance(fraction, (int, float)) and 0 < fraction <= 1):
        raise ConfigError(f"label fraction {fraction!r} is out of range; valid: 0 < fraction <= 1 "
                          "(train.label_fraction, --label-fraction)")
    records = manifest.records
    if fraction == 1 or not records:
        return manifest.subset(records), manifest.subset([])
    if _has_label_sets(records):
        side = iterative_group_split(records, [fraction, 1 - fraction], seed=seed)
        return (manifest.subset([r for r, k in zip(records, side) if k == 0]),
                manifest.subset([r for r, k in zip(records, side) if k == 1]))
    groups: dict[str, list[int]] = defaultdict(list)
    for i, record in enumerate(records):
        groups[record.source_id].append(i)
    totals = Counter(_stratum(r) for r in records)
    target = {c: max(1, round(fraction * n)) for c, n in totals.items()}
    kept_per_class: Counter = Counter()
    keep: set[int] = set()
    order = sorted(groups)  # a fixed order before shuffling, so the record order does not matter
    for g in np.random.default_rng([seed, 0x1abe1]).permutation(len(order)):
        members = groups[order[g]]
        stratum = _stratum(records[members[0]])
        if kept_per_class[stratum] < target[stratum]:
            keep.update(members)
            kept_per_class[stratum] += len(members)
    return (manifest.subset([r for i, r in enumerate(records) if i in keep]),
            manifest.subset([r for i, r in enumerate(records) if i not in keep]))


def few_shot_subset(manifest: Manifest, *, shots: int, seed: int) -> tuple[Manifest, Manifest]:
    """Keep ``shots`` labelled clips of every class (first label of a multi-label clip); the rest become unlabelled.

    Grouped by ``source_id`` like :func:`labelled_subset`: source groups are visited in a seeded random order, and a
    group joins its class while the class stays within ``shots``; a class that cannot be filled exactly that way
    takes the next group that overshoots least. Deterministic for given records, ``shots`` and ``seed``, so every
    method of a comparison sees the same clips. Pass training clips only.

    Raises:
        ConfigError: ``shots`` < 1, or more than some class has (the message names the class and its count).

    >>> labelled, rest = few_shot_subset(train_folds, shots=5, seed=0)
    """
    if not (isinstance(shots, int) and shots >= 1):
        raise ConfigError(f"shots={shots!r} is out of range; valid: >= 1 labelled clips per class (--shots)")
    records = manifest.records
    totals = Counter(_stratum(r) for r in records)
    short = sorted((n, c) for c, n in totals.items() if n < shots)
    if short:
        n, c = short[0]
        raise ConfigError(f"--shots {shots}: class {c!r} has only {n} training clip(s) in dataset {manifest.name!r}"
                          f"{f' ({len(short)} classes have fewer than {shots})' if len(short) > 1 else ''}; "
                          "lower --shots")
    groups: dict[str, list[int]] = defaultdict(list)
    for i, record in enumerate(records):
        groups[record.source_id].append(i)
    order = sorted(groups)
    visits = [order[g] for g in np.random.default_rng([seed, 0x5107]).permutation(len(order))]
    kept_per_class: Counter = Counter()
    keep: set[int] = set()
    for source in visits:  # exact fills first
        members = groups[source]
        stratum = _stratum(records[members[0]])
        if kept_per_class[stratum] + len(members) <= shots:
            keep.update(members)
            kept_per_class[stratum] += len(members)
    for source in sorted(visits, key=lambda s: len(groups[s])):  # then the smallest overshoot, in seeded order
        members = groups[source]
        stratum = _stratum(records[members[0]])
        if kept_per_class[stratum] < shots and not keep.intersection(members):
            keep.update(members)
            kept_per_class[stratum] += len(members)
    return (manifest.subset([r for i, r in enumerate(records) if i in keep]),
            manifest.subset([r for i, r in enumerate(records) if i not in keep]))


def exclude_clips_of(pool: Manifest, held_out: Manifest, *, fold: int | None = None) -> Manifest:
    """``pool`` without any clip that is, or shares a file or source recording with, a clip of ``held_out``, and
    (when ``fold`` is given) without the clips of that fold number.

    The guard for unlabelled data in cross-validation: an unlabelled pool (possibly another dataset on the same
    corpus, e.g. ESC-50 beside ESC-10) must not contain the test fold's clips or their source recordings. The result
    passes :func:`check_no_leakage` against ``held_out``.

    >>> pool = exclude_clips_of(load_dataset("esc50", root), esc10_test, fold=3)
    """
    ids = {r.clip_id for r in held_out.records}
    files = {os.path.abspath(r.path) for r in held_out.records}
    sources = {r.source_id for r in held_out.records}
    kept = [r for r in pool.records
            if r.clip_id not in ids and os.path.abspath(r.path) not in files and r.source_id not in sources
            and (fold is None or r.fold != fold)]
    if len(kept) < len(pool.records):
        logger.info("unlabelled pool: left out %d of %d clips that are (or share a source with) held-out clips",
                    len(pool.records) - len(kept), len(pool.records))
    return pool.subset(kept)


def merge_unlabelled(*pools: Manifest, name: str = "unlabelled") -> Manifest:
    """One label-free manifest of every clip in ``pools`` (labels dropped), each file once (first occurrence wins).

    Clip ids are prefixed with their manifest's name so two datasets' ids cannot collide.
    """
    from dataclasses import replace

    seen: set[str] = set()
    records = []
    for pool in pools:
        for r in pool.records:
            path = os.path.abspath(r.path)
            if path not in seen:
                seen.add(path)
                records.append(replace(r, labels=(), clip_id=f"{pool.name}:{r.clip_id}"))
    return Manifest(name=name, records=records, labels=[])


def check_augmentation_leakage(
    train: Manifest,
    held_out: Sequence[Manifest],
    *,
    copy_sources: Sequence[ClipRecord] = (),
    noise_files: Sequence[str | os.PathLike] = (),
) -> None:
    """Raise if augmentation would carry held-out audio (validation or test clips) into training.

    Checks that ``train`` shares no clip, file or source recording with any of ``held_out`` (as
    :func:`check_no_leakage`), that every augmented copy's source record (``copy_sources``) is a clip of ``train``,
    and that no background-noise file is a held-out clip (same resolved path, or the same file through a link).

    Raises:
        DatasetLayoutError: naming the offending clips or files.
    """
    for other in held_out:
        check_no_leakage(train, other)
    train_ids = {r.clip_id for r in train.records}
    foreign = sorted({r.clip_id for r in copy_sources} - train_ids)
    if foreign:
        raise DatasetLayoutError(f"augmented copies made from {len(foreign)} clip(s) that are not training clips "
                                 f"({', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}); copies may "
                                 "only come from the training clips of the split")
    held = [r for m in held_out for r in m.records]
    if not noise_files or not held:
        return
    by_identity: dict[object, ClipRecord] = {}
    for record in held:
        for ident in _file_identities(record.path):
            by_identity[ident] = record
    clashes = []
    for noise in noise_files:
        record = next((by_identity[i] for i in _file_identities(noise) if i in by_identity), None)
        if record is not None:
            clashes.append(f"{noise} (= {record.clip_id})")
    if clashes:
        raise DatasetLayoutError(
            f"augment.background_folder holds {len(clashes)} file(s) that are validation or test clips of this "
            f"split: {', '.join(sorted(clashes)[:3])}{', ...' if len(clashes) > 3 else ''}; their sound would leak "
            "into training. Use a folder of other recordings, or leave augment.background_folder empty to mix in "
            "training clips only")


def _file_identities(path: str | os.PathLike) -> list[object]:
    """The resolved path, and (device, inode) when the file exists (catches hard links and bind mounts)."""
    resolved = os.path.realpath(path)
    try:
        stat = os.stat(resolved)
    except OSError:
        return [resolved]
    return [resolved, (stat.st_dev, stat.st_ino)]


DEFAULT_MADE_FOLDS = 5


def recordings_per_class(manifest: Manifest) -> dict[str, int]:
    """How many source recordings (distinct ``source_id``) hold each class of ``manifest``, in label order; a
    multi-label clip counts for each of its labels. A class of the vocabulary with no clip counts 0.

    >>> recordings_per_class(load_dataset("folder", "my_sounds"))   # {'dog': 4, 'siren': 1}
    """
    sources: dict[str, set[str]] = defaultdict(set)
    for record in manifest.records:
        for label in record.labels:
            sources[label].add(record.source_id)
    labels = list(manifest.labels) or sorted(sources)
    return {label: len(sources[label]) for label in labels}


def smallest_class(manifest: Manifest) -> tuple[str, int] | None:
    """The class with the fewest source recordings and that number (ties: the first in label order), or ``None``
    for a manifest without labels."""
    counts = recordings_per_class(manifest)
    return min(counts.items(), key=lambda item: item[1]) if counts else None


def with_made_folds(manifest: Manifest, *, n_folds: int = DEFAULT_MADE_FOLDS, seed: int = 0) -> Manifest:
    """``manifest`` itself when its clips have folds; otherwise a copy with ``k = min(n_folds, recordings in its
    smallest class)`` folds, stratified by class and grouped by source recording (:func:`stratified_group_folds`),
    logged with how they were made, so ``cv`` and ``--folds`` work on a small folder of sounds (3 classes of 4 clips
    get 4 folds). Every class then has a recording in every fold. When some class has fewer than 2 recordings no
    folds are made and the manifest is returned as it is (training on every clip still works; cross-validation
    cannot: :func:`smallest_class` names the class). The log line counts the files and recordings and says how the
    recordings were found (``manifest.grouping``).

    >>> with_made_folds(load_dataset("folder", "my_sounds")).folds   # [1, 2, 3, 4, 5]
    """
    if manifest.folds or not manifest.records:
        return manifest
    smallest = smallest_class(manifest)
    n = min(n_folds, smallest[1]) if smallest else min(n_folds, len({r.source_id for r in manifest.records}))
    if n < 2:
        why = f"class {smallest[0]!r} has {smallest[1]} recording(s)" if smallest else "it has 1 recording"
        logger.info("dataset %s has no folds and %s, too few to make 2: every clip trains", manifest.name, why)
        return manifest
    folds = stratified_group_folds(manifest.records, n_folds=n, seed=seed)
    recordings = len({r.source_id for r in manifest.records})
    logger.info("dataset %s has no folds: made %d, stratified by class and grouped by source recording (seed %d): "
                "%d files in %d recordings%s; --folds names them", manifest.name, n, seed, len(manifest), recordings,
                f", {manifest.grouping}" if manifest.grouping else "")
    return manifest.subset([replace(r, fold=k) for r, k in zip(manifest.records, folds)])
