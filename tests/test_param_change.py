"""param_change for some rows: only those removals are estimated, and they equal
the same rows of the all-rows answer (whose agreement with refits is tested per
family)."""

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.linear_model import Lasso, LogisticRegression
from sklearn.neural_network import MLPRegressor
from sklearn.svm import SVC, SVR

from skinfluence import InfluenceExplainer


@pytest.mark.parametrize("estimator, data", [
    (LogisticRegression(C=1.0, solver="newton-cholesky", tol=1e-12), "bc"),
    (LogisticRegression(C=0.3, penalty="l1", solver="liblinear", tol=1e-12,
                        max_iter=10_000), "bc"),
    (Lasso(alpha=0.05, tol=1e-12, max_iter=100_000), "diabetes"),
    (SVC(kernel="linear", C=0.5, tol=1e-10), "bc"),
    (SVC(C=1.0, tol=1e-10), "bc"),
    (SVR(C=1.0, epsilon=0.2, tol=1e-10), "diabetes"),
    (MLPRegressor(hidden_layer_sizes=(3,), activation="tanh", solver="lbfgs",
                  alpha=1e-2, tol=1e-12, max_iter=5000, random_state=0), "diabetes"),
], ids=["logistic", "logistic-l1", "lasso", "svc-linear", "svc-rbf", "svr-rbf",
        "mlp"])
@pytest.mark.filterwarnings("ignore::skinfluence.NoOptimumWarning")
def test_param_change_of_some_rows_equals_all_rows(estimator, data):
    """param_change(indices, method) estimates only the rows asked for (one exact
    iteration or path each, not n) and equals those rows of the all-rows answer;
    repeated and negative indices work."""
    if data == "bc":
        X, y = load_breast_cancer(return_X_y=True)
        X = (X - X.mean(0)) / X.std(0)
        X, y = X[:80, :5], y[:80]
    else:
        X, y = load_diabetes(return_X_y=True)
        X = (X - X.mean(0)) / X.std(0)
        X, y = X[:60, :4], (y[:60] - y[:60].mean()) / y[:60].std()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. a network's loose convergence
        damping = 1e-3 if isinstance(estimator, MLPRegressor) else 0.0
        ex = InfluenceExplainer(estimator, damping=damping).fit(X, y)
    rows = [5, 0, 17, 5, -1]
    for method in ("newton", "exact"):
        every = ex.param_change(method=method)
        some = ex.param_change(rows, method=method)
        np.testing.assert_allclose(some, every[[5, 0, 17, 5, len(y) - 1]],
                                   rtol=1e-9, atol=1e-12)


def test_param_change_of_some_rows_iterates_only_those(monkeypatch):
    """The exact chord iterations run for the rows asked for only."""
    from skinfluence import _removal

    X, y = load_breast_cancer(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    ex = InfluenceExplainer(LogisticRegression(C=1.0, tol=1e-12)).fit(X[:90, :4],
                                                                     y[:90])
    seen = []
    original = _removal._removal_gradients

    def spy(objective, rows, delta):
        seen.extend(np.asarray(rows).tolist())
        return original(objective, rows, delta)

    monkeypatch.setattr(_removal, "_removal_gradients", spy)
    ex.param_change([4, 9], method="exact")
    assert set(seen) == {4, 9}
