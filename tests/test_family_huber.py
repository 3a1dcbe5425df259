"""HuberRegressor (σ fitted jointly: θ = [coef_, intercept_, scale_]) against refits.

Oracle: ``TightHuberRegressor`` (tests/_oracle.py) minimises scikit-learn's own
``_huber_loss_and_gradient`` to machine precision (L-BFGS-B with ftol=0, then Newton
steps with a finite-difference Hessian of sklearn's gradient); sklearn's lbfgs at its
default tol is far too loose for finite differences. Derivatives in the sample
weight of a row: Richardson-extrapolated central differences of those refits at h and
h/4; rows where the two disagree (a row crossing the Huber threshold |r| = εσ within
the step: a kink of the second derivative) are excluded from the derivative checks
and covered by the exact removals. Error: ‖pred − FD‖∞ / ‖FD‖∞.

Measured (worst over the checked rows): params, test losses and predictions ≤ 3e-8
(diabetes, synthetic with weights); exact leave-one-out ≤ 2e-10 relative in θ; the
first-order and Newton leave-one-out estimates: see ``test_loo_estimates``.
"""

import functools
import warnings

import numpy as np
import pytest
from _checks import expected_failed_checks
from _oracle import (
    EstimatorRefit,
    TightHuberRegressor,
    huber_params,
    max_rel_error,
    split,
)
from sklearn.datasets import load_diabetes, make_regression
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import HuberRegressor
from sklearn.linear_model._huber import _huber_loss_and_gradient
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from skinfluence import InfluenceExplainer
from skinfluence.diagnostics import parameter_names
from skinfluence.models.huber import HuberScaleLoss, huber_kinks

H = 2e-2
RTOL = 1e-5


@functools.cache
def dataset(name):
    """(X_train, y_train, X_test, y_test, sample_weight)."""
    if name == "diabetes":  # 10 features, 150 training rows
        X, y = load_diabetes(return_X_y=True)
        return (*split(StandardScaler().fit_transform(X), (y - y.mean()) / y.std(),
                       150), None)
    X, y = make_regression(n_samples=160, n_features=5, n_informative=4, noise=3.0,
                           bias=2.0, random_state=3)
    y = y / y.std()
    y[::9] += 4.0  # outliers
    sw = np.random.default_rng(1).uniform(0.5, 2.0, 120)
    return (*split(X, y, 120), sw)


CONFIGS = {
    "diabetes": ("diabetes", dict(epsilon=1.35, alpha=1e-2)),
    "synthetic-sw": ("synthetic", dict(epsilon=1.2, alpha=1e-1)),
    "synthetic-nointercept": ("synthetic", dict(epsilon=1.5, alpha=1e-3,
                                                fit_intercept=False)),
}


@functools.cache
def fitted(config):
    data, kw = CONFIGS[config]
    X, y, Xt, yt, sw = dataset(data)
    est = TightHuberRegressor(**kw).fit(X, y, sample_weight=sw)
    explainer = InfluenceExplainer(FrozenEstimator(est)).fit(X, y, sample_weight=sw)
    return est, explainer


def own_loss(model, X, y):
    """σ + σ H_ε(r/σ) per row (the model's own term), from sklearn's loss function."""
    theta = huber_params(model)
    return np.array([_huber_loss_and_gradient(theta, X[[i]], y[[i]], model.epsilon,
                                              0.0, np.ones(1))[0]
                     for i in range(len(y))])


def test_objective_matches_sklearns_loss_function():
    """R = F/n: value and gradient against sklearn's function; ∇R against central
    differences of sklearn's loss at a point off the optimum."""
    X, y, _, _, sw = dataset("synthetic")
    est, explainer = fitted("synthetic-sw")
    risk = explainer.risk_
    theta = huber_params(est) + np.random.default_rng(0).normal(0, 0.05, 7)
    risk.coef[0], risk.intercept[:] = theta[:5], theta[5:]
    try:
        def F(t):
            return _huber_loss_and_gradient(t, X, y, est.epsilon, est.alpha, sw)[0]
        fd = np.array([(F(theta + e) - F(theta - e)) / 2e-6
                       for e in 1e-6 * np.eye(7)]) / len(y)
        assert max_rel_error(risk.gradient(), fd) < 1e-7
        value = (risk.row_weight[:, 0] * risk.test_loss(X, y[:, None])).sum() / len(y)
        assert value + est.alpha * theta[:5] @ theta[:5] / len(y) == \
            pytest.approx(F(theta) / len(y), rel=1e-12)
    finally:
        risk.coef[0], risk.intercept[:] = est.coef_, [est.intercept_, est.scale_]


