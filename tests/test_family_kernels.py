"""Kernel machines (SVC/SVR with any kernel, KernelRidge, GaussianProcessRegressor)
against refits of the real estimator.

Oracles: Richardson-extrapolated central differences of refits with the sample
weight of one row moved by ±h (``_oracle.EstimatorRefit``); for
GaussianProcessRegressor, which takes no sample weight, refits at the fitted
``kernel_`` (``optimizer=None``) with row j's noise ``alpha_j / s_j`` (its data-fit
term weighted by s_j). Leave-one-out: true refits without the row. The parameters
compared are the dual coefficients on every training row (zero off the support; a
refit without row j has β_j = 0) and the intercept.

libsvm refits (tol=1e-10) carry its float32 kernel cache: their finite differences
have a floor, measured and asserted per configuration (``CONFIGS``). Hinge / tube
solutions are piecewise linear in the weights: a row whose differences at h and h/4
disagree sits near a breakpoint (another row changing sides) and is not compared.
"""

import functools
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from _checks import expected_failed_checks
from _oracle import EstimatorRefit, max_rel_error
from _svm_data import assert_zero_weight_rows_drop_out, dataset, weights
from sklearn.base import clone
from sklearn.frozen import FrozenEstimator
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, WhiteKernel
from sklearn.kernel_ridge import KernelRidge
from sklearn.metrics.pairwise import rbf_kernel
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, SVR, OneClassSVM
from sklearn.utils.estimator_checks import parametrize_with_checks

from skinfluence import InfluenceExplainer
from skinfluence.perturbation import perturbation_influence


def cauchy(x, z):
    """A callable kernel (KernelRidge calls it on pairs of rows)."""
    return 1.0 / (1.0 + np.sum((x - z) ** 2))


def wide_rbf(X, Y):
    """A callable kernel (SVC calls it on whole matrices)."""
    return rbf_kernel(X, Y, gamma=0.3)


def dual_on_rows(model, n):
    """The dual coefficients on every training row, then the intercept (if any)."""
    if isinstance(model, KernelRidge | GaussianProcessRegressor):
        beta = model.dual_coef_ if isinstance(model, KernelRidge) else model.alpha_
        return np.asarray(beta).reshape(n, -1).T.ravel()
    beta = np.zeros(n)
    beta[model.support_] = model.dual_coef_[0]
    return np.r_[beta, model.intercept_]


def identified(explainer, rows):
    """Rows of [dual coefficients, intercept] with each output's β replaced by K β
    over every training row: the fitted function's values, identified even where β
    is not (K singular) and as well conditioned as the fit (β = K⁻¹ (K β) is not,
    for a nearly singular K of the support vectors)."""
    kmap = explainer.risk_.input_map
    m = kmap.n_train
    gram = kmap.cross_rows(explainer.risk_.inputs, np.arange(m))
    rows = np.array(rows, dtype=float, ndmin=2)
    for start in range(0, rows.shape[1] - m + 1, m):
        rows[:, start:start + m] = rows[:, start:start + m] @ gram
    return rows


def decision(model, X):
    values = model.decision_function(X) if hasattr(model, "decision_function") \
        else model.predict(X)
    return np.asarray(values).reshape(X.shape[0], -1).mean(axis=1)


LIBSVM = dict(tol=1e-10)
# id: (dataset, estimator, weights, h, rtol)
CONFIGS = {
    "krr-rbf-sw": ("diabetes", KernelRidge(alpha=0.3, kernel="rbf", gamma=0.1),
                   "random", 1e-2, 1e-6),
    "krr-poly-2targets": ("wave", KernelRidge(alpha=[0.5, 2.0], kernel="poly",
                                              degree=2, coef0=1.0), "uniform",
                          1e-2, 1e-6),
    "krr-callable-sw": ("wave", KernelRidge(alpha=0.1, kernel=cauchy), "random",
                        1e-2, 1e-6),
    "svc-rbf": ("bc", SVC(C=1.0, **LIBSVM), "uniform", 4e-3, 1e-4),
    "svc-poly-sw": ("moons", SVC(C=2.0, kernel="poly", degree=3, coef0=1.0,
                                 **LIBSVM), "random", 4e-3, 1e-4),
    "svc-callable-balanced": ("moons", SVC(C=1.0, kernel=wide_rbf,
                                           class_weight="balanced", **LIBSVM),
                              "uniform", 4e-3, 1e-4),
    "svr-rbf-sw": ("diabetes", SVR(C=1.0, epsilon=0.2, **LIBSVM), "random", 4e-3,
                   1e-4),
    "svr-poly": ("wave", SVR(C=1.0, kernel="poly", degree=2, coef0=1.0, epsilon=0.1,
                             **LIBSVM), "uniform", 4e-3, 1e-4),
}


