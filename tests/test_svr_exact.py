"""Exact leave-one-out of the ε-insensitive loss (LinearSVR, SVR(kernel="linear")):
the hinge's solution path on two hinges per row, against refits without the row.

Oracle: refits of the real estimator without the row (SVR at tol=1e-12; LinearSVR's
dual solver at tol=1e-10, as in test_family_svr.py). Error: ‖Δθ − Δθ_refit‖∞ /
‖θ̂‖∞ per row. Measured: LinearSVR ≤ 5e-8 (liblinear's floor), SVR ≤ 5e-6 (libsvm's
float32 kernel cache: its margins are exact to ~1e-5 only); Pearson R of the
estimated and refitted changes ≥ 0.999999999 where one Newton step reaches
R = 0.25–0.5.
"""

import functools
import warnings

import numpy as np
import pytest
from _oracle import EstimatorRefit
from sklearn.svm import SVR, LinearSVR
from test_family_svr import dataset, params, tube_loss, weights

from skinfluence import InfluenceExplainer
from skinfluence._removal import hinge_exact_steps

DUAL = dict(dual=True, tol=1e-10, max_iter=1_000_000, random_state=0)

#: id: (dataset, estimator, weights, tolerance relative to ‖θ̂‖∞)
CONFIGS = {
    "lsvr-sw": ("diabetes", LinearSVR(epsilon=0.3, C=0.1, **DUAL), "random", 1e-6),
    "lsvr-eps0": ("diabetes", LinearSVR(C=0.1, **DUAL), "uniform", 1e-6),
    "lsvr-nointercept": ("diabetes", LinearSVR(epsilon=0.2, C=0.1,
                                               fit_intercept=False, **DUAL),
                         "uniform", 1e-6),
    "svr-sw": ("diabetes", SVR(kernel="linear", epsilon=0.3, C=0.1, tol=1e-12),
               "random", 2e-5),
    "svr-synthetic-sw": ("synthetic", SVR(kernel="linear", epsilon=0.1, C=0.1,
                                          tol=1e-12), "random", 2e-5),
}


@functools.cache
def case(config_id):
    name, estimator, kind, _ = CONFIGS[config_id]
    X, y, X_test, y_test = dataset(name)
    sw = weights(kind, X.shape[0])
    explainer = InfluenceExplainer(estimator).fit(X, y, sample_weight=sw)
    return explainer, EstimatorRefit(estimator, X, y, sw), X, y, X_test[:10], \
        y_test[:10]


@pytest.mark.parametrize("config_id", sorted(CONFIGS))
def test_exact_leave_one_out_matches_refits(config_id):
    explainer, oracle, X, y, X_test, y_test = case(config_id)
    tol = CONFIGS[config_id][3]
    r = np.abs(explainer.estimator_.predict(X) - y)
    eps = explainer.estimator_.epsilon
    pinned = np.flatnonzero(explainer.risk_.pinned[:, 0])
    # rows on the edges, outside and inside the tube
    rows = np.r_[pinned[:4], np.flatnonzero(r > eps + 1e-3)[:6],
                 np.flatnonzero(r < eps - 1e-3)[:2]]
    steps = explainer.param_change(rows, method="exact")
    truth = np.array([params(oracle.leave_out(j)) for j in rows]) - explainer.params_
    error = np.abs(steps - truth).max() / np.abs(explainer.params_).max()
    a, b = steps.ravel(), truth.ravel()
    print(f"[{config_id}] exact LOO error {error:.1e}, R "
          f"{np.corrcoef(a, b)[0, 1]:.10f}")
    assert error <= tol
    assert np.abs(truth).max() > 100 * tol * np.abs(explainer.params_).max()
    inside = r[rows] < eps - 1e-3
    assert not steps[inside].any()  # exactly 0, as the refit (up to its noise)
    # the test losses after removal: the same refits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # test rows inside the tube
        loo = explainer.leave_one_out(X_test, y_test, method="exact")[:, rows[:4]]
    base = tube_loss(explainer.estimator_, X_test, y_test, False)
    actual = np.column_stack([tube_loss(oracle.leave_out(j), X_test, y_test, False)
                              for j in rows[:4]]) - base[:, None]
    assert np.abs(loo - actual).max() <= 10 * tol * max(1.0, np.abs(y_test).max())


def test_hinge_path_is_unchanged_by_the_offsets():
    """The tube reuses the hinge's path with offsets c; c = 1 is the hinge's."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X[:120, :5])
    explainer = InfluenceExplainer(SVC(kernel="linear", C=0.5, tol=1e-12),
                                   smoothing=0).fit(X, y[:120])
    steps, _ = hinge_exact_steps(explainer.risk_)
    oracle = EstimatorRefit(SVC(kernel="linear", C=0.5, tol=1e-12), X, y[:120])
    rows = np.flatnonzero(np.abs(steps).max(axis=1) > 0)[:5]
    truth = np.array([np.r_[m.coef_.ravel(), m.intercept_] for m in
                      (oracle.leave_out(j) for j in rows)]) - explainer.params_
    assert np.abs(steps[rows] - truth).max() <= 2e-5 * np.abs(explainer.params_).max()


@pytest.mark.parametrize("config_id", ["lsvr-sw", "svr-sw", "svr-synthetic-sw"])
def test_group_exact_removal_matches_refits(config_id):
    """Removing a group follows the path with every member's two edges shrinking:
    groups mixing rows outside, on the edges of and inside the tube equal refits
    without them (parameters and test losses)."""
    explainer, oracle, X, y, X_test, y_test = case(config_id)
    tol = CONFIGS[config_id][3]
    r = np.abs(explainer.estimator_.predict(X) - y)
    eps = explainer.estimator_.epsilon
    pinned = np.flatnonzero(explainer.risk_.pinned[:, 0])
    outside = np.flatnonzero(r > eps + 1e-3)
    inside = np.flatnonzero(r < eps - 1e-3)
    groups = [outside[:5], np.r_[pinned[:2], outside[5:8], inside[:2]],
              np.r_[outside[8:20], pinned[2:4]], inside[:3]]
    def refit_without(rows):  # a true refit without the rows
        keep = np.setdiff1d(np.arange(len(y)), rows)
        return oracle.fit(oracle.sample_weight[keep], rows=keep)

    models = [refit_without(g) for g in groups]
    truth = np.array([params(m) for m in models]) - explainer.params_
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # test rows inside the tube
        got = explainer.group_influence(groups, X_test, y_test, method="exact")
    base = tube_loss(explainer.estimator_, X_test, y_test, False)
    actual = np.column_stack([tube_loss(m, X_test, y_test, False) for m in models]) \
        - base[:, None]
    scale = max(1.0, np.abs(y_test).max())
    print(f"[{config_id}] group exact: test-loss error "
          f"{np.abs(got - actual).max() / scale:.1e}, largest change "
          f"{np.abs(actual).max():.2e}")
    assert np.abs(actual[:, :3]).max() > 100 * tol * scale
    assert np.abs(got - actual).max() <= 10 * tol * scale
    assert not got[:, 3].any()  # rows strictly inside the tube: exactly 0
    # and the parameters, through the risk's own path (all of θ)
    from skinfluence._removal import tube_exact_steps

    steps, _ = tube_exact_steps(explainer.risk_, groups)
    error = np.abs(explainer.risk_.reported(steps) - truth).max()
    assert error <= tol * np.abs(explainer.params_).max()
