"""Classical baselines on MFCC summary statistics (Piczak's ESC-50 baselines): ``knn`` and ``random_forest``.

Input is a feature matrix ``X (n_clips, n_features)`` (one row per clip, e.g. from
``envsound.features.mfcc.mfcc_summary``) and integer labels ``y (n_clips,)`` in ``0..n_classes-1``. Models are saved
with ``skops.io`` (no pickle): loading trusts only the types listed in ``_TRUSTED``.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from typing import TYPE_CHECKING

import numpy as np

from envsound.errors import CheckpointError, ConfigError, EnvsoundError

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

logger = logging.getLogger(__name__)
# scikit-learn is imported where a baseline is built or loaded: importing it (and scipy.stats) took 2.8 s of a 3.5-s
# start-up of `envsound predict` with a network checkpoint on a 2-core Xeon, which never uses it

_FORMAT = "envsound-sklearn-baseline-1"
# Everything a saved KNN or random-forest pipeline contains beyond skops' builtin/numpy primitives; nothing else
# (no arbitrary callables) is accepted at load time.
_TRUSTED = [
    "sklearn.pipeline.Pipeline",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.neighbors._classification.KNeighborsClassifier",
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
    "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._tree.Tree",
]


class SklearnBaseline:
    """A scikit-learn classifier behind the envsound baseline API; subclasses choose the estimator.

    ``filters`` and ``dropout`` exist so :func:`envsound.models.registry.build_model` can pass a ``ModelConfig``;
    they mean nothing here, and setting either is a :class:`ConfigError`.
    """

    name: ClassVar[str] = "sklearn"
    preset: ClassVar[dict[str, Any]] = {}
    input_kind: ClassVar[str] = "mfcc_stats"

    def __init__(self, *, n_classes: int, filters: int | None = None, dropout: float | None = None) -> None:
        if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 1:
            raise ConfigError(f"model {self.name!r}: n_classes={n_classes!r} must be an int >= 1")
        for key, value in (("filters", filters), ("dropout", dropout)):
            if value is not None:
                raise ConfigError(f"model {self.name!r}: model.{key}={value!r} has no meaning for this baseline; "
                                  f"leave model.{key} unset")
        self.n_classes = n_classes
        self.estimator: Pipeline | None = None

    def _make_estimator(self) -> Pipeline:
        raise NotImplementedError

    def fit(self, X: np.ndarray, y: np.ndarray) -> "SklearnBaseline":
        """Fit on ``X (n, d)`` finite floats and ``y (n,)`` ints in ``0..n_classes-1``; returns ``self``.

        Raises:
            EnvsoundError: wrong shapes, non-finite features, or labels out of range.
        """
        X = self._check_x(X)
        y = np.asarray(y)
        if y.shape != (X.shape[0],) or not np.issubdtype(y.dtype, np.integer):
            raise EnvsoundError(f"model {self.name!r}: labels of shape {y.shape} and dtype {y.dtype} do not fit "
                                f"{X.shape[0]} feature rows; pass one integer label per row")
        if y.size and (y.min() < 0 or y.max() >= self.n_classes):
            raise EnvsoundError(f"model {self.name!r}: label {int(y.min() if y.min() < 0 else y.max())} is outside "
                                f"0..{self.n_classes - 1}; encode labels with the dataset's label list")
        if X.shape[0] == 0:
            raise EnvsoundError(f"model {self.name!r}: no training rows; check the training folds")
        self.estimator = self._make_estimator()
        self._adapt_to(X.shape[0])
        self.estimator.fit(X, y)
        return self

    def _adapt_to(self, n_rows: int) -> None:
        """Hook for estimators with a size-dependent setting (k-NN's k)."""

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities ``(n, n_classes)`` float32, rows summing to 1; classes absent in training get 0.

        Raises:
            EnvsoundError: called before :meth:`fit`, or ``X`` of the wrong shape or non-finite.
        """
        if self.estimator is None:
            raise EnvsoundError(f"model {self.name!r}: predict_proba called before fit")
        X = self._check_x(X)
        partial = self.estimator.predict_proba(X)
        out = np.zeros((X.shape[0], self.n_classes), dtype=np.float32)
        out[:, np.asarray(self.estimator.classes_, dtype=np.int64)] = partial
        return out

    def to_bytes(self) -> bytes:
        """Serialise the fitted model with ``skops.io`` (no pickle), deflate-compressed.

        Compression matters: a 500-tree forest on ESC-50 is ~330 MB raw (mostly zeros in the leaf value arrays)
        and ~18 MB compressed.
        """
        import zipfile

        import skops.io as sio

        if self.estimator is None:
            raise EnvsoundError(f"model {self.name!r}: nothing to save before fit")
        return sio.dumps({"format": _FORMAT, "model": self.name, "n_classes": self.n_classes,
                          "estimator": self.estimator}, compression=zipfile.ZIP_DEFLATED, compresslevel=6)

    @classmethod
    def from_bytes(cls, data: bytes, *, n_classes: int) -> "SklearnBaseline":
        """Load what :meth:`to_bytes` wrote; only the scikit-learn types this module uses are trusted.

        Raises:
            CheckpointError: not an envsound baseline, a different model or ``n_classes``, or untrusted content.
        """
        import skops.io as sio

        try:
            state = sio.loads(data, trusted=_TRUSTED)
        except Exception as exc:  # skops raises UntrustedTypesFoundException, zipfile/json errors, ...
            raise CheckpointError(f"model {cls.name!r}: not a loadable envsound baseline "
                                  f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                                  f"re-train and save it with this version") from exc
        if not isinstance(state, dict) or state.get("format") != _FORMAT:
            raise CheckpointError(f"model {cls.name!r}: data is not an envsound baseline ({_FORMAT})")
        if state.get("model") != cls.name or state.get("n_classes") != n_classes:
            raise CheckpointError(f"model {cls.name!r}: saved model is {state.get('model')!r} with "
                                  f"{state.get('n_classes')} classes, expected {cls.name!r} with {n_classes}")
        from sklearn.pipeline import Pipeline

        if not isinstance(state.get("estimator"), Pipeline):
            raise CheckpointError(f"model {cls.name!r}: saved estimator is not a scikit-learn Pipeline")
        model = cls(n_classes=n_classes)
        model.estimator = state["estimator"]
        return model

    def _check_x(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] == 0:
            raise EnvsoundError(f"model {self.name!r}: features of shape {X.shape} are not (n_clips, n_features)")
        if not np.isfinite(X).all():
            raise EnvsoundError(f"model {self.name!r}: features contain NaN or inf; check the feature extraction")
        if self.estimator is not None and hasattr(self.estimator, "n_features_in_") \
                and X.shape[1] != self.estimator.n_features_in_:
            raise EnvsoundError(f"model {self.name!r}: features have {X.shape[1]} columns, the model was fitted "
                                f"on {self.estimator.n_features_in_}; use the same features.n_mfcc")
        return X


class KNNBaseline(SklearnBaseline):
    """Standardised features + k-nearest neighbours (k = 5, or the number of training rows if fewer)."""

    name: ClassVar[str] = "knn"
    n_neighbors: ClassVar[int] = 5

    def _make_estimator(self) -> Pipeline:
        from sklearn.neighbors import KNeighborsClassifier
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        return make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=self.n_neighbors))

    def _adapt_to(self, n_rows: int) -> None:
        if n_rows < self.n_neighbors:
            logger.warning("knn: only %d training rows; using k=%d instead of %d", n_rows, n_rows, self.n_neighbors)
            self.estimator.set_params(kneighborsclassifier__n_neighbors=n_rows)


class RandomForestBaseline(SklearnBaseline):
    """Standardised features + a 500-tree random forest (all cores, fixed ``random_state=0``)."""

    name: ClassVar[str] = "random_forest"
    n_estimators: ClassVar[int] = 500

    def _make_estimator(self) -> Pipeline:
        from sklearn.ensemble import RandomForestClassifier
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        return make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=self.n_estimators, n_jobs=-1,
                                                                      random_state=0))
