"""Exact and Newton removals when the objective without the rows has no optimum.

Oracles: scikit-learn refits without the removed rows (newton-cholesky, tol=1e-12;
Ridge's closed form), scikit-learn refusing a refit (one class left), and explicit
certificates that no optimum exists, computed without skinfluence: a direction along
which the remaining objective decreases forever (a separating hyperplane from a
hard-margin SVM, or an intercept pushed to −∞), or a null vector of the remaining
rows (numpy's SVD).
"""

import warnings

import numpy as np
import pytest
from _oracle import log_loss_rows
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from skinfluence import InfluenceExplainer, NoOptimumWarning

TIGHT = dict(solver="newton-cholesky", tol=1e-12, max_iter=1000)


def _cancer(n=100):
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)[:, :5]
    return X[:n], y[:n], X[n:n + 20], y[n:n + 20]


def _refit_loss_change(estimator, X, y, sw, Xt, yt, removed, loss):
    """Test-loss change of a real refit without ``removed``; None if sklearn refuses."""
    keep = np.ones(len(y), dtype=bool)
    keep[removed] = False
    if not (sw[keep] > 0).any():
        return None  # no weighted row left: nothing to fit
    full = clone(estimator).fit(X, y, sample_weight=sw)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a refit that does not converge is no oracle
            refit = clone(estimator).fit(X[keep], y[keep], sample_weight=sw[keep])
    except (ValueError, ConvergenceWarning):
        return None
    return loss(refit, Xt, yt) - loss(full, Xt, yt)


def _logloss(model, X, y):
    return log_loss_rows(model.coef_, model.intercept_ if model.fit_intercept else None,
                         X, np.searchsorted(model.classes_, y))


def _squared_error(model, X, y):
    return (model.predict(X) - y) ** 2


# -- case 1: a class removed (unpenalised intercept: no optimum) -------------------------
@pytest.mark.parametrize("method", ["newton", "exact"])
def test_removing_a_whole_class_is_nan_with_one_warning(method):
    X, y, Xt, yt = _cancer()
    explainer = InfluenceExplainer(LogisticRegression(**TIGHT)).fit(X, y)
    # before: finite column means 10.9 and 27.4 (exact), 0.60 and 1.18 (newton)
    with pytest.warns(NoOptimumWarning, match=r"2 group\(s\).*group 0: class 0 is left"):
        out = explainer.group_influence(y, Xt, yt, method=method)
    assert np.isnan(out).all()
    # oracle: scikit-learn refuses to refit on one class
    with pytest.raises(ValueError, match="class"):
        LogisticRegression(**TIGHT).fit(X[y == 1], y[y == 1])
    # and the remaining objective has no optimum: pushing the intercept towards the
    # remaining class lowers its log-loss without bound
    m = explainer.estimator_
    rest = y == 1
    losses = [log_loss_rows(m.coef_, m.intercept_ + t, X[rest], y[rest]).sum()
              for t in (0.0, 10.0, 100.0)]
    assert losses[0] > losses[1] > losses[2] > 0


