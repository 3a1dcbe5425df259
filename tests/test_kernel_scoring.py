"""The kernel-space route of exact-hinge SVC / exact ε-insensitive SVR against the
general route (θ-space scoring in the whitened features with the dense
CholeskySolver, as every kernel machine was scored before it).

Agreement with refits of the estimator is tested in tests/test_family_kernels.py,
whose SVC/SVR cases now take this route.
"""

import warnings

import numpy as np
import pytest
from _oracle import max_rel_error
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer
from sklearn.metrics.pairwise import rbf_kernel
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, SVR
from test_family_kernels import CONFIGS, LIBSVM, case, dataset

from skinfluence import InfluenceExplainer
from skinfluence._hessian import CholeskySolver, PinnedDiagonalSolver, make_solver
from skinfluence._kernel_scoring import KernelScorer
from skinfluence._scoring import Scorer
from skinfluence.models._kernel_map import KernelFeatures, KernelMap
from skinfluence.models._losses import test_loss as resolve_test_loss

SVM_CONFIGS = [c for c in CONFIGS if c.startswith(("svc", "svr"))]
#: K of "svc-callable-balanced" (RBF, γ = 0.3 on 80 moons) is numerically singular:
#: the whitening drops its eigenvalues below n·ε·λ_max, which the general route
#: then lacks and the kernel route (exact kernel values) keeps.
TRUNCATED = {"svc-callable-balanced": 1e-8}


def wide_rbf_bc(X, Y):
    return rbf_kernel(X, Y, gamma=0.05)


@pytest.fixture(scope="module", params=SVM_CONFIGS + ["svc-callable-bc",
                                                      "svr-callable-bc-damped"])
def routes(request):
    """(explainer on the kernel route, reference scorer of the general route,
    X_test, y_test, tolerance)."""
    config = request.param
    damping = 0.0
    if config.endswith("-bc") or config.endswith("-bc-damped"):
        X, y = load_breast_cancer(return_X_y=True)
        X = StandardScaler().fit_transform(X)[:150, :8]
        y = y[:150]
        X, X_test, y_test = X[:100], X[100:], y[100:]
        if config.startswith("svc"):
            est = SVC(C=1.0, kernel=wide_rbf_bc, **LIBSVM)
            y = y[:100]
        else:
            est = SVR(C=2.0, epsilon=0.1, kernel=wide_rbf_bc, **LIBSVM)
            y, y_test = X[:, 0] * 0.5 + y[:100], X_test[:, 0] * 0.5 + y_test
            damping = 1e-3
        explainer = InfluenceExplainer(est, damping=damping).fit(X, y)
    else:
        explainer, _, X, y, X_test, y_test = case(config)
    risk = explainer.risk_
    reference = Scorer(risk, make_solver("cholesky", risk, damping))
    assert isinstance(reference.solver, CholeskySolver)
    return explainer, reference, X_test, y_test, TRUNCATED.get(config, 1e-10)


def _general(reference, explainer, X_test, y=None, test_loss=None):
    """θ-closures over the dense features φ(X_test) (the route before)."""
    risk = reference.risk
    Xv = np.asarray(explainer.validate_test(X_test, y, test_loss=test_loss)[0])
    y_enc = (np.zeros(len(Xv), dtype=int) if y is None
             else risk.targets.encode(y, len(Xv)))
    loss = None if test_loss is None else resolve_test_loss(test_loss, risk)
    return Xv, lambda sl: risk.test_gradients(Xv[sl], y_enc[sl], loss)


def test_the_kernel_route_is_taken(routes):
    explainer = routes[0]
    assert isinstance(explainer._scorer, KernelScorer)
    assert isinstance(explainer.hessian_solver_, PinnedDiagonalSolver)
    assert explainer.hessian_solver_.name == "pinned"


