"""Lasso, ElasticNet, their CV variants and the LassoLars family against refits.

Oracle: refits of a coordinate-descent ``Lasso``/``ElasticNet`` (tol = 1e-14) with the
sample weight of one row moved by ±h (Richardson-extrapolated central differences,
h = 1e-2); LassoLars/LassoLarsCV/LassoLarsIC and the CV variants are refitted as the
coordinate-descent model at their (selected) ``alpha_`` and ``l1_ratio_``. Nothing
here uses skinfluence's objective.

Measured relative errors ‖pred − FD‖∞ / ‖FD‖∞ (requirement 1e-5), worst over the
rows and over params / loss / prediction: ≤ 1.2e-9 on every configuration below
(the numbers of a run are in each assertion's message). Exact leave-one-out against
refits without the row: ≤ 2e-10 relative.
"""

import functools
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from _checks import expected_failed_checks
from _oracle import EstimatorRefit, max_rel_error, params_of, split
from sklearn.base import clone
from sklearn.datasets import load_diabetes, make_regression
from sklearn.linear_model import (
    ElasticNet,
    ElasticNetCV,
    Lasso,
    LassoCV,
    LassoLars,
    LassoLarsCV,
    LassoLarsIC,
)
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from skinfluence import InfluenceExplainer, NoOptimumWarning

RTOL = 1e-5
H = 1e-2
TIGHT = dict(tol=1e-14, max_iter=1_000_000)


@functools.cache
def dataset(name):
    """(X_train, y_train, X_test, y_test)."""
    if name == "diabetes":  # 10 features; 300 training rows
        X, y = load_diabetes(return_X_y=True)
        return split(StandardScaler().fit_transform(X), (y - y.mean()) / y.std(), 300)
    if name == "synthetic":  # 20 features, 5 informative; 150 training rows
        X, y = make_regression(n_samples=200, n_features=20, n_informative=5,
                               noise=10.0, bias=2.0, random_state=0)
        return split(X, y / y.std(), 150)
    if name == "multi":  # 3 targets
        X, Y = make_regression(n_samples=200, n_features=8, n_informative=4,
                               n_targets=3, noise=10.0, random_state=1)
        return split(X, Y / Y.std(axis=0), 150)
    if name == "sparse":  # CSR, ~70 % zeros, non-centred columns
        rng = np.random.default_rng(5)
        X = rng.normal(1.0, 1.0, (200, 12)) * (rng.uniform(size=(200, 12)) < 0.3)
        y = X @ (rng.normal(size=12) * (rng.uniform(size=12) < 0.5)) + 0.5 + \
            rng.normal(0.0, 0.5, 200)
        return split(sp.csr_matrix(X), y, 150)
    raise KeyError(name)


def weights(kind, n):
    return None if kind == "uniform" else np.random.default_rng(1).uniform(0.5, 2.0, n)


def predictions(model, X):
    return np.asarray(model.predict(X)).reshape(X.shape[0], -1)


def half_squared_error(model, X, y):
    """½ Σ_k (y_k − ŷ_k)² per row: the family's own loss."""
    return 0.5 * ((np.reshape(y, (X.shape[0], -1)) - predictions(model, X)) ** 2
                  ).sum(axis=1)


# id: (dataset, explained estimator, oracle (None: the estimator), weights)
CONFIGS = {
    "diabetes-lasso-sw": ("diabetes", Lasso(alpha=0.02, **TIGHT), None, "random"),
    "synthetic-lasso": ("synthetic", Lasso(alpha=0.05, **TIGHT), None, "uniform"),
    "diabetes-enet-sw": ("diabetes", ElasticNet(alpha=0.05, l1_ratio=0.5, **TIGHT),
                         None, "random"),
    "synthetic-enet-nointercept-sw": (
        "synthetic", ElasticNet(alpha=0.1, l1_ratio=0.3, fit_intercept=False, **TIGHT),
        None, "random"),
    "synthetic-lasso-positive": (
        "synthetic", Lasso(alpha=0.02, positive=True, **TIGHT), None, "uniform"),
    "multi-lasso-sw": ("multi", Lasso(alpha=0.05, **TIGHT), None, "random"),
    "sparse-lasso-sw": ("sparse", Lasso(alpha=0.02, **TIGHT), None, "random"),
    "diabetes-lassocv": ("diabetes", LassoCV(cv=3, **TIGHT), "selected", "uniform"),
    "synthetic-enetcv-sw": ("synthetic", ElasticNetCV(l1_ratio=[0.2, 0.8], cv=3,
                                                      **TIGHT), "selected", "random"),
    "diabetes-lassolars": ("diabetes", LassoLars(alpha=0.02), "selected", "uniform"),
    "synthetic-lassolars": ("synthetic", LassoLars(alpha=0.05), "selected", "uniform"),
    "synthetic-lassolarscv": ("synthetic", LassoLarsCV(cv=3), "selected", "uniform"),
}