@pytest.mark.parametrize("method", ["newton", "exact"])
def test_multinomial_class_removed_is_nan_others_match_refits(method):
    X, y = load_iris(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    perm = np.random.RandomState(0).permutation(len(y))
    X, y, Xt, yt = X[perm][:90], y[perm][:90], X[perm][90:], y[perm][90:]
    est = LogisticRegression(C=1.0, **TIGHT)
    explainer = InfluenceExplainer(est).fit(X, y)
    groups = [np.flatnonzero(y == 2), np.flatnonzero(y == 2)[:5]]
    with pytest.warns(NoOptimumWarning, match=r"group 0: class 2 is left"):
        out = explainer.group_influence(groups, Xt, yt, method=method)
    assert np.isnan(out[:, 0]).all() and np.isfinite(out[:, 1]).all()
    # oracle: without class 2 the refit is another model (two classes, not three)
    assert len(clone(est).fit(X[y != 2], y[y != 2]).classes_) == 2
    # and the softmax objective of the rest falls as class 2's intercept goes to −∞
    m = explainer.estimator_
    shift = np.array([0.0, 0.0, 1.0])
    losses = [log_loss_rows(m.coef_, m.intercept_ - t * shift, X[y != 2],
                            y[y != 2]).sum() for t in (0.0, 10.0, 100.0)]
    assert losses[0] > losses[1] > losses[2] > 0
    if method == "exact":
        sw = np.ones(len(y))
        actual = _refit_loss_change(est, X, y, sw, Xt, yt, groups[1], _logloss)
        np.testing.assert_allclose(out[:, 1], actual, rtol=1e-6, atol=1e-9)


def test_one_vs_rest_class_removed_is_nan():
    X, y = load_iris(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    est = LinearSVC(C=0.5, tol=1e-10, max_iter=100_000)
    explainer = InfluenceExplainer(est).fit(X, y)
    with pytest.warns(NoOptimumWarning, match=r"group 1: class 1 is left"):
        out = explainer.group_influence(y, X[:5], y[:5], method="newton")
    assert np.isnan(out).all()
    # oracle: the refit without class 1 has two classes, one output: another model
    assert clone(est).fit(X[y != 1], y[y != 1]).coef_.shape[0] == 1


def test_leave_one_out_of_two_rows_is_nan():
    X, y, Xt, yt = _cancer()
    rows = [0, int(np.flatnonzero(y != y[0])[0])]
    explainer = InfluenceExplainer(LogisticRegression(**TIGHT)).fit(X[rows], y[rows])
    for method in ("newton", "exact"):
        # before: exact values up to 35 with no warning
        with pytest.warns(NoOptimumWarning, match=r"2 row\(s\).*row 0: class"):
            out = explainer.leave_one_out(Xt, yt, method=method)
        assert np.isnan(out).all()
    with pytest.raises(ValueError, match="class"):  # the oracle refuses too
        LogisticRegression(**TIGHT).fit(X[rows[:1]], y[rows[:1]])


def test_matrix_free_newton_is_nan_where_the_factorised_one_is():
    X, y, Xt, yt = _cancer()
    rows = [0, int(np.flatnonzero(y != y[0])[0]), 1, 2]
    sw = np.array([1.0, 1.0, 0.0, 0.0])
    for solver in ("cholesky", "cg"):
        explainer = InfluenceExplainer(LogisticRegression(**TIGHT),
                                       hessian_solver=solver)
        explainer.fit(X[rows], y[rows], sample_weight=sw)
        with pytest.warns(NoOptimumWarning, match=r"2 row\(s\)"):
            out = explainer.leave_one_out(Xt, yt, method="newton")
        assert np.isnan(out[:, :2]).all()
        np.testing.assert_array_equal(out[:, 2:], 0.0)


# -- case 2: zero sample weights -------------------------------------------------------
@pytest.mark.parametrize("class_weight", [None, "balanced"])
def test_zero_weight_rows_are_exactly_zero_and_the_rest_match_refits(class_weight):
    X, y, Xt, yt = _cancer(60)
    rng = np.random.RandomState(0)
    sw = np.where(rng.rand(len(y)) < 0.6, 0.0, rng.uniform(0.5, 2.0, len(y)))
    est = LogisticRegression(C=1.0, class_weight=class_weight, **TIGHT)
    explainer = InfluenceExplainer(est).fit(X, y, sample_weight=sw)
    zero = sw == 0
    for method in ("influence", "newton", "exact"):
        out = explainer.leave_one_out(Xt, yt, method=method)
        np.testing.assert_array_equal(out[:, zero], 0.0)  # before (exact): 1.9e-11
    exact = explainer.leave_one_out(Xt, yt, method="exact")
    for j in np.flatnonzero(~zero)[:8]:
        actual = _refit_loss_change(est, X, y, sw, Xt, yt, [j], _logloss)
        np.testing.assert_allclose(exact[:, j], actual, rtol=1e-6, atol=1e-9)
    groups = [np.flatnonzero(zero)[:5], np.flatnonzero(~zero)[:4]]
    out = explainer.group_influence(groups, Xt, yt, method="exact")
    np.testing.assert_array_equal(out[:, 0], 0.0)
    actual = _refit_loss_change(est, X, y, sw, Xt, yt, groups[1], _logloss)
    np.testing.assert_allclose(out[:, 1], actual, rtol=1e-6, atol=1e-9)


def test_two_weighted_rows_leave_one_class_each():
    X, y, Xt, yt = _cancer()
    sw = np.zeros(len(y))
    pos = [int(np.flatnonzero(y == 0)[0]), int(np.flatnonzero(y == 1)[0])]
    sw[pos] = 1.0
    explainer = InfluenceExplainer(LogisticRegression(**TIGHT)).fit(X, y,
                                                                     sample_weight=sw)
    # before: 24.2 and 10.1 against a refit 9.3 away, zero-weight rows 1.9e-11
    with pytest.warns(NoOptimumWarning, match=r"2 row\(s\)"):
        out = explainer.leave_one_out(Xt, yt, method="exact")
    assert np.isnan(out[:, pos]).all()
    np.testing.assert_array_equal(np.delete(out, pos, axis=1), 0.0)


# -- case 3: a group of every (weighted) row -------------------------------------------
@pytest.mark.parametrize("method", ["newton", "exact"])
def test_group_of_every_weighted_row_is_refused(method):
    X, y, Xt, yt = _cancer(40)
    sw = np.r_[np.ones(30), np.zeros(10)]
    explainer = InfluenceExplainer(LogisticRegression(**TIGHT)).fit(X, y,
                                                                     sample_weight=sw)
    for group in (np.arange(40), np.arange(30)):
        with pytest.raises(ValueError, match="group 1 holds every training row"):
            explainer.group_influence([[0], group], Xt, yt, method=method)


# -- case 4: max_result_bytes ----------------------------------------------------------
@pytest.mark.parametrize("method", ["influence", "newton", "exact"])
def test_group_influence_honours_max_result_bytes(method):
    X, y, Xt, yt = _cancer()
    explainer = InfluenceExplainer(LogisticRegression(**TIGHT),
                                   max_result_bytes=8 * 20 * 9).fit(X, y)
    groups = [[g] for g in range(10)]
    with pytest.raises(MemoryError, match="20 × 10"):
        explainer.group_influence(groups, Xt, yt, method=method)
    assert explainer.group_influence(groups[:9], Xt, yt, method=method).shape == (20, 9)
    with pytest.raises(MemoryError, match="10 × 6"):  # the (groups, params) steps
        explainer.set_params(max_result_bytes=8 * 50).group_influence(
            groups, Xt[:2], yt[:2], method=method)


# -- unpenalised coefficients: separation and flat directions --------------------------
def _separable_but_one():
    """Two clouds separated by x1 = 0, with one row of class 1 deep on the wrong side."""
    rng = np.random.RandomState(3)
    X = np.r_[rng.normal([-2.0, 0.0], 0.7, (12, 2)), rng.normal([2.0, 0.0], 0.7, (12, 2)),
              [[-1.0, 0.5], [1.0, -0.3]]]
    y = np.r_[np.zeros(12, int), np.ones(12, int), [1, 0]]
    return X, y


@pytest.mark.parametrize("method", ["newton", "exact"])
def test_removal_leaving_separable_rows_is_nan(method):
    X, y = _separable_but_one()
    est = LogisticRegression(C=np.inf, **TIGHT)
    explainer = InfluenceExplainer(est).fit(X, y)
    with pytest.warns(NoOptimumWarning, match="linearly separable"):
        out = explainer.leave_one_out(X, y, method=method)
        groups = explainer.group_influence([[24, 25], [0, 1]], X, y, method=method)
    bad = np.flatnonzero(np.isnan(out).any(axis=0))
    assert np.isnan(groups[:, 0]).all() and np.isfinite(groups[:, 1]).all()
    # oracle: without the flagged row(s) a hard-margin SVM separates the rest (every
    # margin positive), so the log-loss decreases forever along its direction
    for removed in [*([j] for j in bad), [24, 25]]:
        keep = np.setdiff1d(np.arange(len(y)), removed)
        svm = LinearSVC(C=1e6, tol=1e-12, max_iter=1_000_000).fit(X[keep], y[keep])
        assert (svm.decision_function(X[keep]) * np.where(y[keep] == 1, 1, -1)).min() > 0
    assert set(bad) <= {24, 25} and len(bad) >= 1
    # the other removals are finite and, exactly, the refits
    if method == "exact":
        for j in [0, 13]:
            actual = _refit_loss_change(est, X, y, np.ones(len(y)), X, y, [j], _logloss)
            np.testing.assert_allclose(out[:, j], actual, rtol=1e-6, atol=1e-9)


def test_separation_screen_agrees_with_linear_programs(monkeypatch):
    from skinfluence import _removal

    X, y = _separable_but_one()
    rng = np.random.RandomState(0)
    X2 = rng.normal(size=(80, 3))
    y2 = (X2[:, 0] + 0.3 * rng.normal(size=80) > 0).astype(int)
    for Xs, ys in [(X, y), (X2, y2)]:
        obj = InfluenceExplainer(LogisticRegression(C=np.inf, **TIGHT)).fit(
            Xs, ys).risk_
        removals = [np.array([j]) for j in range(len(ys))] + [np.array([24, 25])]
        screened = _removal.removal_defects(obj, removals)
        with monkeypatch.context() as m:
            m.setattr(_removal, "_certified", lambda *args: False)  # LP for all
            assert _removal.removal_defects(obj, removals) == screened


@pytest.mark.parametrize("method", ["newton", "exact"])
def test_too_few_rows_for_the_parameters_is_nan(method):
    X, y = load_diabetes(return_X_y=True)
    X, y = X[:11, :10], y[:11]  # 11 rows, 11 parameters, unpenalised
    explainer = InfluenceExplainer(LinearRegression()).fit(X, y)
    with pytest.warns(NoOptimumWarning, match="11 row.*moved by no remaining row"):
        out = explainer.leave_one_out(X, y, method=method)
    assert np.isnan(out).all()
    # oracle: without any row, [X, 1] has a null vector (the refit is not unique)
    Xt = np.hstack([X, np.ones((11, 1))])
    assert all(np.linalg.matrix_rank(np.delete(Xt, j, axis=0)) < 11 for j in range(11))


# -- property test: every finite exact removal is the refit -----------------------------
def _problem(seed, n, kind, fit_intercept, C):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 2))
    sw = np.where(rng.rand(n) < 0.3, 0.0, rng.uniform(0.5, 2.0, n))
    if kind == "ridge":
        y = X @ [1.0, -2.0] + rng.normal(size=n)
        sw[rng.randint(n)] = 1.0
        return X, y, sw, Ridge(alpha=C, fit_intercept=fit_intercept), _squared_error
    y = (X[:, 0] + rng.normal(size=n) > 0).astype(int)
    y[:2] = [0, 1]
    sw[:2] = rng.uniform(0.5, 2.0, 2)  # both classes weighted in the full fit
    return X, y, sw, LogisticRegression(C=C, fit_intercept=fit_intercept,
                                        **TIGHT), _logloss


