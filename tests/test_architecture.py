"""The explainer's public fitted state, the solver registry and the module contract
(analyses use only the explainer's public API)."""

import ast
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_diabetes, load_iris
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skinfluence import InfluenceExplainer
from skinfluence._hessian import HessianSolver, choose_solver, make_solver

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
