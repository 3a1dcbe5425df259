"""Hessian solvers: conjugate gradients and the data-space (Woodbury) solver give the
Cholesky answers, on every kind of objective each supports (flat softmax directions,
balanced offsets, L1 active sets, penalised or unpenalised or no intercept, several
outputs, sparse X); the Cholesky path itself is checked against refits throughout the
test suite."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from skinfluence import InfluenceExplainer
from skinfluence._hessian import _blocked_cholesky
from skinfluence.groups import group_influence


def _cancer():
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)[:, :10]
    return X[:150], y[:150], X[150:190], y[150:190]


def _iris():
    X, y = load_iris(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    perm = np.random.RandomState(0).permutation(len(y))
    return X[perm][:100], y[perm][:100], X[perm][100:], y[perm][100:]


def _diabetes():
    X, y = load_diabetes(return_X_y=True)
    y2 = np.c_[y, X[:, 0] * 100 + y / 2]
    return X[:150], y2[:150], X[150:190], y2[150:190]


TIGHT = dict(solver="newton-cholesky", tol=1e-12, max_iter=1000)
CASES = {
    "binary": (LogisticRegression(**TIGHT), _cancer, None),
    "multinomial-null-space": (LogisticRegression(**TIGHT), _iris, None),
    "balanced-sample-weights": (LogisticRegression(class_weight="balanced", **TIGHT),
                                _cancer, "random"),
    "elastic-net-active-set": (LogisticRegression(solver="saga", l1_ratio=0.5, C=0.3,
                                                  tol=1e-14, max_iter=10**6),
                               _cancer, None),
    "smoothed-hinge": (SVC(kernel="linear", C=0.5, tol=1e-10), _cancer, None),
    "ridge-two-outputs": (Ridge(alpha=1.0), _diabetes, None),
    "sparse": (LogisticRegression(**TIGHT), lambda: tuple(
        sp.csr_matrix(a) if i % 2 == 0 else a for i, a in enumerate(_cancer())), None),
    "liblinear-penalised-intercept": (
        LogisticRegression(solver="liblinear", tol=1e-12, intercept_scaling=3.0),
        _cancer, "random"),
    "no-intercept": (LogisticRegression(fit_intercept=False, **TIGHT), _cancer, None),
    "ridge-one-output": (Ridge(alpha=1.0), lambda: tuple(
        a[:, 0] if i % 2 else a for i, a in enumerate(_diabetes())), "random"),
}
#: Cases the data-space solver does not take (several outputs): checked to refuse.
MULTI_OUTPUT = {"multinomial-null-space", "ridge-two-outputs"}


@pytest.mark.parametrize("case, solver", [
    (case, solver) for solver in ("cg", "woodbury") for case in CASES
    if solver == "cg" or case not in MULTI_OUTPUT])
def test_iterative_solvers_match_cholesky(case, solver):
    estimator, data, weights = CASES[case]
    X, y, Xt, yt = data()
    sw = None if weights is None else np.random.RandomState(0).uniform(0.5, 2, len(y))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        smoothing = 0.01 if isinstance(estimator, SVC) else "auto"
        chol = InfluenceExplainer(estimator, hessian_solver="cholesky",
                                  smoothing=smoothing).fit(X, y, sw)
        cg = InfluenceExplainer(estimator, hessian_solver=solver, batch_size=16,
                                smoothing=smoothing).fit(X, y, sw)
    assert chol.hessian_solver_.name == "cholesky" and cg.hessian_solver_.name == solver
    assert cg.hessian_ is None

    def close(a, b):  # most_influential: NaN where the test loss is flat
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-8 * np.nanmax(np.abs(b)))

    close(cg.param_influence(), chol.param_influence())
    close(cg.loss_influence(Xt, yt), chol.loss_influence(Xt, yt))
    close(cg.leave_one_out(Xt, yt), chol.leave_one_out(Xt, yt))
    close(cg.self_influence(), chol.self_influence())
    close(cg.transform(Xt), chol.transform(Xt))
    idx_a, sc_a = cg.most_influential(Xt, yt, k=3, kind="abs")
    idx_b, sc_b = chol.most_influential(Xt, yt, k=3, kind="abs")
    close(sc_a, sc_b)
    groups = np.arange(len(y)) % 5
    close(group_influence(cg, groups, Xt, yt), group_influence(chol, groups, Xt, yt))
    if weights == "random" and "balanced" in case:
        for call in (lambda: cg.leave_one_out(Xt, yt, method="newton"),
                     lambda: group_influence(cg, groups, Xt, yt, method="newton")):
            with pytest.raises(NotImplementedError, match="hessian_solver='cholesky'"):
                call()
        return
    # Newton without the p × p Hessian: leverages and steps solved for row by row
    # (measured ≤ 2e-9 against the factorised downdate), groups through their
    # Jacobians
    close(cg.leverages(), chol.leverages())
    close(cg.leave_one_out(Xt, yt, method="newton"),
          chol.leave_one_out(Xt, yt, method="newton"))
    close(group_influence(cg, groups, Xt, yt, method="newton"),
          group_influence(chol, groups, Xt, yt, method="newton"))


def test_cholesky_only_methods_say_so():
    X, y, Xt, yt = _cancer()
    cg = InfluenceExplainer(LogisticRegression(**TIGHT), hessian_solver="cg").fit(X, y)
    with pytest.raises(NotImplementedError, match="hessian_solver='cholesky'"):
        cg.leave_one_out(Xt, yt, method="exact")


def test_woodbury_newton_is_true_leave_one_out_for_wide_ridge():
    """Ridge with more features than rows: the Newton step is the exact refit, so
    the data-space solver's Newton leave-one-out must equal true refits."""
    X, _, Xt, _ = _wide_sparse(n=60, d=400)
    X, Xt = X.toarray(), Xt.toarray()  # sparse Ridge refits cannot use "cholesky"
    rng = np.random.RandomState(1)
    coef = rng.standard_normal(400) * (rng.uniform(size=400) < 0.1)
    y, yt = X @ coef + 0.1 * rng.standard_normal(60), Xt @ coef
    model = Ridge(alpha=0.5, solver="cholesky")
    explainer = InfluenceExplainer(model, hessian_solver="woodbury").fit(X, y)
    predicted = explainer.leave_one_out(Xt, yt, method="newton")
    base = (model.fit(X, y).predict(Xt) - yt) ** 2
    for j in range(0, 60, 6):
        keep = np.arange(60) != j
        refit = Ridge(alpha=0.5, solver="cholesky").fit(X[keep], y[keep])
        # Ridge's objective ‖y − Xw − b‖² + α‖w‖²: its per-sample loss is (ŷ − y)²
        actual = (refit.predict(Xt) - yt) ** 2 - base
        np.testing.assert_allclose(predicted[:, j], actual, rtol=0,
                                   atol=1e-8 * np.abs(actual).max())


