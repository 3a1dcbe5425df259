"""Benchmark: how the cost grows with n_train, p and n_test (scaling curves).

Dense binary LogisticRegression (fitted once per shape and frozen, so its own fit is
excluded). For each shape, best of ``--repeats``: ``InfluenceExplainer.fit`` and
``loss_influence(X_test, y_test)``, next to a bare numpy GEMM of the same shape
(``(n_test, p) @ (p, n_train)``, the physical limit of the score matrix). Expected:
scoring O(n_test · n_train · p), like the GEMM; fit O(n_train · p² + p³).
Each sweep varies one size from the base shape (10,000 × 200, 1,000 test points).

Also measures ``n_jobs=2`` against ``n_jobs=1`` on a large sparse test set (the
conjugate-gradient and data-space solvers, whose sparse products are single-threaded,
so the two joblib workers use the two cores).

Writes ``benchmarks/results/bench_scaling.json`` and the figure
``docs/images/scaling.png``. Usage::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_scaling.py
"""

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.datasets import make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression

from skinfluence import InfluenceExplainer

ROOT = Path(__file__).resolve().parents[1]
BASE = dict(n_train=10_000, p=200, n_test=1_000)
SWEEPS = {
    "n_train": [2_500, 5_000, 10_000, 20_000, 40_000],
    "p": [50, 100, 200, 400, 800],
    "n_test": [250, 500, 1_000, 2_000, 4_000],
}


def best_of(fn, repeats):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
        del out
    return min(times)


def dense_point(n_train, p, n_test, repeats):
    X, y = make_classification(n_train + n_test, p, n_informative=min(p, 20),
                               random_state=0)
    X_tr, y_tr, X_te, y_te = X[:n_train], y[:n_train], X[n_train:], y[n_train:]
    model = FrozenEstimator(LogisticRegression(solver="newton-cholesky", tol=1e-10)
                            .fit(X_tr, y_tr))
    explainer = InfluenceExplainer(model, hessian_solver="cholesky").fit(X_tr, y_tr)
    A = np.random.RandomState(1).standard_normal((n_test, p + 1))
    B = np.random.RandomState(2).standard_normal((p + 1, n_train))
    return {
        "fit_s": best_of(lambda: InfluenceExplainer(
            model, hessian_solver="cholesky").fit(X_tr, y_tr), repeats),
        "loss_influence_s": best_of(lambda: explainer.loss_influence(X_te, y_te),
                                    repeats),
        "gemm_s": best_of(lambda: A @ B, repeats),
    }


def parallel_point(solver, n_train, n_features, n_test, repeats):
    from bench_sparse import make_data  # same synthetic tf-idf-like data

    X, y = make_data(n_train + n_test, n_features, 0.001)
    X_tr, y_tr, X_te, y_te = X[:n_train], y[:n_train], X[n_train:], y[n_train:]
    model = FrozenEstimator(LogisticRegression(solver="liblinear", tol=1e-8)
                            .fit(X_tr, y_tr))
    out = {}
    for n_jobs in (1, 2):
        ex = InfluenceExplainer(model, hessian_solver=solver, n_jobs=n_jobs,
                                batch_size=50).fit(X_tr, y_tr)
        out[f"n_jobs={n_jobs}_s"] = best_of(
            lambda ex=ex: ex.most_influential(X_te, y_te, k=10), repeats)
    out["speedup"] = out["n_jobs=1_s"] / out["n_jobs=2_s"]
    return out


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    for ax, (size, points) in zip(axes, results["dense"].items(), strict=True):
        xs = np.array([pt[size] for pt in points], dtype=float)
        for key, label, style in [("loss_influence_s", "loss_influence", "o-"),
                                  ("gemm_s", "bare GEMM (same shape)", "s--"),
                                  ("fit_s", "explainer fit", "^-")]:
            ax.loglog(xs, [pt[key] for pt in points], style, label=label)
        ref = np.array([pt["gemm_s"] for pt in points])
        ax.loglog(xs, ref[0] * xs / xs[0], ":", color="grey", label="slope 1")
        if size == "p":  # fit: n p² (the Hessian) takes over at large p
            fit_last = points[-1]["fit_s"]
            ax.loglog(xs, fit_last * (xs / xs[-1]) ** 2, "-.", color="grey",
                      label="slope 2")
        ax.set_xticks(xs, [f"{x:,.0f}" for x in xs])
        ax.minorticks_off()
        ax.set_xlabel(size)
        ax.set_title(f"time vs {size}")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("seconds (best of repeats)")
    axes[0].legend(fontsize=8)
    axes[1].legend(fontsize=8)
    fig.suptitle("Dense binary LogisticRegression; base shape 10,000 × 200, "
                 "1,000 test points")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-parallel", action="store_true")
    parser.add_argument("--plot-only", action="store_true",
                        help="redraw the figure from the saved results")
    args = parser.parse_args()
    out = ROOT / "benchmarks" / "results" / "bench_scaling.json"
    if args.plot_only:
        plot(json.loads(out.read_text()), ROOT / "docs" / "images" / "scaling.png")
        return
    warnings.simplefilter("ignore", ConvergenceWarning)
    results = {"dense": {}, "parallel": {}}
    for size, values in SWEEPS.items():
        results["dense"][size] = []
        for value in values:
            shape = {**BASE, size: value}
            pt = {**shape, **dense_point(**shape, repeats=args.repeats)}
            results["dense"][size].append(pt)
            print(f"{size}={value:>6}: fit {pt['fit_s'] * 1e3:8.1f} ms, "
                  f"loss_influence {pt['loss_influence_s'] * 1e3:8.1f} ms, "
                  f"GEMM {pt['gemm_s'] * 1e3:8.1f} ms "
                  f"(ratio {pt['loss_influence_s'] / pt['gemm_s']:.2f})", flush=True)
    if not args.skip_parallel:
        for solver in ("cg", "woodbury"):
            pt = parallel_point(solver, 5_000, 50_000, 400, repeats=1)
            results["parallel"][solver] = pt
            print(f"sparse 5,000 × 50,000, 400 test, top-10, {solver}: n_jobs=1 "
                  f"{pt['n_jobs=1_s']:.2f} s, n_jobs=2 {pt['n_jobs=2_s']:.2f} s "
                  f"({pt['speedup']:.2f}×)", flush=True)
    out.write_text(json.dumps(results, indent=1))
    plot(results, ROOT / "docs" / "images" / "scaling.png")
    print(f"wrote {out} and docs/images/scaling.png")


if __name__ == "__main__":
    main()
