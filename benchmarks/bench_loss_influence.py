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

Timing method. Quantities that are compared with each other are timed round-robin
(A, B, C, A, B, C, ...) so that they see the same machine conditions (shared/virtual
machines drift), with ``--settle`` seconds of idle time before every turn so that BLAS
worker threads still spinning from the previous call have gone to sleep. Each function
gets ``--repeats`` timed calls, each right after an untimed warm-up call; the best is
reported (the median too). Every timed call allocates its own (n_test, n_train) float64
output, for the library and for the GEMM alike (800 MB at the default shape).
The ``--quick`` shapes take well under a millisecond per call: their timings mostly
measure thread wake-up and scheduling, and are a smoke test only.

When ``loss_influence`` is slower than ``--profile-threshold`` times the GEMM (or with
``--profile always``), its time is broken down into pieces (section 4).

Usage::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \\
        PYTHONPATH=. python benchmarks/bench_loss_influence.py [--quick] [--output]
"""

import argparse
import contextlib
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
from threadpoolctl import ThreadpoolController, threadpool_info

try:
    from skinfluence import InfluenceExplainer
except ImportError:  # not installed: use the checkout this script lives in
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from skinfluence import InfluenceExplainer

DEFAULT_OUTPUT = (Path(__file__).resolve().parent / "results"
                  / "bench_loss_influence.json")
QUICK = dict(n_train=2_000, n_features=20, n_test=500, k=5)

#: Idle time before each timed call, so that BLAS worker threads still spinning from
#: the previous call (OpenBLAS busy-waits ~2**28 cycles after a call) are asleep.
SETTLE_S = 0.2


# -- timing -------------------------------------------------------------------------
def time_round_robin(fns, repeats, warmup=1):
    """Time several functions in turn; {name: {"best_s", "median_s", "times_s"}}.

    Round r calls every function in turn; each turn is: ``SETTLE_S`` idle (the
    previous function's BLAS threads stop spinning), ``warmup`` untimed calls (this
    function's own thread pools wake up), one timed call. ``fns`` maps a name to ``fn``
    or to ``(fn, context)``, ``context`` a factory of a context manager entered around
    the turn, outside the timed region. A function may return a dict of sub-times
    {label: seconds}: those of its best run are kept.
    """
    fns = {k: (v if isinstance(v, tuple) else (v, contextlib.nullcontext))
           for k, v in fns.items()}
    times = {k: [] for k in fns}
    subs = {k: [] for k in fns}
    for _ in range(repeats):
        for name, (fn, ctx) in fns.items():
            with ctx():
                time.sleep(SETTLE_S)
                for _ in range(warmup):
                    out = fn()
                    del out
                t0 = time.perf_counter()
                out = fn()
                dt = time.perf_counter() - t0
            times[name].append(dt)
            subs[name].append(out if isinstance(out, dict) else None)
            del out  # free the (possibly large) result before the next call
    res = {}
    for name, ts in times.items():
        best = min(range(len(ts)), key=lambda i: ts[i])
        res[name] = {"best_s": ts[best], "median_s": statistics.median(ts),
                     "times_s": ts}
        if subs[name][best] is not None:
            res[name]["sub_best_s"] = subs[name][best]
    return res


def fmt_s(t):
    return f"{t * 1e3:9.1f} ms" if t < 1 else f"{t:9.3f} s "


# -- machine ------------------------------------------------------------------------
def read_steal_ticks():
    """CPU time stolen by the hypervisor (Linux /proc/stat), in clock ticks."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        return int(fields[8])
    except (OSError, IndexError, ValueError):
        return None


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
                 "OPENBLAS_THREAD_TIMEOUT", "OMP_NUM_THREADS", "MKL_NUM_THREADS")},
    }


def other_blas_pools():
    """Controller of the BLAS pools other than numpy's own, or None.

    scipy wheels ship their own OpenBLAS: scipy.linalg (cho_solve) and np.matmul then
    run on two distinct thread pools.
    """
    ctl = ThreadpoolController()
    np_dir = Path(np.__file__).resolve().parent
    paths = []
    for lib in ctl.lib_controllers:
        if lib.user_api != "blas":
            continue
        where = Path(lib.filepath).resolve()
        if where.parent.name.startswith("numpy") or np_dir in where.parents:
            continue
        paths.append(lib.filepath)
    return ctl.select(filepath=paths) if paths else None


