"""NuSVC and NuSVR (models/nusvm.py) against refits of the real estimators.

Oracle: refits of NuSVC / NuSVR with changed sample weights (libsvm at tol=1e-10).
The parameters are read off each refit independently of skinfluence: NuSVC's
ρ̂ = ν Σ s / Σ |dual_coef_| (libsvm's dual constraint Σ α = ν Σ s with
dual_coef_ = α ỹ / ρ), NuSVR's ε = |y − f| on the rows strictly on the tube's edges.
"""

import functools
import warnings

import numpy as np
import pytest
from _checks import expected_failed_checks
from _oracle import EstimatorRefit, max_rel_error
from _svm_data import assert_zero_weight_rows_drop_out, dataset, weights
from sklearn.base import clone
from sklearn.svm import NuSVC, NuSVR, OneClassSVM
from sklearn.utils.estimator_checks import parametrize_with_checks

from skinfluence import FlatTestLossWarning, InfluenceExplainer, NoOptimumWarning

LIBSVM = dict(tol=1e-10)
# id: (dataset, estimator, weights); ν n not an integer for uniform weights (else
# the optimum sits where ρ / ε is not differentiable in the weights)
CONFIGS = {
    "nusvc-linear-bc-sw": ("bc", NuSVC(kernel="linear", nu=0.3, **LIBSVM), "random"),
    "nusvc-linear-moons": ("moons", NuSVC(kernel="linear", nu=0.41, **LIBSVM),
                           "uniform"),
    "nusvc-rbf-moons": ("moons", NuSVC(nu=0.37, gamma=1.0, **LIBSVM), "uniform"),
    "nusvc-rbf-bc-sw": ("bc", NuSVC(nu=0.33, **LIBSVM), "random"),
    "nusvr-linear-diabetes-sw": ("diabetes", NuSVR(kernel="linear", nu=0.45, C=0.1,
                                                   **LIBSVM), "random"),
    "nusvr-linear-wave": ("wave", NuSVR(kernel="linear", nu=0.41, C=0.01, **LIBSVM),
                          "uniform"),
    "nusvr-rbf-wave": ("wave", NuSVR(nu=0.45, C=2.0, gamma=0.5, **LIBSVM), "uniform"),
    "nusvr-rbf-diabetes-sw": ("diabetes", NuSVR(nu=0.3, C=1.0, gamma=0.1, **LIBSVM),
                              "random"),
}
H, RTOL = 4e-3, 1e-4  # libsvm's float32 kernel cache limits the refits


@functools.cache
def case(config_id):
    data, estimator, kind = CONFIGS[config_id]
    X, y, X_test, y_test = dataset(data)
    sw = weights(kind, len(y))
    explainer = InfluenceExplainer(estimator).fit(X, y, sample_weight=sw)
    return explainer, EstimatorRefit(estimator, X, y, sw), X, y, X_test, y_test


def duals(model, n):
    beta = np.zeros(n)
    beta[model.support_] = model.dual_coef_[0]
    return beta


def rho(model, sw):
    """libsvm's ρ of a NuSVC: Σ α = ν Σ s, dual_coef_ = α ỹ / ρ."""
    return model.nu * sw.sum() / np.abs(model.dual_coef_).sum()


def tube_width(model, X, y, sw):
    """NuSVR's ε: |y − f| on the rows with 0 < |dual_coef_| < C s."""
    psi = np.abs(duals(model, len(y))) / (model.C * sw)
    edge = (psi > 1e-6) & (psi < 1 - 1e-6)
    assert edge.any()
    return float(np.median(np.abs(y - model.predict(X))[edge]))


def reported(model, X, y, sw):
    """params_ as read off a refit: [coef_ or dual coefficients, intercept_, ρ / ε]."""
    first = model.coef_[0] if model.kernel == "linear" else duals(model, len(y))
    extra = rho(model, sw) if isinstance(model, NuSVC) else tube_width(model, X, y, sw)
    return np.r_[first, model.intercept_, extra]


