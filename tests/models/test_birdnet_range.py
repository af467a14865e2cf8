"""BirdNET's species-range model (envsound.models.birdnet_range): the real file in ../shared/pretrained/birdnet when
it is there (a European place keeps the European Robin and drops American birds), and on a fresh clone a tiny
(1, 3) -> (1, n) network of tests/tinytflite.py whose occurrence probabilities numpy recomputes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")
pytest.importorskip("flatbuffers")

from tinytflite import range_reference, tiny_range_weights, write_tiny, write_tiny_range  # noqa: E402

from envsound.errors import CheckpointError, ConfigError  # noqa: E402
from envsound.models.birdnet_range import (RANGE_FILE, RangeModel, check_place, range_classes,  # noqa: E402
                                           species_at)

BIRDNET = Path(__file__).resolve().parents[2].parent / "shared" / "pretrained" / "birdnet"
LABELS = "BirdNET_GLOBAL_6K_V2.4_Labels.txt"
ROBIN, AMERICAN_ROBIN = "Erithacus rubecula_European Robin", "Turdus migratorius_American Robin"


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    """A folder as 'envsound download birdnet-v2.4' leaves it: a tiny range model and 6,522 labels."""
    folder = tmp_path_factory.mktemp("birdnet")
    write_tiny_range(folder / RANGE_FILE, *tiny_range_weights())
    (folder / LABELS).write_text("".join(f"Genus species{i}_Common {i}\n" for i in range(6522)))
    return folder


def test_the_real_range_model_keeps_the_european_robin_in_belgium_in_may_and_drops_american_birds():
    if not (BIRDNET / RANGE_FILE).is_file():
        pytest.skip(f"{BIRDNET / RANGE_FILE} not found (../shared is beside the clone only on the project's machines)")
    labels = (BIRDNET / LABELS).read_text().splitlines()
    kept = range_classes(labels, 50.8, 4.4, 20, near=BIRDNET / RANGE_FILE)
    assert ROBIN in kept and AMERICAN_ROBIN not in kept and "Cardinalis cardinalis_Northern Cardinal" not in kept
    assert kept == [name for name in labels if name in set(kept)]  # the labels' order
    assert 50 < len(kept) < 500  # a local list, not BirdNET's 6,522 classes
    in_new_york = range_classes(labels, 40.7, -74.0, 20, near=BIRDNET / RANGE_FILE)
    assert AMERICAN_ROBIN in in_new_york and ROBIN not in in_new_york
    probs = RangeModel.open(BIRDNET / RANGE_FILE).probabilities(50.8, 4.4, 20)
    assert probs.shape == (6522,) and probs[labels.index(ROBIN)] > 0.5
    assert len(range_classes(labels, 50.8, 4.4, -1, near=BIRDNET / RANGE_FILE)) > len(kept)  # the whole year


def test_a_tiny_range_model_keeps_the_classes_at_or_above_the_threshold_as_numpy_computes_them(tiny_folder):
    weights, bias = tiny_range_weights()
    labels = (tiny_folder / LABELS).read_text().splitlines()
    near = tiny_folder / RANGE_FILE
    for place, threshold in [((50.0, 4.0, 20), 0.03), ((-50.0, 4.0, 1), 0.03), ((50.0, 4.0, 20), 0.5),
                             ((10.0, 4.0, -1), 0.51)]:
        expected = [labels[k] for k in np.nonzero(range_reference(weights, bias, place) >= threshold)[0]]
        assert range_classes(labels, *place, threshold=threshold, near=near) == expected
    north = range_classes(labels, 50.0, 4.0, 20, near=near)
    assert "Genus species1_Common 1" in north and "Genus species3_Common 3" not in north  # class 1 sings in week 20
    assert "Genus species1_Common 1" not in range_classes(labels, 50.0, 4.0, 1, near=near)


def test_species_at_reads_the_installed_range_model_and_labels(tiny_folder, monkeypatch):
    monkeypatch.setenv("ENVSOUND_MODELS", str(tiny_folder.parent))
    (tiny_folder.parent / "birdnet-v2.4").mkdir(exist_ok=True)
    for name in (RANGE_FILE, LABELS):
        (tiny_folder.parent / "birdnet-v2.4" / name).write_bytes((tiny_folder / name).read_bytes())
    assert species_at(50.0, 4.0) == [f"Genus species{i}_Common {i}" for i in range(0, 6522, 2)]


def test_a_model_whose_labels_are_not_birdnets_is_refused_in_one_line(tiny_folder):
    with pytest.raises(ConfigError, match=r"this model's class 'dog' is not one of them \(use --species-list FILE\)"):
        range_classes(["Genus species0_Common 0", "dog"], 50.0, 4.0, near=tiny_folder / RANGE_FILE)


def test_without_the_range_model_the_message_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setenv("ENVSOUND_MODELS", str(tmp_path))
    with pytest.raises(ConfigError) as caught:
        species_at(50.0, 4.0)
    assert str(caught.value) == (f"--lat/--lon need birdnet-v2.4's species-range model {RANGE_FILE}: 'envsound "
                                 "download birdnet-v2.4 --from FOLDER' with it in FOLDER (or 'envsound download "
                                 "birdnet-v2.4')")


def test_a_network_of_another_shape_is_not_a_range_model(tmp_path):
    path = write_tiny("yamnet", tmp_path / "yamnet.tflite")
    with pytest.raises(CheckpointError, match="not birdnet-v2.4's species-range model"):
        RangeModel.open(path)


@pytest.mark.parametrize("place, message", [
    ((90.5, 0.0, 20), "--lat 90.5: a latitude is in degrees from -90 to 90"),
    ((0.0, -181.0, 20), "--lon -181: a longitude is in degrees from -180 to 180"),
    ((0.0, 0.0, 0), "--week 0: a week is 1-48 (BirdNET's four a month), or -1 for the whole year"),
    ((0.0, 0.0, 49), "--week 49: a week is 1-48"),
])
def test_a_place_or_week_out_of_range_is_refused(place, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_place(*place)
    check_place(90.0, -180.0, 48)
    check_place(-90.0, 180.0, -1)