def two_targets(name, y):
    return np.column_stack([y, np.cos(y)]) if name == "krr-poly-2targets" else y


@functools.cache
def case(config_id):
    data, estimator, kind, *_ = CONFIGS[config_id]
    X, y, X_test, y_test = dataset(data)
    y, y_test = two_targets(config_id, y), two_targets(config_id, y_test)
    sw = weights(kind, len(y))
    explainer = InfluenceExplainer(estimator).fit(X, y, sample_weight=sw)
    return explainer, EstimatorRefit(estimator, X, y, sw), X, y, X_test, y_test


@pytest.mark.parametrize("config_id", list(CONFIGS))
def test_features_rebuild_the_model(config_id):
    """φ(x)·w + b is the estimator's decision value / prediction at test points, and
    params_ its dual coefficients on the training rows."""
    explainer, _, X, y, X_test, _ = case(config_id)
    model = explainer.estimator_
    Z = explainer.risk_.decision(explainer.validate_test(
        X_test, test_loss="decision")[0])
    expected = np.asarray(model.decision_function(X_test) if hasattr(
        model, "decision_function") else model.predict(X_test)).reshape(Z.shape)
    assert max_rel_error(Z, expected) < 1e-10
    assert max_rel_error(identified(explainer, explainer.params_),
                         identified(explainer, dual_on_rows(model, len(y)))) < 1e-8
    assert explainer.optimality_ < 1e-8


@pytest.mark.parametrize("config_id", list(CONFIGS))
def test_influences_match_refits(config_id):
    """param_influence and the influence on decision values / predictions vs FD."""
    explainer, oracle, X, y, X_test, _ = case(config_id)
    h, rtol = CONFIGS[config_id][3:]
    n = len(y)
    pred = np.hstack([identified(explainer, explainer.param_influence()),
                      explainer.loss_influence(X_test, test_loss="decision").T])

    def functional(model):
        return np.r_[identified(explainer, dual_on_rows(model, n)).ravel(),
                     decision(model, X_test)]

    moving = np.arange(n)
    if isinstance(explainer.estimator_, SVC | SVR):
        # rows with a zero subgradient (outside the margin / inside the tube): no
        # influence at all; rows pinned on the margin / the tube's edges trade
        # their weight against their subgradient: no influence either (to
        # rounding). The refits do not move.
        dz = explainer.risk_.training_dz()[:, 0]
        pinned = explainer.risk_.pinned[:, 0]
        still, on = np.flatnonzero(dz == 0), np.flatnonzero(pinned)
        assert still.size and np.all(pred[still] == 0)
        assert on.size and np.abs(pred[on]).max() < 1e-10 * np.abs(pred).max()
        for j in (still[0], on[0]):
            assert np.abs(oracle.derivative(j, functional, h)).max() < 1e-5
        moving = np.flatnonzero((dz != 0) & ~pinned)
    rows = moving[np.linspace(0, len(moving) - 1, 5).astype(int)]
    errors = []
    for j in rows:
        pair = oracle.same_piece(j, functional, h)
        if pair is not None:
            errors.append(min(max_rel_error(pred[j], fd) for fd in pair))
    msg = f"[{config_id}] relative errors {np.max(errors):.1e} on {len(errors)} rows"
    print(msg)
    assert len(errors) >= 3, msg
    assert max(errors) <= rtol, msg


def _loo_stats(predicted, actual):
    a, b = predicted.ravel(), actual.ravel()
    return np.corrcoef(a, b)[0, 1], a @ b / (a @ a)