def test_scores_equal_the_general_route(routes):
    """loss_influence (decision value, the model's own loss), leave_one_out,
    test_set_influence, most_influential, transform."""
    explainer, reference, X_test, y_test, tol = routes
    n = len(explainer.sample_weight_)
    Xv, decision = _general(reference, explainer, X_test, test_loss="decision")
    expected = reference.score(len(Xv), decision)
    got = explainer.loss_influence(X_test, test_loss="decision")
    assert np.abs(expected).max() > 0
    assert max_rel_error(got, expected) <= tol
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # flat hinge losses at confident points
        own = explainer.loss_influence(X_test, y_test)
        loo = explainer.leave_one_out(X_test, y_test)
    expected_own = reference.score(len(Xv), _general(reference, explainer, X_test,
                                                     y_test)[1])
    assert max_rel_error(own, expected_own) <= tol
    scale = -explainer.sample_weight_ / n
    assert max_rel_error(loo, expected_own * scale) <= tol
    for reduce in ("mean", "sum"):
        total = explainer.test_set_influence(X_test, reduce=reduce,
                                             test_loss="decision")
        summed = expected.sum(axis=0) / (len(Xv) if reduce == "mean" else 1)
        assert max_rel_error(total, summed) <= tol
    idx, scores = explainer.most_influential(X_test, k=5, kind="abs",
                                             test_loss="decision")
    assert max_rel_error(scores, np.take_along_axis(expected, idx, axis=1)) <= tol
    assert np.allclose(np.abs(scores), -np.sort(-np.abs(expected), axis=1)[:, :5],
                       rtol=1e-8, atol=0)
    if explainer.risk_.targets.classes is None:  # regression: the prediction
        assert max_rel_error(explainer.transform(X_test), expected) <= tol


def test_param_and_self_influence_equal_the_general_route(routes):
    explainer, reference, _, _, tol = routes
    risk = reference.risk
    n = risk.X.shape[0]
    expected = reference.influence_rows(np.arange(n))
    assert max_rel_error(explainer._scorer.influence_rows(np.arange(n)),
                         expected) <= tol
    assert max_rel_error(explainer.param_influence(),
                         risk.reported(expected)) <= tol
    plain = risk.test_gradients(risk.X, risk.y)
    self_expected = np.einsum("ip,ip->i", plain, expected)
    assert max_rel_error(explainer.self_influence(), self_expected) <= 1e2 * tol


def test_solver_equals_the_dense_cholesky(routes):
    explainer, reference, *_, tol = routes
    B = np.random.default_rng(0).normal(size=(explainer.risk_.n_params, 4))
    assert max_rel_error(explainer.hessian_solver_.solve(B),
                         reference.solver.solve(B)) <= 1e-10
    # the complement basis (removals) is formed on first use, and is the dense one's
    basis = explainer.hessian_solver_.basis
    assert basis.shape == reference.solver.basis.shape
    assert np.allclose(basis @ basis.T, reference.solver.basis @ reference.solver.basis.T,
                       atol=1e-10)


def test_only_support_vector_kernel_columns_are_computed(monkeypatch):
    """First-order scoring never forms φ(X_test) nor K(X_test, X_train), nor the
    complement basis; the general route's θ-gradients are not built."""
    explainer, _, _, _, X_test, _ = case("svc-rbf")
    explainer = clone(explainer).fit(explainer.X_fit_, case("svc-rbf")[3])

    def refuse(*args, **kwargs):
        raise AssertionError("the full kernel block was computed")

    monkeypatch.setattr(KernelMap, "cross_matrix", refuse)
    monkeypatch.setattr(KernelFeatures, "__array__", refuse)
    explainer.loss_influence(X_test, test_loss="decision")
    explainer.most_influential(X_test, k=3, test_loss="decision")
    explainer.test_set_influence(X_test, test_loss="decision")
    explainer.param_influence([0, 1])
    assert explainer.hessian_solver_._basis is None
    assert "train" not in explainer._scorer._lazy


def test_the_general_route_elsewhere():
    """Smoothed hinge (every row curved), KernelRidge, the linear kernel and an
    explicit hessian_solver="cholesky" (solver only) keep their routes."""
    X, y, X_test, _ = dataset("bc")
    smooth = InfluenceExplainer(SVC(**LIBSVM), smoothing=0.1).fit(X, y)
    assert type(smooth._scorer) is Scorer
    assert isinstance(smooth.hessian_solver_, CholeskySolver)
    linear = InfluenceExplainer(SVC(kernel="linear", **LIBSVM)).fit(X, y)
    assert type(linear._scorer) is Scorer
    assert isinstance(linear.hessian_solver_, CholeskySolver)
    krr = case("krr-rbf-sw")[0]
    assert type(krr._scorer) is Scorer
    dense = InfluenceExplainer(SVC(**LIBSVM), hessian_solver="cholesky").fit(X, y)
    fast = InfluenceExplainer(SVC(**LIBSVM)).fit(X, y)
    assert isinstance(dense.hessian_solver_, CholeskySolver)
    assert max_rel_error(dense.loss_influence(X_test, test_loss="decision"),
                         fast.loss_influence(X_test, test_loss="decision")) < 1e-10
    assert max_rel_error(dense.leave_one_out(X_test, y_test := dense.predict(X_test),
                                             method="newton"),
                         fast.leave_one_out(X_test, y_test, method="newton")) < 1e-8


