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


def test_most_influential_as_frame(diabetes):
    X, y = diabetes
    X_train, y_train, X_test, y_test = X.iloc[:300], y.iloc[:300], X.iloc[300:310], \
        y.iloc[300:310]
    ex = InfluenceExplainer(Ridge(alpha=0.1)).fit(X_train, y_train)
    idx, scores = ex.most_influential(X_test, y_test, k=3)
    frame = ex.most_influential(X_test, y_test, k=3, as_frame=True, method="newton")
    assert len(frame) == 30
    assert frame["test_row"].tolist() == np.repeat(X_test.index, 3).tolist()
    assert frame["training_row"].tolist() == list(X_train.index[idx.ravel()])
    np.testing.assert_allclose(frame["score"], scores.ravel())
    np.testing.assert_allclose(frame["label"].astype(float), y_train.iloc[idx.ravel()])
    # Newton is exact for least squares: the loss change of a true refit
    loo = ex.leave_one_out(X_test, y_test, method="newton")
    np.testing.assert_allclose(frame["loo_change"],
                               np.take_along_axis(loo, idx, axis=1).ravel(), rtol=1e-8)
    for t, j in [(0, idx[0, 0]), (4, idx[4, 2])]:
        keep = np.arange(300) != j
        refit = Ridge(alpha=0.1).fit(X_train[keep], y_train[keep])
        base = ex.estimator_.predict(X_test.iloc[[t]])[0]
        new = refit.predict(X_test.iloc[[t]])[0]
        actual = (new - y_test.iloc[t]) ** 2 - (base - y_test.iloc[t]) ** 2
        row = frame[(frame.test_row == X_test.index[t]) &
                    (frame.training_row == X_train.index[j])]
        np.testing.assert_allclose(row["loo_change"], actual, rtol=1e-7)
    first = ex.most_influential(X_test, y_test, k=3, as_frame=True)
    np.testing.assert_allclose(first["loo_change"], -scores.ravel() / 300)
    with pytest.raises(ValueError, match="method must be"):
        ex.most_influential(X_test, y_test, as_frame=True, method="exact")


def test_pandas_output_columns_are_the_training_index(diabetes):
    X, y = diabetes
    ex = InfluenceExplainer(Ridge()).fit(X.iloc[:50], y.iloc[:50])
    ex.set_output(transform="pandas")
    out = ex.transform(X.iloc[50:53])
    assert list(out.columns) == [str(i) for i in X.index[:50]]
    assert list(out.index) == list(X.index[50:53])
    plain = InfluenceExplainer(Ridge()).fit(X.to_numpy()[:5], y.to_numpy()[:5])
    assert list(plain.get_feature_names_out()) == [f"influence{j}" for j in range(5)]


def test_most_influential_frame_marks_flat_test_losses():
    from sklearn.svm import LinearSVC

    from skinfluence import FlatTestLossWarning

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X = (X - X.mean()) / X.std()
    ex = InfluenceExplainer(LinearSVC(C=0.1, tol=1e-8, max_iter=100000)).fit(
        X.iloc[:300], y.iloc[:300])
    with pytest.warns(FlatTestLossWarning):
        frame = ex.most_influential(X.iloc[300:320], y.iloc[300:320], k=2,
                                    as_frame=True)
    margin = ex.decision_function(X.iloc[300:320]) * (2 * y.iloc[300:320] - 1)
    flat = frame["training_row"].isna().to_numpy().reshape(20, 2)
    np.testing.assert_array_equal(flat[:, 0], margin >= 1)
    assert frame.loc[frame["training_row"].isna(), "score"].isna().all()


@pytest.mark.parametrize("solver", ["cholesky", "cg"])
def test_test_set_influence_is_the_reduced_loss_influence(solver):
    X, y = load_breast_cancer(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    X_train, y_train, X_test, y_test = X[:200, :8], y[:200], X[200:400, :8], y[200:400]
    model = LogisticRegression(C=0.5, solver="newton-cholesky", tol=1e-12)
    ex = InfluenceExplainer(model, hessian_solver=solver, batch_size=37).fit(
        X_train, y_train)
    full = ex.loss_influence(X_test, y_test)
    np.testing.assert_allclose(ex.test_set_influence(X_test, y_test), full.mean(0),
                               rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(ex.test_set_influence(X_test, y_test, reduce="sum"),
                               full.sum(0), rtol=1e-8, atol=1e-10)
    with pytest.raises(ValueError, match="reduce must be"):
        ex.test_set_influence(X_test, y_test, reduce="max")


def test_test_set_influence_against_weighted_refits():
    from sklearn.metrics import log_loss

    X, y = load_breast_cancer(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    X_train, y_train, X_test, y_test = X[:150, :5], y[:150], X[150:350, :5], y[150:350]
    model = LogisticRegression(C=1.0, solver="newton-cholesky", tol=1e-13)
    ex = InfluenceExplainer(model).fit(X_train, y_train)
    influence = ex.test_set_influence(X_test, y_test)
    h = 1e-4
    for j in np.argsort(-np.abs(influence))[:3]:
        losses = []
        for sign in (1, -1):
            w = np.ones(150)
            w[j] += sign * h
            fit = clone(model).fit(X_train, y_train, sample_weight=w)
            losses.append(log_loss(y_test, fit.predict_proba(X_test)))
        np.testing.assert_allclose(150 * (losses[0] - losses[1]) / (2 * h),
                                   influence[j], rtol=1e-4)