def test_loss_hessian_is_the_derivative_of_its_gradient():
    rng = np.random.default_rng(0)
    Z = np.column_stack([rng.normal(size=40), rng.uniform(0.5, 2.0, 40)])
    Y = rng.normal(size=(40, 1))
    loss = HuberScaleLoss(1.35)
    H = loss.hessian(Z, Y)
    for a in range(2):
        e = np.zeros(2)
        e[a] = 1e-7
        fd = (loss.value_grad(Z + e, Y)[1] - loss.value_grad(Z - e, Y)[1]) / 2e-7
        np.testing.assert_allclose(H[:, :, a], fd, atol=1e-6)
        v = (loss.value_grad(Z + e, Y)[0] - loss.value_grad(Z - e, Y)[0]) / 2e-7
        np.testing.assert_allclose(loss.value_grad(Z, Y)[1][:, a], v, atol=1e-6)


def test_params_layout_and_names():
    est, explainer = fitted("diabetes")
    np.testing.assert_array_equal(explainer.params_, huber_params(est))
    assert parameter_names(explainer)[-2:] == ["intercept", "scale"]
    assert explainer.param_influence([0]).shape == (1, 12)
    est, explainer = fitted("synthetic-nointercept")
    np.testing.assert_array_equal(explainer.params_, huber_params(est))
    assert parameter_names(explainer) == ["x0", "x1", "x2", "x3", "x4", "scale"]
    assert explainer.param_change([0, 1], method="newton").shape == (2, 6)
    assert explainer.optimality_ < 1e-10


def _derivatives(refit, j, Xt, yt):
    def functional(model):
        return np.r_[huber_params(model), own_loss(model, Xt, yt), model.predict(Xt)]
    return [refit.derivative(j, functional, h) for h in (H, H / 4)]


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_influence_matches_refits(config):
    data, kw = CONFIGS[config]
    X, y, Xt, yt, sw = dataset(data)
    est, explainer = fitted(config)
    refit = EstimatorRefit(TightHuberRegressor(**kw), X, y, sw)
    p = len(explainer.params_)
    rows = np.random.default_rng(0).choice(len(y), 6, replace=False)
    errors, checked = [], 0
    for j in rows:
        big, small = _derivatives(refit, j, Xt[:5], yt[:5])
        if max_rel_error(big, small) > 1e-4:
            continue  # a row crossing the threshold within the step: a kink
        checked += 1
        pred = np.r_[explainer.param_influence([j])[0],
                     explainer.loss_influence(Xt[:5], yt[:5])[:, j],
                     explainer.transform(Xt[:5])[:, j]]
        ref = small  # n ∂/∂s_j of θ, the test losses and the predictions
        errors.append(max(
            0.0,max_rel_error(pred[:p], ref[:p]),
                          max_rel_error(pred[p:p + 5], ref[p:p + 5]),
                          max_rel_error(pred[p + 5:], ref[p + 5:])))
    assert checked >= 4
    print(config, max(errors))
    assert max(errors) < RTOL, errors


def test_no_training_row_sits_at_the_threshold():
    """Kinks are identified, and removals of the rows nearest the threshold are
    exact (the path crosses it: chord iterations then semismooth Newton)."""
    for config in CONFIGS:
        _, explainer = fitted(config)
        assert not huber_kinks(explainer.risk_).any()
        assert huber_kinks(explainer.risk_, tol=np.inf).all()