def test_pinned_solver_with_a_repeated_direction():
    """A pinned direction given twice leaves the answer (not μ) unique."""
    rng = np.random.default_rng(0)
    p, m = 12, 4
    A = np.vstack([rng.normal(size=(p - 1, m)), np.ones((1, m))])
    A = np.hstack([A, A[:, :1]])
    diagonal = np.r_[np.full(p - 1, 0.3), 0.0]  # the last parameter uncurved
    fast = PinnedDiagonalSolver(diagonal, A)
    dense = CholeskySolver(np.diag(diagonal), A)
    B = rng.normal(size=(p, 3))
    assert max_rel_error(fast.solve(B), dense.solve(B)) < 1e-12
    assert np.abs(A.T @ fast.solve(B)).max() < 1e-12


def test_lazy_features_equal_the_whitened_map():
    """KernelFeatures: φ(X) through the Cholesky factor equals K(X, X_B) W, F @ M
    equals φ(X) M, slices stay lazy; W itself is never formed by fit or scoring."""
    explainer, _, _, y, X_test, y_test = case("krr-rbf-sw")
    explainer = clone(explainer).fit(explainer.X_fit_, y,
                                     sample_weight=explainer.sample_weight_)
    kmap = explainer.risk_.input_map
    explainer.loss_influence(X_test, y_test)
    explainer.param_influence([0])
    assert kmap._projection is None  # the Cholesky route: no n³ inverse
    F = explainer.validate_test(X_test, y_test)[0]
    assert isinstance(F, KernelFeatures) and isinstance(F[:3], KernelFeatures)
    phi = kmap.cross_matrix(X_test) @ kmap.projection
    assert max_rel_error(np.asarray(F), phi) < 1e-12
    M = np.random.default_rng(0).normal(size=(kmap.rank, 2))
    assert max_rel_error(F[2:7] @ M, phi[2:7] @ M) < 1e-10
    assert max_rel_error(F @ M[:, 0], phi @ M[:, 0]) < 1e-10


def test_batches_and_jobs_do_not_change_the_scores():
    explainer, _, _, y, X_test, _ = case("svr-rbf-sw")
    expected = explainer.loss_influence(X_test, test_loss="decision")
    other = clone(explainer).set_params(n_jobs=2, batch_size=3).fit(
        explainer.X_fit_, y, sample_weight=explainer.sample_weight_)
    assert max_rel_error(other.loss_influence(X_test, test_loss="decision"),
                         expected) < 1e-13
    idx, _ = other.most_influential(X_test, k=4, kind="abs", test_loss="decision")
    assert np.array_equal(idx, explainer.most_influential(
        X_test, k=4, kind="abs", test_loss="decision")[0])
    with pytest.raises(MemoryError, match="max_result_bytes"):
        other.set_params(max_result_bytes=100).loss_influence(X_test,
                                                              test_loss="decision")


def _reachable_arrays(root):
    """Every ndarray (and sparse matrix's data) reachable from ``root`` through
    attributes, containers and functools.partial arguments."""
    import functools
    import types

    import scipy.sparse as sp

    seen, stack, out = set(), [root], []
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, (type, types.ModuleType,
                                                types.FunctionType, str, bytes)):
            continue
        seen.add(id(obj))
        if isinstance(obj, np.ndarray):
            out.append(obj)
        elif sp.issparse(obj):
            out.append(obj.data)
        elif isinstance(obj, dict):
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set)):
            stack.extend(obj)
        elif isinstance(obj, functools.partial):
            stack.extend(obj.args)
            stack.extend(obj.keywords.values())
        elif isinstance(obj, types.MethodType):
            stack.append(obj.__self__)
        elif hasattr(obj, "__dict__"):
            stack.extend(vars(obj).values())
    return out