def own_loss(model, X_test, y_test, sw, rho_fit):
    """The model's own row term at test points, in the scale skinfluence uses (for
    NuSVC ρ_int = ρ / ρ̂ at the fit: ρ_int max(0, 1 − ỹ f/ρ) − ν ρ_int)."""
    nu = model.nu
    if isinstance(model, NuSVC):
        scale = rho(model, sw) / rho_fit
        yt = np.where(y_test == model.classes_[1], 1.0, -1.0)
        return scale * (np.maximum(0, 1 - yt * model.decision_function(X_test)) - nu)
    eps = tube_width(model, model._X_fit, model._y_fit, sw)
    return np.maximum(0, np.abs(y_test - model.predict(X_test)) - eps) + nu * eps


def _refit_with_data(oracle):
    """The oracle's refits keep their training data (for ε)."""
    fit = oracle.fit

    def with_data(sample_weight, rows=None):
        model = fit(sample_weight, rows)
        model._X_fit, model._y_fit = oracle.X, oracle.y
        model._sw = np.asarray(sample_weight, dtype=float)
        return model
    return with_data


def _value(model, X_test):
    return model.decision_function(X_test) if isinstance(model, NuSVC) \
        else model.predict(X_test)


@pytest.mark.parametrize("config_id", list(CONFIGS))
def test_objective_rebuilds_the_fit(config_id):
    """θ̂ is the optimum of R (∇R = 0 from the dual coefficients), params_ is what
    the estimator reports, and the decision values are rebuilt."""
    explainer, oracle, X, y, X_test, _ = case(config_id)
    model = explainer.estimator_
    assert explainer.optimality_ < 1e-8
    assert np.abs(explainer.risk_.gradient()).max() < 1e-10
    assert max_rel_error(explainer.params_,
                         reported(model, X, y, oracle.sample_weight)) < 1e-6
    Xt = explainer.validate_test(X_test, test_loss="decision")[0]
    Z = explainer.risk_.decision(Xt)
    value = Z[:, 0] / Z[:, 1] if isinstance(model, NuSVC) else Z[:, 0]
    assert max_rel_error(value, _value(model, X_test)) < 1e-8


@pytest.mark.parametrize("config_id", list(CONFIGS))
def test_influences_match_refits(config_id):
    """param_influence (ρ / ε included), the influence on the decision value /
    prediction (``test_loss="decision"``, NuSVR's ``transform``) and on the default
    test loss vs central finite differences of refits, for rows inside, on and
    beyond the margin / tube."""
    explainer, oracle, X, y, X_test, y_test = case(config_id)
    oracle.fit = _refit_with_data(oracle)
    model, sw = explainer.estimator_, oracle.sample_weight
    rho_fit = rho(model, sw) if isinstance(model, NuSVC) else None
    decision = explainer.loss_influence(X_test, test_loss="decision")
    pred = np.hstack([explainer.param_influence(), decision.T,
                      explainer.loss_influence(X_test, y_test).T])
    if isinstance(model, NuSVR):  # transform: the influence on predict
        assert max_rel_error(explainer.transform(X_test), decision) < 1e-12

    def functional(m):
        return np.r_[reported(m, X, y, m._sw), _value(m, X_test),
                     own_loss(m, X_test, y_test, m._sw, rho_fit)]

    kind = np.abs(explainer.risk_.training_dz()[:, 0])
    pinned = explainer.risk_.pinned[:, 0]
    groups = [np.flatnonzero(kind == 0), np.flatnonzero(pinned),
              np.flatnonzero((kind > 0) & ~pinned)]
    assert all(g.size for g in groups[1:])
    rows = np.concatenate([g[np.linspace(0, len(g) - 1, min(3, len(g))).astype(int)]
                           for g in groups if g.size])
    errors = []
    for j in rows:
        pair = oracle.same_piece(j, functional, H)
        if pair is not None:
            errors.append(min(max_rel_error(pred[j], fd) for fd in pair))
    msg = f"[{config_id}] relative errors {np.max(errors):.1e} on {len(errors)} rows"
    print(msg)
    assert len(errors) >= 4, msg
    assert max(errors) <= RTOL, msg


# measured Newton R: 0.67, 0.47, 0.35 (every removal changes ν Σ s, so ρ / ε and
# the rows on the kinks move: the true change crosses breakpoints)
@pytest.mark.parametrize("config_id, r_min", [
    ("nusvc-rbf-moons", 0.6), ("nusvr-linear-wave", 0.4), ("nusvr-rbf-wave", 0.3)])
def test_newton_leave_one_out_tracks_refits(config_id, r_min):
    """leave_one_out(method="newton"/"influence") of the decision values vs true
    refits without each row (R and slope reported: removing a row moves rows
    across the margin / tube, which a Newton step does not see); method="exact"
    follows the solution path with ρ / ε moving and equals the refits."""
    explainer, oracle, X, y, X_test, y_test = case(config_id)
    oracle.fit = _refit_with_data(oracle)
    X_test, y_test = X_test[:10], y_test[:10]
    base = _value(explainer.estimator_, X_test)
    actual = np.array([_value(oracle.leave_out(j), X_test) - base
                       for j in range(len(y))]).T
    stats = {}
    for method in ("influence", "newton"):
        with warnings.catch_warnings():  # NaN where one Newton step is undefined
            warnings.simplefilter("ignore", NoOptimumWarning)
            got = explainer.leave_one_out(X_test, y_test, method=method,
                                          test_loss="decision")
        ok = np.isfinite(got).all(axis=0)
        assert ok.mean() > 0.9
        a, b = got[:, ok].ravel(), actual[:, ok].ravel()
        stats[method] = (np.corrcoef(a, b)[0, 1], a @ b / (a @ a))
    print(f"[{config_id}] LOO decision values (Pearson R, slope) {stats}")
    assert stats["newton"][0] > r_min, stats  # piecewise linear: a rough estimate
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exact = explainer.leave_one_out(X_test, y_test, method="exact",
                                        test_loss="decision")
    ok = np.isfinite(exact).all(axis=0)
    # a removal whose path meets a degenerate vertex (the rows left on the kinks do
    # not fix b and ρ / ε: no unique optimum along the way) is NaN, and said so
    assert ok.all() or any(issubclass(w.category, NoOptimumWarning) for w in caught)
    error = np.abs(exact - actual)[:, ok].max() / np.abs(actual).max()
    print(f"[{config_id}] exact LOO relative error {error:.1e} "
          f"({ok.sum()} of {ok.size} rows)")
    assert ok.sum() >= 5 and error < 1e-4  # libsvm's floor


@pytest.mark.parametrize("config_id", ["nusvc-rbf-moons", "nusvr-linear-diabetes-sw",
                                       "nusvr-rbf-diabetes-sw"])
def test_exact_group_removal_matches_refits(config_id):
    """Groups (support vectors, rows off the support, mixed): the ν-path to the
    weights without them equals refits without them, ρ / ε moving along."""
    explainer, oracle, X, y, X_test, y_test = case(config_id)
    oracle.fit = _refit_with_data(oracle)
    rng = np.random.RandomState(0)
    dz = explainer.risk_.training_dz()[:, 0]
    groups = [np.flatnonzero(dz != 0)[:4], np.flatnonzero(dz == 0)[:4],
              rng.choice(len(y), size=6, replace=False)]
    base = _value(explainer.estimator_, X_test)
    actual = []
    for g in groups:
        keep = np.setdiff1d(np.arange(len(y)), g)
        actual.append(_value(oracle.fit(oracle.sample_weight[keep], rows=keep), X_test)
                      - base)
    actual = np.column_stack(actual)
    got = explainer.group_influence(groups, X_test, method="exact",
                                    test_loss="decision")
    error = np.abs(got - actual).max() / np.abs(actual).max()
    print(f"[{config_id}] group exact relative error {error:.1e}")
    assert error < 1e-4


