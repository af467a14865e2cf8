"""The litert family: BirdNET V2.4 and YAMNet run by LiteRT, against the reference outputs in ../shared/pretrained
(skipped when it is absent), recognised by structure, and what a bad file says."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from envsound.errors import CheckpointError, ConfigError
from envsound.models.families import by_download_name, installed_names
from envsound.models.frozen import FROZEN, is_tflite, official_or_not, read_frozen_labels

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "pretrained"
BIRDNET = SHARED / "birdnet" / "BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite"
YAMNET = SHARED / "yamnet" / "yamnet.tflite"


def _open(path: Path):
    pytest.importorskip("ai_edge_litert")
    if not path.is_file():
        pytest.skip(f"{path} not found (../shared/pretrained is beside the clone only on the project's machines)")
    from envsound.models.litert import LiteRTNetwork

    return LiteRTNetwork.open(path, threads=1)


@pytest.fixture(scope="module")
def birdnet():
    return _open(BIRDNET)


@pytest.fixture(scope="module")
def yamnet():
    return _open(YAMNET)


def test_the_members_are_names_everywhere_a_model_name_goes():
    assert {"birdnet-v2.4", "yamnet"} <= set(installed_names())
    assert by_download_name("birdnet-v2.4") is FROZEN["birdnet-v2.4"]
    assert by_download_name("yamnet") is FROZEN["yamnet"]
    birdnet, yamnet = FROZEN["birdnet-v2.4"], FROZEN["yamnet"]
    assert (birdnet.licence, birdnet.bundled, birdnet.sample_rate, birdnet.hop_seconds) == ("CC BY-NC-SA 4.0", False,
                                                                                           48_000, 3.0)
    assert (yamnet.licence, yamnet.sample_rate, yamnet.window_seconds, yamnet.n_classes) == ("Apache-2.0", 16_000,
                                                                                            0.975, 521)
    assert birdnet.embedding_width == yamnet.embedding_width == 1024


def test_birdnet_matches_its_reference_logits_and_embedding(birdnet):
    """All 8 clips' first 3 s (the stored waveforms, fed as they are) within 1e-4; the dog's best class is Dog_Dog."""
    reference = np.load(SHARED / "birdnet" / "reference-birdnet.npz")
    n = len(reference["names"])
    logits, embedding = birdnet.run(np.stack([reference[f"waveform_{i}"] for i in range(n)]))
    for i in range(n):
        np.testing.assert_allclose(logits[i], reference[f"logits_{i}"], atol=1e-4)
        np.testing.assert_allclose(embedding[i], reference[f"embedding_{i}"], atol=1e-4)
    labels = read_frozen_labels(birdnet.release, BIRDNET.parent / "BirdNET_GLOBAL_6K_V2.4_Labels.txt")
    dog = list(reference["names"]).index("1-100032-A-0.flac")
    probs, _ = birdnet.scores(reference[f"waveform_{dog}"][None])
    assert labels[int(probs[0].argmax())] == "Dog_Dog" and probs[0].max() == pytest.approx(0.54, abs=0.01)


def test_yamnet_matches_its_reference_scores_and_embedding(yamnet):
    """All 8 clips' first 0.975 s within 1e-4."""
    reference = np.load(SHARED / "yamnet" / "reference-yamnet.npz")
    n = len(reference["names"])
    scores, embedding = yamnet.run(np.stack([reference[f"waveform_{i}"] for i in range(n)]))
    for i in range(n):
        np.testing.assert_allclose(scores[i], reference[f"scores_{i}"], atol=1e-4)
        np.testing.assert_allclose(embedding[i], reference[f"embedding_{i}"], atol=1e-4)


def test_windows_of_the_wrong_length_name_the_file(yamnet):
    with pytest.raises(ConfigError, match=r"yamnet.tflite: windows of shape \(2, 100\); yamnet takes \(n, 15600\)"):
        yamnet.run(np.zeros((2, 100), np.float32))


def test_a_tflite_of_another_network_is_refused_by_structure(tmp_path):
    pytest.importorskip("ai_edge_litert")
    meta = SHARED / "birdnet" / "BirdNET_GLOBAL_6K_V2.4_MData_Model_V2_FP16.tflite"
    if not meta.is_file():
        pytest.skip(f"{meta} not found")
    from envsound.models.litert import LiteRTNetwork

    with pytest.raises(CheckpointError, match="a TFLite network that is none of birdnet-v2.4, yamnet"):
        LiteRTNetwork.open(meta)


def test_a_file_that_is_not_tflite_is_told_apart_by_its_first_bytes(tmp_path):
    text = tmp_path / "model.tflite"
    text.write_text("not a network")
    assert not is_tflite(text)


def test_which_file_a_user_has():
    birdnet = FROZEN["birdnet-v2.4"]
    assert official_or_not(birdnet, birdnet.sha256) == "the distributed file"
    said = official_or_not(FROZEN["yamnet"], "469be6a3" + "0" * 56, quantized=True)
    assert said.startswith("a re-export with quantized weights, recognised by its structure")


def test_a_label_file_with_the_wrong_count_is_refused(tmp_path):
    labels = tmp_path / "yamnet_class_map.csv"
    labels.write_text("index,mid,display_name\n0,/m/09x0r,Speech\n")
    with pytest.raises(CheckpointError, match=r"yamnet_class_map.csv: expected 521 class names for yamnet, found 1"):
        read_frozen_labels(FROZEN["yamnet"], labels)