@pytest.mark.parametrize("config_id", ["krr-rbf-sw", "krr-poly-2targets"])
def test_kernel_ridge_exact_leave_one_out(config_id):
    """A linear smoother: the Newton step without a row is its exact refit."""
    explainer, oracle, X, y, X_test, y_test = case(config_id)
    n, rows = len(y), np.arange(0, len(y), 7)
    refits = [oracle.leave_out(j) for j in rows]
    # parameters: the refit's dual coefficients, 0 on the removed row
    actual = []
    for j, model in zip(rows, refits, strict=True):
        beta = np.asarray(model.dual_coef_).reshape(n - 1, -1)
        actual.append(np.insert(beta, j, 0.0, axis=0).T.ravel())
    actual = np.array(actual) - explainer.params_
    exact = explainer.param_change(rows, method="exact")
    assert max_rel_error(identified(explainer, exact),
                         identified(explainer, actual)) < 1e-8
    base = explainer.test_losses(X_test, y_test)
    changes = np.column_stack([((m.predict(X_test) - y_test) ** 2).reshape(
        len(y_test), -1).sum(axis=1) - base for m in refits])
    stats = {}
    for method in ("influence", "newton", "exact"):
        got = explainer.leave_one_out(X_test, y_test, method=method)[:, rows]
        stats[method] = _loo_stats(got, changes)
        if method != "influence":
            assert max_rel_error(got, changes) < 1e-8, (method, stats)
    print(f"[{config_id}] LOO (R, slope) {stats}")


def test_kernel_ridge_group_removal_is_exact():
    explainer, oracle, X, y, X_test, y_test = case("krr-rbf-sw")
    groups = [np.arange(5), np.arange(20, 35)]
    got = explainer.group_influence(groups, X_test, y_test, method="exact")
    base = explainer.test_losses(X_test, y_test)
    actual = []
    for members in groups:
        keep = np.setdiff1d(np.arange(len(y)), members)
        refit = oracle.fit(oracle.sample_weight[keep], rows=keep)
        actual.append((refit.predict(X_test) - y_test) ** 2 - base)
    assert max_rel_error(got, np.column_stack(actual)) < 1e-8


def test_svc_leave_one_out_matches_refits():
    """Exact hinge path vs true refits, on the decision values of training and test
    points; first-order and Newton estimates reported as R and slope. (The dual
    coefficients themselves are ill-determined by libsvm's float32 kernel cache when
    K is ill-conditioned: they are compared through the function they define.)"""
    explainer, _, X, y, X_test, _ = case("svc-rbf")
    # gamma="scale" is recomputed from the rows a refit sees; influences hold the
    # kernel fixed, so the refits use the fitted value
    gamma = 1.0 / (X.shape[1] * X.var())
    oracle = EstimatorRefit(clone(CONFIGS["svc-rbf"][1]).set_params(gamma=gamma), X, y)
    dz = explainer.risk_.training_dz()[:, 0]
    rows = np.r_[np.flatnonzero(dz != 0)[:6], np.flatnonzero(dz == 0)[:2]]
    refits = [oracle.leave_out(j) for j in rows]
    points = np.vstack([X, X_test])
    base = decision(explainer.estimator_, points)
    changes = np.column_stack([decision(m, points) - base for m in refits])
    zeros = np.zeros(len(points))
    stats, errors = {}, {}
    for method in ("influence", "newton", "exact"):
        got = explainer.leave_one_out(points, zeros, method=method,
                                      test_loss="decision")[:, rows]
        stats[method] = _loo_stats(got, changes)
        errors[method] = max_rel_error(got, changes)
    print(f"[svc-rbf] LOO decision values: relative errors {errors}; "
          f"(R, slope) {stats}")
    assert errors["exact"] < 1e-6, errors


def test_svr_leave_one_out():
    """One Newton step is a rough estimate (R and slope reported); the exact
    ε-insensitive solution path (as for the linear SVR) equals the refits."""
    explainer, _, X, y, X_test, y_test = case("svr-rbf-sw")
    # refits keep the fitted kernel (gamma="scale" would be recomputed without j)
    oracle = EstimatorRefit(clone(CONFIGS["svr-rbf-sw"][1]).set_params(
        gamma=explainer.estimator_._gamma), X, y, explainer.sample_weight_)
    rows = np.flatnonzero(explainer.risk_.training_dz()[:, 0] != 0)[:8]
    base = decision(explainer.estimator_, X_test)
    changes = np.column_stack([decision(oracle.leave_out(j), X_test) - base
                               for j in rows])
    stats = {m: _loo_stats(explainer.leave_one_out(X_test, y_test, method=m,
                                                   test_loss="decision")[:, rows],
                           changes)
             for m in ("influence", "newton")}
    print(f"[svr-rbf-sw] LOO decision (R, slope) {stats}")
    assert stats["newton"][0] > 0.5, stats
    exact = explainer.leave_one_out(X_test, y_test, method="exact",
                                    test_loss="decision")[:, rows]
    scale = np.abs(changes).max()
    assert np.abs(exact - changes).max() <= 1e-3 * scale  # libsvm's float32 floor


def test_cholesky_and_eigen_whitenings_agree():
    """W = L^{-T} (well-conditioned K) and W = U Λ^{-1/2} give the same influences."""
    from skinfluence.models import _kernel_map

    explainer, _, X, y, X_test, _ = case("krr-rbf-sw")
    assert explainer.risk_.input_map.rank == len(y)  # the Cholesky route
    sw = explainer.sample_weight_
    expected = explainer.loss_influence(X_test, y_test := X_test[:, 0])
    try:
        _kernel_map.KernelMap.CHOLESKY_MIN_PIVOT = np.inf  # force the eigen route
        eigen = clone(explainer).fit(X, y, sample_weight=sw)
    finally:
        _kernel_map.KernelMap.CHOLESKY_MIN_PIVOT = 1e-8
    assert not np.allclose(eigen.risk_.X, explainer.risk_.X)  # another whitening
    assert max_rel_error(eigen.loss_influence(X_test, y_test), expected) < 1e-9
    assert max_rel_error(eigen.params_, explainer.params_) < 1e-9


# -- Gaussian process: the posterior mean at fixed hyperparameters ---------------------
def _gp_refit(model, X, y, noise, rows=None):
    keep = np.arange(len(y)) if rows is None else rows
    gp = GaussianProcessRegressor(kernel=model.kernel_, alpha=noise[keep],
                                  optimizer=None)
    return gp.fit(X[keep], y[keep])


def test_gaussian_process_matches_refits():
    """A row's weight multiplies its data-fit term: noise alpha_j / s_j."""
    X, y, X_test, _ = dataset("wave")
    gp = GaussianProcessRegressor(RBF(1.0), alpha=0.05)
    explainer = InfluenceExplainer(gp).fit(X, y)
    model, n = explainer.estimator_, len(y)
    pred = np.hstack([explainer.param_influence(), explainer.transform(X_test).T])

    def derivative(j, h=1e-2):
        def value(t):
            noise = np.full(n, 0.05)
            noise[j] /= 1.0 + t
            refit = _gp_refit(model, X, y, noise)
            return np.r_[refit.alpha_, refit.predict(X_test)]

        def central(step):
            return (value(step) - value(-step)) / (2 * step)
        return n * (4 * central(h / 2) - central(h)) / 3

    err = max(max_rel_error(pred[j], derivative(j)) for j in (0, 11, 33))
    print(f"[gp-rbf] relative error {err:.1e}")
    assert err < 1e-6


def test_gaussian_process_white_kernel_leave_one_out():
    """A WhiteKernel adds noise on the training rows only: exact LOO vs refits."""
    X, y, X_test, y_test = dataset("wave")
    gp = GaussianProcessRegressor(RBF(1.0) + WhiteKernel(0.1), alpha=1e-3)
    explainer = InfluenceExplainer(gp).fit(X, y)
    model, n, rows = explainer.estimator_, len(y), np.arange(0, 60, 9)
    base = explainer.test_losses(X_test, y_test)
    changes = np.column_stack([
        (_gp_refit(model, X, y, np.full(n, 1e-3), np.delete(np.arange(n), j))
         .predict(X_test) - y_test) ** 2 - base for j in rows])
    got = explainer.leave_one_out(X_test, y_test, method="exact")[:, rows]
    assert max_rel_error(got, changes) < 1e-8


def test_gaussian_process_normalize_y_refused():
    X, y, _, _ = dataset("wave")
    with pytest.raises(TypeError, match="normalize_y=True.*Standardise y"):
        InfluenceExplainer(GaussianProcessRegressor(normalize_y=True)).fit(X, y)


# -- inputs: precomputed kernels, sparse X, pipelines ---------------------------------
def test_precomputed_kernel_matches_the_rbf_kernel():
    X, y, X_test, _ = dataset("moons")
    direct = InfluenceExplainer(SVC(gamma=0.5, **LIBSVM)).fit(X, y)
    pre = InfluenceExplainer(SVC(kernel="precomputed", **LIBSVM)).fit(
        rbf_kernel(X, gamma=0.5), y)
    a = direct.loss_influence(X_test, test_loss="decision")
    b = pre.loss_influence(rbf_kernel(X_test, X, gamma=0.5), test_loss="decision")
    assert max_rel_error(b, a) < 1e-6
    krr = KernelRidge(alpha=0.2, kernel="precomputed")
    got = InfluenceExplainer(krr).fit(rbf_kernel(X), y.astype(float)).transform(
        rbf_kernel(X_test, X))
    want = InfluenceExplainer(KernelRidge(alpha=0.2, kernel="rbf")).fit(
        X, y.astype(float)).transform(X_test)
    assert max_rel_error(got, want) < 1e-8


def test_sparse_and_pipeline_inputs():
    X, y, X_test, _ = dataset("bc")
    dense_scores = InfluenceExplainer(SVC(**LIBSVM)).fit(X, y).loss_influence(
        X_test, test_loss="decision")
    sparse_scores = InfluenceExplainer(SVC(**LIBSVM)).fit(
        sp.csr_matrix(X), y).loss_influence(sp.csr_matrix(X_test), test_loss="decision")
    assert max_rel_error(sparse_scores, dense_scores) < 1e-6
    scaler = StandardScaler().fit(2 * X + 1)
    direct = InfluenceExplainer(SVC(**LIBSVM)).fit(scaler.transform(2 * X + 1), y)
    pipe = InfluenceExplainer(make_pipeline(StandardScaler(), SVC(**LIBSVM))).fit(
        2 * X + 1, y)
    assert max_rel_error(pipe.loss_influence(2 * X_test + 1, test_loss="decision"),
                         direct.loss_influence(scaler.transform(2 * X_test + 1),
                                               test_loss="decision")) < 1e-8


def test_smoothed_hinge_approaches_the_exact_one():
    X, y, X_test, _ = dataset("moons")
    model = SVC(C=1.0, **LIBSVM)
    explainer = InfluenceExplainer(model).fit(X, y)
    exact = identified(explainer, explainer.param_influence())
    errors = [max_rel_error(identified(explainer, InfluenceExplainer(
        model, smoothing=t).fit(X, y).param_influence()), exact) for t in (1e-2, 1e-4)]
    assert errors[1] < errors[0] and errors[1] < 0.05, errors


def test_analyses_refit_on_the_inputs_not_the_features():
    """validate() refits the estimator on risk_.inputs (the kernel features would be
    another model): for KernelRidge the Newton estimate is exact."""
    from skinfluence.analysis import validate

    explainer, _, X, y, X_test, y_test = case("krr-rbf-sw")
    result = validate(explainer, X_test, y_test, k=4, method="newton")
    np.testing.assert_allclose(result.predicted, result.actual, rtol=1e-7,
                               atol=1e-12)


@pytest.mark.parametrize("estimator", [
    SVC(kernel="linear", **LIBSVM), SVC(gamma=0.5, **LIBSVM),
    SVR(kernel="linear", **LIBSVM), SVR(gamma=0.5, **LIBSVM)],
    ids=["svc-linear", "svc-rbf", "svr-linear", "svr-rbf"])
