"""The rebuilt objective R(θ): derivatives and optimality against scikit-learn.

Oracles: (1) scikit-learn's own solver — at a tightly fitted θ̂ the gradient of the
rebuilt R must vanish, which fails if any term of the recipe (class weights, liblinear's
intercept penalty, C scaling) is wrong; (2) finite differences of an independently
written R (plain scipy, not skinfluence's loss classes) for gradient and Hessian.
"""

import numpy as np
import pytest
from scipy.special import log_softmax
from sklearn.linear_model import LogisticRegression
from sklearn.utils.class_weight import compute_class_weight

from skinfluence import InfluenceExplainer

CONFIGS = [
    ("binary", dict(C=0.7, solver="newton-cholesky")),
    ("binary", dict(C=2.0, solver="newton-cholesky", fit_intercept=False)),
    ("binary", dict(C=0.5, solver="newton-cholesky", class_weight="balanced")),
    ("binary", dict(C=0.5, solver="newton-cholesky", class_weight={0: 2.0, 1: 0.5})),
    ("binary", dict(C=0.3, solver="liblinear", intercept_scaling=3.0)),
    ("binary", dict(C=0.3, solver="liblinear", class_weight="balanced")),
    ("multi", dict(C=0.8, solver="newton-cholesky")),
    ("multi", dict(C=0.8, solver="newton-cholesky", class_weight="balanced")),
    ("multi", dict(C=1.5, solver="lbfgs", fit_intercept=False)),
]


def _data(kind, binary_data, multiclass_data):
    return binary_data[:2] if kind == "binary" else multiclass_data[:2]


def _tight(params):
    tight = dict(tol=1e-12, max_iter=10_000)
    if params["solver"] == "liblinear":
        tight["dual"] = False
    return LogisticRegression(**params, **tight)


def _sample_weight(n):
    return np.random.RandomState(0).uniform(0.5, 2.0, n)


def independent_risk(est, X, y, sw, theta):
    """R(θ) = F/(C n), written from the sklearn docs with plain scipy."""
    classes = est.classes_
    K, d = est.coef_.shape
    W = theta[: K * d].reshape(K, d)
    b = theta[K * d :] if est.fit_intercept else np.zeros(K)
    Z = X @ W.T + b
    yi = np.searchsorted(classes, y)
    if K == 1:
        z = Z[:, 0]
        loss = np.logaddexp(0, z) - (yi == 1) * z
    else:
        loss = -log_softmax(Z, axis=1)[np.arange(len(y)), yi]
    cw = np.ones(len(classes))
    if est.class_weight is not None:
        cw = compute_class_weight(est.class_weight, classes=classes, y=y,
                                  sample_weight=sw)
    n = len(y)
    risk = np.sum(sw * cw[yi] * loss) / n
    penalty = 0.5 * np.sum(W**2)
    if est.solver == "liblinear" and est.fit_intercept:
        penalty += 0.5 * np.sum((b / est.intercept_scaling) ** 2)
    return risk + penalty / (est.C * n)


@pytest.mark.parametrize("kind, params", CONFIGS)
def test_gradient_vanishes_at_sklearn_optimum(kind, params, binary_data,
                                              multiclass_data):
    X, y = _data(kind, binary_data, multiclass_data)
    sw = _sample_weight(len(y))
    explainer = InfluenceExplainer(_tight(params)).fit(X, y, sample_weight=sw)
    g = explainer.risk_.gradient()
    # per-row gradients are O(1); an error in any term of the recipe gives O(1e-2+)
    assert np.max(np.abs(g)) < 1e-8
    assert explainer.optimality_ < 1e-7


@pytest.mark.parametrize("kind, params", CONFIGS)
def test_gradient_and_hessian_match_finite_differences(kind, params, binary_data,
                                                       multiclass_data):
    X, y = _data(kind, binary_data, multiclass_data)
    sw = _sample_weight(len(y))
    explainer = InfluenceExplainer(_tight(params)).fit(X, y, sample_weight=sw)
    obj, est = explainer.risk_, explainer.estimator_
    rng = np.random.RandomState(1)
    theta = explainer.params_ + 0.3 * rng.standard_normal(explainer.params_.shape)
    K, d = est.coef_.shape

    def grad_at(t):
        obj.coef = t[: K * d].reshape(K, d)
        if est.fit_intercept:
            obj.intercept = t[K * d :]
        return obj.gradient()

    g = grad_at(theta)
    H = _hessian_at(obj, theta, K, d, est.fit_intercept)
    h = 1e-5
    eye = np.eye(len(theta))
    fd_g = np.array([
        (independent_risk(est, X, y, sw, theta + h * e)
         - independent_risk(est, X, y, sw, theta - h * e)) / (2 * h)
        for e in eye
    ])
    np.testing.assert_allclose(g, fd_g, rtol=1e-6, atol=1e-9)
    fd_H = np.array([(grad_at(theta + h * e) - grad_at(theta - h * e)) / (2 * h)
                     for e in eye])
    np.testing.assert_allclose(H, fd_H, rtol=1e-5, atol=1e-8)


def _hessian_at(obj, theta, K, d, fit_intercept):
    obj.coef = theta[: K * d].reshape(K, d)
    if fit_intercept:
        obj.intercept = theta[K * d :]
    return obj.hessian()


@pytest.mark.parametrize("kind, params", CONFIGS)
def test_hessian_symmetric_positive_semidefinite(kind, params, binary_data,
                                                 multiclass_data):
    X, y = _data(kind, binary_data, multiclass_data)
    explainer = InfluenceExplainer(_tight(params)).fit(X, y)
    H = explainer.hessian_
    np.testing.assert_array_equal(H, H.T)
    eig = np.linalg.eigvalsh(H)
    assert eig.min() > -1e-12 * eig.max()
    # softmax with an intercept: exactly one flat direction, the intercept shift
    null = explainer.risk_.fixed_directions()
    if kind == "multi" and params.get("fit_intercept", True):
        assert null.shape[1] == 1
        np.testing.assert_allclose(H @ null, 0, atol=1e-12)
    else:
        assert null.shape[1] == 0