def test_exact_hinge_needs_cholesky():
    X, y, *_ = _cancer()
    with pytest.raises(NotImplementedError, match="hessian_solver='cholesky'"):
        InfluenceExplainer(SVC(kernel="linear"), hessian_solver="cg").fit(X, y)


def test_iteration_cap_warns():
    X, y, Xt, yt = _cancer()
    with pytest.warns(ConvergenceWarning, match="Conjugate gradients did not reach"):
        InfluenceExplainer(LogisticRegression(**TIGHT), hessian_solver="cg",
                           cg_max_iter=1).fit(X, y)


@pytest.mark.slow
def test_auto_solves_wide_sparse_data_in_data_space():
    """5,001 parameters, 200 rows: "auto" picks the data-space solver and matches the
    dense factorisation; with two outputs it falls back to conjugate gradients."""
    rng = np.random.RandomState(0)
    X = sp.random(250, 5000, density=0.01, random_state=rng, format="csr") * 5
    y = (np.asarray(X[:, :50].sum(axis=1)).ravel() + rng.standard_normal(250) > 0)
    y = y.astype(int)
    # lbfgs: newton-cholesky itself would factorise 5,001² per iteration (minutes)
    model = LogisticRegression(C=1.0, solver="lbfgs", tol=1e-10, max_iter=5000)
    auto = InfluenceExplainer(model).fit(X[:200], y[:200])
    assert auto.hessian_solver_.name == "woodbury"
    dense = InfluenceExplainer(model, hessian_solver="cholesky").fit(X[:200], y[:200])
    expected = dense.loss_influence(X[200:220], y[200:220])
    np.testing.assert_allclose(auto.loss_influence(X[200:220], y[200:220]), expected,
                               rtol=0, atol=1e-7 * np.abs(expected).max())
    y3 = y + (np.asarray(X[:, 50:100].sum(axis=1)).ravel() > 0.3)  # three classes
    ovr = InfluenceExplainer(Ridge(alpha=1.0)).fit(X[:200], np.c_[y3, y][:200])
    assert ovr.hessian_solver_.name == "cg"


