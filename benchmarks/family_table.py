"""One table for every supported model family, measured on the same data.

Data: scikit-learn's ``load_breast_cancer``, standardised (StandardScaler over all 569
rows), all 30 features by default (``--n-features 8`` keeps the first 8); training rows
0-199, test rows 200-299 (fixed, no shuffling). The regressors (``Ridge``,
``LinearRegression``, ``SGDRegressor``) fit the 0/1 label as a numeric target.

Families (tight fits; every refit uses the same configuration):

- ``LogisticRegression(C=1, solver="newton-cholesky", tol=1e-12)``; the same with
  ``solver="liblinear", dual=False, tol=1e-12`` (penalised intercept); elastic net
  ``solver="saga", l1_ratio=0.5, tol=1e-14``;
- ``LinearSVC(C=0.5)``: squared hinge (``dual=False, tol=1e-12``) and hinge
  (``dual=True, tol=1e-11, max_iter=1e6``), both ``random_state=0``;
- ``SVC(kernel="linear", C=0.5, tol=1e-10)``;
- ``Ridge(alpha=1)``, ``RidgeClassifier(alpha=1)``, ``LinearRegression()``;
- ``SGDClassifier(loss="log_loss")`` and ``SGDRegressor()`` with ``random_state=0,
  tol=None, max_iter=1000`` (a fixed number of epochs, so that a refit is a smooth
  function of the sample weights: with a tol the number of epochs could change between
  the ±h refits). SGD does not reach the optimum of its objective; skinfluence's
  influence is then the Newton step from the SGD weights (it warns), and the refits
  below are refits of SGD itself, so these two rows measure how far SGD's own
  behaviour is from the Newton-step model, not the library's accuracy.

Columns:

1. ``param_influence`` against refits: n · dθ̂/ds_j by one Richardson step of central
   differences ``(4 D(h/2) − D(h)) / 3`` of refits with the sample weight of row j
   moved by ±h (h = 1e-2 for smooth losses, 1e-3 for the hinge), over 8 rows (6 rows
   with a nonzero predicted influence, evenly spread, plus 2 with zero influence where
   there are any: the rows outside the margin of a hinge SVM). Error =
   max|pred − FD| / max|FD| over all those rows and parameters.
2. Leave-one-out: the actual change of every test loss (the model's own loss:
   log-loss, squared hinge, hinge, squared error — ½ squared error for SGDRegressor,
   squared error against ±1 for RidgeClassifier) when training row j is dropped and the
   model refitted, for 40 fixed rows (plus, for the three SVMs, every support vector,
   margin ≤ 1 + 1e-6), against ``leave_one_out(method="influence")`` and
   ``leave_one_out(method="newton")``. Pearson R and least-squares slope of actual on
   predicted through the origin (Σ p·a / Σ p², 1 is ideal), pooled over all
   (test, row) pairs; pairs with a non-finite prediction are left out and counted.
3. Time: the explainer's ``fit`` and ``leave_one_out`` for all n = 200 removals
   (best of 3) against the refits: mean time of one leave-one-out refit (measured in
   the worker) × n.

Everything runs on one BLAS thread per process (refits in ``--n-jobs`` joblib
workers). Refits that raise a ``ConvergenceWarning`` are counted and reported.

Usage::

    PYTHONPATH=. python benchmarks/family_table.py               # ~1 min on 2 cores
    PYTHONPATH=. python benchmarks/family_table.py --quick       # smoke size
    PYTHONPATH=. python benchmarks/family_table.py --n-features 8

Results: ``benchmarks/results/family_table.json`` (``--quick``:
``family_table_quick.json``; ``--output`` to change).
"""

import argparse
import json
import platform
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy
import sklearn
from joblib import Parallel, delayed
from scipy.special import log_expit
from sklearn.base import clone, is_classifier
from sklearn.datasets import load_breast_cancer
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import (
    LinearRegression,
    LogisticRegression,
    Ridge,
    RidgeClassifier,
    SGDClassifier,
    SGDRegressor,
)
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, LinearSVC
from threadpoolctl import threadpool_limits

try:
    from skinfluence import InfluenceExplainer
except ImportError:  # not installed: use the checkout this script lives in
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from skinfluence import InfluenceExplainer