def selected_oracle(model):
    """The coordinate-descent model at ``model``'s (selected) penalty."""
    alpha = getattr(model, "alpha_", getattr(model, "alpha", None))
    l1_ratio = getattr(model, "l1_ratio_", 1.0)
    return ElasticNet(alpha=alpha, l1_ratio=l1_ratio, fit_intercept=model.fit_intercept,
                      **TIGHT)


@functools.cache
def case(config_id):
    name, estimator, oracle, kind = CONFIGS[config_id]
    X, y, X_test, y_test = dataset(name)
    sw = weights(kind, X.shape[0])
    explainer = InfluenceExplainer(estimator).fit(X, y, sample_weight=sw)
    if oracle == "selected":
        oracle = selected_oracle(explainer.estimator_)
    return explainer, EstimatorRefit(oracle or estimator, X, y, sw), X_test[:15], \
        y_test[:15]


@pytest.mark.parametrize("config_id", list(CONFIGS))
def test_influences_match_refits(config_id):
    """param_influence, loss_influence and transform vs FD of refits, 2 rows."""
    explainer, oracle, X_test, y_test = case(config_id)
    p = len(explainer.params_)
    zero = explainer.params_ == 0
    assert not zero.all()
    pred = np.hstack([explainer.param_influence(),
                      explainer.loss_influence(X_test, y_test).T,
                      explainer.transform(X_test).T])
    errors = []
    for j in (3, 40):
        def functional(model):
            return np.r_[params_of(model), half_squared_error(model, X_test, y_test),
                         predictions(model, X_test).mean(axis=1)]
        fd = oracle.derivative(j, functional, H)
        np.testing.assert_array_equal(pred[j, :p][zero], 0.0)  # active set
        errors += [max_rel_error(pred[j, :p], fd[:p]),
                   max_rel_error(pred[j, p:p + len(y_test)], fd[p:p + len(y_test)]),
                   max_rel_error(pred[j, p + len(y_test):], fd[p + len(y_test):])]
    msg = f"[{config_id}] zeros {int(zero.sum())}, errors {np.max(errors):.1e}"
    print(msg)
    assert max(errors) <= RTOL, msg


def test_lasso_lars_ic_is_the_one_sided_derivative_at_its_knot():
    """LassoLarsIC's alpha_ is a knot: one variable sits at 0 with |∇| = α. Its
    influence keeps that variable at zero: the derivative from the side where the
    refit keeps it there (the other side frees it: a kink)."""
    X, y, _, _ = dataset("diabetes")
    explainer = InfluenceExplainer(LassoLarsIC()).fit(X, y)
    oracle = EstimatorRefit(selected_oracle(explainer.estimator_), X, y)
    for j in (0, 5):
        got = explainer.param_influence([j])[0]
        sides = [oracle.derivative(j, params_of, H, side=s) for s in (1, -1)]
        errors = [max_rel_error(got, fd) for fd in sides]
        assert min(errors) <= 1e-6, errors  # one-sided Richardson: O(h²)
        assert max(errors) > 1e-2, errors  # a true kink: the other side differs


@pytest.mark.parametrize("estimator", [
    Lasso(alpha=0.02, **TIGHT), ElasticNet(alpha=0.05, l1_ratio=0.5, **TIGHT)],
    ids=["lasso", "enet"])