# -- data and model -----------------------------------------------------------------
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


def log_loss_per_sample(est, X, y):
    """Plain per-sample log-loss of a fitted binary LogisticRegression."""
    z = est.decision_function(X)
    sign = np.where(y == est.classes_[1], 1.0, -1.0)
    return -log_expit(sign * z)


# -- benchmark parts ----------------------------------------------------------------
def brute_force(args, est, explainer, X_train, y_train, X_test, y_test, rng):
    """k refits without one training row each; predicted vs actual test-loss changes."""
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

    pooled = float(np.corrcoef(predicted.ravel(), actual.ravel())[0, 1])
    per_row = [float(np.corrcoef(predicted[:, c], actual[:, c])[0, 1])
               for c in range(k)]
    err = predicted - actual
    return {
        "k_sampled": int(k),
        "rows": rows.tolist(),
        "refit_times_s": fit_times,
        "refit_min_s": float(np.min(fit_times)),
        "refit_median_s": float(np.median(fit_times)),
        "refit_mean_s": float(np.mean(fit_times)),
        "refit_max_s": float(np.max(fit_times)),
        "refit_n_iter_max": max(n_iters),
        "accuracy": {
            "pearson_pooled": pooled,
            "pearson_mean_over_removed_rows": float(np.mean(per_row)),
            "pearson_min_over_removed_rows": float(np.min(per_row)),
            "max_abs_actual": float(np.max(np.abs(actual))),
            "max_abs_error": float(np.max(np.abs(err))),
            "rel_rmse": float(np.sqrt(np.mean(err**2) / np.mean(actual**2))),
        },
    }


def profile_pieces(args, explainer, X_test, y_test, rng):
    """Time the pieces of loss_influence / leave_one_out, replicated from the library.

    Uses the explainer's private state (read only). The library's pipeline, per batch
    of test rows: test gradients -> Hessian solve (scipy.linalg.cho_solve, i.e.
    scipy's BLAS) -> GEMM against the stored training gradients (np.matmul, i.e.
    numpy's BLAS) into a view of one fresh (n_test, n_train) output.
    """
    from sklearn.utils.validation import validate_data

    from skinfluence._parallel import batch_slices

    obj = explainer.risk_
    train = explainer._scorer.train_rows
    solver = explainer.hessian_solver_
    n_test, n_train = args.n_test, train.shape[0]
    slices = batch_slices(n_test, explainer.batch_size, 8 * n_train)
    nb = len(slices)

    def validate():
        Xv = validate_data(explainer, X_test, reset=False, accept_sparse="csr",
                           dtype=np.float64)
        return Xv, explainer.risk_.targets.encode(y_test, Xv.shape[0])

    Xv, yidx = validate()
    G = obj.test_gradients(Xv, yidx)
    V = -solver.solve(G.T).T
    TT = train.T
    warm = np.empty((n_test, n_train))
    warm.fill(0.0)  # pre-faulted output buffer
    scale = -explainer.sample_weight_ / n_train
    train_scaled_T = (train * scale[:, None]).T
    A = rng.standard_normal((n_test, V.shape[1]))
    B = rng.standard_normal((V.shape[1], n_train))

    def gemm_batched(out):
        for sl in slices:
            np.matmul(V[sl], TT, out=out[sl])

    def interleaved():
        """The library's order: solve then GEMM, batch after batch (pre-faulted out)."""
        t_s = t_g = 0.0
        for sl in slices:
            t0 = time.perf_counter()
            Vb = -solver.solve(G[sl].T).T
            t1 = time.perf_counter()
            np.matmul(Vb, TT, out=warm[sl])
            t_g += time.perf_counter() - t1
            t_s += t1 - t0
        return {"solves": t_s, "GEMMs": t_g}

    def hoisted():
        """Alternative order: all solves first (one call), then the GEMM batches."""
        t0 = time.perf_counter()
        Vall = -solver.solve(G.T).T
        t1 = time.perf_counter()
        for sl in slices:
            np.matmul(Vall[sl], TT, out=warm[sl])
        return {"solve": t1 - t0, "GEMMs": time.perf_counter() - t1}

    other = other_blas_pools()
    scipy_1 = ((lambda: other.limit(limits=1)) if other is not None
               else contextlib.nullcontext)

    fns = {
        "validate_data + encode": validate,
        f"test gradients ({nb} batches)":
            lambda: [obj.test_gradients(Xv[sl], yidx[sl]) for sl in slices],
        f"Hessian solves alone ({nb} batches)":
            lambda: [solver.solve(G[sl].T) for sl in slices],
        f"GEMMs alone ({nb} batches, pre-faulted out=)": lambda: gemm_batched(warm),
        f"GEMMs alone ({nb} batches, fresh np.empty out)":
            lambda: gemm_batched(np.empty((n_test, n_train))),
        "np.empty + first touch of output (page faults)":
            lambda: np.empty((n_test, n_train)).fill(0.0),
        "interleaved solve->GEMM per batch, as the library": interleaved,
        "hoisted: one solve, then GEMM batches": hoisted,
        "loss_influence as is": lambda: explainer.loss_influence(X_test, y_test),
        "scipy BLAS at 1 thread: interleaved, as the library": (interleaved, scipy_1),
        "scipy BLAS at 1 thread: loss_influence":
            (lambda: explainer.loss_influence(X_test, y_test), scipy_1),
        "leave_one_out's extra pass: out *= -s/n":
            lambda: np.multiply(warm, scale, out=warm),
        "alt: one GEMM vs pre-scaled train rows (LOO, no pass)":
            lambda: np.matmul(V, train_scaled_T, out=warm),
        "reference: bare A @ B (fresh output)": lambda: A @ B,
        "reference: bare A @ B (pre-faulted out=)":
            lambda: np.matmul(A, B, out=warm),
    }
    if other is None:
        del fns["scipy BLAS at 1 thread: interleaved, as the library"]
        del fns["scipy BLAS at 1 thread: loss_influence"]
    res = time_round_robin(fns, args.repeats)
    warm = None  # free the 800 MB buffer (closures hold its cell) before cProfile

    pr = cProfile.Profile()
    time.sleep(SETTLE_S)
    pr.enable()
    out = explainer.loss_influence(X_test, y_test)
    pr.disable()
    del out
    s = io.StringIO()
    pstats.Stats(pr, stream=s).sort_stats("tottime").print_stats(6)
    return {"batches": nb, "batch_rows": slices[0].stop - slices[0].start,
            "pieces": res, "cprofile_loss_influence_tottime": s.getvalue()}


