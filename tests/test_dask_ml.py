"""dask-ml's GLMs fitted on Dask collections, explained on chunks.

Oracles: dask_glm's objective minimised in numpy (``_oracle.dask_glm_minimise``, no
skinfluence), refitted with a changed sample weight for finite differences; the
in-memory explainer of the same fitted model.
"""

import subprocess
import sys
import warnings

import numpy as np
import pytest

dask_ml_linear = pytest.importorskip("dask_ml.linear_model")
da = pytest.importorskip("dask.array")

from _oracle import dask_glm_minimise  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.frozen import FrozenEstimator  # noqa: E402
from sklearn.linear_model import LogisticRegression as SkLogisticRegression  # noqa: E402

from skinfluence import InfluenceExplainer  # noqa: E402

N, D, CHUNK = 200, 3, 50
FAMILIES = {"logistic": dask_ml_linear.LogisticRegression,
            "normal": dask_ml_linear.LinearRegression,
            "poisson": dask_ml_linear.PoissonRegression}


def _data(family, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N + 4, D))
    z = X @ np.array([0.8, -0.5, 0.3]) + 0.2
    if family == "logistic":
        y = (z + rng.logistic(size=len(z)) > 0).astype(float)
    elif family == "normal":
        y = z + 0.5 * rng.standard_normal(len(z))
    else:
        y = rng.poisson(np.exp(0.5 * z)).astype(float)
    return X[:N], y[:N], X[N:], y[N:]


def _test_loss(family, theta, X, y):
    z = X @ theta[:-1] + theta[-1]
    if family == "logistic":
        return np.logaddexp(0.0, z) - y * z
    if family == "normal":
        return (y - z) ** 2
    return np.exp(z) - y * z  # the half deviance up to a constant in θ


def _chunked(X, y):
    return da.from_array(X, chunks=(CHUNK, D)), da.from_array(y, chunks=CHUNK)


def _polished(family, X, y, C):
    """A dask-ml lbfgs fit whose parameters are set to dask_glm's exact optimum."""
    model = FAMILIES[family](solver="lbfgs", C=C, tol=1e-10, max_iter=500)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy deprecations raised inside dask_glm
        model.fit(*_chunked(X, y))
    fitted = np.r_[model.coef_, model.intercept_]
    theta = dask_glm_minimise(family, X, y, np.ones(len(y)), 1.0 / C)
    model.coef_, model.intercept_ = theta[:-1].copy(), theta[-1]
    return model, fitted, theta


@pytest.mark.parametrize("family", FAMILIES)
def test_fits_on_chunks_at_dask_glms_unpenalised_optimum(family):
    X, y, _, _ = _data(family)
    est = FAMILIES[family](solver="newton", tol=1e-12)
    ex = InfluenceExplainer(est).fit(*_chunked(X, y))
    theta = dask_glm_minimise(family, X, y, np.ones(N), 0.0)  # newton: no penalty
    np.testing.assert_allclose(ex.params_, theta, rtol=1e-8, atol=1e-10)
    assert ex.optimality_ < 1e-10
    assert not hasattr(est, "coef_")  # the explainer fitted a clone


@pytest.mark.parametrize("family", FAMILIES)
def test_penalty_is_l2_over_c_on_every_entry_intercept_included(family):
    from dask_glm import families

    X, y, _, _ = _data(family)
    C = 0.2
    model, fitted, theta = _polished(family, X, y, C)
    # the oracle's optimum zeroes the gradient dask_glm's lbfgs follows
    fam = {"logistic": families.Logistic, "normal": families.Normal,
           "poisson": families.Poisson}[family]
    Xt = np.hstack([X, np.ones((N, 1))])
    grad = fam.pointwise_gradient(theta, Xt, y) + theta / C  # λ ∇½‖β‖², λ = 1/C
    assert np.abs(grad).max() < 1e-9
    assert np.abs(fitted - theta).max() < 2e-2 * np.abs(theta).max()  # lbfgs: loose
    ex = InfluenceExplainer(FrozenEstimator(model)).fit(*_chunked(X, y))
    assert ex.optimality_ < 1e-10  # ∇R = 0 at dask_glm's exact optimum