@pytest.mark.parametrize("data, estimator", [
    ("bc", SVC(C=1.0, **LIBSVM)),
    ("diabetes", SVR(C=1.0, epsilon=0.8, **LIBSVM)),
], ids=["svc-rbf", "svr-rbf-wide-tube"])
def test_nothing_larger_than_train_by_support_is_held(data, estimator):
    """With the exact hinge / ε-tube, the explainer holds the support vectors'
    features (n × n_support) and Hessian, never an n × n block, also after every
    kind of call (exact removals build the every-row risk for the call only)."""
    X, y, X_test, y_test = dataset(data)
    sw = np.random.default_rng(3).uniform(0.5, 2.0, len(y))
    explainer = InfluenceExplainer(estimator).fit(X, y, sample_weight=sw)
    model, risk = explainer.estimator_, explainer.risk_
    n, n_sv = len(y), len(model.support_)
    assert n_sv < n / 2  # the criterion means something here
    assert np.array_equal(risk.input_map.basis, np.sort(model.support_))
    assert risk.X.shape == (n, n_sv)
    assert explainer.hessian_.shape == (n_sv + 1, n_sv + 1)
    limit = n * (n_sv + 1)  # the θ-space training gradients, built on first use
    sizes = {}
    for call in (lambda: None,
                 lambda: explainer.loss_influence(X_test, y_test),
                 lambda: explainer.most_influential(X_test, k=3, test_loss="decision"),
                 lambda: explainer.self_influence(),
                 lambda: explainer.param_influence(),
                 lambda: explainer.leave_one_out(X_test, y_test, method="newton"),
                 lambda: explainer.leave_one_out(X_test, y_test, method="exact"),
                 lambda: explainer.group_influence([[0, 1], [2]], X_test, y_test,
                                                   method="newton")):
        call()
        biggest = max(_reachable_arrays(explainer), key=lambda a: a.size)
        sizes[len(sizes)] = biggest.shape
        assert biggest.size <= limit, sizes


def test_params_are_the_estimators_dual_coefficients():
    """On the support-vector basis (well-conditioned K_SS) params_ is libsvm's own
    dual_coef_ on support_ (zero elsewhere), then intercept_: not only the same
    function."""
    for config in ("svc-rbf", "svr-rbf-sw"):
        explainer, *_ = case(config)
        model = explainer.estimator_
        assert explainer.risk_.input_map.basis is not None
        expected = np.zeros(len(explainer.sample_weight_) + 1)
        expected[model.support_] = model.dual_coef_[0]
        expected[-1] = model.intercept_[0]
        assert max_rel_error(explainer.params_, expected) < 1e-10


def test_support_vector_basis_equals_every_row(routes):
    """First-order and Newton answers on the support vectors' features equal those
    on the features of every training row (dense Cholesky there): every derivative
    of the exact losses lies in the support vectors' span."""
    explainer, _, X_test, y_test, tol = routes
    wider = getattr(explainer.risk_, "exact_removal_risk", None)
    if wider is None:  # K_SS did not represent the model: every row is the basis
        assert explainer.risk_.input_map.basis is None
        return
    from skinfluence._removal import removal_steps

    wide = wider()
    n = len(explainer.sample_weight_)
    assert wide.input_map.basis is None and wide.X.shape[0] == n
    assert explainer.risk_.input_map.n_basis < n
    damping = explainer.damping
    solver = make_solver("cholesky", wide, damping)
    scorer = Scorer(wide, solver)
    Xw = wide.features(explainer.validate_test(X_test, y_test)[0].inputs)
    y_enc = wide.targets.encode(y_test, len(y_test))
    expected = scorer.score(len(y_test), scorer.test_side(Xw, y_enc))
    assert max_rel_error(explainer.loss_influence(X_test, y_test), expected) <= tol
    # dual coefficients compared through the function they define, K β: β itself
    # is not unique where K is singular (the every-row basis reports the smallest)
    K = wide.input_map.cross_rows(wide.inputs, np.arange(n))
    assert max_rel_error(explainer.param_influence()[:, :n] @ K,
                         wide.reported(scorer.influence_rows(np.arange(n)))[:, :n] @ K
                         ) <= tol
    steps = removal_steps(wide, solver, solver.damped_hessian(), "newton")
    expected = scorer.loss_changes(Xw, y_enc, steps, None)
    assert max_rel_error(explainer.leave_one_out(X_test, y_test, method="newton"),
                         expected) <= 1e2 * tol