@pytest.mark.parametrize("config", ["diabetes", "synthetic-sw"])
def test_exact_leave_one_out_matches_refits(config):
    data, kw = CONFIGS[config]
    X, y, _, _, sw = dataset(data)
    _, explainer = fitted(config)
    refit = EstimatorRefit(TightHuberRegressor(**kw), X, y, sw)
    risk = explainer.risk_
    Z = risk.decision(X)
    margin = np.abs(np.abs(Z[:, 0] - y) - kw["epsilon"] * Z[:, 1])
    rows = np.r_[np.argsort(margin)[:4], np.arange(0, len(y), 15)]  # near kinks too
    exact = explainer.param_change(rows, method="exact")
    truth = np.array([huber_params(refit.leave_out(j)) for j in rows]) - \
        explainer.params_
    error = np.abs(exact - truth).max() / np.abs(explainer.params_).max()
    print(config, error)
    assert error <= 1e-6


def test_loo_estimates():
    """First-order and Newton leave-one-out against refits (every row, diabetes):
    Pearson R and slope of the change of θ."""
    X, y, _, _, sw = dataset("diabetes")
    _, explainer = fitted("diabetes")
    refit = EstimatorRefit(TightHuberRegressor(**CONFIGS["diabetes"][1]), X, y, sw)
    rows = np.arange(0, len(y), 3)
    truth = np.array([huber_params(refit.leave_out(j)) for j in rows]) - \
        explainer.params_
    stats = {}
    for method in ("influence", "newton", "exact"):
        est = explainer.param_change(rows, method=method)
        r = np.corrcoef(est.ravel(), truth.ravel())[0, 1]
        slope = (est.ravel() @ truth.ravel()) / (truth.ravel() @ truth.ravel())
        stats[method] = (r, slope)
    print(stats)
    assert stats["influence"][0] > 0.95 and stats["newton"][0] > 0.99
    assert abs(stats["exact"][1] - 1) < 1e-8


def test_sklearns_own_fit_stops_near_the_optimum():
    """sklearn's L-BFGS-B stops on its function-change test whatever ``tol``: a
    relative Newton step of ~2e-5 (diabetes), below the warning threshold."""
    X, y, *_ = dataset("diabetes")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        explainer = InfluenceExplainer(HuberRegressor(tol=1e-12, max_iter=10_000))
        explainer.fit(X, y)
    assert 1e-7 < explainer.optimality_ < 1e-4


@parametrize_with_checks(
    # a stronger penalty: the checks fit tiny data where few rows are inside the
    # threshold (no curvature from the others)
    [InfluenceExplainer(HuberRegressor(alpha=1.0, max_iter=1000))],
    expected_failed_checks=expected_failed_checks(),
)
def test_sklearn_compatible_huber(estimator, check):
    check(estimator)


def test_scale_at_its_bound_is_held_fixed():
    """Rows fitted exactly: sklearn drives σ towards its lower bound; σ is then
    fixed (zero influence) and the fit is explained on (w, b)."""
    X = np.repeat([[1.0, 3], [2, 1], [3, 3], [4, 1]], 4, axis=0)
    y = np.repeat([1.0, 2, 1, 2], 4)
    explainer = InfluenceExplainer(HuberRegressor(alpha=1.0)).fit(X, y)
    assert not explainer.risk_.free[-1]
    influence = explainer.param_influence()
    assert np.all(influence[:, -1] == 0) and np.isfinite(influence).all()


def test_summary_frame_refuses_rows_without_curvature():
    """The Pearson dispersion needs L'' > 0 at every row: outliers have none."""
    _, explainer = fitted("synthetic-sw")
    with pytest.raises(ValueError, match="curvature at every training row"):
        explainer.summary_frame()


def test_perturbation_influence_matches_refits():
    """(s_j/n) · perturbation_influence[t, j] = ∂L_t/∂x_j of tight refits (x_j moved):
    the 2-output loss's mixed derivatives (prediction and σ) in the generic chain."""
    X, y, Xt, yt, _ = dataset("diabetes")
    est, explainer = fitted("diabetes")
    j, h = 3, 1e-4
    pert = explainer.perturbation_influence(Xt[:3], yt[:3], [j])[:, 0, :] / len(y)

    def losses(delta):
        Xm = X.copy()
        Xm[j] += delta
        return own_loss(TightHuberRegressor(**CONFIGS["diabetes"][1]).fit(Xm, y),
                        Xt[:3], yt[:3])
    fd = np.column_stack([(losses(h * e) - losses(-h * e)) / (2 * h)
                          for e in np.eye(X.shape[1])])
    assert max_rel_error(pert, fd) < 1e-5