# -- main ---------------------------------------------------------------------------
def parse_args(argv=None):
    global SETTLE_S
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--n-train", type=int, default=20_000, help="training rows")
    p.add_argument("--n-features", type=int, default=200,
                   help="features; n_params = n_features + 1")
    p.add_argument("--n-test", type=int, default=5_000, help="test rows")
    p.add_argument("--k", type=int, default=20,
                   help="number of brute-force leave-one-out refits to time")
    p.add_argument("--repeats", type=int, default=5,
                   help="timed repeats (best reported), after one warm-up")
    p.add_argument("--tol", type=float, default=1e-8,
                   help="LogisticRegression(solver='newton-cholesky', tol=...)")
    p.add_argument("--max-iter", type=int, default=100,
                   help="LogisticRegression max_iter")
    p.add_argument("--n-jobs", type=int, default=None,
                   help="InfluenceExplainer(n_jobs=...)")
    p.add_argument("--settle", type=float, default=SETTLE_S,
                   help="idle seconds before each timed turn (lets spinning BLAS "
                        "threads of the previous call go to sleep)")
    p.add_argument("--seed", type=int, default=0, help="data and sampling seed")
    p.add_argument("--quick", action="store_true",
                   help="smoke-size run: " + ", ".join(f"{k}={v}" for k, v in
                                                        QUICK.items()))
    p.add_argument("--profile", choices=("auto", "always", "never"), default="auto",
                   help="break loss_influence down into pieces (auto: only when "
                        "slower than --profile-threshold x GEMM)")
    p.add_argument("--profile-threshold", type=float, default=1.5,
                   help="loss_influence / GEMM ratio above which to profile")
    p.add_argument("--output", nargs="?", const=str(DEFAULT_OUTPUT), default=None,
                   help=f"write JSON results (to {DEFAULT_OUTPUT} if no path given)")
    args = p.parse_args(argv)
    if args.quick:
        for k, v in QUICK.items():
            setattr(args, k, v)
    args.repeats = max(1, args.repeats)
    SETTLE_S = max(0.0, args.settle)
    return args


