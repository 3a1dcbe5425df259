"""Benchmark: InfluenceExplainer.loss_influence / leave_one_out on dense binary LR.

Prints, in one run:

1. ``loss_influence(X_test, y_test)`` time versus a bare numpy GEMM of the same shape
   (``A @ B``, A of shape (n_test, p), B of shape (p, n_train), p = n_params), and the
   time of ``InfluenceExplainer.fit`` on an already-fitted estimator (wrapped in
   ``sklearn.frozen.FrozenEstimator``, so the estimator fit is excluded).
2. ``leave_one_out(X_test, y_test)`` (all n_train removals) versus brute-force
   refitting: k sampled refits without one training row each, extrapolated to n_train
   refits; plus the Pearson correlation between predicted and actual test-loss changes
   on the sampled rows.
3. Machine facts: numpy/scipy/sklearn versions, BLAS libraries and thread counts.

Timings are the best of ``--repeats`` runs after one warm-up run. Each timed call
allocates its own (n_test, n_train) float64 output, for the library and for the GEMM
alike (n_test * n_train * 8 bytes: 800 MB at the default shape).

When ``loss_influence`` is slower than ``--profile-threshold`` times the GEMM (or with
``--profile always``), the time is broken down into its pieces.

Usage::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \\
        PYTHONPATH=. python benchmarks/bench_loss_influence.py [--quick] [--output]
"""

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import scipy
import sklearn
from scipy.special import log_expit
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_info

from skinfluence import InfluenceExplainer

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "bench_loss_influence.json"
QUICK = dict(n_train=2_000, n_features=20, n_test=500, k=5)


# -- helpers ------------------------------------------------------------------------
def timeit(fn, repeats, warmup=1):
    """Run fn warmup times untimed, then repeats times; return (best, median, times)."""
    for _ in range(warmup):
        out = fn()
        del out
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
        del out  # free the (possibly large) result before the next run
    return min(times), statistics.median(times), times


def log_loss_per_sample(est, X, y):
    """Plain per-sample log-loss of a fitted binary LogisticRegression."""
    z = est.decision_function(X)
    sign = np.where(y == est.classes_[1], 1.0, -1.0)
    return -log_expit(sign * z)


def machine_facts():
    blas = [
        {k: info.get(k) for k in
         ("user_api", "internal_api", "prefix", "version", "architecture",
          "threading_layer", "num_threads", "filepath")}
        for info in threadpool_info()
    ]
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        affinity = None
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpus_available": affinity,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "sklearn": sklearn.__version__,
        "threadpools": blas,
        "env": {k: os.environ.get(k) for k in
                ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS",
                 "OMP_NUM_THREADS", "MKL_NUM_THREADS")},
    }


def fmt_s(t):
    return f"{t * 1e3:9.1f} ms" if t < 1 else f"{t:9.3f} s "


