"""Self-training (``semi.method=self_training``): which pool clips a round pseudo-labels, that they join the next
round's training set with their copies, resume by round, and what it refuses."""

import csv
import shutil

import numpy as np
import pytest
import torch
from lightning.fabric.utilities.rank_zero import rank_zero_only

from conftest import TINY_OVERRIDES
from envsound.config.files import bare_config
from envsound.errors import ConfigError
from envsound.features.cache import FeatureCache
from envsound.models.checkpoint import load_checkpoint
from envsound.recipes.context import RunContext
from envsound.recipes.self_training import ROUND_STATE, ClipSet, confident_subset, round_config
from envsound.recipes.train import CHECKPOINT_NAME, train_model
from envsound.training.loop import fit as fit_module
from envsound.training.prepare import prepare_training_data

SELF = TINY_OVERRIDES + ("semi.method=self_training", "train.label_fraction=0.5", "train.max_epochs=2",
                         "train.batch_size=4", "train.val_fraction=0", "model.filters=4",
                         "semi.self_training.rounds=0.5,1")


def _logged_steps(run_dir) -> list[int]:
    with open(run_dir / "logs" / "metrics.csv") as handle:
        return [int(r["step"]) for r in csv.DictReader(handle) if r.get("train_loss")]


def _steps_per_epoch(run_dir) -> int:
    return _logged_steps(run_dir)[0] + 1


def test_confident_subset_keeps_the_surest_clips_of_each_predicted_class():
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.8, 0.2], [0.7, 0.3], [0.3, 0.7], [0.45, 0.55]])
    # 6 clips, 2 classes: share 0.5 keeps round(1.5) = 2 a class; class 1 has only 2 guesses, class 0 its surest 2
    assert confident_subset(probs, 0.5).tolist() == [0, 2, 4, 5]
    assert confident_subset(probs, 1 / 3).tolist() == [0, 4]
    assert confident_subset(probs, 1.0).tolist() == [0, 2, 3, 4, 5]  # a class keeps at most 3: clip 1 is its 4th
    assert confident_subset(probs, 0.1).tolist() == []


def test_clip_sets_join_with_their_copies():
    a = ClipSet([np.zeros(1)], np.eye(2, dtype=np.float32)[[0]], [[np.ones(1)]])
    b = ClipSet([np.zeros(1), np.zeros(1)], np.eye(2, dtype=np.float32)[[1, 1]])
    joined = a.plus(b)
    assert len(joined.features) == 3 and joined.targets.argmax(1).tolist() == [0, 1, 1]
    assert [len(v) for v in joined.variants] == [1, 0, 0]
    assert b.plus(b).variants == []  # no copies anywhere: none listed
    assert a.plus(b).noisiness is None  # every label given
    noisy = a.plus(ClipSet(b.features, b.targets, noisiness=np.ones(2, np.float32)))
    assert noisy.noisiness.tolist() == [0.0, 1.0, 1.0]


def test_rounds_train_on_the_labelled_and_the_surest_pool_clips_and_resume(tmp_path, synthetic_manifest, monkeypatch):
    config = bare_config(overrides=SELF)
    run = tmp_path / "run"
    result = train_model(synthetic_manifest.select_folds([1, 2]), config, out_dir=run,
                         context=RunContext(progress=False))
    assert (result.n_train, result.n_unlabelled) == (20, 20)
    rounds = load_checkpoint(result.checkpoint).meta["self_training"]
    assert [r["round"] for r in rounds] == [0, 1, 2] and rounds[0]["pseudo_labelled"] == 0
    assert 0 < rounds[1]["pseudo_labelled"] <= 10 and rounds[1]["pseudo_labelled"] <= rounds[2]["pseudo_labelled"]
    assert all(r["clips"] == 20 + r["pseudo_labelled"] for r in rounds)
    # the pseudo-labelled clips are trained on: batches of 4 (last one dropped), so more clips, more steps an epoch
    assert _steps_per_epoch(run / "round_0") == 5
    assert _steps_per_epoch(run / "round_1") == (20 + rounds[1]["pseudo_labelled"]) // 4
    assert load_checkpoint(result.checkpoint).config.semi.method == "self_training"

    finished = (run / "round_1" / ROUND_STATE).stat().st_mtime_ns
    (run / "round_2" / ROUND_STATE).unlink()  # as if interrupted during the last round
    train_model(synthetic_manifest.select_folds([1, 2]), config, out_dir=run,
                context=RunContext(resume=True, progress=False))
    assert (run / "round_1" / ROUND_STATE).stat().st_mtime_ns == finished
    assert (run / "round_2" / ROUND_STATE).exists()

    # every round read back: in another process of a multi-process run (rank 1) nothing is written, process 0 writes
    (run / CHECKPOINT_NAME).unlink()
    monkeypatch.setattr(rank_zero_only, "rank", 1)
    assert not train_model(synthetic_manifest.select_folds([1, 2]), config, out_dir=run,
                           context=RunContext(resume=True, progress=False)).written
    assert not (run / CHECKPOINT_NAME).exists()
    monkeypatch.setattr(rank_zero_only, "rank", 0)
    train_model(synthetic_manifest.select_folds([1, 2]), config, out_dir=run,
                context=RunContext(resume=True, progress=False))
    assert (run / CHECKPOINT_NAME).exists()


