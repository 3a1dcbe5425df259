import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_iris, make_classification
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits


@pytest.fixture(scope="session")
def binary_data():
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)[:, :8]
    return X[:200], y[:200], X[200:260], y[200:260]


@pytest.fixture(scope="session")
def multiclass_data():
    X, y = load_iris(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    rng = np.random.RandomState(0)
    perm = rng.permutation(len(y))
    X, y = X[perm], y[perm]
    return X[:110], y[:110], X[110:], y[110:]


@pytest.fixture(scope="session")
def synthetic_data():
    X, y = make_classification(
        n_samples=160, n_features=6, n_informative=4, flip_y=0.1, random_state=1
    )
    return X[:120], y[:120], X[120:], y[120:]


@pytest.fixture(autouse=True, scope="session")
def _single_blas_thread():
    """The test matrices are tiny: BLAS threads only add contention (minutes of wall
    time on a loaded 2-core machine). Results do not depend on it."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield
