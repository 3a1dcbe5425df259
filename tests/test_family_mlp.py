"""MLPClassifier and MLPRegressor: the network risk against scikit-learn's own loss
and against tight refits of the real network.

Oracle (``tests/_oracle.py``, never imports skinfluence): scikit-learn's objective and
gradient (``_loss_grad_lbfgs``), and refits continued from the fitted weights with
changed sample weights, driven to a gradient of ~1e-15 (L-BFGS-B without the
relative-decrease stop, then Newton steps with a finite-difference Hessian). Models
are first brought to such a tight optimum and explained through FrozenEstimator.
"""

import warnings

import numpy as np
import pytest
from _checks import expected_failed_checks
from _oracle import (
    mlp_objective,
    mlp_params,
    mlp_refit,
    mlp_with_params,
)
from sklearn.datasets import load_breast_cancer, load_iris, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.frozen import FrozenEstimator
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from skinfluence import InfluenceExplainer, NoOptimumWarning
from skinfluence._hessian import SingularHessianWarning
from skinfluence.models import fitted_state
from skinfluence.models.mlp import mlp_objective as build

# -- data and tightly fitted networks -----------------------------------------------


def _iris():
    X, y = load_iris(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    return X[::3], y[::3], X[1::10], y[1::10]  # 50 train, 15 test, 3 classes


def _cancer():
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X[:120, :5])
    return X[:60], y[:60], X[60:75], y[60:75]  # binary


def _regression():
    X, Y = make_regression(75, 3, n_targets=2, noise=5.0, random_state=0)
    Y = Y / 100.0
    return X[:60], Y[:60], X[60:], Y[60:]


def _one_output():
    Xt, Yt, Xs, Ys = _regression()
    return Xt, Yt[:, 0], Xs, Ys[:, 0]


def _fit(model, X, y, sw):
    """The network at a tight stationary point of scikit-learn's objective."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y, sample_weight=sw)
    return mlp_with_params(model, mlp_refit(model, X, y, sw))


def _clf(activation, **kw):
    return MLPClassifier(hidden_layer_sizes=(3,), activation=activation, alpha=0.3,
                         solver="lbfgs", max_iter=3000, random_state=0, **kw)


def _reg(activation):
    return MLPRegressor(hidden_layer_sizes=(3,), activation=activation, alpha=0.3,
                        solver="lbfgs", max_iter=3000, random_state=0)


CASES = {
    "binary-tanh": (_cancer, lambda: _clf("tanh")),
    "multiclass-logistic": (_iris, lambda: _clf("logistic")),
    "multiclass-tanh": (_iris, lambda: _clf("tanh")),
    "regression-tanh": (_regression, lambda: _reg("tanh")),
    "regression-logistic": (_regression, lambda: _reg("logistic")),
    "regression1-tanh": (lambda: _one_output(), lambda: _reg("tanh")),
}


def _weights(n, seed=0):
    return np.random.default_rng(seed).uniform(0.5, 2.0, n)


def _setup(name):
    data, make = CASES[name]
    Xt, yt, Xs, ys = data()
    sw = _weights(len(yt))
    model = _fit(make(), Xt, yt, sw)
    explainer = InfluenceExplainer(FrozenEstimator(model)).fit(Xt, yt, sw)
    return model, explainer, (Xt, yt, Xs, ys, sw)


def _outputs(model, X, y):
    """The scored quantity: test log-loss (classifiers), prediction (regressors)."""
    if isinstance(model, MLPClassifier):
        P = np.clip(model.predict_proba(X), 1e-300, None)
        if P.shape[1] == 2 and len(model.classes_) == 2:
            P = P[:, [0, 1]]
        return -np.log(P[np.arange(len(y)), np.searchsorted(model.classes_, y)])
    return np.asarray(model.predict(X)).reshape(len(X), -1).mean(axis=1)


def _refit_derivative(model, Xt, yt, sw, j, f, h=1e-3):
    """n · ∂f(θ̂)/∂s_j by central differences of tight refits."""
    theta = mlp_params(model)
    vals = []
    for step in (h, -h):
        w = sw.copy()
        w[j] += step
        vals.append(f(mlp_with_params(model, mlp_refit(model, Xt, yt, w, theta))))
    return len(sw) * (vals[0] - vals[1]) / (2 * h)


# -- the objective mapping ----------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradient_is_sklearns_and_vanishes_at_optimum(name):
    data, make = CASES[name]
    Xt, yt, _, _ = data()
    sw = _weights(len(yt))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        loose = make().set_params(max_iter=30).fit(Xt, yt, sample_weight=sw)  # loose
    risk = build(loose, Xt, yt, sw)
    f = mlp_objective(loose, Xt, yt, sw)
    theta, n, S = mlp_params(loose), len(yt), sw.sum()
    h = 1e-6
    fd = np.array([(f(theta + h * e)[0] - f(theta - h * e)[0]) / (2 * h)
                   for e in np.eye(theta.size)]) * S / n  # R = (S/n) F
    g = risk.gradient()
    assert np.abs(g).max() > 1e-4  # away from the optimum: the check can fail
    np.testing.assert_allclose(g, f(theta)[1] * S / n, rtol=1e-10, atol=1e-15)
    assert np.abs(g - fd).max() <= 1e-7 * np.abs(g).max()
    tight = build(mlp_with_params(loose, mlp_refit(loose, Xt, yt, sw)), Xt, yt, sw)
    assert np.abs(tight.gradient()).max() < 1e-12


@pytest.mark.parametrize("activation", ["tanh", "logistic", "relu", "identity"])
def test_hessian_vector_products(activation):
    """R-operator products vs differences of the gradient; the exact Hessian's
    columns vs the products."""
    Xt, yt, _, _ = _iris()
    sw = _weights(len(yt))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = _clf(activation).fit(Xt, yt, sample_weight=sw)
    risk = build(model, Xt, yt, sw)
    f = mlp_objective(model, Xt, yt, sw)
    theta, scale = mlp_params(model), sw.sum() / len(yt)
    V = np.random.default_rng(1).standard_normal((theta.size, 3))
    h = 1e-5
    fd = np.stack([(f(theta + h * v)[1] - f(theta - h * v)[1]) / (2 * h)
                   for v in V.T], axis=1) * scale
    HV = risk.hessian_product(V)
    assert np.abs(HV - fd).max() <= 1e-7 * np.abs(fd).max()
    H = risk.hessian()
    np.testing.assert_allclose(H @ V, HV, rtol=0, atol=1e-12 * np.abs(HV).max())
    # the Hessian of a subset of rows, scaled to n (LiSSA's batches): two halves
    # average back to H (each keeps the penalty)
    n = len(yt)
    half = np.arange(n) < n // 3
    PV = risk.quad_penalty[:, None] * V
    parts = [(risk.hessian_product(V, rows=np.flatnonzero(m)) - PV) * m.sum() / n
             for m in (half, ~half)]
    np.testing.assert_allclose(parts[0] + parts[1] + PV, HV, rtol=0,
                               atol=1e-12 * np.abs(HV).max())


# -- influence vs refits ------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CASES))
def test_influence_matches_refits(name):
    model, ex, (Xt, yt, Xs, ys, sw) = _setup(name)
    assert ex.optimality_ < 1e-10
    if isinstance(model, MLPClassifier):
        scores = ex.loss_influence(Xs, ys)
    else:
        scores = ex.transform(Xs)  # influence on the prediction
    for j in (0, 7, 31):
        ref = _refit_derivative(model, Xt, yt, sw, j,
                                lambda m: _outputs(m, Xs, ys))
        err = np.abs(scores[:, j] - ref).max() / np.abs(ref).max()
        assert err <= 1e-5, (name, j, err)


def test_decision_influence_matches_refits():
    """test_loss="decision": the binary network's logit (its output before the link)."""
    model, ex, (Xt, yt, Xs, _, sw) = _setup("binary-tanh")
    scores = ex.loss_influence(Xs, test_loss="decision")

    def logit(m):
        return np.tanh(Xs @ m.coefs_[0] + m.intercepts_[0]) @ m.coefs_[1][:, 0] + \
            m.intercepts_[1][0]

    for j in (3, 20):
        ref = _refit_derivative(model, Xt, yt, sw, j, logit)
        assert np.abs(scores[:, j] - ref).max() <= 1e-5 * np.abs(ref).max()


def test_relu_off_the_kinks_matches_refits():
    """ReLU. At tight optima of small ReLU networks we found rows sitting on a kink
    (|pre-activation| ≈ 1e-11, no derivative) or units active on every row or none
    (flat directions: H singular). This network has no row within 0.1 of a kink
    (checked; a row at a kink would be excluded) but two dead and two always-active
    units: conjugate gradients solve on the range of H, where the refits move."""
    Xt, yt, Xs, _ = _regression()
    sw = _weights(len(yt))
    model = _fit(_reg("relu").set_params(hidden_layer_sizes=(4,)), Xt, yt, sw)
    pre = np.vstack([Xt, Xs]) @ model.coefs_[0] + model.intercepts_[0]
    assert np.abs(pre).min() > 0.1
    with warnings.catch_warnings():
        # the optimality check solves for the ~1e-15 gradient, whose round-off has
        # a component along the flat directions: CG reports it (zero curvature),
        # and the relative Newton step it returns is that noise (optimality_ ~6e-2)
        warnings.simplefilter("ignore", SingularHessianWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        ex = InfluenceExplainer(FrozenEstimator(model), hessian_solver="cg",
                                cg_tol=1e-13).fit(Xt, yt, sw)
    scores = ex.transform(Xs)
    for j in (2, 40):
        ref = _refit_derivative(model, Xt, yt, sw, j, lambda m: _outputs(m, Xs, None))
        assert np.abs(scores[:, j] - ref).max() <= 1e-5 * np.abs(ref).max()


def test_self_influence_param_influence_and_ranking():
    model, ex, (Xt, yt, Xs, ys, sw) = _setup("multiclass-logistic")
    j = 11
    ref_params = _refit_derivative(model, Xt, yt, sw, j, mlp_params)
    got = ex.param_influence([j])[0]
    # the softmax's shift direction is held fixed: compare on its complement
    shift = ex.risk_.fixed_directions()[:, 0]
    shift /= np.linalg.norm(shift)

    def project(v):
        return v - shift * (shift @ v)

    assert np.abs(project(got - ref_params)).max() <= 1e-5 * np.abs(ref_params).max()
    own = _refit_derivative(model, Xt, yt, sw, j,
                            lambda m: _outputs(m, Xt[[j]], yt[[j]]))[0]
    assert abs(ex.self_influence()[j] - own) <= 1e-5 * abs(own)
    idx, scores = ex.most_influential(Xs, ys, k=3)
    full = ex.loss_influence(Xs, ys)
    np.testing.assert_array_equal(idx, np.argsort(-full, axis=1)[:, :3])


def test_iterative_solvers_agree_with_cholesky():
    _, ex, (Xt, yt, Xs, ys, sw) = _setup("binary-tanh")
    ref = ex.loss_influence(Xs, ys)
    cg = InfluenceExplainer(ex.estimator, hessian_solver="cg", cg_tol=1e-12).fit(
        Xt, yt, sw)
    np.testing.assert_allclose(cg.loss_influence(Xs, ys), ref, rtol=1e-6,
                               atol=1e-8 * np.abs(ref).max())
    assert cg.hessian_solver_.reason == "hessian_solver='cg' was requested"
    # LiSSA's recursion on the R-operator's products (full batches: deterministic;
    # damped, so that it contracts quickly)
    damped = InfluenceExplainer(ex.estimator, damping=0.05).fit(Xt, yt, sw)
    lissa = InfluenceExplainer(ex.estimator, damping=0.05, hessian_solver="lissa",
                               lissa_params={"depth": 3000},
                               random_state=0).fit(Xt, yt, sw)
    want = damped.loss_influence(Xs, ys)
    err = np.abs(lissa.loss_influence(Xs, ys) - want).max() / np.abs(want).max()
    assert err < 1e-6, err


def test_diagnostics_and_analyses():
    """summary_frame, mislabel ranking and loo_score run on a network; the frame's
    own-loss change is leave_one_out(method="newton")'s diagonal."""
    from skinfluence.analysis import loo_score, mislabel_ranking

    model, ex, (Xt, yt, _, _, _) = _setup("multiclass-tanh")
    frame = ex.summary_frame()
    loo = ex.leave_one_out(Xt, yt, method="newton")
    np.testing.assert_allclose(frame["loo_loss_change"], np.diag(loo), rtol=1e-9,
                               atol=1e-14)
    assert "dfbetas_coefs_[1][2, 0]" in frame.columns
    top = ex.most_influential(Xt[:4], yt[:4], k=2, as_frame=True, method="newton")
    rows = top["training_row"].to_numpy(dtype=int).reshape(4, 2)
    np.testing.assert_allclose(top["loo_change"].to_numpy().reshape(4, 2),
                               np.take_along_axis(loo[:4], rows, axis=1), rtol=1e-9)
    assert len(mislabel_ranking(ex)) == len(yt)
    assert np.isfinite(loo_score(ex))


def test_pipeline_and_n_jobs():
    X, y, Xs, ys = _iris()
    pipe = make_pipeline(StandardScaler(), _clf("tanh"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        one = InfluenceExplainer(pipe, damping=0.1).fit(X * 3 + 1, y)
        two = InfluenceExplainer(pipe, damping=0.1, n_jobs=2, batch_size=4).fit(
            X * 3 + 1, y)
    np.testing.assert_allclose(two.loss_influence(Xs * 3 + 1, ys),
                               one.loss_influence(Xs * 3 + 1, ys), rtol=1e-10)


# -- non-convexity and non-convergence ----------------------------------------------


def _indefinite():
    """A network stopped after a few iterations: its Hessian is indefinite."""
    X, y, _, _ = _iris()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = MLPClassifier(hidden_layer_sizes=(4,), activation="identity",
                              alpha=1e-3, solver="lbfgs", max_iter=5,
                              random_state=0).fit(X, y)
    return model, X, y


def test_indefinite_hessian_is_reported_and_damping_fixes_it():
    model, X, y = _indefinite()
    with pytest.raises(ValueError, match=r"not positive definite.*smallest "
                       r"eigenvalue -[0-9.e+-]+.*damping") as info:
        InfluenceExplainer(FrozenEstimator(model)).fit(X, y)
    lam = float(str(info.value).split("smallest eigenvalue ")[1].split(",")[0])
    with pytest.warns(ConvergenceWarning, match="solver='lbfgs'|max_iter"):
        ex = InfluenceExplainer(FrozenEstimator(model), damping=-2 * lam).fit(X, y)
    assert np.isfinite(ex.loss_influence(X[:3], y[:3])).all()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # not at an optimum
        with pytest.warns(SingularHessianWarning, match="negative curvature"):
            InfluenceExplainer(FrozenEstimator(model), hessian_solver="cg").fit(X, y)


def test_non_convergence_hint():
    X, y, _, _ = _iris()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = MLPClassifier(hidden_layer_sizes=(3,), solver="adam", max_iter=20,
                              alpha=1.0, random_state=0).fit(X, y)
    with pytest.warns(ConvergenceWarning, match="adam and sgd never stop"):
        InfluenceExplainer(FrozenEstimator(model), damping=1.0).fit(X, y)


# -- removals -----------------------------------------------------------------------


@pytest.mark.slow
def test_newton_leave_one_out_vs_refits():
    """Newton steps with each row's exact Hessian vs tight leave-one-out refits; the
    exact removals are the refits."""
    model, ex, (Xt, yt, Xs, ys, sw) = _setup("multiclass-tanh")
    theta = mlp_params(model)
    base = _outputs(model, Xs, ys)
    actual = np.empty((len(ys), len(yt)))
    for j in range(len(yt)):
        w = sw.copy()
        w[j] = 0.0
        refit = mlp_with_params(model, mlp_refit(model, Xt, yt, w, theta))
        actual[:, j] = _outputs(refit, Xs, ys) - base
    first = ex.leave_one_out(Xs, ys, method="influence")
    newton = ex.leave_one_out(Xs, ys, method="newton")

    def fit(pred):
        r = np.corrcoef(pred.ravel(), actual.ravel())[0, 1]
        slope = (pred.ravel() @ actual.ravel()) / (pred.ravel() @ pred.ravel())
        return r, slope

    r_newton, s_newton = fit(newton)
    r_first, s_first = fit(first)
    print(f"LOO vs refits: newton R={r_newton:.5f} slope={s_newton:.4f}; "
          f"first order R={r_first:.5f} slope={s_first:.4f}")
    damped = InfluenceExplainer(ex.estimator, damping=1e-2).fit(Xt, yt, sw)
    r_damped, s_damped = fit(damped.leave_one_out(Xs, ys, method="newton"))
    print(f"damping=1e-2 newton R={r_damped:.5f} slope={s_damped:.4f}")
    r_dfirst, s_dfirst = fit(damped.leave_one_out(Xs, ys))
    r_dexact, s_dexact = fit(damped.leave_one_out(Xs, ys, method="exact"))
    print(f"damping=1e-2 first order R={r_dfirst:.5f} slope={s_dfirst:.4f}; "
          f"exact R={r_dexact:.5f} slope={s_dexact:.4f}")
    exact = ex.leave_one_out(Xs, ys, method="exact")  # every row: the refits
    assert np.abs(exact - actual).max() <= 1e-6 * np.abs(actual).max()
    assert r_newton > 0.995 and abs(s_newton - 1) < 0.1, (r_newton, s_newton)
    assert r_damped > 0.95  # the damped quadratic model: biased, by design
    assert r_newton > r_first and abs(s_newton - 1) < abs(s_first - 1)
    steps = ex.param_change(method="newton")
    assert steps.shape == (len(yt), len(ex.params_))


def _project(ex):
    """Projection on the complement of the fixed directions (a softmax's shift),
    along which neither the refits nor the estimates move."""
    F = ex.risk_.fixed_directions()
    return np.eye(F.shape[0]) - (F @ np.linalg.pinv(F) if F.shape[1] else 0.0)


def _rel(got, want):
    return np.abs(got - want).max() / np.abs(want).max()


# removals: (a few rows, rows whose one-step matrix A − H_j is indefinite: their
# Newton step is NaN and the exact iterations start from θ̂), found for these fits
EXACT_ROWS = {
    "binary-tanh": ((0, 7), (20, 49)),
    "multiclass-logistic": ((3, 31), ()),
    "regression-tanh": ((5,), (43,)),
    "regression1-tanh": ((1,), (0, 53)),
}


@pytest.mark.parametrize("name", sorted(EXACT_ROWS))
def test_exact_removal_matches_refits(name):
    """leave_one_out/param_change(method="exact") vs tight leave-one-out refits
    continued from the fitted weights, including rows without a Newton step."""
    model, ex, (Xt, yt, Xs, ys, sw) = _setup(name)
    plain, without_step = EXACT_ROWS[name]
    rows = list(plain + without_step)
    theta, P = mlp_params(model), _project(ex)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoOptimumWarning)  # the Newton NaN rows
        newton = ex.param_change(rows, method="newton")
    indefinite = np.isnan(newton).any(axis=1)
    np.testing.assert_array_equal(indefinite, np.isin(rows, without_step))
    with warnings.catch_warnings():
        warnings.simplefilter("error", NoOptimumWarning)  # every removal converges
        exact = ex.param_change(rows, method="exact")
        loo = ex.leave_one_out(Xs, ys, method="exact")
    base = _outputs(model, Xs, ys) if isinstance(model, MLPClassifier) else None
    for r, j in enumerate(rows):
        w = sw.copy()
        w[j] = 0.0
        refit = mlp_refit(model, Xt, yt, w, theta)
        assert _rel(P @ exact[r], P @ (refit - theta)) <= 1e-6, (name, j)
        if base is not None:  # the test log-loss at the refit
            actual = _outputs(mlp_with_params(model, refit), Xs, ys) - base
            assert _rel(loo[:, j], actual) <= 1e-6, (name, j)
        if not indefinite[r]:  # the Newton step is only an estimate of it
            assert _rel(P @ newton[r], P @ (refit - theta)) > 1e-4


def test_exact_removal_damped_and_tilted():
    """damping > 0: the refit held near θ̂ by (λ/2)‖θ − θ̂‖² (the damped
    Newton step is its first Newton step); a loose fit (∇R(θ̂) ≠ 0): the full fit's
    gradient is discounted (appendix B), checked against scikit-learn's objective."""
    model, _, (Xt, yt, _, _, sw) = _setup("multiclass-tanh")
    theta = mlp_params(model)
    ex = InfluenceExplainer(FrozenEstimator(model), damping=1e-2).fit(Xt, yt, sw)
    P = _project(ex)
    exact = ex.param_change([4, 17], method="exact")
    for r, j in enumerate((4, 17)):
        w = sw.copy()
        w[j] = 0.0
        want = mlp_refit(model, Xt, yt, w, theta, damping=1e-2) - theta
        assert _rel(P @ exact[r], P @ want) <= 1e-6
        plain = mlp_refit(model, Xt, yt, w, theta) - theta
        assert _rel(P @ exact[r], P @ plain) > 1e-2  # the damped refit differs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        loose = _clf("tanh").set_params(max_iter=10).fit(Xt, yt, sample_weight=sw)
        ex = InfluenceExplainer(FrozenEstimator(loose), damping=0.1).fit(Xt, yt, sw)
    theta = mlp_params(loose)
    tilt = mlp_objective(loose, Xt, yt, sw)(theta)[1] * sw.sum() / len(sw)
    assert np.abs(tilt).max() > 1e-4  # far from its optimum
    w = sw.copy()
    w[9] = 0.0
    want = mlp_refit(loose, Xt, yt, w, theta, damping=0.1, tilt=tilt) - theta
    got = ex.param_change([9], method="exact")[0]
    assert _rel(_project(ex) @ got, _project(ex) @ want) <= 1e-6
    untilted = mlp_refit(loose, Xt, yt, w, theta, damping=0.1) - theta
    assert _rel(_project(ex) @ got, _project(ex) @ untilted) > 1e-2


def test_group_removal_matches_refits():
    """group_influence(method="exact") vs refits without the group; "newton" is its
    first step (a group of one: the row's Newton step)."""
    model, ex, (Xt, yt, Xs, ys, sw) = _setup("regression-logistic")
    groups = [[0, 1, 2], [5, 6], [10, 30]]
    theta = mlp_params(model)
    exact = ex.group_influence(groups, Xs, ys, method="exact", test_loss="decision")
    steps = {}
    for g, rows in enumerate(groups):
        w = sw.copy()
        w[rows] = 0.0
        steps[g] = mlp_refit(model, Xt, yt, w, theta) - theta
        refit = mlp_with_params(model, theta + steps[g])
        actual = (np.asarray(refit.predict(Xs)) - np.asarray(model.predict(Xs))).mean(1)
        if g < 2:
            assert _rel(exact[:, g], actual) <= 1e-6
    # [10, 30]: R without them has two local minima; L-BFGS from θ̂ jumps to a far
    # one (‖Δθ‖∞ ≈ 1.49), the exact removal stops in θ̂'s basin (≈ 0.24): a
    # stationary point of scikit-learn's objective, with a positive definite Hessian
    w = sw.copy()
    w[[10, 30]] = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoOptimumWarning)
        ours = ex.risk_.params + _group_step(ex, [10, 30])
    f = mlp_objective(model, Xt, yt, w)
    assert np.abs(f(ours)[1]).max() < 1e-12
    H = np.stack([(f(ours + 1e-6 * e)[1] - f(ours - 1e-6 * e)[1]) / 2e-6
                  for e in np.eye(ours.size)])
    assert np.linalg.eigvalsh(0.5 * (H + H.T))[0] > 0
    assert np.abs(ours - theta).max() < 0.5 * np.abs(steps[2]).max()
    one = ex.group_influence([[5]], Xs, ys, method="newton")[:, 0]
    np.testing.assert_allclose(one, ex.leave_one_out(Xs, ys, method="newton")[:, 5],
                               rtol=1e-10)


def _group_step(ex, rows):
    from skinfluence._removal import group_steps

    return group_steps(ex.risk_, ex.hessian_solver_, ex.hessian_solver_.damped_hessian(),
                       [np.asarray(rows)], "exact")[0]


def test_exact_removal_without_optimum_is_nan():
    """Removing a class's only row: its output's intercept runs to −∞ (no refit),
    so the exact removal is NaN with a NoOptimumWarning; other rows are finite."""
    X, y, Xs, ys = _iris()
    keep = np.r_[np.flatnonzero(y != 2), np.flatnonzero(y == 2)[:1]]
    X, y = X[keep], y[keep]
    sw = np.ones(len(y))
    model = _fit(_clf("tanh"), X, y, sw)
    ex = InfluenceExplainer(FrozenEstimator(model)).fit(X, y, sw)
    lone = len(y) - 1
    with pytest.warns(NoOptimumWarning, match=f"row {lone}: no local minimum"):
        steps = ex.param_change([0, lone], method="exact")
    assert np.isfinite(steps[0]).all() and np.isnan(steps[1]).all()


def test_network_value_and_replace():
    """R(θ) = (S/n) F(θ) (scikit-learn's objective) away from the optimum; replace
    moves the parameters and row weights without touching the risk."""
    Xt, yt, _, _ = _iris()
    sw = _weights(len(yt))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        loose = _clf("logistic").set_params(max_iter=20).fit(Xt, yt, sample_weight=sw)
    risk = build(loose, Xt, yt, sw)
    theta = mlp_params(loose)
    moved = theta + 0.1 * np.random.default_rng(0).standard_normal(theta.size)
    w = sw.copy()
    w[3] = 0.0
    other = risk.replace(params=moved, row_weight=np.repeat(w[:, None], 3, axis=1))
    F = mlp_objective(loose, Xt, yt, w)(moved)
    assert abs(other.value() - F[0] * w.sum() / len(w)) <= 1e-12
    np.testing.assert_allclose(other.gradient(), F[1] * w.sum() / len(w), rtol=1e-10,
                               atol=1e-15)
    np.testing.assert_array_equal(risk.params, theta)  # unchanged
    with pytest.raises(ValueError, match="equal columns"):
        risk.replace(row_weight=np.ones((len(yt), 3)) * [1.0, 2.0, 1.0])


def test_linear_only_features_refuse_networks():
    _, ex, (Xt, yt, Xs, ys, sw) = _setup("binary-tanh")
    with pytest.raises(NotImplementedError, match="neural network"):
        ex.perturbation_influence(Xs, ys, [0])
    cg = InfluenceExplainer(ex.estimator, hessian_solver="cg").fit(Xt, yt, sw)
    with pytest.raises(NotImplementedError, match="hessian_solver='cholesky'"):
        cg.leave_one_out(Xs, ys, method="newton")
    with pytest.raises(NotImplementedError, match="hessian_solver='cholesky'"):
        cg.leave_one_out(Xs, ys, method="exact")
    with pytest.raises(NotImplementedError, match="hessian_solver='cholesky'"):
        cg.group_influence([[0, 1]], Xs, ys, method="exact")
    with pytest.raises(NotImplementedError, match="woodbury"):
        InfluenceExplainer(ex.estimator, hessian_solver="woodbury").fit(Xt, yt, sw)
    with pytest.raises(TypeError, match="early_stopping"):
        InfluenceExplainer(MLPClassifier(early_stopping=True)).fit(Xt, yt)
    assert ex.group_influence([[0, 1]], Xs, ys).shape == (len(ys), 1)


def test_params_layout_and_changed_model():
    model, ex, (Xt, yt, Xs, ys, _) = _setup("binary-tanh")
    np.testing.assert_array_equal(ex.params_, mlp_params(model))
    assert fitted_state(model).size == ex.params_.size
    model.coefs_[1][0, 0] += 1.0  # the frozen network changed after fit
    with pytest.raises(ValueError, match="changed after"):
        ex.loss_influence(Xs, ys)


# -- scikit-learn's estimator checks ------------------------------------------------
# The checks fit networks for ≤ 300 iterations on random data, far from a local
# minimum (smallest Hessian eigenvalues down to about −1.6 with damping=1): a large
# damping keeps every H + λI positive definite, so fit never refuses.

@parametrize_with_checks(
    [InfluenceExplainer(MLPClassifier(hidden_layer_sizes=(3,), solver="lbfgs",
                                      alpha=1.0, max_iter=300, random_state=0),
                        damping=100.0),
     InfluenceExplainer(MLPRegressor(hidden_layer_sizes=(3,), solver="lbfgs",
                                     alpha=1.0, max_iter=300, random_state=0),
                        damping=100.0)],
    expected_failed_checks=expected_failed_checks(),
)
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_refit_oracle_reads_a_network_s_decision_values(n_classes):
    """InfluenceDisplay(kind="loo") and analysis refits score a refit network by its
    decision values; MLPClassifier has no decision_function (AttributeError
    before). The log-loss at the values read from predict_proba equals
    scikit-learn's per-sample log-loss."""
    from skinfluence._refit import decision_values

    X, y = load_iris(return_X_y=True)
    keep = y < n_classes
    X, y = X[keep], y[keep]
    model = MLPClassifier(hidden_layer_sizes=(3,), alpha=1.0, solver="lbfgs",
                          max_iter=500, random_state=0).fit(X, y)
    explainer = InfluenceExplainer(FrozenEstimator(model), damping=1e-2).fit(X, y)
    Z = decision_values(model, X)
    y_enc = explainer.risk_.targets.encode(y, len(y))
    ours = explainer.risk_.loss.value_grad(Z, y_enc)[0]
    P = model.predict_proba(X)
    expected = -np.log(P[np.arange(len(y)), y])
    np.testing.assert_allclose(ours, expected, rtol=1e-10, atol=1e-12)