def test_weight_is_multiplicity_and_class_weight_is_ignored():
    """The semantics the objective assumes: weight 2 is the row twice (NuSVC and
    NuSVR), and libsvm's NuSVC ignores class_weight (so does the objective)."""
    X, y, _, _ = dataset("bc")
    sw = np.ones(len(y))
    sw[3] = 2.0
    Xd, yd = np.vstack([X, X[3:4]]), np.r_[y, y[3]]
    for est in (NuSVC(kernel="linear", nu=0.3, **LIBSVM),
                NuSVR(kernel="linear", nu=0.3, **LIBSVM)):
        a = clone(est).fit(X, y, sample_weight=sw)
        b = clone(est).fit(Xd, yd)
        assert np.abs(a.coef_ - b.coef_).max() < 1e-6
    weighted = NuSVC(nu=0.3, class_weight={0: 3.0}, **LIBSVM).fit(X, y)
    plain = NuSVC(nu=0.3, **LIBSVM).fit(X, y)
    assert np.array_equal(weighted.dual_coef_, plain.dual_coef_)
    ex = InfluenceExplainer(NuSVC(nu=0.3, class_weight={0: 3.0}, **LIBSVM)).fit(X, y)
    assert np.all(ex.risk_.class_weight == 1.0) and ex.optimality_ < 1e-8


@pytest.mark.parametrize("config_id", ["nusvc-rbf-moons", "nusvr-rbf-wave"])
def test_smoothing_approaches_the_exact_hinge(config_id):
    """smoothing=t > 0: the smooth hinges' curvature replaces the pins; as t → 0
    the influences approach the exact ones."""
    explainer, _, X, y, X_test, _ = case(config_id)
    exact = explainer.loss_influence(X_test, test_loss="decision")
    smooth = InfluenceExplainer(clone(explainer.estimator), smoothing=1e-5).fit(X, y)
    assert smooth.risk_.pinned is None
    approx = smooth.loss_influence(X_test, test_loss="decision")
    assert max_rel_error(approx, exact) < 1e-2


def test_refusals():
    X, y, _, _ = dataset("moons")
    with pytest.raises(TypeError, match="OneClassSVM is not supported.*no label"):
        InfluenceExplainer(OneClassSVM()).fit(X, y)
    rng = np.random.default_rng(0)
    X3, y3 = rng.normal(size=(60, 3)), np.repeat([0, 1, 2], 20)
    with pytest.raises(ValueError, match="Only binary classification"):
        InfluenceExplainer(NuSVC(nu=0.2)).fit(X3, y3)


_ONE_LABEL = {
    "check_classifiers_one_label_sample_weights": (
        "NuSVC itself fails it: libsvm drops the rows of zero weight and raises "
        "'specified nu is infeasible' (the message does not name the classes)"),
}