RESULTS = Path(__file__).resolve().parent / "results"
N_TRAIN, N_TEST = 200, 100
H_SMOOTH, H_HINGE = 1e-2, 1e-3
MARGIN_TOL = 1e-6  # a training row with margin ≤ 1 + this is a support vector
ZERO_REL = 1e-9  # |influence| ≤ this × the largest counts as zero (round-off)


# -- families -------------------------------------------------------------------------
@dataclass
class Family:
    name: str
    estimator: object
    loss: str  # test loss: log, squared_hinge, hinge, squared, signed_squared, half_sq
    svm: bool = False
    note: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def step(self):
        return H_HINGE if self.loss == "hinge" else H_SMOOTH


def families():
    sgd = dict(random_state=0, tol=None, max_iter=1000)
    return [
        Family("LogisticRegression", LogisticRegression(
            C=1.0, solver="newton-cholesky", tol=1e-12, max_iter=1000), "log",
            note="newton-cholesky, C=1, tol 1e-12"),
        Family("LogisticRegression", LogisticRegression(
            C=1.0, solver="liblinear", dual=False, tol=1e-12, max_iter=10_000), "log",
            note="liblinear primal, C=1, tol 1e-12"),
        Family("LogisticRegression", LogisticRegression(
            C=1.0, solver="saga", l1_ratio=0.5, tol=1e-14, max_iter=100_000), "log",
            note="elastic net saga, l1_ratio 0.5, C=1, tol 1e-14"),
        Family("LinearSVC", LinearSVC(
            C=0.5, dual=False, tol=1e-12, max_iter=100_000, random_state=0),
            "squared_hinge", svm=True, note="squared hinge, primal, C=0.5, tol 1e-12"),
        Family("LinearSVC", LinearSVC(
            C=0.5, loss="hinge", dual=True, tol=1e-11, max_iter=1_000_000,
            random_state=0), "hinge", svm=True, note="hinge, dual, C=0.5, tol 1e-11"),
        Family("SVC", SVC(kernel="linear", C=0.5, tol=1e-10), "hinge", svm=True,
               note="kernel=linear, C=0.5, tol 1e-10"),
        Family("Ridge", Ridge(alpha=1.0), "squared", note="alpha=1, 0/1 target"),
        Family("RidgeClassifier", RidgeClassifier(alpha=1.0), "signed_squared",
               note="alpha=1"),
        Family("LinearRegression", LinearRegression(), "squared", note="0/1 target"),
        Family("SGDClassifier", SGDClassifier(loss="log_loss", **sgd), "log",
               note="log_loss, 1000 epochs, tol=None (not an optimum)"),
        Family("SGDRegressor", SGDRegressor(**sgd), "half_sq",
               note="squared_error, 1000 epochs, tol=None, 0/1 target (not an optimum)"),
    ]


# -- data, parameters, losses ----------------------------------------------------------
def load_data(n_features):
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)[:, :n_features]
    return (X[:N_TRAIN], y[:N_TRAIN], X[N_TRAIN:N_TRAIN + N_TEST],
            y[N_TRAIN:N_TRAIN + N_TEST])


def params_of(model):
    """θ = coef_.ravel() followed by intercept_: the params_ layout."""
    return np.r_[np.ravel(model.coef_), np.ravel(model.intercept_)]


def decision(model, X):
    z = model.decision_function(X) if is_classifier(model) else model.predict(X)
    return np.ravel(z)


def test_loss(kind, z, y):
    """The model's own per-sample loss at decision values z (predictions for
    regressors), written out from scikit-learn's definitions."""
    signed = np.where(y == 1, 1.0, -1.0)
    m = signed * z
    if kind == "log":
        return -log_expit(m)
    if kind == "squared_hinge":
        return np.maximum(0.0, 1.0 - m) ** 2
    if kind == "hinge":
        return np.maximum(0.0, 1.0 - m)
    if kind == "squared":
        return (y - z) ** 2
    if kind == "signed_squared":  # RidgeClassifier: regression on ±1 targets
        return (signed - z) ** 2
    if kind == "half_sq":  # SGDRegressor's squared_error: ½ (y − z)²
        return 0.5 * (y - z) ** 2
    raise KeyError(kind)


# -- refits (joblib workers) -----------------------------------------------------------
def _fit(estimator, X, y, sample_weight):
    with threadpool_limits(limits=1), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        start = time.perf_counter()
        model = clone(estimator).fit(X, y, sample_weight=sample_weight)
        elapsed = time.perf_counter() - start
    warned = any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return model, elapsed, warned