def main(argv=None):
    args = parse_args(argv)
    rng = np.random.default_rng(args.seed)
    t_start = time.perf_counter()
    steal0 = read_steal_ticks()

    X_train, y_train, X_test, y_test = make_data(args)
    est = make_estimator(args)
    t0 = time.perf_counter()
    est.fit(X_train, y_train)
    t_est_fit = time.perf_counter() - t0

    def make_explainer():
        return InfluenceExplainer(FrozenEstimator(est), n_jobs=args.n_jobs)

    explainer = make_explainer().fit(X_train, y_train)
    n_params = explainer.params_.shape[0]
    A = rng.standard_normal((args.n_test, n_params))
    B = rng.standard_normal((n_params, args.n_train))

    # Sections 1 and 2 (timings), round-robin.
    t = time_round_robin({
        "loss_influence": lambda: explainer.loss_influence(X_test, y_test),
        "gemm": lambda: A @ B,
        "leave_one_out": lambda: explainer.leave_one_out(X_test, y_test),
        "explainer_fit": lambda: make_explainer().fit(X_train, y_train),
    }, args.repeats)
    t["gemm"]["shape"] = f"({args.n_test}x{n_params}) @ ({n_params}x{args.n_train})"
    t["gemm"]["gflops_best"] = (2.0 * args.n_test * n_params * args.n_train
                                / t["gemm"]["best_s"] / 1e9)
    ratio = t["loss_influence"]["best_s"] / t["gemm"]["best_s"]
    ratio_med = t["loss_influence"]["median_s"] / t["gemm"]["median_s"]

    # Section 2: brute force.
    bf = brute_force(args, est, explainer, X_train, y_train, X_test, y_test, rng)
    n = args.n_train
    bf["extrapolated_total_s"] = {"from_min": bf["refit_min_s"] * n,
                                  "from_median": bf["refit_median_s"] * n,
                                  "from_mean": bf["refit_mean_s"] * n}
    loo = t["leave_one_out"]
    speedup = bf["refit_min_s"] * n / loo["best_s"]
    speedup_med = bf["refit_median_s"] * n / loo["median_s"]
    acc = bf["accuracy"]

    facts = machine_facts()
    prof = None
    if args.profile == "always" or (args.profile == "auto"
                                    and ratio > args.profile_threshold):
        prof = profile_pieces(args, explainer, X_test, y_test, rng)
    steal1 = read_steal_ticks()
    facts["steal_ticks_during_run"] = (None if steal0 is None or steal1 is None
                                       else steal1 - steal0)

    # -- report -------------------------------------------------------------------
    out_mb = args.n_test * args.n_train * 8 / 2**20
    print(f"skinfluence loss_influence benchmark  (dense binary LogisticRegression, "
          f"solver='newton-cholesky', tol={args.tol:g}, C=1)")
    print(f"  n_train={args.n_train}  n_features={args.n_features}  "
          f"n_test={args.n_test}  n_params p={n_params}  output {out_mb:.0f} MiB  "
          f"n_jobs={args.n_jobs}")
    print(f"  timings: best (and median) of {args.repeats}, round-robin; each timed "
          f"call after {SETTLE_S:g} s idle + 1 untimed warm-up call")
    print(f"  estimator fit {t_est_fit:.3f} s (n_iter={int(np.max(est.n_iter_))}), "
          f"explainer optimality_={explainer.optimality_:.1e}, "
          f"cond(H)={explainer.hessian_solver_.condition_number_:.2e}")
    print()
    w = 58
    rule = "-" * (w + 24)
    li, gm, ef = t["loss_influence"], t["gemm"], t["explainer_fit"]
    print(f"{'1. loss_influence vs GEMM':<{w}}{'best':>12}{'median':>12}")
    print(rule)
    print(f"{'InfluenceExplainer.loss_influence(X_test, y_test)':<{w}}"
          f"{fmt_s(li['best_s']):>12}{fmt_s(li['median_s']):>12}")
    print(f"{'numpy A @ B  ' + gm['shape']:<{w}}"
          f"{fmt_s(gm['best_s']):>12}{fmt_s(gm['median_s']):>12}"
          f"   ({gm['gflops_best']:.0f} GFLOP/s)")
    print(f"{'ratio loss_influence / GEMM':<{w}}{ratio:>10.2f} x{ratio_med:>10.2f} x")
    print(f"{'InfluenceExplainer.fit (FrozenEstimator: no LR fit)':<{w}}"
          f"{fmt_s(ef['best_s']):>12}{fmt_s(ef['median_s']):>12}")
    print()
    print(f"{'2. leave_one_out vs brute-force refits':<{w}}{'best':>12}{'median':>12}")
    print(rule)
    print(f"{'leave_one_out(X_test, y_test): all n_train removals':<{w}}"
          f"{fmt_s(loo['best_s']):>12}{fmt_s(loo['median_s']):>12}")
    label = f"one refit without one row (k={bf['k_sampled']} sampled rows)"
    print(f"{label:<{w}}"
          f"{fmt_s(bf['refit_min_s']):>12}{fmt_s(bf['refit_median_s']):>12}"
          f"   (max {bf['refit_max_s']:.3f} s, n_iter<={bf['refit_n_iter_max']})")
    ext = bf["extrapolated_total_s"]
    label = f"brute force extrapolated to {n} refits"
    print(f"{label:<{w}}"
          f"{fmt_s(ext['from_min']):>12}{fmt_s(ext['from_median']):>12}"
          f"   (= {ext['from_min'] / 60:.1f} / {ext['from_median'] / 60:.1f} min)")
    print(f"{'speed-up: brute force / leave_one_out':<{w}}"
          f"{speedup:>10.0f} x{speedup_med:>10.0f} x")
    print(f"{'Pearson r pred. vs actual, pooled over k x n_test pairs':<{w}}"
          f"{acc['pearson_pooled']:>12.5f}")
    print(f"{'Pearson r over test points, mean (min) over the k rows':<{w}}"
          f"{acc['pearson_mean_over_removed_rows']:>12.5f}"
          f"   (min {acc['pearson_min_over_removed_rows']:.5f})")
    print(f"{'max |actual| / max |pred - actual| / relative RMSE':<{w}}"
          f"{acc['max_abs_actual']:>12.2e}   / {acc['max_abs_error']:.2e}"
          f" / {acc['rel_rmse']:.4f}")
    print()
    print("3. machine")
    print(rule)
    print(f"  python {facts['python']}  numpy {facts['numpy']}  scipy {facts['scipy']}"
          f"  sklearn {facts['sklearn']}  ({facts['platform']})")
    env = ", ".join(f"{k}={v}" for k, v in facts["env"].items() if v is not None)
    print(f"  cpu_count={facts['cpu_count']}  cpus available={facts['cpus_available']}"
          f"  steal ticks during run={facts['steal_ticks_during_run']}"
          f"  env: {env or '(no BLAS variables set)'}")
    for tp in facts["threadpools"]:
        lib = Path(tp["filepath"]).parent.name + "/" + Path(tp["filepath"]).name
        print(f"  {tp['internal_api']:<9} {tp.get('version') or '':<14} "
              f"arch={tp.get('architecture') or '-':<10} threads={tp['num_threads']}"
              f"  {lib}")

    if prof is not None:
        print()
        print(f"4. profile of loss_influence ({prof['batches']} batches of "
              f"{prof['batch_rows']} test rows)"
              f"{'':<{max(0, w - 50)}}{'best':>12}{'median':>12}")
        print(rule)
        for name, r in prof["pieces"].items():
            print(f"  {name:<{w - 2}}{fmt_s(r['best_s']):>12}"
                  f"{fmt_s(r['median_s']):>12}")
            for sub, v in r.get("sub_best_s", {}).items():
                print(f"  {'    of which ' + sub:<{w - 2}}{fmt_s(v):>12}")
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
            "settle_s": SETTLE_S,
            "n_params": n_params,
            "estimator_fit_s": t_est_fit,
            "estimator_n_iter": int(np.max(est.n_iter_)),
            "explainer_optimality": explainer.optimality_,
            "hessian_condition_number": explainer.hessian_solver_.condition_number_,
            "timings": t,
            "ratio_loss_influence_over_gemm": {"best": ratio, "median": ratio_med},
            "brute_force": bf,
            "speedup_brute_over_leave_one_out": {
                "min_refit_over_best_loo": speedup,
                "median_refit_over_median_loo": speedup_med,
            },
            "pearson_note": "pooled: one r over all (test point, removed row) pairs; "
                            "mean_over_removed_rows: r across test points for each "
                            "removed row, averaged over the k rows",
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
