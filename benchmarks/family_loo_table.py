"""Leave-one-out against true refits for every model family: Pearson R and slope of
the predicted change of the test loss (first order, one Newton step, exact) against
the refit's, and the exact removal's largest relative error.

For each family: a small dataset that ships with scikit-learn, the estimator at a
tight tolerance, 24 removed training rows spread over the data, 40 test points; the
predicted quantity is the change of the decision value / prediction (``test_loss=
"decision"``). HuberRegressor is left out (scikit-learn's lbfgs refits stop at a
relative Newton step ~2e-5; its tests use tight refits).
Run: ``python benchmarks/family_loo_table.py`` (a few minutes on 2 cores); prints a
Markdown table.
"""

import warnings

import numpy as np
from sklearn import linear_model as lm
from sklearn import svm
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.kernel_ridge import KernelRidge
from sklearn.preprocessing import StandardScaler

from skinfluence import InfluenceExplainer


def _data():
    Xd, yd = load_diabetes(return_X_y=True)
    Xd = StandardScaler().fit_transform(Xd)
    yd = (yd - yd.mean()) / yd.std()
    Xb, yb = load_breast_cancer(return_X_y=True)
    Xb = StandardScaler().fit_transform(Xb)[:, :8]
    counts = np.random.default_rng(0).poisson(np.exp(0.4 * Xd[:, 2] + 0.2 * Xd[:, 8]))
    return {"diabetes": (Xd, yd), "cancer": (Xb, yb),
            "counts": (Xd, counts), "positive": (Xd, yd - yd.min() + 0.5)}


TIGHT_CD = dict(tol=1e-14, max_iter=1_000_000)
GLM = dict(solver="newton-cholesky", tol=1e-12)
CASES = [
    ("LinearRegression", lm.LinearRegression(), "diabetes"),
    ("Ridge", lm.Ridge(alpha=10.0), "diabetes"),
    ("Lasso", lm.Lasso(alpha=0.02, **TIGHT_CD), "diabetes"),
    ("ElasticNet", lm.ElasticNet(alpha=0.05, l1_ratio=0.5, **TIGHT_CD), "diabetes"),
    ("PoissonRegressor", lm.PoissonRegressor(alpha=0.1, **GLM), "counts"),
    ("GammaRegressor", lm.GammaRegressor(alpha=0.1, **GLM), "positive"),
    ("LogisticRegression", lm.LogisticRegression(C=1.0, **GLM), "cancer"),
    ("LogisticRegression (L1)", lm.LogisticRegression(
        l1_ratio=1.0, C=0.5, solver="liblinear", tol=1e-12, max_iter=10_000), "cancer"),
    ("SVC (linear)", svm.SVC(kernel="linear", C=0.5, tol=1e-12), "cancer"),
    ("SVC (rbf)", svm.SVC(C=1.0, gamma=0.1, tol=1e-12), "cancer"),
    ("SVR (rbf)", svm.SVR(C=1.0, gamma=0.1, epsilon=0.2, tol=1e-12), "diabetes"),
    ("KernelRidge (rbf)", KernelRidge(alpha=1.0, kernel="rbf", gamma=0.1), "diabetes"),
    ("RidgeClassifier (balanced)", lm.RidgeClassifier(alpha=1.0,
                                                      class_weight="balanced"),
     "cancer"),
    ("SVC (rbf, balanced)", svm.SVC(C=1.0, gamma=0.1, class_weight="balanced",
                                    tol=1e-12), "cancer"),
    ("NuSVC (rbf)", svm.NuSVC(nu=0.3, gamma=0.1, tol=1e-12), "cancer"),
    ("NuSVR (rbf)", svm.NuSVR(nu=0.5, C=1.0, gamma=0.1, tol=1e-12), "diabetes"),
]


def _decision(model, X):
    """The decision value the explainer's test_loss="decision" scores: the
    classifier's decision function, the regressor's prediction, a GLM's linear
    predictor η = log μ (log link)."""
    if isinstance(model, (lm.PoissonRegressor, lm.GammaRegressor, lm.TweedieRegressor)):
        Z = np.log(model.predict(X))
    elif hasattr(model, "decision_function") and \
            not isinstance(model, (svm.SVR, KernelRidge)):
        Z = model.decision_function(X)
    else:
        Z = model.predict(X)
    return np.asarray(Z, dtype=float).reshape(len(X), -1)


def _stats(pred, actual):
    p, a = pred.ravel(), actual.ravel()
    ok = np.isfinite(p)
    p, a = p[ok], a[ok]
    r = np.corrcoef(p, a)[0, 1]
    slope = (p @ a) / (p @ p)
    return r, slope


def main():
    data = _data()
    print("| estimator | first order R / slope | Newton R / slope | exact R / slope | "
          "exact max rel. error |")
    print("|---|---|---|---|---|")
    for name, est, which in CASES:
        X, y = data[which]
        n_test = 40
        X_tr, y_tr, X_te, y_te = X[:-n_test], y[:-n_test], X[-n_test:], y[-n_test:]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            explainer = InfluenceExplainer(est).fit(X_tr, y_tr)
            rows = np.linspace(0, len(y_tr) - 1, 24).astype(int)
            predicted = {m: explainer.leave_one_out(X_te, y_te, method=m,
                                                    test_loss="decision")[:, rows]
                         for m in ("influence", "newton", "exact")}
            base = _decision(explainer.estimator_, X_te)
            actual = np.column_stack([
                (_decision(clone(est).fit(np.delete(X_tr, j, 0), np.delete(y_tr, j)),
                           X_te) - base).mean(axis=1) for j in rows])
        cells = [f"{r:.4f} / {s:.3f}" for r, s in
                 (_stats(predicted[m], actual) for m in ("influence", "newton", "exact"))]
        err = np.nanmax(np.abs(predicted["exact"] - actual)) / np.abs(actual).max()
        print(f"| `{name}` | " + " | ".join(cells) + f" | {err:.1e} |", flush=True)


if __name__ == "__main__":
    main()