@parametrize_with_checks(
    [InfluenceExplainer(NuSVC(nu=0.3)), InfluenceExplainer(NuSVR())],
    expected_failed_checks=expected_failed_checks(
        lambda est: _ONE_LABEL if isinstance(est.estimator, NuSVC) else {}),
)
def test_sklearn_compatible_nu_svms(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        check(estimator)


@pytest.mark.parametrize("estimator", [
    NuSVC(kernel="linear", nu=0.41, **LIBSVM), NuSVC(nu=0.41, gamma=1.0, **LIBSVM),
    NuSVR(kernel="linear", nu=0.41, C=0.3, **LIBSVM),
    NuSVR(nu=0.41, gamma=1.0, **LIBSVM)],
    ids=["nusvc-linear", "nusvc-rbf", "nusvr-linear", "nusvr-rbf"])
def test_rows_of_zero_weight(estimator):
    """libsvm drops rows of zero weight (support_ indexes the rest) and they are not
    in ν Σ s: the fit is the one without them, and so are the influences of the
    other rows (times n / n_kept: n·∂/∂s_j)."""
    assert_zero_weight_rows_drop_out(estimator)


def test_sparse_inputs():
    """Sparse X (libsvm's sparse fit, sparse coef_) gives the dense answers."""
    import scipy.sparse as sp
    explainer, _, X, y, X_test, _ = case("nusvc-linear-bc-sw")
    sw = explainer.sample_weight_
    sparse = InfluenceExplainer(clone(explainer.estimator)).fit(
        sp.csr_matrix(X), y, sample_weight=sw)
    assert max_rel_error(sparse.param_influence(), explainer.param_influence()) < 1e-6


def test_named_test_losses_see_the_decision_value():
    """NuSVC's decision value is f/ρ, a ratio of two outputs: log_loss and hinge
    are losses of it (one output: the binomial log-loss), by the chain rule from the
    decision-value influence (checked against refits above). Regression: log_loss
    was the softmax over the three internal outputs (an IndexError)."""
    explainer, _, X, y, X_test, y_test = case("nusvc-rbf-bc-sw")
    decision = explainer.loss_influence(X_test, test_loss="decision")
    value = explainer.estimator_.decision_function(X_test)
    yt = np.where(y_test == explainer.classes_[1], 1.0, -1.0)
    slope = {"log_loss": -yt / (1.0 + np.exp(yt * value)),
             "hinge": -yt * (yt * value < 1)}
    for name, dloss in slope.items():
        with warnings.catch_warnings():  # the hinge is flat beyond the margin
            warnings.simplefilter("ignore", FlatTestLossWarning)
            got = explainer.loss_influence(X_test, y_test, test_loss=name)
        assert max_rel_error(got, dloss[:, None] * decision) < 1e-10


def test_influences_keep_the_pinned_rows_on_their_kink():
    """Rows pinned on a kink a·z = 0 that combines outputs (NuSVC: ρ − ỹ f = 0,
    NuSVR: ±(f − y) − ε = 0) stay on it: a·Δz_i = 0 for every influence row."""
    for config_id in ("nusvc-linear-bc-sw", "nusvr-rbf-wave"):
        explainer = case(config_id)[0]
        risk = explainer.risk_
        influence = explainer._scoring().influence_rows(np.arange(len(risk.y)))
        pins = risk.pin_gradients()
        assert pins.shape[1] == risk.pinned.sum() > 0
        assert np.abs(influence @ pins).max() < 1e-8 * np.abs(influence).max()


@pytest.mark.parametrize("config_id", ["nusvc-rbf-moons", "nusvr-rbf-wave"])
def test_param_change_exact_is_the_refits_parameters(config_id):
    """param_change(method="exact"): params_ of refits without each row (NuSVC's
    reported dual coefficients and intercept are f/ρ's: the change is mapped exactly,
    not linearised in ρ), compared through K β (β is not unique where K is
    singular) plus the intercept and ρ / ε."""
    explainer, oracle, X, y, *_ = case(config_id)
    n = len(y)
    rows = np.arange(0, n, 9)
    sw = explainer.sample_weight_
    got = explainer.param_change(rows, method="exact")
    truth = np.array([
        reported(oracle.leave_out(j), np.delete(X, j, 0), np.delete(y, j),
                 np.delete(sw, j)) for j in rows])
    truth = np.hstack([np.insert(truth[:, :n - 1], 0, 0.0, axis=1), truth[:, n - 1:]])
    for i, j in enumerate(rows):  # the refit has no row j: its β_j is 0
        truth[i, :n] = np.insert(truth[i, 1:n], j, 0.0)
    truth -= explainer.params_
    K = explainer.risk_.input_map.cross_rows(explainer.risk_.inputs, np.arange(n))
    got[:, :n], truth[:, :n] = got[:, :n] @ K, truth[:, :n] @ K
    error = np.abs(got - truth).max() / np.abs(truth).max()
    print(f"[{config_id}] exact param_change relative error {error:.1e}")
    assert error < 1e-4
