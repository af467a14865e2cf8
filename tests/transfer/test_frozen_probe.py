"""The frozen-embedding probe and a frozen network's logits, on the tiny TFLite nets of tests/tinytflite.py (whose
embedding is the mean of a window's 1,024-sample blocks, recomputed here in numpy): the probe is the regression on the
network's embeddings, standardised inside the training clips and folded into the head; YAMNet's scores read back as
logits; what a frozen trunk cannot do refused before any audio is read. One test runs the real YAMNet (skipped
without ../shared)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")
pytest.importorskip("flatbuffers")

from tinytflite import index, reference, write_tiny  # noqa: E402 (after the skips)

SHARED = Path(__file__).resolve().parents[2].parent / "shared"


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    root = tmp_path_factory.mktemp("nets")
    return {name: write_tiny(name, root / f"{name}.tflite") for name in ("yamnet", "birdnet-v2.4")}


def test_the_linear_head_reads_raw_embeddings_as_the_regression_reads_standardised_ones():
    from sklearn.linear_model import LogisticRegression

    from envsound.transfer.linear_head import fit_linear_head

    rng = np.random.default_rng(0)
    x = rng.normal(3.0, [0.5, 2.0, 10.0, 1.0], size=(60, 4))
    labels = (x[:, 0] + 0.2 * x[:, 2] > 5).astype(int) + (x[:, 1] > 3)
    weight, bias = fit_linear_head(x, np.eye(3)[labels], multi_label=False, c=1.0)
    z = (x - x.mean(axis=0)) / x.std(axis=0)
    expected = LogisticRegression(C=1.0, max_iter=2000).fit(z, labels).decision_function(z)
    np.testing.assert_allclose(x @ weight.T + bias, expected, atol=1e-6)


def test_the_frozen_probe_is_the_regression_on_the_networks_embeddings(nets):
    from envsound.config.files import bare_config
    from envsound.features.windows import eval_windows
    from envsound.models.frozen import FROZEN
    from envsound.models.litert import frozen_config
    from envsound.task import Task
    from envsound.transfer.frozen_probe import fit_frozen_probe, plan_frozen
    from envsound.transfer.linear_head import fit_linear_head

    config = bare_config(preset={k: v for k, v in frozen_config(FROZEN["yamnet"]).to_dict().items()
                                 if k in ("features", "model")})
    rng = np.random.default_rng(1)
    clips = [(level + rng.normal(0, 0.3, 20_000)).astype(np.float32)[None] for level in (0.1, -0.1, 0.1, -0.1)]
    targets = np.eye(2)[[0, 1, 0, 1]]
    plan = plan_frozen("yamnet", nets["yamnet"], config, ["a", "b"])
    weight, bias = fit_frozen_probe(plan, config, clips, targets, task=Task())
    windows = [eval_windows(clip, config.features)[0][:, 0] for clip in clips]
    embeddings = np.concatenate([reference("yamnet", w)[1] for w in windows])
    owners = np.repeat(np.arange(4), [len(w) for w in windows])
    want_weight, want_bias = fit_linear_head(embeddings, targets[owners], multi_label=False, c=1.0)
    np.testing.assert_allclose(weight, want_weight, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(bias, want_bias, rtol=1e-3, atol=1e-3)


def test_yamnet_scores_read_back_as_the_logits_they_are_the_sigmoid_of(nets):
    from envsound.transfer.frozen_windows import frozen_network, output_logits, window_outputs

    windows = np.random.default_rng(2).uniform(-0.5, 0.5, (3, 15_600)).astype(np.float32)
    network = frozen_network(nets["yamnet"])
    outputs, embeddings = window_outputs(network, windows)
    assert window_outputs(network, windows)[0] is outputs  # the same windows again: computed once
    _, embedding = reference("yamnet", windows)
    np.testing.assert_allclose(output_logits(network, outputs), embedding[:, index(521)], atol=1e-4)
    birdnet = frozen_network(nets["birdnet-v2.4"])
    long = np.random.default_rng(3).uniform(-0.5, 0.5, (1, 144_000)).astype(np.float32)
    logits, _ = reference("birdnet-v2.4", long)
    np.testing.assert_allclose(output_logits(birdnet, window_outputs(birdnet, long)[0]), logits, atol=1e-5)


@pytest.mark.parametrize("override, message", [
    ("transfer.mode=probe_full", "transfer.mode=probe_full: its trunk cannot be trained"),
    ("transfer.mode=gradual", "transfer.mode=gradual: its trunk cannot be trained"),
    ("features.window_seconds=1.0", "features.window_seconds=1.0: the network takes 0.975; drop the override"),
    ("events.tune=true", "events.tune chooses a frame model's decoding"),
])
def test_plan_frozen_refuses_what_a_frozen_trunk_cannot_do(nets, override, message):
    from envsound.config.files import bare_config
    from envsound.errors import ConfigError
    from envsound.models.frozen import FROZEN
    from envsound.models.litert import frozen_config
    from envsound.transfer.frozen_probe import plan_frozen

    sections = {k: v for k, v in frozen_config(FROZEN["yamnet"]).to_dict().items() if k in ("features", "model")}
    config = bare_config(preset=sections, overrides=[override])
    with pytest.raises(ConfigError, match="^--init yamnet \\(a frozen network run by LiteRT\\): ") as caught:
        plan_frozen("yamnet", nets["yamnet"], config, ["a", "b"])
    assert message in str(caught.value)


def test_a_zero_shot_map_leaving_a_class_without_a_source_is_refused(tmp_path):
    from envsound.errors import ConfigError
    from envsound.transfer.zero_shot import mapped_rows

    (tmp_path / "map.csv").write_text("Dog_Dog,dog\n")
    with pytest.raises(ConfigError, match="no source class for 'rooster'; zero-shot needs one for every class"):
        mapped_rows(tmp_path / "map.csv", ["Dog_Dog", "Gallus gallus_Red Junglefowl"], ["dog", "rooster"])
    (tmp_path / "map.csv").write_text("Dog_Dog,dog\nGallus gallus_Red Junglefowl,rooster\nDog_Dog2,cat\n")
    with pytest.raises(ConfigError, match="'Dog_Dog2' is not a class of the model; closest: 'Dog_Dog'"):
        mapped_rows(tmp_path / "map.csv", ["Dog_Dog", "Gallus gallus_Red Junglefowl"], ["dog", "rooster"])


def test_the_probe_on_real_yamnet_tells_three_esc10_classes_apart(envsound_main, esc50_root, tmp_path, monkeypatch):
    yamnet = SHARED / "pretrained" / "yamnet"
    if not yamnet.exists():
        pytest.skip(f"{yamnet} not found (../shared is beside the clone only on the project's machines)")
    from envsound.transfer.install_frozen import install_frozen

    monkeypatch.setenv("ENVSOUND_MODELS", str(tmp_path / "models"))
    install_frozen("yamnet", source=yamnet, progress=False)
    ran = envsound_main("cv", "--dataset", "esc10", "--root", esc50_root, "--folds", "1,2", "--classes",
                        "dog,rooster,chainsaw", "--init", "yamnet", "--out", tmp_path / "cv", "--no-cache")
    assert ran.returncode == 0, ran.stderr
    summary = json.loads((tmp_path / "cv" / "cv.json").read_text())
    assert summary["mean_accuracy"] >= 0.85  # chance 0.33; 0.9375 (0.958 / 0.917) on 2026-11-29