def test_leave_one_out_matches_refits_without_the_row(estimator):
    """Exact removal re-normalises the weights (c' = n/(S − s_j)) as the refit does."""
    X, y, X_test, y_test = dataset("diabetes")
    X_test, y_test = X_test[:30], y_test[:30]
    sw = weights("random", X.shape[0])
    explainer = InfluenceExplainer(estimator).fit(X, y, sample_weight=sw)
    oracle = EstimatorRefit(estimator, X, y, sw)
    # Removals that free a coefficient held at zero leave the active set (NaN with a
    # NoOptimumWarning: tested below): compared on the others.
    zero = explainer.params_ == 0
    refits = {j: oracle.leave_out(j) for j in range(0, X.shape[0], 10)}
    rows = np.array([j for j, m in refits.items()
                     if np.array_equal(params_of(m) == 0, zero)])
    assert len(rows) >= 0.8 * len(refits)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Removing .* leaves no refit",
                                NoOptimumWarning)
        steps = explainer.param_change(rows, method="exact")
        predicted = {m: explainer.leave_one_out(X_test, y_test, method=m)[:, rows]
                     for m in ("influence", "newton", "exact")}
    base = half_squared_error(explainer.estimator_, X_test, y_test)
    actual = np.empty_like(predicted["exact"])
    errors = []
    for i, j in enumerate(rows):
        refit = refits[j]
        errors.append(max_rel_error(steps[i], params_of(refit) - explainer.params_))
        actual[:, i] = half_squared_error(refit, X_test, y_test) - base
    stats = {}
    for m, values in predicted.items():
        a, b = values.ravel(), actual.ravel()
        stats[m] = (np.corrcoef(a, b)[0, 1], a @ b / (a @ a),
                    np.abs(a - b).max() / np.abs(b).max())
    msg = f"exact params {max(errors):.1e}; (R, slope, max err) {stats}"
    print(msg)
    assert max(errors) <= 1e-6, msg
    assert stats["exact"][2] <= 1e-6, msg
    assert stats["influence"][0] >= 0.99, msg


def test_lasso_on_2d_y_is_one_problem_per_target():
    X, Y, _, _ = dataset("multi")
    joint = InfluenceExplainer(Lasso(alpha=0.05, **TIGHT)).fit(X, Y)
    single = InfluenceExplainer(Lasso(alpha=0.05, **TIGHT)).fit(X, Y[:, 1])
    d = X.shape[1]
    np.testing.assert_allclose(joint.param_influence()[:, d:2 * d],
                               single.param_influence()[:, :d], rtol=1e-8, atol=1e-10)


def test_jittered_lars_refused():
    X, y, _, _ = dataset("diabetes")
    with pytest.raises(TypeError, match="jitter=None"):
        InfluenceExplainer(LassoLars(jitter=1e-3)).fit(X, y)


def test_loose_fit_warns_with_a_hint():
    X, y, _, _ = dataset("diabetes")
    with pytest.warns(Warning, match="tol=1e-12, max_iter=100000"):
        InfluenceExplainer(Lasso(alpha=0.02, tol=1e-1)).fit(X, y)


def test_lasso_lars_refuses_sample_weight_like_sklearn():
    X, y, _, _ = dataset("diabetes")
    with pytest.raises(TypeError, match="sample_weight"):
        InfluenceExplainer(LassoLars()).fit(X, y, sample_weight=np.ones(len(y)))


