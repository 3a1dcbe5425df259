"""Benchmark: leave-one-out for all training rows, three methods vs true refits.

LogisticRegression (newton-cholesky, tol 1e-10) on make_classification, 2000 training
rows × 50 features, 500 test points. 20 removals are refitted for real; their time is
extrapolated to all 2000, and their test-loss changes are the accuracy oracle. Usage::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_leave_one_out.py
"""

import time

import numpy as np
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from skinfluence import InfluenceExplainer


def test_loss(model, X, y):
    return -np.log(model.predict_proba(X)[np.arange(len(y)), y])


def main(n_train=2000, n_test=500, n_features=50, n_sampled=20):
    X, y = make_classification(n_samples=n_train + n_test, n_features=n_features,
                               n_informative=20, flip_y=0.05, random_state=0)
    X = StandardScaler().fit_transform(X)
    Xtr, ytr, Xte, yte = X[:n_train], y[:n_train], X[n_train:], y[n_train:]
    est = LogisticRegression(C=1.0, solver="newton-cholesky", tol=1e-10)

    start = time.perf_counter()
    explainer = InfluenceExplainer(est).fit(Xtr, ytr)
    t_fit = time.perf_counter() - start
    predicted = {}
    for method in ("influence", "newton", "exact"):
        start = time.perf_counter()
        out = explainer.leave_one_out(Xte, yte, method=method)
        predicted[method] = (time.perf_counter() - start, out)

    rows = np.linspace(0, n_train - 1, n_sampled).astype(int)
    base = test_loss(explainer.estimator_, Xte, yte)
    start = time.perf_counter()
    actual = []
    for j in rows:
        keep = np.ones(n_train, dtype=bool)
        keep[j] = False
        actual.append(test_loss(clone(est).fit(Xtr[keep], ytr[keep]), Xte, yte) - base)
    t_refit = (time.perf_counter() - start) / len(rows)
    actual = np.array(actual).T

    print(f"n_train={n_train}, p={n_features + 1}, n_test={n_test}: explainer fit "
          f"{t_fit:.3f} s; one refit {1e3 * t_refit:.1f} ms, all {n_train} refits "
          f"≈ {t_refit * n_train:.1f} s")
    for method, (t, out) in predicted.items():
        pred = out[:, rows]
        r = np.corrcoef(pred.ravel(), actual.ravel())[0, 1]
        err = np.abs(pred - actual).max() / np.abs(actual).max()
        speedup = t_refit * n_train / (t + t_fit)
        print(f"  {method:9s} {t:6.3f} s  {speedup:7.0f}x faster than refitting "
              f"(incl. fit)  Pearson {r:.6f}  max rel. error {err:.1e}")


if __name__ == "__main__":
    main()
