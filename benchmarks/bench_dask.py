"""Benchmark: training rows in dask chunks vs the same explainer on numpy, per core.

A binary LogisticRegression (fitted on a sample and wrapped in FrozenEstimator) is
explained on n training rows × d features: ``fit`` (one pass for the totals of y,
one reduction for the Hessian and gradient) and ``most_influential`` (top-10 for 100 test
points, one pass). In memory: X as numpy in this process with one BLAS thread. On
Dask: the same X persisted on a ``distributed.LocalCluster`` of 1 and then 2 workers
(one thread each, one BLAS thread), so data generation is excluded from both.
Reports rows per second per worker (per core) and writes
``benchmarks/results/bench_dask.json``. Usage::

    python benchmarks/bench_dask.py [--n-train 1000000] [--n-features 32]
        [--chunk 100000]
"""

import argparse
import json
import pathlib
import tempfile
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from skinfluence import InfluenceExplainer


def make_data(n, d, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    w = np.linspace(-1, 1, d)
    y = (X @ w + rng.standard_normal(n) > 0).astype(int)
    return X, y


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def run(explain_X, y, model, Xt, yt):
    """(fit seconds, top-10 seconds) of one explainer."""
    explainer, t_fit = timed(
        lambda: InfluenceExplainer(FrozenEstimator(model)).fit(explain_X, y))
    _, t_top = timed(lambda: explainer.most_influential(Xt, yt, k=10))
    return t_fit, t_top


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=1_000_000)
    parser.add_argument("--n-features", type=int, default=32)
    parser.add_argument("--chunk", type=int, default=100_000)
    args = parser.parse_args()
    import dask.array as da
    import distributed

    n, d = args.n_train, args.n_features
    X, y = make_data(n, d)
    Xt, yt = make_data(100, d, seed=1)
    model = LogisticRegression(C=1.0, solver="newton-cholesky").fit(X[:20000],
                                                                   y[:20000])
    warnings.simplefilter("ignore", ConvergenceWarning)  # fitted on a sample
    results = {"n_train": n, "n_features": d, "chunk": args.chunk, "n_test": 100}
    with threadpool_limits(limits=1, user_api="blas"):
        t_fit, t_top = run(X, y, model, Xt, yt)
    results["numpy"] = {"fit_s": t_fit, "top10_s": t_top,
                        "fit_rows_per_s": n / t_fit, "top10_rows_per_s": n / t_top}
    print(f"numpy, 1 core:  fit {t_fit:.2f} s ({n / t_fit:,.0f} rows/s), "
          f"top-10 {t_top:.2f} s ({n / t_top:,.0f} rows/s)")
    for workers in (1, 2):
        with tempfile.TemporaryDirectory() as tmp, distributed.LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True,
                local_directory=tmp, dashboard_address=None) as cluster, \
                distributed.Client(cluster):
            Xd = da.from_array(X, chunks=(args.chunk, d)).persist()
            yd = da.from_array(y, chunks=args.chunk).persist()
            distributed.wait([Xd, yd])
            t_fit, t_top = run(Xd, yd, model, Xt, yt)
        per = {"fit_s": t_fit, "top10_s": t_top,
               "fit_rows_per_s_per_worker": n / t_fit / workers,
               "top10_rows_per_s_per_worker": n / t_top / workers}
        results[f"dask_{workers}_workers"] = per
        print(f"dask, {workers} worker(s): fit {t_fit:.2f} s "
              f"({n / t_fit / workers:,.0f} rows/s/worker), top-10 {t_top:.2f} s "
              f"({n / t_top / workers:,.0f} rows/s/worker)")
    out = pathlib.Path(__file__).parent / "results" / "bench_dask.json"
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