def test_lissa_full_batch_converges_to_cholesky_and_is_seeded():
    X, y, Xt, yt = _cancer()
    model = LogisticRegression(C=0.1, **TIGHT)
    ref = InfluenceExplainer(model, hessian_solver="cholesky").fit(X, y)
    full = InfluenceExplainer(model, hessian_solver="lissa",
                              lissa_params=dict(depth=2000)).fit(X, y)
    assert full.hessian_solver_.name == "lissa"
    expected = ref.loss_influence(Xt, yt)
    # measured 6e-16: the Neumann series at full batch is the exact inverse
    np.testing.assert_allclose(full.loss_influence(Xt, yt), expected, rtol=0,
                               atol=1e-9 * np.abs(expected).max())
    params = dict(depth=1000, batch_size=50, repeats=2)
    a = InfluenceExplainer(model, hessian_solver="lissa", lissa_params=params,
                           random_state=3).fit(X, y).loss_influence(Xt, yt)
    b = InfluenceExplainer(model, hessian_solver="lissa", lissa_params=params,
                           random_state=3, n_jobs=2).fit(X, y).loss_influence(Xt, yt)
    c = InfluenceExplainer(model, hessian_solver="lissa", lissa_params=params,
                           random_state=4).fit(X, y).loss_influence(Xt, yt)
    np.testing.assert_array_equal(a, b)  # same seed, any n_jobs: same answer
    assert not np.array_equal(a, c)
    assert np.corrcoef(a.ravel(), expected.ravel())[0, 1] > 0.99  # measured 0.998


@pytest.mark.parametrize("case", sorted(MULTI_OUTPUT))
def test_woodbury_refuses_several_outputs(case):
    estimator, data, _ = CASES[case]
    X, y, *_ = data()
    with pytest.raises(NotImplementedError, match="single-output.*hessian_solver='cg'"):
        InfluenceExplainer(estimator, hessian_solver="woodbury").fit(X, y)


def test_woodbury_refuses_exact_hinge_and_unpenalised_coefficients():
    X, y, *_ = _cancer()
    with pytest.raises(NotImplementedError, match="hessian_solver='cholesky'"):
        InfluenceExplainer(SVC(kernel="linear"), hessian_solver="woodbury").fit(X, y)
    X, y, *_ = _diabetes()
    with pytest.raises(ValueError, match="quadratic penalty on every coefficient"):
        InfluenceExplainer(LinearRegression(), hessian_solver="woodbury").fit(X, y[:, 0])


