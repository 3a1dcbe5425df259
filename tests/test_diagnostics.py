"""summary_frame and param_change against independent references: statsmodels'
OLSInfluence (textbook OLS diagnostics), brute-force GLM formulas in numpy, and
true leave-one-out refits of the scikit-learn model."""

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge

from skinfluence import InfluenceExplainer

sm = pytest.importorskip("statsmodels.api")
outliers_influence = pytest.importorskip("statsmodels.stats.outliers_influence")


@pytest.fixture(scope="module")
def diabetes():
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    X.index = [f"patient{i}" for i in range(len(X))]
    y.index = X.index
    return X, y


def _dfbetas(frame):
    return frame[[c for c in frame.columns if c.startswith("dfbetas_")]].to_numpy()


def test_ols_summary_frame_equals_statsmodels(diabetes):
    X, y = diabetes
    frame = InfluenceExplainer(LinearRegression()).fit(X, y).summary_frame()
    ols = sm.OLS(y.to_numpy(), sm.add_constant(X.to_numpy())).fit()
    ref = outliers_influence.OLSInfluence(ols).summary_frame()
    assert list(frame.index) == list(X.index)
    np.testing.assert_allclose(frame["label"], y)
    np.testing.assert_allclose(frame["leverage"], ref["hat_diag"], rtol=1e-10)
    np.testing.assert_allclose(frame["cooks_distance"], ref["cooks_d"], rtol=1e-9)
    # statsmodels puts the constant first; params_ puts the intercept last
    dfb = ref[[c for c in ref.columns if c.startswith("dfb_")]].to_numpy()
    np.testing.assert_allclose(_dfbetas(frame), np.roll(dfb, -1, axis=1),
                               rtol=1e-8, atol=1e-12)
    assert list(frame.columns[-11:]) == [f"dfbetas_{c}" for c in X.columns] + [
        "dfbetas_intercept"]
    # the deleted residual e_j / (1 − h_j): the row's own loss without it
    e, h = ols.resid, ref["hat_diag"].to_numpy()
    np.testing.assert_allclose(frame["loo_loss_change"], (e / (1 - h)) ** 2 - e**2,
                               rtol=1e-9)


def test_param_change_equals_refits_for_least_squares(diabetes):
    X, y = diabetes
    X, y = X.to_numpy()[:80], y.to_numpy()[:80]
    model = Ridge(alpha=0.5)
    ex = InfluenceExplainer(model).fit(X, y)
    rows = [0, 7, 33]
    change = ex.param_change(rows, method="newton")
    for i, j in enumerate(rows):
        keep = np.arange(len(y)) != j
        refit = clone(model).fit(X[keep], y[keep])
        theta = np.r_[refit.coef_, refit.intercept_]
        np.testing.assert_allclose(change[i], theta - ex.params_, atol=1e-10)
    first = ex.param_change(rows, method="influence")
    np.testing.assert_allclose(first, -ex.param_influence(rows) / len(y))


def test_param_change_exact_equals_logistic_refits():
    X, y = load_breast_cancer(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    X, y = X[:150, :5], y[:150]
    model = LogisticRegression(C=1.0, solver="newton-cholesky", tol=1e-12)
    ex = InfluenceExplainer(model).fit(X, y)
    rows = [3, 40]
    change = ex.param_change(rows, method="exact")
    for i, j in enumerate(rows):
        keep = np.arange(len(y)) != j
        refit = clone(model).fit(X[keep], y[keep])
        theta = np.r_[refit.coef_.ravel(), refit.intercept_]
        np.testing.assert_allclose(change[i], theta - ex.params_, atol=1e-8)


def test_logistic_summary_frame_equals_glm_formulas():
    X, y = load_breast_cancer(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    X = X[:, :6]
    model = LogisticRegression(C=np.inf, solver="newton-cholesky", tol=1e-14,
                               max_iter=1000)
    frame = InfluenceExplainer(model).fit(X, y).summary_frame()
    # one-step GLM deletion diagnostics (Pregibon 1981), written out in numpy
    fit = LogisticRegression(C=np.inf, solver="newton-cholesky", tol=1e-14,
                             max_iter=1000).fit(X, y)
    A = np.column_stack([X, np.ones(len(X))])
    p = expit(A @ np.r_[fit.coef_.ravel(), fit.intercept_])
    w = p * (1 - p)
    info = A.T @ (w[:, None] * A)
    cov = np.linalg.inv(info)
    h = np.einsum("ip,pq,iq->i", A, cov, A) * w
    dfbeta = (A @ cov) * ((y - p) / (1 - h))[:, None]  # θ̂ − θ̂_(j), one step
    cooks = np.einsum("ip,pq,iq->i", dfbeta, info, dfbeta) / A.shape[1]
    pearson2 = (y - p) ** 2 / w
    np.testing.assert_allclose(frame["leverage"], h, rtol=1e-8)
    np.testing.assert_allclose(frame["cooks_distance"], cooks, rtol=1e-7)
    np.testing.assert_allclose(frame["cooks_distance"],
                               pearson2 * h / (A.shape[1] * (1 - h) ** 2), rtol=1e-7)
    np.testing.assert_allclose(_dfbetas(frame), dfbeta / np.sqrt(np.diag(cov)),
                               rtol=1e-6, atol=1e-10)


def test_multinomial_summary_frame_names_and_ranges():
    X, y = load_iris(return_X_y=True, as_frame=True)
    labels = np.array(["setosa", "versicolor", "virginica"])[y]
    model = LogisticRegression(C=1.0, solver="newton-cholesky", tol=1e-12)
    ex = InfluenceExplainer(model).fit(X, labels)
    frame = ex.summary_frame()
    assert frame["label"].tolist() == labels.tolist()
    assert ((frame["leverage"] >= 0) & (frame["leverage"] < 1)).all()
    assert np.isfinite(frame.drop(columns="label").to_numpy(dtype=float)).all()
    assert "dfbetas_virginica:petal width (cm)" in frame.columns
    assert "dfbetas_intercept:setosa" in frame.columns
    # the own-loss change is the diagonal of the Newton leave-one-out
    loo = ex.leave_one_out(X.iloc[:10], labels[:10], method="newton")
    np.testing.assert_allclose(frame["loo_loss_change"].to_numpy()[:10],
                               np.diag(loo[:, :10]), rtol=1e-9, atol=1e-14)
    assert ex.summary_frame(dfbetas=False).shape[1] == 6


def test_summary_frame_bad_input(diabetes):
    X, y = diabetes
    ex = InfluenceExplainer(LinearRegression()).fit(X.iloc[:12], y.iloc[:12])
    with pytest.raises(ValueError, match="dfbetas must be"):
        ex.summary_frame(dfbetas="yes")
    with pytest.raises(ValueError, match="method must be"):
        ex.param_change(method="refit")
    with pytest.raises(ValueError, match="degrees of freedom"):
        InfluenceExplainer(LinearRegression()).fit(X.iloc[:11], y.iloc[:11]) \
            .summary_frame()
    cg = InfluenceExplainer(Ridge(), hessian_solver="cg").fit(X, y)
    with pytest.raises(NotImplementedError, match="cholesky"):
        cg.summary_frame()


def test_training_index_follows_the_data(diabetes):
    X, y = diabetes
    ex = InfluenceExplainer(Ridge()).fit(X, y)
    assert list(ex.training_index_) == list(X.index)
    ex = InfluenceExplainer(Ridge()).fit(X.to_numpy(), y.to_numpy())
    np.testing.assert_array_equal(ex.training_index_, np.arange(len(X)))
    assert isinstance(ex.summary_frame(dfbetas=False), pd.DataFrame)
