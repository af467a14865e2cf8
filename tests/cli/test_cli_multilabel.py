"""Multi-label end to end from the command line, in-process: mix a small set from the synthetic clips, cross-validate
on it, evaluate, predict; and the errors of mixing tasks."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from conftest import TINY_OVERRIDES
from envsound.cli.main import main

# windows as long as the mixtures, so every event a clip is labelled with is in every training window
WINDOWS = ("features.window_seconds=2.5", "features.eval_hop_seconds=1.0")
TRAIN_SETS = [arg for o in TINY_OVERRIDES + WINDOWS + ("train.max_epochs=30", "train.lr=0.01", "train.batch_size=8")
              for arg in ("--set", o)]
CV_SETS = [arg for o in TINY_OVERRIDES + WINDOWS + ("train.max_epochs=1",) for arg in ("--set", o)]


@pytest.fixture(scope="module")
def mix_root(tmp_path_factory, synthetic_root):
    out = tmp_path_factory.mktemp("mix") / "set"
    code = main(["mix", "--quiet", "--dataset", "synthetic", "--root", str(synthetic_root), "--folds", "1,2,3",
                 "--out", str(out), "--curated", "24", "--noisy-factor", "0.5", "--min-seconds", "1.5",
                 "--max-seconds", "2.5", "--max-events", "2", "--sample-rate", "16000", "--seed", "3"])
    assert code == 0
    return out


def run_on_mix(command: str, out, mix_root, folds: str, sets: list[str]):
    """``envsound COMMAND`` on the mixture set into ``out`` (its own feature cache); returns ``out``."""
    assert main([command, "--quiet", "--dataset", "fsdkaggle2019", "--root", str(mix_root), "--folds", folds,
                 "--out", str(out), "--cache-dir", str(out / "cache"), *sets]) == 0
    return out


@pytest.fixture(scope="module")
def cv_run(tmp_path_factory, mix_root):
    """One epoch a fold: what cv writes for a multi-label set (whether it learns: test_multi_label_model_learns)."""
    return run_on_mix("cv", tmp_path_factory.mktemp("mlcv"), mix_root, "1,2,3", CV_SETS)


@pytest.fixture(scope="module")
def ml_model(tmp_path_factory, mix_root):
    return run_on_mix("train", tmp_path_factory.mktemp("mltrain"), mix_root, "1,2", TRAIN_SETS) / "model.ckpt"


def test_mix_writes_a_multi_label_set_in_the_fsdkaggle2019_layout(mix_root, capsys):
    with open(mix_root / "train_curated.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 72 and {r["fold"] for r in rows} == {"1", "2", "3"}
    assert any("," in r["labels"] for r in rows)  # some mixtures carry two labels
    assert json.loads((mix_root / "mix.json").read_text())["settings"]["seed"] == 3


def test_multi_label_cv_scores_lwlrap_and_map(cv_run, capsys):
    summary = json.loads((cv_run / "cv.json").read_text())
    assert summary["task"] == "multi_label" and summary["score"] == "lwlrap"
    assert len(summary["folds"]) == 3 and {"lwlrap", "mAP", "micro_f1", "macro_f1"} <= set(summary["folds"][0])
    assert summary["mean_lwlrap"] == pytest.approx(np.mean([f["lwlrap"] for f in summary["folds"]]))
    assert (cv_run / "per_class_ap.png").stat().st_size > 0 and not (cv_run / "confusion.png").exists()
    with open(cv_run / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 72 and any(";" in r["label"] for r in rows)


def test_multi_label_model_learns(ml_model, mix_root, capsys):
    capsys.readouterr()
    assert main(["evaluate", "--quiet", str(ml_model), "--dataset", "fsdkaggle2019", "--root", str(mix_root),
                 "--folds", "3", "--json", "--no-cache"]) == 0
    report = json.loads(capsys.readouterr().out)
    # chance: a random ranking of 10 classes for clips with 1-2 labels gives lwlrap about 0.33; 48 mixtures give
    # 0.59 on mixtures of unheard clips on one core (make test), more with two
    assert report["lwlrap"] > 0.5, report["lwlrap"]
    # the set's strong_labels.csv: when each sound is, scored too (issue 42)
    assert all(0 <= report[key] <= 1 for key in ("segment_f1", "event_f1", "psds", "psds2")), report
    sed = report["sed"]
    assert sed["clips"] == report["n_clips"] and sed["reference_events"] >= sed["clips"]
    # this tiny model rarely reaches the 0.5 threshold, but what it detects is where the sound is
    assert report["segment_f1"] > 0 and sed["segment"]["precision"] > 0.5, sed["segment"]


def test_multi_label_evaluate_and_predict(ml_model, mix_root, capsys):
    ckpt = ml_model
    capsys.readouterr()
    assert main(["evaluate", "--quiet", str(ckpt), "--dataset", "fsdkaggle2019", "--root", str(mix_root),
                 "--folds", "3", "--json", "--no-cache", "--threshold", "0.3"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["task"] == "multi_label" and report["threshold"] == 0.3
    assert {"lwlrap", "mAP", "micro_f1", "macro_f1"} <= set(report)
    assert {"average_precision", "f1", "support"} <= set(report["per_class"][0])

    clip = sorted((mix_root / "train_curated").glob("*.wav"))[0]
    assert main(["predict", "--quiet", str(ckpt), str(clip), "--json", "--threshold", "0.01"]) == 0
    line = json.loads(capsys.readouterr().out)
    assert len(line["top"]) == 3
    scores = [entry["score"] for entry in line["labels"]]
    assert len(scores) >= 1 and scores == sorted(scores, reverse=True) and min(scores) >= 0.01
    assert main(["predict", "--quiet", str(ckpt), str(clip), "--json", "--threshold", "0.999"]) == 0
    assert all(entry["score"] >= 0.999 for entry in json.loads(capsys.readouterr().out)["labels"])


def test_a_validation_split_fits_per_class_thresholds_that_evaluate_applies(tmp_path, mix_root, capsys):
    out = run_on_mix("train", tmp_path / "run", mix_root, "1,2", [*CV_SETS, "--set", "train.val_fraction=0.25"])
    checkpoint = torch_load_checkpoint(out / "model.ckpt")
    thresholds = checkpoint.task.class_thresholds
    assert thresholds is not None and len(thresholds) == len(checkpoint.labels)
    assert all(0 < t < 1 for t in thresholds)
    capsys.readouterr()
    assert main(["evaluate", "--quiet", str(out / "model.ckpt"), "--dataset", "fsdkaggle2019", "--root",
                 str(mix_root), "--folds", "3", "--json", "--no-cache"]) == 0
    assert json.loads(capsys.readouterr().out)["threshold"] == pytest.approx(list(thresholds))


def test_a_single_label_model_refuses_multi_label_metrics_and_the_reverse(cv_run, mix_root, trained_run,
                                                                           synthetic_root, capsys):
    capsys.readouterr()
    assert main(["evaluate", "--quiet", str(trained_run.checkpoint), "--dataset", "fsdkaggle2019", "--root",
                 str(mix_root), "--folds", "1", "--no-cache"]) == 1
    err = capsys.readouterr().err.strip()
    assert "single-label" in err and "multi-label" in err and len(err.splitlines()) == 1
    assert main(["evaluate", "--quiet", str(cv_run / "fold_1" / "model.ckpt"), "--dataset", "synthetic", "--root",
                 str(synthetic_root), "--folds", "5", "--no-cache"]) == 1
    assert "is single-label" in capsys.readouterr().err


def test_mix_with_more_events_than_a_fold_has_classes(tmp_path, synthetic_root, capsys):
    capsys.readouterr()
    code = main(["mix", "--quiet", "--dataset", "synthetic", "--root", str(synthetic_root), "--folds", "1",
                 "--classes", "siren,rain", "--max-events", "3", "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert code == 1 and "2 classes" in err and "3" in err
    assert not (tmp_path / "m" / "mix.json").exists()


def test_threshold_out_of_range_is_a_clear_error(cv_run, mix_root, capsys):
    clip = sorted((mix_root / "train_curated").glob("*.wav"))[0]
    capsys.readouterr()
    assert main(["predict", "--quiet", str(cv_run / "fold_1" / "model.ckpt"), str(clip), "--threshold", "1.5"]) == 1
    assert "--threshold=1.5" in capsys.readouterr().err


def test_iterative_folds_are_made_when_the_set_has_none(tmp_path, mix_root):
    """A copy of the mixture set without its fold column gets folds by iterative stratification over label sets."""
    from envsound.data.registry import load_dataset

    for name in ("train_curated.csv", "train_noisy.csv"):
        with open(mix_root / name, newline="") as f:
            rows = [{"fname": r["fname"], "labels": r["labels"]} for r in csv.DictReader(f)]
        with open(tmp_path / name, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["fname", "labels"])
            writer.writeheader()
            writer.writerows(rows)
        (tmp_path / name.removesuffix(".csv")).symlink_to(mix_root / name.removesuffix(".csv"))
    manifest = load_dataset("fsdkaggle2019", tmp_path, n_folds=3)
    assert manifest.multi_label and sorted(manifest.folds) == [1, 2, 3]
    sizes = np.bincount([r.fold for r in manifest.records])[1:]
    assert sizes.min() >= 10, sizes


def test_curated_and_noisy_clips_train_together_with_a_robust_loss(tmp_path, mix_root, capsys):
    out = tmp_path / "noisy"
    capsys.readouterr()
    assert main(["train", "--quiet", "--dataset", "fsdkaggle2019", "--root", str(mix_root), "--subset", "all",
                 "--folds", "1,2", "--out", str(out), "--no-cache", *CV_SETS, "--set", "noisy.noisy_loss=lsoft",
                 "--set", "noisy.noisy_share=0.5", "--set", "noisy.epoch_clips=32"]) == 0
    assert "trained cnn on 72 clips" in capsys.readouterr().out  # 24 curated + 12 noisy a fold
    checkpoint = torch_load_checkpoint(out / "model.ckpt")
    assert checkpoint.config.noisy.noisy_loss == "lsoft" and checkpoint.task.multi_label
    assert main(["train", "--quiet", "--dataset", "fsdkaggle2019", "--root", str(mix_root), "--folds", "1,2",
                 "--out", str(tmp_path / "x"), "--no-cache", *CV_SETS, "--set", "noisy.noisy_share=0.5"]) == 1
    assert "all of one origin" in capsys.readouterr().err


def test_stages_run_leave_one_fold_out_and_resume_stage_by_stage(tmp_path, mix_root, capsys):
    out = tmp_path / "stages"
    args = ["stages", "--quiet", "--dataset", "fsdkaggle2019", "--root", str(mix_root), "--folds", "1,2",
            "--out", str(out), "--cache-dir", str(tmp_path / "cache"), *CV_SETS,
            "--set", "stages.warmup_epochs=1", "--set", "stages.finetune_epochs=1", "--set", "stages.final_epochs=1",
            "--set", "stages.keep_threshold=0.1"]
    capsys.readouterr()
    assert main(args) == 0
    summary = json.loads((out / "stages.json").read_text())
    assert [s["name"] for s in summary["stages"]] == ["baseline", "naive", "warmup", "finetune", "final"]
    assert all(len(s["folds"]) == 2 and 0 < s["lwlrap"] <= 1 for s in summary["stages"])
    assert summary["budget_epochs"] == 3
    baseline = torch_load_meta(out / "fold_1" / "baseline" / "model.ckpt")
    assert baseline["epochs"] == 3 and baseline["n_train_clips"] == 24  # curated clips of fold 2, same budget
    assert torch_load_meta(out / "fold_1" / "naive" / "model.ckpt")["n_train_clips"] == 36  # + the 12 noisy
    for row in summary["filter"]:  # the truth of envsound mix output scores the filter
        assert row["noisy"] == 12 and 0 <= row["kept"] <= 12
        assert row["label_precision"] is None if row["kept"] == 0 else 0 <= row["label_precision"] <= 1
    finetune = torch_load_meta(out / "fold_2" / "finetune" / "model.ckpt")
    assert finetune["transfer"]["mode"] == "full" and "warmup" in finetune["transfer"]["source"]
    first = (out / "fold_1" / "final" / "model.ckpt").stat().st_mtime_ns
    assert main(args + ["--resume"]) == 0  # every stage is finished: reused, not retrained
    assert (out / "fold_1" / "final" / "model.ckpt").stat().st_mtime_ns == first
    assert "stage 2: curated + kept noisy" in capsys.readouterr().out


def test_stages_warm_up_on_every_clip_and_hold_out_chosen_folds(tmp_path, mix_root):
    from envsound.config.files import bare_config
    from envsound.data.registry import load_dataset
    from envsound.errors import DatasetLayoutError
    from envsound.recipes.stages import run_stages
    from envsound.recipes.context import RunContext

    manifest = load_dataset("fsdkaggle2019", mix_root, subset="all").select_folds([1, 2])
    config = bare_config(overrides=[*TINY_OVERRIDES, *WINDOWS, "stages.warmup_on=all", "noisy.noisy_loss=lsoft",
                                    "stages.warmup_epochs=1", "stages.finetune_epochs=1", "stages.final_epochs=0",
                                    "stages.tune_lr_scale=0.5"])
    summary = run_stages(manifest, config, test_folds=[2], out_dir=tmp_path, context=RunContext(progress=False))
    assert summary["folds"] == [2] and not (tmp_path / "fold_1").exists()
    assert [s["name"] for s in summary["stages"]] == ["baseline", "naive", "warmup", "finetune"]
    warmup = torch_load_meta(tmp_path / "fold_2" / "warmup" / "model.ckpt")
    assert warmup["n_train_clips"] == 36  # the 24 curated and 12 noisy clips of fold 1, not the noisy ones alone
    finetune = torch_load_checkpoint(tmp_path / "fold_2" / "finetune" / "model.ckpt").config
    assert finetune.train.lr == pytest.approx(config.train.lr * 0.5)  # it starts from a trained model
    with pytest.raises(DatasetLayoutError, match="test folds"):
        run_stages(manifest, config, test_folds=[3], out_dir=tmp_path / "x", context=RunContext(progress=False))


def torch_load_checkpoint(path):
    from envsound.models.checkpoint import load_checkpoint  # imports torch: only in the tests that need it

    return load_checkpoint(path)


def torch_load_meta(path):
    return torch_load_checkpoint(path).meta


@pytest.mark.parametrize("method", ["fixmatch", "mean_teacher"])
def test_semi_supervised_methods_train_on_a_multi_label_set(tmp_path, mix_root, method, capsys):
    out = tmp_path / method
    capsys.readouterr()
    assert main(["train", "--quiet", "--dataset", "fsdkaggle2019", "--root", str(mix_root), "--folds", "1,2",
                 "--out", str(out), "--no-cache", *CV_SETS, "--label-fraction", "0.5", "--semi", method]) == 0
    assert "unlabelled" in capsys.readouterr().out
    metrics = (out / "logs" / "metrics.csv").read_text()
    assert "unsup_loss" in metrics and (method != "fixmatch" or "mask_rate" in metrics)