def _class_unweighted(y, sw, removed):
    keep = np.ones(len(y), dtype=bool)
    keep[removed] = False
    return len(np.unique(y[keep & (sw > 0)])) < len(np.unique(y))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(3, 9),
       kind=st.sampled_from(["logistic", "ridge"]), fit_intercept=st.booleans(),
       C=st.sampled_from([0.1, 1.0, 10.0]))
def test_every_finite_exact_removal_is_the_refit(seed, n, kind, fit_intercept, C):
    X, y, sw, est, loss = _problem(seed, n, kind, fit_intercept, C)
    Xt, yt = X[::-1][:3] * 1.3, y[::-1][:3]
    rng = np.random.RandomState(seed + 1)
    groups = [np.sort(rng.choice(n, size=rng.randint(1, n), replace=False))
              for _ in range(3)]
    groups = [g for g in groups if (sw[np.setdiff1d(np.arange(n), g)] > 0).any()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoOptimumWarning)
        explainer = InfluenceExplainer(est).fit(X, y, sample_weight=sw)
        loo = explainer.leave_one_out(Xt, yt, method="exact")
        grouped = (explainer.group_influence(groups, Xt, yt, method="exact")
                   if groups else np.zeros((3, 0)))
    for removed, got in [*(([j], loo[:, j]) for j in range(n)),
                         *((g, grouped[:, i]) for i, g in enumerate(groups))]:
        actual = _refit_loss_change(est, X, y, sw, Xt, yt, removed, loss)
        unweighted = kind == "logistic" and _class_unweighted(y, sw, removed)
        if actual is None or unweighted:  # no refit, or a class with no weight left
            assert np.isnan(got).all() or not (sw[removed] > 0).any()
            continue
        assert np.isfinite(got).all()
        scale = max(1.0, np.abs(actual).max())
        np.testing.assert_allclose(got, actual, rtol=0, atol=1e-6 * scale)