# -- benchmark parts ----------------------------------------------------------------
def make_data(args):
    X, y = make_classification(
        n_samples=args.n_train + args.n_test,
        n_features=args.n_features,
        n_informative=max(2, min(20, args.n_features // 2)),
        n_redundant=0,
        flip_y=0.05,
        random_state=args.seed,
    )
    X_train, X_test = X[: args.n_train], X[args.n_train:]
    y_train, y_test = y[: args.n_train], y[args.n_train:]
    scaler = StandardScaler().fit(X_train)
    return (np.ascontiguousarray(scaler.transform(X_train)), y_train,
            np.ascontiguousarray(scaler.transform(X_test)), y_test)


def make_estimator(args):
    return LogisticRegression(solver="newton-cholesky", tol=args.tol,
                              max_iter=args.max_iter)


def bench_loss_influence(args, explainer, X_test, y_test, n_params, rng):
    res = {}
    best, med, _ = timeit(lambda: explainer.loss_influence(X_test, y_test),
                          args.repeats)
    res["loss_influence"] = {"best_s": best, "median_s": med}

    A = rng.standard_normal((args.n_test, n_params))
    B = rng.standard_normal((n_params, args.n_train))
    best, med, _ = timeit(lambda: A @ B, args.repeats)
    res["gemm"] = {"best_s": best, "median_s": med,
                   "shape": f"({args.n_test}x{n_params}) @ ({n_params}x{args.n_train})",
                   "gflops_best": 2.0 * args.n_test * n_params * args.n_train / best / 1e9}
    res["ratio_loss_influence_over_gemm"] = (res["loss_influence"]["best_s"]
                                             / res["gemm"]["best_s"])
    return res


def bench_leave_one_out(args, est, explainer, X_train, y_train, X_test, y_test, rng):
    res = {}
    best, med, _ = timeit(lambda: explainer.leave_one_out(X_test, y_test),
                          args.repeats)
    res["leave_one_out"] = {"best_s": best, "median_s": med}

    k = min(args.k, args.n_train)
    rows = np.sort(rng.choice(args.n_train, size=k, replace=False))
    base_loss = log_loss_per_sample(est, X_test, y_test)
    predicted = explainer.leave_one_out(X_test, y_test)[:, rows]  # (n_test, k)
    actual = np.empty_like(predicted)
    fit_times, n_iters = [], []
    for c, j in enumerate(rows):
        keep = np.ones(args.n_train, dtype=bool)
        keep[j] = False
        Xj, yj = X_train[keep], y_train[keep]  # copy outside the timed region
        refit = clone(est)
        t0 = time.perf_counter()
        refit.fit(Xj, yj)
        fit_times.append(time.perf_counter() - t0)
        n_iters.append(int(np.max(refit.n_iter_)))
        actual[:, c] = log_loss_per_sample(refit, X_test, y_test) - base_loss

    per_refit = float(np.mean(fit_times))
    brute_total = per_refit * args.n_train
    res["brute_force"] = {
        "k_sampled": int(k),
        "rows": rows.tolist(),
        "refit_mean_s": per_refit,
        "refit_min_s": float(np.min(fit_times)),
        "refit_max_s": float(np.max(fit_times)),
        "refit_n_iter_max": max(n_iters),
        "extrapolated_total_s": brute_total,
    }
    res["speedup_brute_over_loo"] = brute_total / res["leave_one_out"]["best_s"]

    pooled = float(np.corrcoef(predicted.ravel(), actual.ravel())[0, 1])
    per_row = [float(np.corrcoef(predicted[:, c], actual[:, c])[0, 1]) for c in range(k)]
    err = predicted - actual
    res["accuracy"] = {
        "pearson_pooled": pooled,
        "pearson_mean_over_removed_rows": float(np.mean(per_row)),
        "pearson_min_over_removed_rows": float(np.min(per_row)),
        "max_abs_actual": float(np.max(np.abs(actual))),
        "max_abs_error": float(np.max(np.abs(err))),
        "rel_rmse": float(np.sqrt(np.mean(err**2) / np.mean(actual**2))),
    }
    return res


def profile_pieces(args, explainer, X_test, y_test, rng):
    """Time the pieces of loss_influence / leave_one_out, replicated from the library.

    Uses the explainer's private state (read only): the pipeline is validate → test
    gradients → Hessian solve → GEMM against the stored training gradients, in row
    batches written into one preallocated (n_test, n_train) output.
    """
    from sklearn.utils.validation import validate_data

    from skinfluence._parallel import BATCH_BYTES, batch_slices

    obj = explainer._objective
    train = explainer._train_rows
    solver = explainer.hessian_solver_
    n_test, n_train = args.n_test, train.shape[0]
    slices = batch_slices(n_test, explainer.batch_size, 8 * n_train)
    reps = args.repeats

    def validate():
        Xv = validate_data(explainer, X_test, reset=False, accept_sparse="csr",
                           dtype=np.float64)
        return Xv, explainer._encode(y_test, Xv.shape[0])

    Xv, yidx = validate()
    G = obj.test_gradients(Xv, yidx)
    V = -solver.solve(G.T).T
    TT = train.T
    warm = np.empty((n_test, n_train))
    warm.fill(0.0)  # pre-faulted buffer

    def gemm_batched(out):
        for sl in slices:
            np.matmul(V[sl], TT, out=out[sl])
        return out

    scale = -explainer.sample_weight_ / n_train
    train_scaled_T = (train * scale[:, None]).T

    pieces = {}
    pieces["validate_data+encode"] = timeit(validate, reps)[0]
    pieces["test_gradients (all rows)"] = timeit(
        lambda: obj.test_gradients(Xv, yidx), reps)[0]
    pieces["hessian solve H^-1 G^T (all rows)"] = timeit(
        lambda: -solver.solve(G.T).T, reps)[0]
    pieces["np.empty + first touch of output"] = timeit(
        lambda: np.empty((n_test, n_train)).fill(0.0), reps)[0]
    pieces["GEMM, one call, pre-faulted out="] = timeit(
        lambda: np.matmul(V, TT, out=warm), reps)[0]
    pieces[f"GEMM, {len(slices)} batches, pre-faulted out="] = timeit(
        lambda: gemm_batched(warm), reps)[0]
    pieces[f"GEMM, {len(slices)} batches, fresh np.empty out (library path)"] = timeit(
        lambda: gemm_batched(np.empty((n_test, n_train))), reps)[0]
    pieces["GEMM, one call, fresh output (V @ train.T)"] = timeit(
        lambda: V @ TT, reps)[0]
    pieces["leave_one_out extra pass: out *= -s/n"] = timeit(
        lambda: np.multiply(warm, scale, out=warm), reps)[0]
    pieces["alt: GEMM against pre-scaled train (LOO w/o extra pass)"] = timeit(
        lambda: np.matmul(V, train_scaled_T, out=warm), reps)[0]
    A = rng.standard_normal((n_test, V.shape[1]))
    B = rng.standard_normal((V.shape[1], n_train))
    pieces["bare A @ B (C-contig random, fresh output)"] = timeit(lambda: A @ B, reps)[0]
    pieces["bare A @ B, pre-faulted out="] = timeit(
        lambda: np.matmul(A, B, out=warm), reps)[0]
    del warm

    pr = cProfile.Profile()
    pr.enable()
    out = explainer.loss_influence(X_test, y_test)
    pr.disable()
    del out
    s = io.StringIO()
    pstats.Stats(pr, stream=s).sort_stats("tottime").print_stats(8)
    return {"batches": len(slices), "batch_rows": slices[0].stop - slices[0].start,
            "batch_bytes_target": BATCH_BYTES, "pieces_best_s": pieces,
            "cprofile_loss_influence_tottime": s.getvalue()}


# -- main ---------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--n-train", type=int, default=20_000)
    p.add_argument("--n-features", type=int, default=200)
    p.add_argument("--n-test", type=int, default=5_000)
    p.add_argument("--k", type=int, default=20,
                   help="number of brute-force leave-one-out refits to time")
    p.add_argument("--repeats", type=int, default=3,
                   help="timed repeats (best reported), after one warm-up")
    p.add_argument("--tol", type=float, default=1e-8)
    p.add_argument("--max-iter", type=int, default=100)
    p.add_argument("--n-jobs", type=int, default=None,
                   help="InfluenceExplainer(n_jobs=...)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true",
                   help="smoke-size run: " + ", ".join(f"{k}={v}" for k, v in
                                                        QUICK.items()))
    p.add_argument("--profile", choices=("auto", "always", "never"), default="auto",
                   help="break loss_influence down into pieces (auto: only when "
                        "slower than --profile-threshold x GEMM)")
    p.add_argument("--profile-threshold", type=float, default=1.5)
    p.add_argument("--output", nargs="?", const=str(DEFAULT_OUTPUT), default=None,
                   help=f"write JSON results (default path if no value: "
                        f"{DEFAULT_OUTPUT})")
    args = p.parse_args(argv)
    if args.quick:
        for k, v in QUICK.items():
            setattr(args, k, v)
    args.repeats = max(1, args.repeats)
    return args


def main(argv=None):
    args = parse_args(argv)
    rng = np.random.default_rng(args.seed)
    t_start = time.perf_counter()

    X_train, y_train, X_test, y_test = make_data(args)
    est = make_estimator(args)
    t0 = time.perf_counter()
    est.fit(X_train, y_train)
    t_est_fit = time.perf_counter() - t0

    make = lambda: InfluenceExplainer(FrozenEstimator(est), n_jobs=args.n_jobs)  # noqa: E731
    t_fit, t_fit_med, _ = timeit(lambda: make().fit(X_train, y_train), args.repeats)
    explainer = make().fit(X_train, y_train)
    n_params = explainer.params_.shape[0]

    part1 = bench_loss_influence(args, explainer, X_test, y_test, n_params, rng)
    part2 = bench_leave_one_out(args, est, explainer, X_train, y_train, X_test, y_test,
                                rng)
    facts = machine_facts()

    ratio = part1["ratio_loss_influence_over_gemm"]
    prof = None
    if args.profile == "always" or (args.profile == "auto"
                                    and ratio > args.profile_threshold):
        prof = profile_pieces(args, explainer, X_test, y_test, rng)

    # -- report -------------------------------------------------------------------
    out_mb = args.n_test * args.n_train * 8 / 2**20
    print(f"skinfluence loss_influence benchmark  (dense binary LogisticRegression, "
          f"solver='newton-cholesky', tol={args.tol:g})")
    print(f"  n_train={args.n_train}  n_features={args.n_features}  "
          f"n_test={args.n_test}  n_params p={n_params}  output {out_mb:.0f} MiB  "
          f"repeats={args.repeats} (best of, after 1 warm-up)  n_jobs={args.n_jobs}")
    print(f"  estimator fit {t_est_fit:.3f} s (n_iter={int(np.max(est.n_iter_))}), "
          f"explainer optimality_={explainer.optimality_:.1e}, "
          f"cond(H)={explainer.hessian_solver_.condition_number_:.2e}")
    print()
    w = 58
    print(f"{'1. loss_influence vs GEMM':<{w}}{'best':>12}{'median':>12}")
    print("-" * (w + 24))
    li, gm = part1["loss_influence"], part1["gemm"]
    print(f"{'InfluenceExplainer.loss_influence(X_test, y_test)':<{w}}"
          f"{fmt_s(li['best_s']):>12}{fmt_s(li['median_s']):>12}")
    print(f"{'numpy A @ B  ' + gm['shape']:<{w}}"
          f"{fmt_s(gm['best_s']):>12}{fmt_s(gm['median_s']):>12}"
          f"   ({gm['gflops_best']:.0f} GFLOP/s)")
    print(f"{'ratio loss_influence / GEMM':<{w}}{ratio:>10.2f} x")
    print(f"{'InfluenceExplainer.fit (FrozenEstimator, no LR fit)':<{w}}"
          f"{fmt_s(t_fit):>12}{fmt_s(t_fit_med):>12}")
    print()
    print(f"{'2. leave_one_out vs brute-force refits':<{w}}{'best':>12}{'median':>12}")
    print("-" * (w + 24))
    lo, bf, acc = part2["leave_one_out"], part2["brute_force"], part2["accuracy"]
    print(f"{'leave_one_out(X_test, y_test), all n_train removals':<{w}}"
          f"{fmt_s(lo['best_s']):>12}{fmt_s(lo['median_s']):>12}")
    print(f"{'one refit without a row (mean of k=%d)' % bf['k_sampled']:<{w}}"
          f"{fmt_s(bf['refit_mean_s']):>12}   (min {bf['refit_min_s']:.3f} s, "
          f"max {bf['refit_max_s']:.3f} s, n_iter<={bf['refit_n_iter_max']})")
    print(f"{'brute force, extrapolated to %d refits' % args.n_train:<{w}}"
          f"{fmt_s(bf['extrapolated_total_s']):>12}"
          f"   (= {bf['extrapolated_total_s'] / 60:.1f} min)")
    print(f"{'speed-up (brute force / leave_one_out)':<{w}}"
          f"{part2['speedup_brute_over_loo']:>10.0f} x")
    print(f"{'Pearson r, pooled over k x n_test (removed row, test pt)':<{w}}"
          f"{acc['pearson_pooled']:>12.4f}")
    print(f"{'Pearson r over test pts, mean (min) over removed rows':<{w}}"
          f"{acc['pearson_mean_over_removed_rows']:>12.4f}"
          f"   (min {acc['pearson_min_over_removed_rows']:.4f})")
    print(f"{'max |actual change| / max |pred - actual| / rel. RMSE':<{w}}"
          f"{acc['max_abs_actual']:>12.2e}   / {acc['max_abs_error']:.2e}"
          f" / {acc['rel_rmse']:.3f}")
    print()
    print("3. machine")
    print("-" * (w + 24))
    print(f"  python {facts['python']}  numpy {facts['numpy']}  scipy {facts['scipy']}"
          f"  sklearn {facts['sklearn']}  ({facts['platform']})")
    print(f"  cpu_count={facts['cpu_count']}  cpus available={facts['cpus_available']}"
          f"  env: " + ", ".join(f"{k}={v}" for k, v in facts["env"].items()
                                 if v is not None) or "-")
    for tp in facts["threadpools"]:
        lib = Path(tp["filepath"]).parent.name + "/" + Path(tp["filepath"]).name
        print(f"  {tp['internal_api']:<9} {tp.get('version') or '':<14} "
              f"arch={tp.get('architecture') or '-':<10} threads={tp['num_threads']}"
              f"  {lib}")

    if prof is not None:
        print()
        print(f"4. profile of loss_influence pieces ({prof['batches']} batches of "
              f"{prof['batch_rows']} test rows; best of {args.repeats})")
        print("-" * (w + 24))
        for name, t in prof["pieces_best_s"].items():
            print(f"  {name:<{w + 2}}{fmt_s(t):>12}")
        print()
        print("  cProfile of one loss_influence call (top by tottime):")
        lines = prof["cprofile_loss_influence_tottime"].strip().splitlines()
        start = next((i for i, ln in enumerate(lines) if "ncalls" in ln), 0)
        for ln in lines[start:]:
            print("   ", ln)

    wall = time.perf_counter() - t_start
    print(f"\nwall time {wall:.1f} s")

    if args.output:
        results = {
            "config": {k: v for k, v in vars(args).items() if k != "output"},
            "n_params": n_params,
            "estimator_fit_s": t_est_fit,
            "estimator_n_iter": int(np.max(est.n_iter_)),
            "explainer_optimality": explainer.optimality_,
            "hessian_condition_number": explainer.hessian_solver_.condition_number_,
            "explainer_fit": {"best_s": t_fit, "median_s": t_fit_med},
            **part1,
            **part2,
            "profile": prof,
            "machine": facts,
            "wall_s": wall,
        }
        path = Path(args.output)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=2) + "\n")
        print(f"results written to {path}")


if __name__ == "__main__":
    main()
