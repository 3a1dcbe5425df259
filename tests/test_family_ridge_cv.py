"""RidgeCV / RidgeClassifierCV: explained as the ridge refit at the selected alpha_.

Oracle: refits of ``Ridge(alpha=alpha_, solver="cholesky")`` (or ``RidgeClassifier``
with the same class weights) with one sample weight moved by ±h, Richardson-
extrapolated (h = 1e-2); leave-one-out against refits without the row. The selection
of alpha_ is held fixed. Measured: ≤ 3e-9 relative on every configuration (params,
loss, prediction / decision value); one Newton removal step = the refit (≤ 1e-9).
"""

import functools

import numpy as np
import pytest
from _checks import expected_failed_checks
from _oracle import EstimatorRefit, max_rel_error, params_of, split
from sklearn.datasets import load_diabetes, load_wine, make_regression
from sklearn.linear_model import Ridge, RidgeClassifier, RidgeClassifierCV, RidgeCV
from sklearn.preprocessing import LabelBinarizer, StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from skinfluence import InfluenceExplainer

ALPHAS = np.logspace(-2, 3, 11)


@functools.cache
def dataset(name):
    if name == "diabetes":
        X, y = load_diabetes(return_X_y=True)
        return split(StandardScaler().fit_transform(X), (y - y.mean()) / y.std(), 300)
    if name == "multi":
        X, Y = make_regression(n_samples=200, n_features=8, n_targets=2, noise=30.0,
                               random_state=0)
        return split(X, Y / Y.std(axis=0), 150)
    if name == "wine":
        X, y = load_wine(return_X_y=True)
        return split(StandardScaler().fit_transform(X), y, 140)
    raise KeyError(name)


def decision(model, X):
    z = model.decision_function(X) if hasattr(model, "classes_") else model.predict(X)
    return np.asarray(z).reshape(X.shape[0], -1)


def squared_error(model, X, y):
    Z = decision(model, X)
    if hasattr(model, "classes_"):
        Y = LabelBinarizer(neg_label=-1).fit(model.classes_).transform(y)
    else:
        Y = np.reshape(y, Z.shape)
    return ((Y - Z) ** 2).sum(axis=1)


def oracle_for(model):
    if isinstance(model, RidgeClassifierCV):
        return RidgeClassifier(alpha=model.alpha_, class_weight=model.class_weight,
                               fit_intercept=model.fit_intercept, solver="cholesky")
    return Ridge(alpha=model.alpha_, fit_intercept=model.fit_intercept,
                 solver="cholesky")


class FirstOutput:
    """Test "loss" = the first decision value (the mean over a one-vs-all ridge
    classifier's outputs is constant: its ±1 targets sum to 2 − K)."""

    def value_grad(self, Z, y):
        grad = np.zeros_like(Z)
        grad[:, 0] = 1.0
        return Z[:, 0], grad


CONFIGS = {
    "diabetes-gcv-sw": ("diabetes", RidgeCV(alphas=ALPHAS), True),
    "diabetes-kfold": ("diabetes", RidgeCV(alphas=ALPHAS, cv=3), False),
    "multi-per-target-sw": ("multi", RidgeCV(alphas=ALPHAS, alpha_per_target=True),
                            True),
    "wine-classifier-balanced-sw": (
        "wine", RidgeClassifierCV(alphas=ALPHAS, class_weight="balanced"), True),
}


@pytest.mark.parametrize("config_id", list(CONFIGS))
def test_influences_match_refits_at_alpha_(config_id):
    name, estimator, weighted = CONFIGS[config_id]
    X, y, X_test, y_test = dataset(name)
    X_test, y_test = X_test[:15], y_test[:15]
    sw = np.random.default_rng(1).uniform(0.5, 2.0, len(y)) if weighted else None
    explainer = InfluenceExplainer(estimator).fit(X, y, sample_weight=sw)
    assert explainer.optimality_ < 1e-10  # the GCV path's coef_ is the optimum
    oracle = EstimatorRefit(oracle_for(explainer.estimator_), X, y, sw)
    p, t = len(explainer.params_), len(y_test)
    pred = np.hstack([explainer.param_influence(),
                      explainer.loss_influence(X_test, y_test).T,
                      explainer.loss_influence(X_test, y_test,
                                               test_loss=FirstOutput()).T])
    errors = []
    for j in (2, 50):
        fd = oracle.derivative(j, lambda m: np.r_[
            params_of(m), squared_error(m, X_test, y_test),
            decision(m, X_test)[:, 0]], 1e-2)
        errors += [max_rel_error(pred[j, :p], fd[:p]),
                   max_rel_error(pred[j, p:p + t], fd[p:p + t]),
                   max_rel_error(pred[j, p + t:], fd[p + t:])]
    msg = f"[{config_id}] alpha_ {explainer.estimator_.alpha_}, errors {max(errors):.1e}"
    print(msg)
    assert max(errors) <= 1e-5, msg


def test_newton_removal_is_the_refit_without_the_row():
    X, y, X_test, y_test = dataset("diabetes")
    explainer = InfluenceExplainer(RidgeCV(alphas=ALPHAS)).fit(X, y)
    oracle = EstimatorRefit(oracle_for(explainer.estimator_), X, y)
    rows = np.arange(0, len(y), 15)
    steps = explainer.param_change(rows, method="newton")
    predicted = explainer.leave_one_out(X_test[:20], y_test[:20])[:, rows]
    base = squared_error(explainer.estimator_, X_test[:20], y_test[:20])
    actual = np.empty_like(predicted)
    errors = []
    for i, j in enumerate(rows):
        refit = oracle.leave_out(j)
        errors.append(max_rel_error(steps[i], params_of(refit) - explainer.params_))
        actual[:, i] = squared_error(refit, X_test[:20], y_test[:20]) - base
    a, b = predicted.ravel(), actual.ravel()
    r, slope = np.corrcoef(a, b)[0, 1], a @ b / (a @ a)
    print(f"newton {max(errors):.1e}; influence R {r:.5f} slope {slope:.3f}")
    assert max(errors) <= 1e-8
    assert r >= 0.99


@parametrize_with_checks(
    [InfluenceExplainer(RidgeCV()), InfluenceExplainer(RidgeClassifierCV())],
    expected_failed_checks=expected_failed_checks(),
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
