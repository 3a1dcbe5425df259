"""The explainer's public fitted state, the solver registry and the module contract
(analyses use only the explainer's public API)."""

import ast
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.datasets import load_diabetes, load_iris
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skinfluence import InfluenceExplainer, models
from skinfluence._hessian import HessianSolver, choose_solver, make_solver
from skinfluence._objective import LinearObjective
from skinfluence.models._losses import SquaredErrorLoss
from skinfluence.models._targets import RealTargets

PACKAGE = Path(__file__).resolve().parents[1] / "skinfluence"


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    return X[::2], y[::2], X[1::2], y[1::2]


def test_test_losses_are_sklearn_log_losses(iris):
    """Oracle: −log p(y | x) from the fitted model's own predict_proba."""
    X, y, Xt, yt = iris
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, tol=1e-10))
    ex = InfluenceExplainer(model).fit(X, y)
    proba = ex.predict_proba(Xt)
    expected = -np.log(proba[np.arange(len(yt)), np.searchsorted(ex.classes_, yt)])
    np.testing.assert_allclose(ex.test_losses(Xt, yt), expected, rtol=1e-10)
    # the decision value needs no label: the decision function itself (summed over
    # the softmax's outputs, which sum to 0)
    np.testing.assert_allclose(ex.test_losses(Xt, test_loss="decision"),
                               ex.decision_function(Xt).sum(axis=1), atol=1e-12)


def test_test_losses_are_squared_residuals():
    X, y = load_diabetes(return_X_y=True)
    ex = InfluenceExplainer(Ridge(alpha=0.3)).fit(X[:300], y[:300])
    residual = y[300:] - ex.predict(X[300:])
    np.testing.assert_allclose(ex.test_losses(X[300:], y[300:]), residual**2,
                               rtol=1e-10)


def test_validate_test_is_what_the_model_sees(iris):
    X, y, Xt, yt = iris
    model = make_pipeline(StandardScaler(), LogisticRegression(tol=1e-10))
    ex = InfluenceExplainer(model).fit(X, y)
    Xv, y_enc, loss = ex.validate_test(Xt, yt)
    np.testing.assert_allclose(Xv, ex.estimator_[:-1].transform(Xt))
    np.testing.assert_array_equal(ex.classes_[y_enc], yt)
    assert loss is ex.risk_.loss
    np.testing.assert_allclose(ex.risk_.decision(Xv), ex.decision_function(Xt),
                               rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="y is required"):
        ex.validate_test(Xt)
    assert ex.validate_test(Xt, test_loss="decision")[2] is not ex.risk_.loss


def test_settings_changed_after_fit_apply(iris):
    """Scoring reads batch, job and memory settings at call time, as before."""
    X, y, Xt, yt = iris
    ex = InfluenceExplainer(LogisticRegression(tol=1e-10)).fit(X, y)
    full = ex.loss_influence(Xt, yt)
    ex.set_params(batch_size=7, n_jobs=2)
    np.testing.assert_array_equal(ex.loss_influence(Xt, yt), full)
    ex.set_params(max_result_bytes=100)
    with pytest.raises(MemoryError, match="max_result_bytes=100"):
        ex.loss_influence(Xt, yt)


@pytest.mark.parametrize("name", ["cholesky", "cg", "woodbury", "lissa"])
def test_every_solver_has_the_same_interface(name):
    X, y = load_diabetes(return_X_y=True)
    params = {"lissa_params": {"depth": 50}} if name == "lissa" else {}
    ex = InfluenceExplainer(Ridge(alpha=1.0), hessian_solver=name, random_state=0,
                            **params).fit(X[:80], y[:80])
    solver = ex.hessian_solver_
    assert isinstance(solver, HessianSolver) and solver.name == name
    assert "requested" in solver.reason
    p = len(ex.params_)
    assert solver.solve(np.eye(p)).shape == (p, p)
    if name == "cholesky":
        assert solver.inverse.shape == (p, p)
        np.testing.assert_array_equal(solver.damped_hessian(), ex.hessian_)
        assert solver.leverages() is None
    else:
        assert solver.inverse is None and ex.hessian_ is None
        with pytest.raises(NotImplementedError, match="hessian_solver='cholesky'"):
            solver.damped_hessian()
    if name == "woodbury":  # read off its factor: the hat matrix diagonal
        Xt = np.c_[X[:80], np.ones(80)]
        H = 2 * Xt.T @ Xt / 80 + np.diag(np.r_[np.full(10, 2 / 80), 0.0])
        hat = 2 / 80 * np.einsum("ip,pq,iq->i", Xt, np.linalg.inv(H), Xt)
        np.testing.assert_allclose(solver.leverages(), hat, rtol=1e-8)