def _fd(family, X, y, rows, lam, X_test, y_test, h=1e-4):
    """n · ∂θ̂/∂s_j and n · ∂L_t/∂s_j by central differences of exact refits."""
    dtheta, dloss = [], []
    for j in rows:
        ends = []
        for sign in (1, -1):
            s = np.ones(N)
            s[j] += sign * h
            ends.append(dask_glm_minimise(family, X, y, s, lam))
        dtheta.append(N * (ends[0] - ends[1]) / (2 * h))
        dloss.append(N * (_test_loss(family, ends[0], X_test, y_test)
                          - _test_loss(family, ends[1], X_test, y_test)) / (2 * h))
    return np.array(dtheta), np.array(dloss).T


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("C", [np.inf, 0.2])
def test_influences_match_refits(family, C):
    X, y, X_test, y_test = _data(family)
    if C == np.inf:  # fitted by the explainer on the chunks
        ex = InfluenceExplainer(FAMILIES[family](solver="newton", tol=1e-12))
    else:
        ex = InfluenceExplainer(FrozenEstimator(_polished(family, X, y, C)[0]))
    ex.fit(*_chunked(X, y))
    rows = np.array([0, 7, 51, 130, 199])
    dtheta, dloss = _fd(family, X, y, rows, 1.0 / C, X_test, y_test)
    rel = np.abs(ex.param_influence(rows) - dtheta).max() / np.abs(dtheta).max()
    assert rel < 1e-8
    scores = np.asarray(ex.loss_influence(X_test, y_test)[:, rows])
    assert np.abs(scores - dloss).max() / np.abs(dloss).max() < 1e-8


@pytest.mark.parametrize("family", FAMILIES)
def test_chunks_equal_in_memory_explainer_of_the_same_model(family):
    X, y, X_test, y_test = _data(family)
    chunked = InfluenceExplainer(FAMILIES[family](solver="newton", tol=1e-12))
    chunked.fit(*_chunked(X, y))
    ref = InfluenceExplainer(FrozenEstimator(chunked.estimator_)).fit(X, y)
    for got, want in [
        (chunked.loss_influence(X_test, y_test).compute(),
         ref.loss_influence(X_test, y_test)),
        (chunked.self_influence().compute(), ref.self_influence()),
        (chunked.param_influence([3, 99]), ref.param_influence([3, 99])),
    ]:
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-10 * np.abs(want).max())
    idx, _ = chunked.most_influential(X_test, y_test, k=3)
    np.testing.assert_array_equal(idx, ref.most_influential(X_test, y_test, k=3)[0])


def test_loose_admm_fit_is_reported():
    X, y, _, _ = _data("logistic")
    X, y = X[:100], y[:100]  # admm is slow: one chunk
    with pytest.warns(ConvergenceWarning, match="solver='lbfgs', tol=1e-10"):
        ex = InfluenceExplainer(dask_ml_linear.LogisticRegression(max_iter=5))
        ex.fit(da.from_array(X, chunks=(100, D)), da.from_array(y, chunks=100))
    assert ex.optimality_ > 1e-6


def test_refusals_on_chunks():
    X, y, _, _ = _data("logistic")
    Xd, yd = _chunked(X, y)
    est = dask_ml_linear.LogisticRegression(solver="newton")
    with pytest.raises(ValueError, match="takes no sample_weight"):
        InfluenceExplainer(est).fit(Xd, yd, sample_weight=np.ones(N))
    with pytest.raises(TypeError, match="FrozenEstimator"):  # unchanged for sklearn
        InfluenceExplainer(SkLogisticRegression()).fit(Xd, yd)
    with pytest.raises(ValueError, match="not seen during fit"):  # before fitting
        InfluenceExplainer(est).fit(Xd, yd + 1)


def test_import_skinfluence_does_not_import_dask_ml():
    code = "import sys, skinfluence; assert 'dask_ml' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=_root())


def _root():
    import pathlib
    return pathlib.Path(__file__).resolve().parents[1]


def test_dask_dataframe_is_fitted_as_its_array():
    # dask-ml's add_intercept puts a DataFrame's constant column first, yet reads the
    # intercept last: the explainer fits on the merged dask array instead
    dd = pytest.importorskip("dask.dataframe")
    pd = pytest.importorskip("pandas")
    X, y, _, _ = _data("logistic")
    frame = dd.from_pandas(pd.DataFrame(X, columns=["a", "b", "c"]), npartitions=4)
    labels = dd.from_pandas(pd.Series(y), npartitions=4)
    est = dask_ml_linear.LogisticRegression(solver="newton", tol=1e-12)
    ex = InfluenceExplainer(est).fit(frame, labels)
    theta = dask_glm_minimise("logistic", X, y, np.ones(N), 0.0)
    np.testing.assert_allclose(ex.params_, theta, rtol=1e-8, atol=1e-10)
    assert list(ex.feature_names_in_) == ["a", "b", "c"]