@parametrize_with_checks(
    [InfluenceExplainer(Lasso(alpha=0.01, tol=1e-10, max_iter=100_000)),
     InfluenceExplainer(ElasticNetCV(cv=2, alphas=3))],
    expected_failed_checks=expected_failed_checks(),
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


def test_clone_of_config_is_unfitted():  # the module-level estimators stay unfitted
    for _, estimator, _, _ in CONFIGS.values():
        assert not hasattr(clone(estimator), "coef_")


def test_group_removal_renormalises_the_weights():
    """group_influence(method="exact") of an ElasticNet = refits without the group
    (the weights of the remaining rows re-normalised, as scikit-learn does)."""
    X, y, X_test, y_test = dataset("diabetes")
    sw = weights("random", X.shape[0])
    estimator = ElasticNet(alpha=0.05, l1_ratio=0.5, **TIGHT)
    explainer = InfluenceExplainer(estimator).fit(X, y, sample_weight=sw)
    groups = [np.arange(0, 12), np.arange(100, 106)]
    oracle = EstimatorRefit(estimator, X, y, sw)
    base = half_squared_error(explainer.estimator_, X_test[:20], y_test[:20])
    got = explainer.group_influence(groups, X_test[:20], y_test[:20], method="exact")
    compared = 0
    for g, rows in enumerate(groups):
        keep = np.setdiff1d(np.arange(X.shape[0]), rows)
        refit = oracle.fit(sw[keep], rows=keep)
        if not np.array_equal(params_of(refit) == 0, explainer.params_ == 0):
            continue  # the active set moved: not comparable
        actual = half_squared_error(refit, X_test[:20], y_test[:20]) - base
        assert max_rel_error(got[:, g], actual) <= 1e-6
        compared += 1
    assert compared >= 1


def test_exact_removal_follows_a_growing_active_set():
    """Refits that activate a coefficient held at zero: the exact path on the full
    fit's active set was off by up to 100 % of the change with only a
    RuntimeWarning, then NaN with a NoOptimumWarning; now active-set Newton
    iterations follow the new active set, and every row equals the refit."""
    X, y = load_diabetes(return_X_y=True)
    X, y = X[:60], y[:60]
    estimator = Lasso(alpha=0.5, tol=1e-14, max_iter=100_000)
    explainer = InfluenceExplainer(estimator).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NoOptimumWarning)
        change = explainer.param_change(method="exact")
    zero = explainer.params_[:-1] == 0
    grown = []
    for j in range(len(y)):
        keep = np.arange(len(y)) != j
        refit = clone(estimator).fit(X[keep], y[keep])
        if (refit.coef_[zero] != 0).any():
            grown.append(j)
        truth = np.r_[refit.coef_, refit.intercept_] - explainer.params_
        assert np.abs(change[j] - truth).max() <= 1e-6 * np.abs(truth).max(), j
    assert len(grown) >= 3
    # the loss changes see the freed coefficients too
    X_test, y_test = X[:4], y[:4]
    loo = explainer.leave_one_out(X_test, y_test, method="exact")
    j = grown[0]
    keep = np.arange(len(y)) != j
    refit = clone(estimator).fit(X[keep], y[keep])
    actual = 0.5 * (refit.predict(X_test) - y_test) ** 2 \
        - 0.5 * (explainer.predict(X_test) - y_test) ** 2
    np.testing.assert_allclose(loo[:, j], actual, rtol=1e-6,
                               atol=1e-9 * np.abs(actual).max())
    # groups too: a group whose removal grows the active set, and another
    delta = explainer.group_influence([[grown[0]], [0, 1]], X_test, y_test,
                                      method="exact")
    np.testing.assert_allclose(delta[:, 0], actual, rtol=1e-6,
                               atol=1e-9 * np.abs(actual).max())
    keep = ~np.isin(np.arange(len(y)), [0, 1])
    refit = clone(estimator).fit(X[keep], y[keep])
    actual = 0.5 * (refit.predict(X_test) - y_test) ** 2 \
        - 0.5 * (explainer.predict(X_test) - y_test) ** 2
    np.testing.assert_allclose(delta[:, 1], actual, rtol=1e-6,
                               atol=1e-9 * np.abs(actual).max())


def test_exact_removal_grows_the_active_set_of_l1_logistic_regression():
    """The same active-set iterations for a non-quadratic loss (L1 logistic
    regression, liblinear with its penalised intercept): every exact removal
    equals a tight refit, including those whose refit zeroes a coefficient (the
    chord iterations on the full fit's active set stopped at a flipped sign, off
    by 1e-2, silently)."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)[:80, :8]
    y = y[:80]
    est = LogisticRegression(l1_ratio=1.0, C=0.3, solver="liblinear", tol=1e-12,
                             max_iter=10_000)
    explainer = InfluenceExplainer(est).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NoOptimumWarning)
        change = explainer.param_change(method="exact")
    zero = explainer.params_ == 0
    assert zero.any()
    changed = 0
    for j in range(len(y)):
        keep = np.arange(len(y)) != j
        refit = clone(est).fit(X[keep], y[keep])
        new = np.r_[refit.coef_.ravel(), refit.intercept_]
        changed += bool(np.any((new == 0) != zero))  # the active set changes
        truth = new - explainer.params_
        assert np.abs(change[j] - truth).max() <= 1e-5 * max(np.abs(truth).max(),
                                                              1e-3), j
    assert changed >= 1