def test_woodbury_with_damping_matches_cholesky_on_unpenalised_model():
    X, y, Xt, yt = _diabetes()
    y, yt = y[:, 0], yt[:, 0]
    chol = InfluenceExplainer(LinearRegression(), hessian_solver="cholesky",
                              damping=1e-2).fit(X, y)
    wood = InfluenceExplainer(LinearRegression(), hessian_solver="woodbury",
                              damping=1e-2).fit(X, y)
    expected = chol.loss_influence(Xt, yt)
    np.testing.assert_allclose(wood.loss_influence(Xt, yt), expected, rtol=0,
                               atol=1e-8 * np.abs(expected).max())


@pytest.mark.parametrize("n, block", [(7, 3), (10, 5), (9, 16)])
def test_blocked_cholesky_matches_lapack(n, block):
    rng = np.random.RandomState(n)
    G = rng.standard_normal((n, n + 2)).astype(np.float32)
    A = G @ G.T + np.eye(n, dtype=np.float32)
    expected = np.linalg.cholesky(A.astype(np.float64))
    L = np.tril(_blocked_cholesky(A.copy(), block=block))
    assert L.dtype == np.float32
    np.testing.assert_allclose(L, expected, rtol=0, atol=1e-5 * np.abs(expected).max())


def _wide_sparse(n=120, d=600, seed=0):
    rng = np.random.RandomState(seed)
    X = sp.random(n + 30, d, density=0.02, random_state=rng, format="csr") * 3
    y = (np.asarray(X[:, :40].sum(axis=1)).ravel() + 0.3 * rng.standard_normal(n + 30)
         > np.median(np.asarray(X[:, :40].sum(axis=1)))).astype(int)
    return X[:n], y[:n], X[n:], y[n:]


@pytest.mark.parametrize("solver", ["cg", "woodbury"])
@pytest.mark.parametrize("n_jobs, batch_size", [(1, "auto"), (2, 7), (-1, 3)])
def test_iterative_solvers_same_for_any_n_jobs_and_batch(solver, n_jobs, batch_size):
    X, y, Xt, yt = _wide_sparse()
    model = LogisticRegression(**TIGHT)
    ref = InfluenceExplainer(model, hessian_solver=solver).fit(X, y)
    other = InfluenceExplainer(model, hessian_solver=solver, n_jobs=n_jobs,
                               batch_size=batch_size).fit(X, y)
    # columns are solved independently (CG stops per column); only the float32
    # triangular solves of "woodbury" block differently with the batch width
    # (measured ≤ 5e-14 relative)
    expected = ref.loss_influence(Xt, yt)
    np.testing.assert_allclose(other.loss_influence(Xt, yt), expected, rtol=0,
                               atol=1e-12 * np.abs(expected).max())
    idx, scores = other.most_influential(Xt, yt, k=4)
    idx_ref, scores_ref = ref.most_influential(Xt, yt, k=4)
    np.testing.assert_array_equal(idx, idx_ref)