def weighted_refit(estimator, X, y, j, delta):
    sw = np.ones(len(y))
    sw[j] += delta
    model, elapsed, warned = _fit(estimator, X, y, sw)
    return params_of(model), elapsed, warned


def loo_refit(estimator, X, y, j, X_test):
    """Decision values on the test rows of the refit without row j (the test loss is
    computed in the parent: scipy's ufuncs do not survive pickling by value)."""
    keep = np.delete(np.arange(len(y)), j)
    model, elapsed, warned = _fit(estimator, X[keep], y[keep], None)
    return decision(model, X_test), elapsed, warned


# -- measurements ---------------------------------------------------------------------
def pick(rows, k):
    if len(rows) <= k:
        return np.asarray(rows)
    return np.asarray(rows)[np.linspace(0, len(rows) - 1, k).astype(int)]


def zero_rows(P):
    """Rows whose influence is zero up to round-off (≤ 1e-9 of the largest): the
    hinge's rows outside the margin (exactly 0) and its pinned margin rows (~1e-14)."""
    return np.abs(P).max(axis=1) <= ZERO_REL * np.abs(P).max()


def fd_rows(P, k):
    is_zero = zero_rows(P)
    nonzero, zero = np.flatnonzero(~is_zero), np.flatnonzero(is_zero)
    n_zero = min(len(zero), 2 if k >= 6 else 1)
    return np.sort(np.r_[pick(nonzero, k - n_zero), pick(zero, n_zero)]).astype(int)


def pearson_slope(pred, actual):
    """Pearson R and slope Σpa/Σp² over finite pairs; (nan, nan) if undefined."""
    p, a = np.ravel(pred), np.ravel(actual)
    ok = np.isfinite(p) & np.isfinite(a)
    p, a = p[ok], a[ok]
    if p.size < 2 or np.std(p) == 0 or np.std(a) == 0:
        r = float("nan")
    else:
        r = float(np.corrcoef(p, a)[0, 1])
    denom = p @ p
    slope = float(p @ a / denom) if denom > 0 else float("nan")
    return r, slope