@pytest.mark.parametrize("method", ["self_training", "fixmatch"])
def test_pool_clips_get_offline_copies_for_self_training_only(tmp_path, synthetic_manifest, method):
    config = bare_config(overrides=SELF + ("augment.copies=1", f"semi.method={method}"))
    data = prepare_training_data(synthetic_manifest.select_folds([1, 2]), config, progress=False,
                                 cache=FeatureCache(tmp_path / "cache"))
    assert len(data.unlabelled) == len(data.unlabelled_features) == 20
    assert [len(v) for v in data.unlabelled_variants] == [1 if method == "self_training" else 0] * 20
    assert {c.source_clip_id for c in data.unlabelled_copies.copies} <= {r.clip_id for r in data.unlabelled}


@pytest.mark.parametrize("override", ["train.ensemble=2", "semi.self_training.rounds=[]",
                                      "semi.self_training.rounds=0,1", "semi.rounds=1.5"])  # the old key, too
def test_what_self_training_refuses(tmp_path, synthetic_manifest, override):
    with pytest.raises(ConfigError, match="self_training|semi.self_training.rounds"):
        config = bare_config(overrides=SELF + (override,))
        train_model(synthetic_manifest.select_folds([1, 2]), config, out_dir=tmp_path,
                    context=RunContext(progress=False))


def test_a_round_trains_for_the_run_budget_or_its_share():
    full = bare_config(overrides=("semi.method=self_training", "train.label_fraction=0.1"))
    assert round_config(full, rounds=5).train == full.train and round_config(full).semi.method == "none"
    later = round_config(full, rounds=5, steps=1504)  # a round after the first: round 0's steps, in as many epochs
    assert (later.train.min_steps, later.train.max_epochs) == (1504, 1)
    split = round_config(bare_config(overrides=("semi.method=self_training", "train.label_fraction=0.1",
                                                "semi.self_training.round_budget=split")), rounds=5)
    assert (split.train.min_steps, split.train.max_epochs) == (300, 1)  # the 1,500 default steps over 5 rounds