@pytest.mark.slow
def test_woodbury_at_full_sparse_size_matches_conjugate_gradients():
    """The issue's shape: 20,000 × 100,000 CSR at 0.1 %. A whole-matrix factorisation
    at this n crashed OpenBLAS on 2-core machines; the blocked one must run, and its
    top-10 must be those of parameter-space CG (an independent float64 method)."""
    rng = np.random.RandomState(0)
    n, d, per_row, n_test = 20_000, 100_000, 100, 12
    cols = rng.randint(0, d, size=(n + n_test, per_row))
    X = sp.csr_matrix((rng.exponential(1.0, cols.size), cols.ravel(),
                       np.arange(0, cols.size + 1, per_row)), shape=(n + n_test, d))
    X.sum_duplicates()
    X = sp.csr_matrix(X.multiply(1.0 / np.sqrt(X.multiply(X).sum(axis=1))))
    w = np.zeros(d)
    w[rng.choice(d, 2000, replace=False)] = rng.standard_normal(2000) * 20
    y = (X @ w + 0.3 * rng.standard_normal(n + n_test) > 0).astype(int)
    model = LogisticRegression(solver="liblinear", tol=1e-8).fit(X[:n], y[:n])
    from sklearn.frozen import FrozenEstimator

    wood = InfluenceExplainer(FrozenEstimator(model)).fit(X[:n], y[:n])
    assert wood.hessian_solver_.name == "woodbury"  # "auto" at this shape
    cg = InfluenceExplainer(FrozenEstimator(model), hessian_solver="cg").fit(X[:n], y[:n])
    idx_w, sc_w = wood.most_influential(X[n:], y[n:], k=10)
    idx_c, sc_c = cg.most_influential(X[n:], y[n:], k=10)
    np.testing.assert_array_equal(idx_w, idx_c)
    np.testing.assert_allclose(sc_w, sc_c, rtol=0, atol=1e-8 * np.abs(sc_c).max())
    # leverages from the float32 factor's inverse diagonal vs w_j x̃_jᵀ H⁻¹ x̃_j with
    # x̃_j solved for (refined to float64) on a few rows
    leverages = wood.leverages()
    rows = np.arange(0, n, 2000)
    obj = wood.risk_
    J = obj.output_jacobians(X[:n][rows])[0].toarray()  # x̃_j
    w = obj.row_weight[rows, 0] * obj.loss.hessian(obj.decision(X[:n][rows]),
                                                   y[:n][rows])[:, 0, 0] / n
    direct = w * np.einsum("jp,pj->j", J, wood.hessian_solver_.solve(J.T))
    np.testing.assert_allclose(leverages[rows], direct, rtol=0, atol=1e-6)


@pytest.mark.parametrize("case", ["binary", "liblinear-penalised-intercept",
                                  "no-intercept", "smoothed-hinge"])
def test_woodbury_float32_factor_keeps_float64_answers(case, monkeypatch):
    """Past n = 8,192 the data-space factor is float32 (half the memory): solves are
    refined to float64 by CG; leverages (and so Newton steps) carry float32
    accuracy. Forced here on small data, against the Cholesky answers."""
    import skinfluence._hessian as hessian

    monkeypatch.setattr(hessian, "WOODBURY_FLOAT64_BYTES", 0)
    estimator, data, weights = CASES[case]
    X, y, Xt, yt = data()
    smoothing = 0.01 if isinstance(estimator, SVC) else "auto"
    chol = InfluenceExplainer(estimator, hessian_solver="cholesky",
                              smoothing=smoothing).fit(X, y)
    wood = InfluenceExplainer(estimator, hessian_solver="woodbury",
                              smoothing=smoothing).fit(X, y)
    assert wood.hessian_solver_._factor.dtype == np.float32
    expected = chol.loss_influence(Xt, yt)
    np.testing.assert_allclose(wood.loss_influence(Xt, yt), expected, rtol=0,
                               atol=1e-9 * np.abs(expected).max())
    assert wood.hessian_solver_.n_iter_ >= 2  # refinement did work
    # measured ≤ 1.2e-6 of the largest leverage, ≤ 2.1e-6 of the largest change
    np.testing.assert_allclose(wood.leverages(), chol.leverages(), rtol=0, atol=1e-5)
    newton = chol.leave_one_out(Xt, yt, method="newton")
    np.testing.assert_allclose(wood.leave_one_out(Xt, yt, method="newton"), newton,
                               rtol=0, atol=2e-5 * np.abs(newton).max())


def test_woodbury_refuses_a_system_larger_than_memory(monkeypatch):
    import skinfluence._hessian as hessian

    monkeypatch.setattr(hessian, "_physical_memory", lambda: 1000.0)
    X, y, *_ = _cancer()
    with pytest.raises(MemoryError, match=r"150 × 150 system.*hessian_solver='cg'"):
        InfluenceExplainer(LogisticRegression(**TIGHT),
                           hessian_solver="woodbury").fit(X, y)