def best_time(fn, repeats=3):
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def run_family(fam, data, args, parallel):
    X, y, Xt, yt = data
    n = len(y)
    est = fam.estimator
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t_fit, explainer = best_time(lambda: InfluenceExplainer(est).fit(X, y))
    fit_warnings = sorted({f"{w.category.__name__}: {str(w.message)[:160]}"
                           for w in caught})
    model = explainer.estimator_
    margins = (np.where(y == 1, 1.0, -1.0) * decision(model, X)
               if is_classifier(model) else None)
    res = {"family": fam.name, "config": fam.note, "estimator": repr(est),
           "test_loss": fam.loss, "optimality": float(explainer.optimality_),
           "explainer_fit_warnings": fit_warnings,
           "n_params": int(explainer.params_.size),
           "zero_coefficients": int(np.sum(np.ravel(model.coef_) == 0))}
    if margins is not None:
        res["min_train_margin_distance_to_1"] = float(np.abs(margins - 1).min())

    # 1. param_influence vs Richardson central differences of weighted refits
    P_all = explainer.param_influence()
    rows = fd_rows(P_all, args.fd_rows)
    h = fam.step
    tasks = [(j, d) for j in rows for d in (h, -h, h / 2, -h / 2)]
    out = parallel(delayed(weighted_refit)(est, X, y, j, d) for j, d in tasks)
    theta = {(j, d): o[0] for (j, d), o in zip(tasks, out, strict=True)}
    fd = np.array([
        (4 * n * (theta[j, h / 2] - theta[j, -h / 2]) / h
         - n * (theta[j, h] - theta[j, -h]) / (2 * h)) / 3 for j in rows])
    pred = P_all[rows]
    scale = np.abs(fd).max()
    per_row = np.abs(pred - fd).max(axis=1) / scale
    res["param_influence"] = {
        "h": h, "rows": rows.tolist(),
        "rows_zero_predicted": rows[zero_rows(P_all)[rows]].tolist(),
        "n_zero_rows_all_n": int(zero_rows(P_all).sum()),
        "rel_error": float(np.abs(pred - fd).max() / scale),
        "rel_error_per_row": per_row.tolist(), "max_abs_fd": float(scale),
        "refits_warned": int(sum(o[2] for o in out)), "n_refits": len(out)}

    # 2. leave-one-out vs true refits
    loo_rows = np.sort(np.random.default_rng(0).choice(n, args.loo_rows, replace=False))
    support = np.array([], dtype=int)
    if fam.svm:
        support = np.flatnonzero(margins <= 1 + MARGIN_TOL)
        loo_rows = np.union1d(loo_rows, support)
    base = test_loss(fam.loss, decision(model, Xt), yt)
    out = parallel(delayed(loo_refit)(est, X, y, j, Xt) for j in loo_rows)
    actual = np.column_stack([test_loss(fam.loss, z, yt) for z, *_ in out]) \
        - base[:, None]
    refit_times = np.array([o[1] for o in out])
    loo = {"rows": loo_rows.tolist(), "n_rows": int(loo_rows.size),
           "support_vectors": int(support.size),
           "support_vectors_included": int(np.isin(support, loo_rows).sum()),
           "refits_warned": int(sum(o[2] for o in out)),
           "max_abs_actual": float(np.abs(actual).max())}
    try:
        lev = explainer.leverages()[loo_rows]
        loo["leverage_max"], loo["leverage_median"] = float(lev.max()), float(
            np.median(lev))
    except NotImplementedError as exc:
        loo["leverage_error"] = str(exc)
    timing = {"explainer_fit_s": t_fit}
    for method in ("influence", "newton"):
        try:
            t, full = best_time(lambda m=method: explainer.leave_one_out(Xt, yt, m))
        except NotImplementedError as exc:
            loo[method] = {"error": str(exc)}
            continue
        predicted = full[:, loo_rows]
        bad_rows = np.flatnonzero(~np.all(np.isfinite(predicted), axis=0))
        r, slope = pearson_slope(predicted, actual)
        entry = {"pearson": r, "slope": slope,
                 "nonfinite_rows": loo_rows[bad_rows].tolist(),
                 "nonfinite_rows_all_n": int(
                     np.sum(~np.all(np.isfinite(full), axis=0))),
                 "max_abs_error": float(np.nanmax(np.abs(predicted - actual))),
                 "all_zero_prediction_rows": int(np.sum(zero_rows(predicted.T)))}
        if fam.svm:
            sv = np.isin(loo_rows, support)
            entry["pearson_sv_only"], entry["slope_sv_only"] = pearson_slope(
                predicted[:, sv], actual[:, sv])
        loo[method] = entry
        timing[f"leave_one_out_{method}_s"] = t
    res["leave_one_out"] = loo

    # 3. time
    timing["refit_mean_s"] = float(refit_times.mean())
    timing["refits_extrapolated_s"] = float(refit_times.mean() * n)
    for method in ("influence", "newton"):
        key = f"leave_one_out_{method}_s"
        if key in timing:
            timing[f"speedup_{method}"] = timing["refits_extrapolated_s"] / timing[key]
            timing[f"speedup_{method}_incl_fit"] = (
                timing["refits_extrapolated_s"] / (timing[key] + t_fit))
    res["timing"] = timing
    return res


# -- output ---------------------------------------------------------------------------
def _f(x, fmt):
    return "n/a" if x is None or not np.isfinite(x) else format(x, fmt)


def markdown(results):
    head = ("| family | config | param_influence rel. err (rows) | LOO R infl. "
            "| slope infl. | LOO R Newton | slope Newton | LOO rows (SVs) "
            "| ours: fit + LOO infl. / Newton (ms) | refits × n (s) "
            "| speedup (Newton, incl. fit) |")
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for r in results:
        pi, loo, t = r["param_influence"], r["leave_one_out"], r["timing"]
        inf, newt = loo.get("influence", {}), loo.get("newton", {})
        sv = f" ({loo['support_vectors']})" if loo["support_vectors"] else ""
        lines.append(
            f"| {r['family']} | {r['config']} | {pi['rel_error']:.1e} "
            f"({len(pi['rows'])}) | {_f(inf.get('pearson'), '.4f')} "
            f"| {_f(inf.get('slope'), '.3f')} | {_f(newt.get('pearson'), '.4f')} "
            f"| {_f(newt.get('slope'), '.3f')} | {loo['n_rows']}{sv} "
            f"| {1e3 * t['explainer_fit_s']:.1f} + "
            f"{1e3 * t.get('leave_one_out_influence_s', np.nan):.1f} / "
            f"{1e3 * t.get('leave_one_out_newton_s', np.nan):.1f} "
            f"| {t['refits_extrapolated_s']:.2f} "
            f"| {_f(t.get('speedup_newton_incl_fit'), ',.0f')}× |")
    return "\n".join(lines)


