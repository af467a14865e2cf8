"""The scikit-learn baselines: accuracy on a separable toy set, all-class probabilities, safe round-trip."""

from __future__ import annotations

import numpy as np
import pytest
import skops.io as sio

from envsound.errors import CheckpointError, ConfigError, EnvsoundError
from envsound.models.baselines import KNNBaseline, RandomForestBaseline


class Intruder:
    """A type no loader should trust."""

    def __init__(self) -> None:
        self.payload = "x"


def _toy(n_per_class: int = 30, n_classes: int = 4, dim: int = 12, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(n_classes, dim))
    y = np.repeat(np.arange(n_classes), n_per_class)
    X = centres[y] + rng.normal(size=(len(y), dim))
    X[:, 0] *= 1000.0  # wildly different feature scales: the scaler must cope
    return X, y


@pytest.mark.parametrize("cls", [KNNBaseline, RandomForestBaseline])
def test_separable_toy_set_and_round_trip(cls):
    X, y = _toy()
    Xt, yt = _toy(seed=0)[0][::3] + np.random.default_rng(1).normal(scale=0.3, size=(40, 12)), _toy()[1][::3]
    model = cls(n_classes=4).fit(X, y)
    proba = model.predict_proba(Xt)
    assert proba.shape == (40, 4) and proba.dtype == np.float32
    assert np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert (proba.argmax(axis=1) == yt).mean() > 0.9
    loaded = cls.from_bytes(model.to_bytes(), n_classes=4)
    assert type(loaded) is cls
    np.testing.assert_array_equal(loaded.predict_proba(Xt), proba)


@pytest.mark.parametrize("cls", [KNNBaseline, RandomForestBaseline])
def test_probabilities_cover_classes_absent_from_training(cls):
    X, y = _toy(n_classes=3)
    y = np.where(y == 1, 4, y)  # labels {0, 2, 4} of 6 classes
    proba = cls(n_classes=6).fit(X, y).predict_proba(X)
    assert proba.shape == (len(X), 6)
    assert np.all(proba[:, [1, 3, 5]] == 0)
    assert (proba.argmax(axis=1) == y).mean() > 0.9


def test_knn_with_fewer_rows_than_k():
    X, y = _toy(n_per_class=1, n_classes=3)
    assert KNNBaseline(n_classes=3).fit(X, y).predict_proba(X).shape == (3, 3)


@pytest.mark.parametrize("key", ["filters", "dropout"])
def test_model_settings_are_rejected(key):
    with pytest.raises(ConfigError, match=f"model.{key}"):
        KNNBaseline(n_classes=3, **{key: 1})


def test_bad_inputs_raise_envsound_errors():
    model = KNNBaseline(n_classes=3)
    X, y = _toy(n_classes=3)
    with pytest.raises(EnvsoundError, match="before fit"):
        model.predict_proba(X)
    with pytest.raises(EnvsoundError, match="outside 0..2"):
        model.fit(X, y + 1)
    with pytest.raises(EnvsoundError, match="NaN"):
        model.fit(np.where(X > 0, np.nan, X), y)
    with pytest.raises(EnvsoundError, match="not \\(n_clips, n_features\\)"):
        model.fit(X[:, :, None], y)
    model.fit(X, y)
    with pytest.raises(EnvsoundError, match="12"):
        model.predict_proba(X[:, :5])


def test_from_bytes_checks_model_and_classes_and_rejects_untrusted_content():
    X, y = _toy(n_classes=3)
    data = KNNBaseline(n_classes=3).fit(X, y).to_bytes()
    with pytest.raises(CheckpointError, match="3 classes"):
        KNNBaseline.from_bytes(data, n_classes=5)
    with pytest.raises(CheckpointError, match="'knn'"):
        RandomForestBaseline.from_bytes(data, n_classes=3)
    with pytest.raises(CheckpointError):
        KNNBaseline.from_bytes(b"not a zip", n_classes=3)
    # a dump holding a type outside the trusted list must not load
    evil = sio.dumps({"format": "envsound-sklearn-baseline-1", "model": "knn", "n_classes": 3,
                      "estimator": Intruder()})
    with pytest.raises(CheckpointError, match="loadable"):
        KNNBaseline.from_bytes(evil, n_classes=3)
