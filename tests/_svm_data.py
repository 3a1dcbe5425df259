"""Small datasets shared by the kernel-machine and ν-SVM tests (train/test splits)."""

import functools

import numpy as np
from _oracle import max_rel_error, split
from sklearn.base import is_classifier
from sklearn.datasets import load_breast_cancer, load_diabetes, make_moons
from sklearn.preprocessing import StandardScaler

from skinfluence import InfluenceExplainer


@functools.cache
def dataset(name):
    """(X_train, y_train, X_test, y_test)."""
    if name == "diabetes":
        X, y = load_diabetes(return_X_y=True)
        X = StandardScaler().fit_transform(X)[:, :6]
        return split(X, (y - y.mean()) / y.std(), 70)
    if name == "wave":
        rng = np.random.default_rng(4)
        X = rng.uniform(-2, 2, size=(90, 3))
        y = np.sin(2 * X[:, 0]) + X[:, 1] ** 2 / 2 + 0.1 * rng.normal(size=90)
        return split(X, y, 60)
    if name == "bc":
        X, y = load_breast_cancer(return_X_y=True)
        X = StandardScaler().fit_transform(X)[:, :6]
        return split(X, y, 90)
    X, y = make_moons(120, noise=0.3, random_state=0)
    return split(X, y, 80)


def weights(kind, n):
    return None if kind == "uniform" else np.random.default_rng(1).uniform(0.5, 2.0, n)


def assert_zero_weight_rows_drop_out(estimator):
    """libsvm drops rows of zero weight before fitting (``support_`` then indexes the
    rows kept): the influences of the other rows must be those of the fit without
    them, times n / n_kept (n·∂/∂s_j). Moons (regressors: a smooth target of X);
    smoothing 0.1, as the linear fits on 2 features sit at a vertex."""
    X, y, X_test, _ = dataset("moons")
    y = y if is_classifier(estimator) else X[:, 0] - X[:, 1] ** 2
    sw = np.ones(len(y))
    sw[[0, 5, 6]] = 0.0
    kept = sw > 0
    full = InfluenceExplainer(estimator, smoothing=0.1).fit(X, y, sample_weight=sw)
    assert full.optimality_ < 1e-8
    without = InfluenceExplainer(estimator, smoothing=0.1).fit(X[kept], y[kept])
    scores = full.loss_influence(X_test, test_loss="decision")
    expected = without.loss_influence(X_test, test_loss="decision")
    assert max_rel_error(scores[:, kept] * kept.sum() / len(y), expected) < 1e-6