def notes(results):
    out = ["slope: least squares of actual on predicted through the origin (Σpa/Σp²); "
           "R and slope pooled over (100 test points × LOO rows); n/a = undefined",
           "SGDClassifier/SGDRegressor: the refits are refits of SGD itself (fixed "
           "epochs and seed), the influence is the Newton step from the SGD weights "
           "to the optimum: their disagreement measures SGD, not the library"]
    for r in results:
        tag = f"{r['family']} ({r['config']})"
        pi, loo = r["param_influence"], r["leave_one_out"]
        if r["optimality"] > 1e-6:
            out.append(f"{tag}: not at an optimum, optimality_ = {r['optimality']:.1e}")
        for kind, d in (("FD", pi), ("LOO", loo)):
            if d["refits_warned"]:
                out.append(f"{tag}: {d['refits_warned']} {kind} refits raised a "
                           "ConvergenceWarning")
        for method in ("influence", "newton"):
            e = loo.get(method, {})
            if "error" in e:
                out.append(f"{tag}: {method}: {e['error']}")
            elif e.get("nonfinite_rows_all_n"):
                out.append(f"{tag}: {method}: {e['nonfinite_rows_all_n']} of n rows "
                           f"non-finite (in the LOO sample: {e['nonfinite_rows']})")
        if loo["support_vectors"] and "influence" in loo:
            out.append(
                f"{tag}: support vectors only: R infl. "
                f"{_f(loo['influence'].get('pearson_sv_only'), '.3f')} / slope "
                f"{_f(loo['influence'].get('slope_sv_only'), '.3f')}, R Newton "
                f"{_f(loo['newton'].get('pearson_sv_only'), '.3f')} / slope "
                f"{_f(loo['newton'].get('slope_sv_only'), '.3f')}; rows with an "
                f"all-zero first-order prediction "
                f"{loo['influence']['all_zero_prediction_rows']} of {loo['n_rows']}")
        if loo.get("leverage_max", 0) > 0.05:
            out.append(f"{tag}: leverages of the LOO rows up to {loo['leverage_max']:.2f}"
                       f" (median {loo['leverage_median']:.3f})")
        if pi["rows_zero_predicted"]:
            out.append(f"{tag}: FD rows with zero predicted influence (≤ 1e-9 × max) "
                       f"{pi['rows_zero_predicted']}")
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="smoke size: 3 FD rows, 10 LOO rows (+ support vectors)")
    ap.add_argument("--n-features", type=int, default=30, choices=range(1, 31),
                    metavar="{1..30}")
    ap.add_argument("--n-jobs", type=int, default=2)
    ap.add_argument("--output", type=Path, default=None)
    args = ap.parse_args(argv)
    args.fd_rows, args.loo_rows = (3, 10) if args.quick else (8, 40)
    output = args.output or RESULTS / (
        "family_table_quick.json" if args.quick else "family_table.json")

    data = load_data(args.n_features)
    start = time.perf_counter()
    results = []
    with threadpool_limits(limits=1), Parallel(n_jobs=args.n_jobs) as parallel:
        for fam in families():
            t0 = time.perf_counter()
            results.append(run_family(fam, data, args, parallel))
            print(f"  {fam.name} ({fam.note}): {time.perf_counter() - t0:.1f} s",
                  file=sys.stderr)
    total = time.perf_counter() - start

    table = markdown(results)
    print(f"breast cancer, standardised, {args.n_features} features, "
          f"{N_TRAIN} train / {N_TEST} test (rows 0-199 / 200-299); regressors fit "
          "the 0/1 label as a numeric target\n")
    print(table)
    print()
    for line in notes(results):
        print(f"- {line}")
    print(f"\ntotal {total:.1f} s")
    meta = {"n_features": args.n_features, "n_train": N_TRAIN, "n_test": N_TEST,
            "quick": args.quick, "n_jobs": args.n_jobs, "total_s": total,
            "python": platform.python_version(), "numpy": np.__version__,
            "scipy": scipy.__version__, "sklearn": sklearn.__version__,
            "machine": platform.machine(), "date": time.strftime("%Y-%m-%d")}
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps({"meta": meta, "markdown": table,
                                  "notes": notes(results), "families": results},
                                 indent=1))
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