def test_auto_rule_and_its_reasons():
    rng = np.random.RandomState(0)
    X, y = rng.standard_normal((40, 5000)), rng.standard_normal(40)
    risk = InfluenceExplainer(Ridge(), hessian_solver="cg").fit(X, y).risk_
    assert choose_solver("auto", risk, 0.0)[0] == "woodbury"  # wide, one output
    name, reason = choose_solver("auto", risk, 0.0)
    assert "5001 free parameters > 4096" in reason
    small = InfluenceExplainer(Ridge()).fit(X[:, :10], y)
    assert small.hessian_solver_.name == "cholesky"
    assert "11 free parameters <= 4096" in small.hessian_solver_.reason
    solver = make_solver("cg", risk, 0.0, tol=1e-8)
    assert solver.name == "cg" and solver.inverse is None


def _private_explainer_reads(path):
    """``<name>._attr`` reads where <name> holds an explainer, outside explainer.py."""
    names = {"explainer", "ex", "current", "refit", "fitted", "est"}
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        f"{path.name}:{node.lineno} {node.value.id}.{node.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr.startswith("_")
        and not node.attr.startswith("__")
        and isinstance(node.value, ast.Name) and node.value.id in names
    ]


def test_analyses_use_only_the_public_api():
    modules = [p for p in PACKAGE.glob("*.py") if p.name != "explainer.py"]
    reads = [r for p in modules for r in _private_explainer_reads(p)]
    assert reads == []


# -- a model family added through models/ only (docs/architecture.rst's example) --------
class QuadraticRegressor(RegressorMixin, BaseEstimator):
    """Σ_i s_i (y_i − w·x_i − b)² + α‖w‖², solved in closed form (a test-only model)."""

    def __init__(self, alpha=1.0):
        self.alpha = alpha

    def fit(self, X, y, sample_weight=None):
        X, y = np.asarray(X, dtype=float), np.asarray(y, dtype=float)
        n, d = X.shape
        s = np.ones(n) if sample_weight is None else np.asarray(sample_weight, float)
        Xt = np.c_[X, np.ones(n)]
        A = Xt.T @ (s[:, None] * Xt) + np.diag(np.r_[np.full(d, self.alpha), 0.0])
        theta = np.linalg.solve(A, Xt.T @ (s * y))
        self.coef_, self.intercept_, self.n_features_in_ = theta[:d], theta[d], d
        return self

    def predict(self, X):
        return np.asarray(X, dtype=float) @ self.coef_ + self.intercept_


def quadratic_objective(est, X, y, sample_weight, **options):
    """R(θ) = F / n: squared loss, penalty 2α/n on w (½ θᵀ diag(q) θ)."""
    n, d = X.shape
    targets = RealTargets(1)
    quad = np.r_[np.full(d, 2 * est.alpha / n), 0.0]  # the intercept is free
    return LinearObjective(
        SquaredErrorLoss(), np.atleast_2d(est.coef_),
        np.atleast_1d(est.intercept_), X, targets.encode(y, n), sample_weight,
        np.ones(n), quad, np.zeros(d + 1), targets=targets,
    )


def test_a_family_added_in_models_only(monkeypatch):
    """Registering a builder is all a new family needs: the explainer, solvers,
    scoring and removals work unchanged. Oracle: the test model's own refits."""
    family = SimpleNamespace(SUPPORTED={QuadraticRegressor: quadratic_objective})
    monkeypatch.setattr(models, "_FAMILIES", (*models._FAMILIES, family))
    X, y = load_diabetes(return_X_y=True)
    X, y, Xt, yt = X[:60], y[:60], X[400:405], y[400:405]
    model = QuadraticRegressor(alpha=0.5)
    ex = InfluenceExplainer(model).fit(X, y)
    assert ex.optimality_ < 1e-8
    before = (model.fit(X, y).predict(Xt) - yt) ** 2
    rows = [0, 7, 31]
    for j in rows:  # removing row j: the Newton step is the exact refit (quadratic)
        keep = np.arange(60) != j
        after = (QuadraticRegressor(alpha=0.5).fit(X[keep], y[keep]).predict(Xt)
                 - yt) ** 2
        np.testing.assert_allclose(ex.leave_one_out(Xt, yt, method="newton")[:, j],
                                   after - before, rtol=1e-8, atol=1e-6)
    eps = 1e-6  # n · dL/ds_j by central differences of weighted refits
    for j in rows:
        loss = []
        for sign in (1, -1):
            s = np.ones(60)
            s[j] += sign * eps
            pred = QuadraticRegressor(alpha=0.5).fit(X, y, sample_weight=s).predict(Xt)
            loss.append((pred - yt) ** 2)
        fd = 60 * (loss[0] - loss[1]) / (2 * eps)
        np.testing.assert_allclose(ex.loss_influence(Xt, yt)[:, j], fd, rtol=1e-5,
                                   atol=1e-5 * np.abs(fd).max())
