"""Benchmark: sparse tf-idf-like data, top-10 influential training rows per test point.

Synthetic CSR matrix (default 20,000 × 100,000 at 0.1 % density, rows scaled to unit
norm like tf-idf), binary LogisticRegression (liblinear, fitted once and wrapped in
FrozenEstimator so its own fit is excluded), then ``InfluenceExplainer.fit`` and
``most_influential(X_test, y_test, k=10)``. The explainer's "auto" solver is the
data-space (Woodbury) one here (100,001 parameters, 20,000 rows: a float32
20,000² system); ``--solver cg`` runs conjugate gradients in parameter space, and
``--save`` writes the top-k result so that two runs can be compared.
Reports times and the peak resident memory of the process. Usage::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_sparse.py \\
        [--n-train 20000] [--n-features 100000] [--density 0.001] [--n-test 1000]
"""

import argparse
import resource
import time
import warnings

import numpy as np
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import normalize

from skinfluence import InfluenceExplainer


def make_data(n, d, density, seed=0):
    rng = np.random.RandomState(seed)
    per_row = max(1, int(round(density * d)))  # built directly: sp.random would
    cols = rng.randint(0, d, size=(n, per_row))  # scan all n·d cells (GBs)
    X = sp.csr_matrix((rng.exponential(1.0, n * per_row), cols.ravel(),
                       np.arange(0, n * per_row + 1, per_row)), shape=(n, d))
    X.sum_duplicates()
    X = normalize(X)  # unit rows, like tf-idf
    w = np.zeros(d)
    informative = rng.choice(d, 2000, replace=False)
    w[informative] = rng.standard_normal(2000) * 20
    y = (X @ w + 0.3 * rng.standard_normal(n) > 0).astype(int)
    return X, y


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=20_000)
    parser.add_argument("--n-features", type=int, default=100_000)
    parser.add_argument("--density", type=float, default=0.001)
    parser.add_argument("--n-test", type=int, default=1_000)
    parser.add_argument("--C", type=float, default=1.0)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--solver", default="auto",
                        choices=["auto", "cg", "woodbury"])
    parser.add_argument("--save", help="write the top-k indices and scores (.npz)")
    parser.add_argument("--newton", action="store_true",
                        help="also time leverages() and the Newton leave-one-out")
    args = parser.parse_args()

    X, y = make_data(args.n_train + args.n_test, args.n_features, args.density)
    X_tr, y_tr = X[: args.n_train], y[: args.n_train]
    X_te, y_te = X[args.n_train :], y[args.n_train :]
    start = time.perf_counter()
    model = LogisticRegression(C=args.C, solver="liblinear", tol=1e-8).fit(X_tr, y_tr)
    t_model = time.perf_counter() - start

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        explainer = InfluenceExplainer(FrozenEstimator(model), n_jobs=args.n_jobs,
                                       hessian_solver=args.solver).fit(X_tr, y_tr)
        t_fit = time.perf_counter() - start
        start = time.perf_counter()
        idx, scores = explainer.most_influential(X_te, y_te, k=10)
        t_top = time.perf_counter() - start
        if args.newton:
            start = time.perf_counter()
            leverages = explainer.leverages()
            t_lev = time.perf_counter() - start
            start = time.perf_counter()
            newton = explainer.leave_one_out(X_te, y_te, method="newton")
            t_newton = time.perf_counter() - start
            first = explainer.leave_one_out(X_te, y_te)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB → GiB
    solver = explainer.hessian_solver_
    print(f"X: {args.n_train} × {args.n_features}, {X_tr.nnz} non-zeros "
          f"(density {args.density}); {args.n_test} test points; n_jobs={args.n_jobs}")
    print(f"  LogisticRegression fit (excluded)   {t_model:8.1f} s")
    print(f"  InfluenceExplainer.fit              {t_fit:8.1f} s  "
          f"(solver: {solver.name})")
    print(f"  most_influential(k=10)              {t_top:8.1f} s  "
          f"(CG iterations in the last batch: {getattr(solver, 'n_iter_', 'n/a')})")
    if args.newton:
        print(f"  leverages()                         {t_lev:8.1f} s  "
              f"(max {leverages.max():.3f}, median {np.median(leverages):.2e})")
        print(f"  leave_one_out(method='newton')      {t_newton:8.1f} s  "
              f"(leverages included; Newton / first order: median "
              f"{np.median(np.abs(newton).sum(0) / np.abs(first).sum(0)):.3f}, "
              f"max {np.max(np.abs(newton).sum(0) / np.abs(first).sum(0)):.3f})")
    if args.save:
        np.savez(args.save, idx=idx, scores=scores)
    print(f"  total (fit + top-10)                {t_fit + t_top:8.1f} s")
    print(f"  peak resident memory                {peak:8.2f} GiB")
    print(f"  indices {idx.shape}, scores finite: {bool(np.isfinite(scores).all())}")


if __name__ == "__main__":
    main()
