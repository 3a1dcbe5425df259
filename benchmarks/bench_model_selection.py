"""Approximate leave-one-out CV (skinfluence.analysis) against true LeaveOneOut CV.

Data: ``load_breast_cancer``, standardised, the first 200 rows (``--n-rows``).
Model: ``LogisticRegression(solver="newton-cholesky", tol=1e-10)`` over a C grid.
True: ``cross_val_score(cv=LeaveOneOut())`` with log-loss (``labels=[0, 1]`` so that
one-row folds score), i.e. n_rows fits per C. Ours: ``approximate_loo_cv``, one fit,
one Hessian factorisation and one Newton leave-one-out pass per C. Best of
``--repeat`` runs for each side, after a warm-up.

Usage::

    python benchmarks/bench_model_selection.py [--n-rows 200] [--repeat 3]
"""

import argparse
import time

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, make_scorer
from sklearn.model_selection import LeaveOneOut, cross_val_score
from sklearn.preprocessing import StandardScaler

from skinfluence.analysis import approximate_loo_cv

GRID = [0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0]


def model(C=1.0):
    return LogisticRegression(C=C, solver="newton-cholesky", tol=1e-10)


def true_loo(X, y):
    scorer = make_scorer(log_loss, response_method="predict_proba",
                         greater_is_better=False, labels=[0, 1])
    return np.array([-cross_val_score(model(C), X, y, cv=LeaveOneOut(),
                                      scoring=scorer).mean() for C in GRID])


def best_time(fn, repeat):
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-rows", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)[: args.n_rows]
    y = y[: args.n_rows]
    approximate_loo_cv(model(), X, y, {"C": [1.0]})  # warm-up
    t_ours, res = best_time(lambda: approximate_loo_cv(model(), X, y, {"C": GRID}),
                            args.repeat)
    t_true, true = best_time(lambda: true_loo(X, y), args.repeat)
    ours = res["loo_loss"]
    print(f"{'C':>6} {'approx LOO':>11} {'true LOO':>9} {'rel. error':>10}")
    for C, a, b in zip(GRID, ours, true, strict=True):
        print(f"{C:>6} {a:>11.5f} {b:>9.5f} {(a - b) / b:>+10.1e}")
    print(f"argmin C: approximate {GRID[int(np.argmin(ours))]}, "
          f"true {GRID[int(np.argmin(true))]}")
    print(f"time (best of {args.repeat}): approximate {t_ours:.3f} s, true LOO CV "
          f"{t_true:.2f} s, ratio {t_true / t_ours:.0f}x")


if __name__ == "__main__":
    main()
