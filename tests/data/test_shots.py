"""K labelled clips per class (``--shots``): stratified, grouped by source, deterministic, the same for every
method; errors that name the class that is too small (no audio needed)."""

from collections import Counter

import pytest

from envsound.config.files import bare_config
from envsound.data.splits import check_no_leakage, few_shot_subset
from envsound.errors import ConfigError
from test_splits import make_manifest


def test_shots_keep_exactly_k_per_class_grouped_and_deterministic():
    manifest = make_manifest(classes=4, sources_per_class=6, clips_per_source=2)  # 12 clips a class, pairs by source
    for k in (2, 4, 5):
        labelled, rest = few_shot_subset(manifest, shots=k, seed=0)
        counts = Counter(r.label for r in labelled.records)
        # pairs of one source stay together: an odd K overshoots by one, never more
        assert all(k <= n <= k + 1 for n in counts.values()) and len(counts) == 4, (k, counts)
        check_no_leakage(labelled, rest)
        assert len(labelled) + len(rest) == len(manifest)
    first = few_shot_subset(manifest, shots=4, seed=0)[0]
    assert [r.clip_id for r in few_shot_subset(manifest, shots=4, seed=0)[0].records] == \
        [r.clip_id for r in first.records]
    shuffled = manifest.subset(list(reversed(manifest.records)))
    assert {r.clip_id for r in few_shot_subset(shuffled, shots=4, seed=0)[0].records} == \
        {r.clip_id for r in first.records}
    assert {r.clip_id for r in few_shot_subset(manifest, shots=4, seed=1)[0].records} != \
        {r.clip_id for r in first.records}


def test_one_shot_with_single_clip_sources_is_exact():
    manifest = make_manifest(classes=3, sources_per_class=5, clips_per_source=1)
    labelled, _ = few_shot_subset(manifest, shots=1, seed=3)
    assert Counter(r.label for r in labelled.records) == {f"class{c}": 1 for c in range(3)}


def test_too_many_shots_name_the_class_and_its_count():
    manifest = make_manifest(classes=3, sources_per_class=2, clips_per_source=2)
    manifest = manifest.subset([r for r in manifest.records if not (r.label == "class1" and r.clip_id.endswith("1"))])
    small = Counter(r.label for r in manifest.records)["class1"]
    with pytest.raises(ConfigError, match=f"--shots 4: class 'class1' has only {small} training clip"):
        few_shot_subset(manifest, shots=4, seed=0)
    with pytest.raises(ConfigError, match="shots=0 is out of range"):
        few_shot_subset(manifest, shots=0, seed=0)


def test_shots_and_label_fraction_exclude_each_other():
    with pytest.raises(ConfigError, match=r"train.shots=5 \(--shots\) and train.label_fraction=0.5 "
                                          r"\(--label-fraction\) both choose"):
        bare_config(overrides=["train.shots=5", "train.label_fraction=0.5"])