def test_later_rounds_make_round_0s_steps_on_more_clips(tmp_path, synthetic_manifest):
    # round 0: 6 epochs of 20 // 4 = 30 steps, above train.min_steps; a later round makes those 30 in whole epochs
    config = bare_config(overrides=SELF + ("train.max_epochs=6", "train.min_steps=10"))
    dataset = synthetic_manifest.select_folds([1, 2])
    result = train_model(dataset, config, out_dir=tmp_path, context=RunContext(progress=False))
    rounds = load_checkpoint(result.checkpoint).meta["self_training"]
    assert _logged_steps(tmp_path / "round_0")[-1] + 1 == 30
    last = rounds[-1]
    per_epoch = (20 + last["pseudo_labelled"]) // 4
    assert per_epoch >= 6  # where 6 epochs would make 36+ steps
    for r in rounds[1:]:
        round_epoch = (20 + r["pseudo_labelled"]) // 4
        assert _logged_steps(tmp_path / f"round_{r['round']}")[-1] + 1 == -(-30 // round_epoch) * round_epoch

    def rerun_last_round() -> int:  # its steps, trained again after round 0 and 1 are read back
        shutil.rmtree(tmp_path / f"round_{last['round']}")
        train_model(dataset, config, out_dir=tmp_path, context=RunContext(resume=True, progress=False))
        return _logged_steps(tmp_path / f"round_{last['round']}")[-1] + 1

    assert rerun_last_round() == -(-30 // per_epoch) * per_epoch  # round 0's steps are read back with it
    round_0 = tmp_path / "round_0" / ROUND_STATE
    state = torch.load(round_0, weights_only=True)
    del state["fit"]["steps"]  # a round 0 saved before its steps were: later rounds train as configured
    torch.save(state, round_0)
    assert rerun_last_round() == 6 * per_epoch


def test_split_rounds_share_the_run_steps(tmp_path, synthetic_manifest):
    config = bare_config(overrides=SELF + ("semi.self_training.round_budget=split", "train.min_steps=30"))
    result = train_model(synthetic_manifest.select_folds([1, 2]), config, out_dir=tmp_path,
                         context=RunContext(progress=False))
    rounds = load_checkpoint(result.checkpoint).meta["self_training"]
    for r in rounds:  # 10 steps a round, in whole epochs of (20 + pseudo-labelled) // 4 steps
        per_epoch = (20 + r["pseudo_labelled"]) // 4
        assert _logged_steps(tmp_path / f"round_{r['round']}")[-1] + 1 == -(-10 // per_epoch) * per_epoch
    assert load_checkpoint(result.checkpoint).config.semi.self_training.round_budget == "split"


def test_split_rounds_need_a_step_budget(tmp_path, synthetic_manifest):
    config = bare_config(overrides=SELF + ("semi.self_training.round_budget=split", "train.min_steps=0"))
    with pytest.raises(ConfigError, match="round_budget=split.*train.min_steps"):
        train_model(synthetic_manifest.select_folds([1, 2]), config, out_dir=tmp_path,
                    context=RunContext(progress=False))


@pytest.mark.parametrize("round_init", ["scratch", "previous"])
def test_a_later_round_starts_fresh_or_from_the_previous_rounds_weights(tmp_path, synthetic_manifest, monkeypatch,
                                                                         round_init):
    starts = []  # what each round's network was initialised from (the real fit, watched)
    real_fit = fit_module.fit_network

    def watched_fit(*args, init=None, **kwargs):
        starts.append(init)
        return real_fit(*args, init=init, **kwargs)

    monkeypatch.setattr(fit_module, "fit_network", watched_fit)
    config = bare_config(overrides=SELF + (f"semi.self_training.round_init={round_init}",))
    train_model(synthetic_manifest.select_folds([1, 2]), config, out_dir=tmp_path, context=RunContext(progress=False))
    assert len(starts) == 3 and starts[0] is None
    if round_init == "scratch":
        assert starts[1:] == [None, None]
        return
    for r in (1, 2):  # round r starts from round r - 1's trained weights, head included
        trained = torch.load(tmp_path / f"round_{r - 1}" / ROUND_STATE, weights_only=True)["fit"]["state_dict"]
        given = {**starts[r].trunk, **starts[r].head}
        assert given.keys() == trained.keys() and all(torch.equal(given[k], trained[k]) for k in trained)
        assert starts[r].same_head


def test_pseudo_labelled_clips_train_as_noisy_ones(tmp_path, synthetic_manifest, monkeypatch):
    noisiness = []  # each round's training noisiness, as the real fit receives it
    real_fit = fit_module.fit_network

    def watched_fit(config, data, **kwargs):
        noisiness.append(data.train.noisiness)
        return real_fit(config, data, **kwargs)

    monkeypatch.setattr(fit_module, "fit_network", watched_fit)
    # noisy_share: round 0 has no pseudo-labels to draw half its windows from, and trains as a supervised run
    config = bare_config(overrides=SELF + ("noisy.noisy_loss=lq", "noisy.noisy_share=0.5"))
    result = train_model(synthetic_manifest.select_folds([1, 2]), config, out_dir=tmp_path,
                         context=RunContext(progress=False))
    rounds = load_checkpoint(result.checkpoint).meta["self_training"]
    assert noisiness[0] is None
    for r in rounds[1:]:  # the 20 labelled clips first, then the pseudo-labelled ones
        assert noisiness[r["round"]].tolist() == [0.0] * 20 + [1.0] * r["pseudo_labelled"]
