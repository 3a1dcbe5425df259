"""Small datasets shared by the kernel-machine and ν-SVM tests (train/test splits)."""

import functools

import numpy as np
from _oracle import split
from sklearn.datasets import load_breast_cancer, load_diabetes, make_moons
from sklearn.preprocessing import StandardScaler


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