def test_rows_of_zero_weight(estimator):
    """libsvm drops rows of zero weight and indexes support_ among the rest: the
    dual coefficients must land on the right rows. Such rows change nothing, so the
    influences are those of the fit without them (times n / n_kept: n·∂/∂s_j)."""
    assert_zero_weight_rows_drop_out(estimator)


def test_newton_frames_use_theta_steps():
    """most_influential(as_frame=True, method="newton") applies Δθ in θ-space (not
    the reported dual coefficients): for KernelRidge it is the exact refit."""
    explainer, oracle, X, y, X_test, y_test = case("krr-poly-2targets")
    frame = explainer.most_influential(X_test[:3], y_test[:3], k=2, as_frame=True,
                                       method="newton")
    base = explainer.test_losses(X_test[:3], y_test[:3])
    for _, row in frame.iterrows():
        t, j = int(row["test_row"]), int(row["training_row"])
        refit = oracle.leave_out(j).predict(X_test[t:t + 1])
        actual = ((refit - y_test[t:t + 1]) ** 2).sum() - base[t]
        assert abs(row["loo_change"] - actual) <= 1e-8 * max(abs(actual), 1e-3)
    with pytest.raises(ValueError, match="dfbetas"):
        explainer.summary_frame(dfbetas=True)


# -- refusals ---------------------------------------------------------------------
@pytest.mark.parametrize("estimator, message", [
    (OneClassSVM(), "OneClassSVM is not supported.*unsupervised"),
])
def test_one_class_svm_refused(estimator, message):
    X, y, _, _ = dataset("moons")
    with pytest.raises(TypeError, match=message):
        InfluenceExplainer(estimator).fit(X, y)


def test_multiclass_kernel_svc_refused():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(60, 3)), np.repeat([0, 1, 2], 20)
    with pytest.raises(ValueError, match="Only binary classification"):
        InfluenceExplainer(SVC()).fit(X, y)
    frozen = FrozenEstimator(SVC().fit(X, y))  # fitted on three classes
    with pytest.raises(TypeError, match="kernel='rbf'.*one-vs-one"):
        InfluenceExplainer(frozen).fit(X[y < 2], y[y < 2])


def test_input_perturbation_refused():
    explainer, _, X, y, X_test, y_test = case("krr-rbf-sw")
    with pytest.raises(NotImplementedError, match="kernel machines"):
        perturbation_influence(explainer, X_test, y_test)


def test_kernel_that_changes_between_calls_is_detected():
    calls = []

    def drifting(A, B):
        calls.append(1)
        return rbf_kernel(A, B) * (1.0 + 0.1 * len(calls))

    X, y, _, _ = dataset("moons")
    with pytest.raises(ValueError, match="Could not rebuild"):
        InfluenceExplainer(SVC(kernel=drifting)).fit(X, y)


@pytest.mark.parametrize("estimator", [
    KernelRidge(alpha=0.5, kernel="rbf"), SVC(gamma=0.5),
    GaussianProcessRegressor(RBF(1.0), optimizer=None)])
def test_frozen_model_fitted_on_other_rows_is_detected(estimator):
    X, y, _, _ = dataset("moons")
    frozen = FrozenEstimator(clone(estimator).fit(X[:60], y[:60]))
    with pytest.raises(ValueError, match="fitted on other rows"):
        InfluenceExplainer(frozen).fit(X[20:], y[20:])


def test_model_changed_after_fit_is_detected():
    explainer = clone(case("svc-rbf")[0])
    X, y, X_test, _ = dataset("bc")
    explainer.fit(X, y)
    explainer.estimator_.dual_coef_[0, 0] *= 2
    with pytest.raises(ValueError, match="changed after"):
        explainer.loss_influence(X_test, test_loss="decision")


@parametrize_with_checks(
    [InfluenceExplainer(SVC()), InfluenceExplainer(KernelRidge()),
     InfluenceExplainer(SVR())],
    expected_failed_checks=expected_failed_checks(),
)
def test_sklearn_compatible_kernel_machines(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        check(estimator)
