"""The command line on real files: in-process through ``main`` (the ``envsound_main`` fixture), and the console
entry point itself as a subprocess where that is what is tested (exit status of a batch, a closed pipe)."""

import json
import subprocess
import sys

import pytest

from conftest import TINY_OVERRIDES


def envsound(*args):
    return subprocess.run([sys.executable, "-m", "envsound.cli.main", *map(str, args)], capture_output=True,
                          text=True, timeout=600)


def test_predict_json_goes_on_past_bad_files(tmp_path, trained_run, synthetic_manifest):
    good = synthetic_manifest.records[0].path
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00")
    run = envsound("predict", trained_run.checkpoint, good, bad, "--json", "--top-k", "2")
    assert run.returncode == 1
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert [line["file"] for line in lines] == [str(good), str(bad)]
    assert lines[0]["error"] is None and len(lines[0]["top"]) == 2
    assert set(lines[0]["top"][0]) == {"label", "score"}
    assert "bad.wav" in lines[1]["error"] and lines[1]["top"] == []
    assert "Traceback" not in run.stderr


def test_predict_segments_text(trained_run, synthetic_manifest, envsound_main):
    run = envsound_main("predict", trained_run.checkpoint, synthetic_manifest.records[0].path, "--segments")
    assert run.returncode == 0, run.stderr
    assert " s  " in run.stdout


def test_evaluate_json(trained_run, synthetic_root, synthetic_manifest, envsound_main):
    from envsound.evaluation.evaluate import evaluate_model
    from envsound.models.checkpoint import load_checkpoint
    from envsound.models.clip import ClipModel

    run = envsound_main("evaluate", trained_run.checkpoint, "--dataset", "synthetic", "--root", synthetic_root,
                        "--folds", "5", "--json", "--no-cache")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    model = ClipModel.from_checkpoint(load_checkpoint(trained_run.checkpoint))
    expected = evaluate_model(model, synthetic_manifest.select_folds([5]), progress=False).report
    assert len(report["per_class"]) == 10 and report["n_clips"] == expected["n_clips"] == 20
    assert report["accuracy"] == pytest.approx(expected["accuracy"]) and report["accuracy"] > 0.3  # chance: 0.1


def test_train_then_cv_from_the_command_line(tmp_path, synthetic_root, envsound_main):
    sets = [arg for o in TINY_OVERRIDES + ("train.max_epochs=1",) for arg in ("--set", o)]
    run = envsound_main("train", "--dataset", "synthetic", "--root", synthetic_root, "--folds", "1,2",
                        "--out", tmp_path / "t", "--cache-dir", tmp_path / "cache", *sets)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "t" / "model.ckpt").exists() and (tmp_path / "t" / "curves.png").exists()
    again = envsound_main("train", "--dataset", "synthetic", "--root", synthetic_root, "--folds", "1,2",
                          "--out", tmp_path / "t", *sets)
    assert again.returncode == 1 and "already exists; pass --overwrite to replace it" in again.stderr
    run = envsound_main("cv", "--dataset", "synthetic", "--root", synthetic_root, "--folds", "1,2", "--model", "knn",
                        "--out", tmp_path / "cv", "--cache-dir", tmp_path / "cache")
    assert run.returncode == 0, run.stderr
    summary = json.loads((tmp_path / "cv" / "cv.json").read_text())
    assert {"folds", "mean_accuracy", "std_accuracy"} <= set(summary)
    assert "mean accuracy" in run.stdout


@pytest.mark.parametrize("args, fragment", [
    (("train", "--dataset", "nosuchset", "--root", ".", "--out", "x"), "nosuchset"),
    (("cv", "--dataset", "esc50", "--root", "/no/such/dir", "--out", "x"), "/no/such/dir"),
    (("train", "--dataset", "synthetic", "--root", ".", "--out", "x", "--set", "train.lr=-1"), "train.lr"),
    (("train", "--dataset", "synthetic", "--root", ".", "--out", "x", "--model", "resnet9000"), "resnet9000"),
])
def test_user_errors_are_one_line(tmp_path, monkeypatch, args, fragment, envsound_main):
    monkeypatch.chdir(tmp_path)
    run = envsound_main(*args)
    assert run.returncode == 1
    assert "Traceback" not in run.stderr and fragment in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr


def test_checkpoint_that_is_not_one(tmp_path, envsound_main):
    fake = tmp_path / "model.ckpt"
    fake.write_text("hello")
    run = envsound_main("predict", fake, fake)
    assert run.returncode == 1 and "model.ckpt: not a model file (a text file" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("command", ["train", "cv", "evaluate", "predict", "download", "demo", "config"])
def test_every_command_has_help_with_defaults(command, envsound_main):
    run = envsound_main(command, "--help")
    assert run.returncode == 0 and "usage: envsound " + command in run.stdout


def test_config_lists_resolved_keys(envsound_main):
    run = envsound_main("config", "--model", "dtu", "--set", "train.lr=0.01")
    assert run.returncode == 0, run.stderr
    assert "name: dtu" in run.stdout and "lr: 0.01" in run.stdout


def test_bad_clip_in_dataset_stops_by_default_and_is_skipped_on_request(tmp_path, synthetic_root, envsound_main):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(synthetic_root, root)
    broken = sorted((root / "audio").glob("*.wav"))[3]
    broken.write_bytes(broken.read_bytes()[:60])  # header survives, data is cut off
    common = ["--dataset", "synthetic", "--root", root, "--folds", "1,2", "--model", "knn", "--no-cache"]
    run = envsound_main("train", *common, "--out", tmp_path / "a")
    assert run.returncode == 1 and broken.name in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and not (tmp_path / "a" / "model.ckpt").exists()
    run = envsound_main("train", *common, "--out", tmp_path / "b", "--skip-bad")
    assert run.returncode == 1, "a run that left files out must say so in its exit status"
    assert f"skipped {broken}" in run.stderr and (tmp_path / "b" / "model.ckpt").exists()


def test_predict_batch_of_every_bad_input_and_every_odd_format(tmp_path, trained_run, envsound_main):
    """The issue's bad-input list in one batch: each bad file gets its own one-line error, every odd format works."""
    import audiofactory as af

    good = {
        "8k.wav": dict(sample_rate=8000), "96k.wav": dict(sample_rate=96000),
        "u8.wav": dict(subtype="PCM_U8"), "pcm24.wav": dict(subtype="PCM_24"), "float.wav": dict(subtype="FLOAT"),
        "stereo.wav": dict(channels=2), "six.wav": dict(channels=6), "clip.flac": dict(), "clip.ogg": dict(),
    }
    for name, options in good.items():
        af.write_noise(tmp_path / "good" / name, seconds=1.5, **options)
    bad = tmp_path / "bad"
    af.write_not_audio(bad / "text.wav")
    af.write_zero_bytes(bad / "zero.wav")
    af.write_truncated_wav(bad / "cut.wav")
    af.write_lying_header_wav(bad / "liar.wav")
    af.write_nonfinite_float_wav(bad / "nan.wav")
    af.write_nonfinite_float_wav(bad / "inf.wav", value=float("inf"))
    af.write_noise(bad / "tiny.wav", seconds=0.05)
    af.write_silence(bad / "zeros.wav")
    run = envsound_main("predict", trained_run.checkpoint, tmp_path / "good", bad, bad / "missing.wav", "--json")
    assert run.returncode == 1
    results = {json.loads(line)["file"].split("/")[-1]: json.loads(line) for line in run.stdout.splitlines()}
    for name in good:
        assert results[name]["error"] is None, (name, results[name]["error"])
    for name in ("text.wav", "zero.wav", "cut.wav", "liar.wav", "nan.wav", "inf.wav", "tiny.wav", "zeros.wav",
                 "missing.wav"):
        error = results[name]["error"]
        assert error and name in error and "\n" not in error, (name, error)
    assert "Traceback" not in run.stderr


def test_predict_into_a_closed_pipe_stops_quietly(trained_run, synthetic_root):
    """Regression: `envsound predict ... | head -1` printed a BrokenPipeError traceback."""
    command = (f"{sys.executable} -m envsound.cli.main predict {trained_run.checkpoint} {synthetic_root} --top-k 1 "
               "| head -1")
    done = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=120)
    assert done.stdout.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
