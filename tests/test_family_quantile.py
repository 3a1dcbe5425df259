"""QuantileRegressor (pinball loss + L1, a linear program) against refits.

Oracle: scikit-learn's own QuantileRegressor (solver="highs") refitted with a
changed sample weight or without rows. The LP solution is a vertex held by the rows
of zero residual: small re-weightings leave it unchanged (the refits' parameters are
identical to ~1e-12), so every first-order influence is exactly zero; removals
(re-solved LPs) are compared with refits without the rows by their objective value
(the LP may have several optimal vertices) and by their parameters where the optimum
is unique (every case measured here: ≤ 1e-12 absolute).
"""

import functools
import warnings

import numpy as np
import pytest
from _checks import expected_failed_checks
from _oracle import EstimatorRefit, split
from sklearn.datasets import load_diabetes, make_regression
from sklearn.linear_model import QuantileRegressor
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from skinfluence import InfluenceExplainer
from skinfluence._removal import NoOptimumWarning
from skinfluence.explainer import FlatTestLossWarning


@functools.cache
def dataset(name):
    """(X_train, y_train, X_test, y_test, sample_weight)."""
    if name == "diabetes":
        X, y = load_diabetes(return_X_y=True)
        return (*split(StandardScaler().fit_transform(X), (y - y.mean()) / y.std(),
                       80), None)
    X, y = make_regression(n_samples=100, n_features=4, noise=5.0, bias=1.0,
                           random_state=4)
    sw = np.random.default_rng(2).uniform(0.5, 2.0, 70)
    return (*split(X, y / y.std(), 70), sw)


CONFIGS = {
    "diabetes": ("diabetes", dict(quantile=0.3, alpha=0.01)),
    "synthetic-sw": ("synthetic", dict(quantile=0.7, alpha=0.05)),
    "synthetic-nointercept": ("synthetic", dict(quantile=0.5, alpha=0.0,
                                                fit_intercept=False)),
}


@functools.cache
def fitted(config):
    data, kw = CONFIGS[config]
    X, y, _, _, sw = dataset(data)
    return InfluenceExplainer(QuantileRegressor(**kw)).fit(X, y, sample_weight=sw)


def params(model):
    return np.r_[model.coef_, [model.intercept_] if model.fit_intercept else []]


def objective(model, X, y, sw, kw):
    """scikit-learn's F = Σ s ρ_τ(r) + α S ‖w‖₁ at a model's parameters."""
    sw = np.ones(len(y)) if sw is None else sw
    r = y - model.predict(X)
    tau = kw["quantile"]
    return sw @ np.where(r > 0, tau * r, (tau - 1) * r) + \
        kw["alpha"] * sw.sum() * np.abs(model.coef_).sum()


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_vertex_and_zero_influence(config):
    """As many zero-residual (pinned) rows as free parameters; every influence is
    zero, as refits with a slightly changed weight confirm (the vertex stays)."""
    data, kw = CONFIGS[config]
    X, y, Xt, yt, sw = dataset(data)
    explainer = fitted(config)
    risk = explainer.risk_
    n_active = np.count_nonzero(explainer.params_)
    assert risk.pinned.sum() == n_active
    assert not explainer.param_influence().any()
    # the warning names the cause (the vertex), not a flat test loss
    with pytest.warns(FlatTestLossWarning, match="does not move under a small"):
        assert not explainer.loss_influence(Xt, yt).any()
    assert not explainer.transform(Xt).any()
    refit = EstimatorRefit(QuantileRegressor(**kw), X, y, sw)
    for j in [0, int(np.flatnonzero(risk.pinned[:, 0])[0])]:
        derivative = refit.derivative(j, params, 1e-3)
        assert np.abs(derivative).max() < 1e-6


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_exact_leave_one_out_re_solves_the_lp(config):
    data, kw = CONFIGS[config]
    X, y, _, _, sw = dataset(data)
    explainer = fitted(config)
    refit = EstimatorRefit(QuantileRegressor(**kw), X, y, sw)
    rows = np.r_[np.flatnonzero(explainer.risk_.pinned[:, 0])[:3], 1, 5, 20]
    change = explainer.param_change(rows, method="exact")
    n = len(y)
    for j, step in zip(rows, change, strict=True):
        keep = np.delete(np.arange(n), j)
        truth = refit.leave_out(j)
        ours = QuantileRegressor(**kw)
        ours.coef_ = (explainer.params_ + step)[:X.shape[1]]
        ours.intercept_ = (explainer.params_ + step)[-1] \
            if kw.get("fit_intercept", True) else 0.0
        w = None if sw is None else sw[keep]
        f_ours, f_true = (objective(m, X[keep], y[keep], w, kw) for m in (ours, truth))
        assert f_ours == pytest.approx(f_true, rel=1e-9)
        np.testing.assert_allclose(step, params(truth) - explainer.params_,
                                   atol=1e-9)


def test_group_exact_removal_re_solves_the_lp():
    X, y, Xt, yt, _ = dataset("diabetes")
    kw = CONFIGS["diabetes"][1]
    explainer = fitted("diabetes")
    groups = [np.arange(0, 5), np.arange(30, 42)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FlatTestLossWarning)
        change = explainer.group_influence(groups, Xt[:4], yt[:4], method="exact")
    tau = kw["quantile"]

    def pinball(pred):
        r = yt[:4] - pred
        return np.where(r > 0, tau * r, (tau - 1) * r)

    for g, rows in enumerate(groups):
        keep = np.setdiff1d(np.arange(len(y)), rows)
        truth = QuantileRegressor(**kw).fit(X[keep], y[keep])
        np.testing.assert_allclose(
            change[:, g], pinball(truth.predict(Xt[:4])) -
            pinball(explainer.estimator_.predict(Xt[:4])), atol=1e-9)


def test_newton_is_undefined_for_pinned_rows_and_zero_elsewhere():
    explainer = fitted("diabetes")
    pinned = explainer.risk_.pinned[:, 0]
    with pytest.warns(NoOptimumWarning):
        change = explainer.param_change(method="newton")
    assert np.isnan(change[pinned]).all()
    assert not change[~pinned].any()


@parametrize_with_checks(
    [InfluenceExplainer(QuantileRegressor(alpha=0.1))],
    expected_failed_checks=expected_failed_checks(),
)
def test_sklearn_compatible_quantile(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FlatTestLossWarning)
        check(estimator)
