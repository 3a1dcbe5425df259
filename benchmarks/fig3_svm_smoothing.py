"""Koh & Liang (2017), Fig 3: influence of a hinge-loss SVM at smoothing t, vs true LOO.

Data: scikit-learn's ``load_digits``, classes 1 and 7, pixels / 16, a fixed stratified
split (``--n-train`` rows, default 250; the remaining rows are the test set).

Models: linear SVMs with the exact hinge, C = 0.1 (``--C``), both by default
(``--models``): ``SVC(kernel="linear", C=0.1, tol=1e-10)`` (libsvm; unpenalised
intercept) and ``LinearSVC(loss="hinge", dual=True, tol=1e-11, max_iter=10**6,
random_state=0)`` (liblinear; penalised intercept). Digits 1-vs-7 is separable (test
accuracy 1.0 for any C here): at C = 0.1, 38 of 250 rows are support vectors, 14 on the
margin and 24 inside it; at C = 1 all ~20 are on the margin, so the exact hinge's
first-order influence is zero for every row (``--C 1`` shows that case).

Oracle ("actual"): the real SVM refitted without training row j, for every j; the
actual change of test loss t is ``L(z_t(θ̂_{−j})) − L(z_t(θ̂))``, with L

- ``hinge`` (the primary target): the plain hinge max(0, 1 − m), the SVM's own loss;
- ``smooth``: the smooth hinge φ_t(m) = t·log(1 + exp((1 − m)/t)) at the same t
  (the loss the first-order predictors linearise; equal to ``hinge`` at t = 0).

Predicted changes, per t in {0, 0.001, 0.01, 0.1} (one InfluenceExplainer per t):

1. ``skinfluence``: ``InfluenceExplainer(svm, smoothing=t).leave_one_out`` — each
   training row's gradient is the hinge's exact subgradient read off the dual
   coefficients (β_j = α_j / (C s_j c_j)), the Hessian and the test gradient are the
   smooth hinge's at t (t = 0: the exact hinge, support vectors on the margin pinned).
2. ``paper``: Koh & Liang's plain smooth-hinge influence — the same Hessian and test
   gradient, but the training gradient is the smooth hinge's own derivative φ'_t(m_j)
   at θ̂ (built here from the explainer's internal objective; at t = 0 this is
   −[m_j < 1], and with skinfluence's pinned solver it coincides with predictor 1).
3. ``newton``: a leverage-corrected one-step Newton prototype — the exact Newton step
   from θ̂ on the (smoothed) objective without row j, which by Sherman–Morrison is
   ``Δθ_j = −(s_j/n)·param_influence[j] / (1 − lev_j)``, ``lev_j = (s_j c_j / n)·
   φ''_t(m_j)·x̃_jᵀ H⁻¹ x̃_j`` (x̃ = [x, 1], H⁻¹ through ``explainer.hessian_solver_``);
   the test loss is evaluated at θ̂ + Δθ_j, not linearised. At t = 0 φ'' = 0, so it
   equals predictor 1 (pinned rows have H⁻¹x̃ = 0). ``newton-unpin`` (t = 0 only) is
   its t → 0 limit: row j, when it is a pinned support vector, is released from the
   margin (solver rebuilt without its pin) while the others stay pinned. It is the
   exact LOO whenever the removal changes no other row's status (inside / on / outside
   the margin): the hinge solution is piecewise linear in the sample weights.

Where the installed skinfluence has ``leave_one_out(method="newton")``, it is checked
against the prototype (``newton``; ``newton-unpin`` at t = 0), with the smooth test loss
at t that the library evaluates; its time is reported too.

Metrics (``actual`` against ``predicted``):

- ``pooled R``: Pearson R over all (test, train) pairs where the actual or the
  predicted change is nonzero (|Δ| > 1e-9; refits of libsvm/liblinear reproduce
  removals of non-support vectors to ~1e-12);
- ``protocol R``: the paper's protocol — for each test point with margin < 1, Pearson
  R over the 100 training rows with the largest |predicted| change (among those with a
  nonzero prediction, if fewer), median over the test points; ``k`` is the mean
  number of rows used. NB: at t = 0 this leaves out the margin support vectors, whose
  removal does change the fit but whose first-order influence is exactly 0; the pooled
  R does count them;
- ``slope``: OLS slope of actual on predicted over the pooled pairs (1 is ideal);
  R and slope are left undefined (nan) when every prediction is zero;
- ``dθ err``: median of ‖Δθ_pred − Δθ_true‖ / ‖Δθ_true‖ over the removals of support
  vectors (the only ones that move θ̂), also split into margin SVs, SVs inside the
  margin, and "1-piece" removals (no other row changes status on the refit).

Also reported: the derivative n·∂θ̂/∂s_j (``param_influence``) of predictors 1 and 2
at each t against central differences of refits (sample weight of row j moved by
±h, h = 1e-3 and 1e-4, the better), relative Frobenius error over all training rows;
references on the same split with
``LinearSVC(loss="squared_hinge")`` (no smoothing: once differentiable, exact) and
``LogisticRegression`` (the sanity check of the Newton Δθ formula, where it should beat
first order against true LOO); timings, on one BLAS thread: our fit +
``leave_one_out`` (best of 3; the fit includes the one SVM fit) vs all n LOO refits
(wall time, joblib over ``--n-jobs`` workers; a refit takes ~1–2 ms).

Usage::

    PYTHONPATH=. python benchmarks/fig3_svm_smoothing.py            # ~5 s
    PYTHONPATH=. python benchmarks/fig3_svm_smoothing.py --quick    # smoke size, ~1 s
    PYTHONPATH=. python benchmarks/fig3_svm_smoothing.py --models svc --C 1 --seed 1

Results: ``benchmarks/results/fig3_svm_smoothing.json`` (``--output`` to change;
``--quick`` runs write ``fig3_svm_smoothing_quick.json``).
"""

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import scipy
import sklearn
from joblib import Parallel, delayed
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.svm import SVC, LinearSVC
from threadpoolctl import threadpool_limits

try:
    from skinfluence import InfluenceExplainer
except ImportError:  # not installed: use the checkout this script lives in
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from skinfluence import InfluenceExplainer
from skinfluence._hessian import CholeskySolver

RESULTS = Path(__file__).resolve().parent / "results"
T_VALUES = (0.0, 1e-3, 1e-2, 1e-1)
NONZERO = 1e-9  # |Δ| at or below this counts as zero (solver noise ~1e-12)
TOP_K = 100  # the paper's protocol: the 100 most influential training rows
#: Sample-weight steps of the finite-difference derivative oracle. The hinge solution is
#: piecewise linear in s_j, so a difference is exact up to solver noise unless the step
#: crosses a breakpoint (a support vector at m = 0.99995 on the --quick split does at
#: 1e-3); the smaller error of the two steps is reported.
FD_STEPS = (1e-3, 1e-4)


# -- data and models ------------------------------------------------------------------
def load_split(n_train, seed):
    X, y = load_digits(return_X_y=True)
    keep = (y == 1) | (y == 7)
    X, y = X[keep] / 16.0, y[keep]
    return train_test_split(X, y, train_size=n_train, random_state=seed, stratify=y)


def make_estimator(kind, C):
    if kind == "svc":
        return SVC(kernel="linear", C=C, tol=1e-10)
    if kind == "linearsvc":
        return LinearSVC(C=C, loss="hinge", dual=True, tol=1e-11, max_iter=10**6,
                         random_state=0)
    if kind == "squared_hinge":
        return LinearSVC(C=C, loss="squared_hinge", dual=False, tol=1e-12,
                         max_iter=10**5)
    if kind == "logistic":
        return LogisticRegression(C=C, solver="newton-cholesky", tol=1e-12,
                                  max_iter=1000)
    raise ValueError(kind)


def params_of(model):
    return np.r_[np.ravel(model.coef_), np.ravel(model.intercept_)]


def signed(y, classes):
    """ỹ = +1 for classes[1], −1 for classes[0]."""
    return np.where(y == classes[1], 1.0, -1.0)


# -- margin losses φ(m) ----------------------------------------------------------------
def hinge(m):
    return np.maximum(0.0, 1.0 - m)


def smooth_hinge(t):
    if t == 0:
        return hinge
    return lambda m: t * np.logaddexp(0.0, (1.0 - m) / t)


def squared_hinge(m):
    return np.maximum(0.0, 1.0 - m) ** 2


def log_loss(m):
    return np.logaddexp(0.0, -m)


# -- refits ----------------------------------------------------------------------------
def _fit_quiet(est, X, y, sample_weight=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        kw = {} if sample_weight is None else {"sample_weight": sample_weight}
        return clone(est).fit(X, y, **kw)


def loo_refits(est, X, y, X_test, n_jobs):
    """Refit without each training row: (θ̂_{−j} (n, p), z_test(θ̂_{−j}) (n, n_test))."""
    n = len(y)

    def one(j):
        keep = np.arange(n) != j
        model = _fit_quiet(est, X[keep], y[keep])
        return params_of(model), model.decision_function(X_test)

    start = time.perf_counter()
    out = Parallel(n_jobs=n_jobs)(delayed(one)(j) for j in range(n))
    wall = time.perf_counter() - start
    return np.array([o[0] for o in out]), np.array([o[1] for o in out]), wall


def fd_derivatives(est, X, y, n_jobs, h):
    """n · ∂θ̂/∂s_j by central differences of refits, for every training row j."""
    n = len(y)

    def one(j):
        vals = []
        for sign in (1.0, -1.0):
            s = np.ones(n)
            s[j] += sign * h
            vals.append(params_of(_fit_quiet(est, X, y, s)))
        return n * (vals[0] - vals[1]) / (2 * h)

    return np.array(Parallel(n_jobs=n_jobs)(delayed(one)(j) for j in range(n)))


# -- metrics -----------------------------------------------------------------------------
def pearson(a, b):
    if len(a) < 3 or np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def compare(actual, predicted, protocol_rows):
    """Pooled R, slope and the paper's protocol R; arrays (n_test, n_train).

    ``protocol_rows``: the test points of the protocol (a boolean mask).
    """
    nz = (np.abs(actual) > NONZERO) | (np.abs(predicted) > NONZERO)
    a, p = actual[nz], predicted[nz]
    # all predictions zero (round-off): R and slope are undefined, not noise-driven
    none = not np.any(np.abs(p) > NONZERO)
    pooled_r = float("nan") if none else pearson(a, p)
    slope = float("nan") if none else float(np.cov(p, a)[0, 1] / np.var(p, ddof=1))
    per_test, ks = [], []
    for i in np.flatnonzero(protocol_rows):
        order = np.argsort(-np.abs(predicted[i]), kind="stable")
        k = min(TOP_K, int(np.sum(np.abs(predicted[i]) > NONZERO)))
        ks.append(k)
        top = order[:k]
        per_test.append(pearson(actual[i, top], predicted[i, top]))
    per_test = np.array(per_test)
    ok = ~np.isnan(per_test)
    return {
        "pooled_r": pooled_r,
        "slope": slope,
        "n_pairs": int(nz.sum()),
        "protocol_median_r": float(np.median(per_test[ok])) if ok.any() else float("nan"),
        "protocol_n_test": int(len(per_test)),
        "protocol_n_undefined": int((~ok).sum()),
        "protocol_mean_k": float(np.mean(ks)) if ks else float("nan"),
        "protocol_r_per_test": [None if np.isnan(r) else float(r) for r in per_test],
    }


def dtheta_error(pred, true, groups):
    """Median relative error ‖Δθ_pred − Δθ_true‖ / ‖Δθ_true‖ over groups of removals.

    ``groups`` maps a name to a boolean mask of training rows; "all" must be the rows
    whose removal moves θ̂ (the support rows: removing any other row leaves the
    solution unchanged, and the refits' differences there are solver noise).
    """
    norm = np.linalg.norm(true, axis=1)
    rel = np.linalg.norm(pred - true, axis=1) / np.where(norm > 0, norm, 1.0)
    # predicted not to move θ̂: ‖Δθ_pred‖ round-off small next to ‖Δθ_true‖
    still = np.linalg.norm(pred, axis=1) <= 1e-8 * norm
    out = {name: (float(np.median(rel[rows])) if rows.any() else None)
           for name, rows in groups.items()}
    out["max"] = {name: (float(np.max(rel[rows])) if rows.any() else None)
                  for name, rows in groups.items()}
    out["n"] = {name: int(rows.sum()) for name, rows in groups.items()}
    out["n_predicted_zero"] = int(still[groups["all"]].sum())
    return out


def rel_frobenius(pred, true):
    return float(np.linalg.norm(pred - true) / np.linalg.norm(true))


def derivative_error(pred, oracles):
    """Relative Frobenius error against the finite differences, the best over steps."""
    return min(rel_frobenius(pred, fd) for fd in oracles)


# -- our side --------------------------------------------------------------------------
def fit_explainer(est, X, y, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        explainer = InfluenceExplainer(est, **kw).fit(X, y)
    return explainer, sorted({f"{w.category.__name__}: {w.message}" for w in caught})


def best_of(fn, repeats=3):
    best, out = np.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


class Internals:
    """The pieces of the explainer's objective the prototypes need (single output)."""

    def __init__(self, explainer, X_test, y_test, y_sign):
        obj = explainer.risk_
        self.y_sign = y_sign
        assert obj.n_outputs == 1 and obj.free.all()
        self.explainer, self.obj = explainer, obj
        self.n = obj.X.shape[0]
        self.s = explainer.sample_weight_
        self.solver = explainer.hessian_solver_
        ones = lambda k: np.ones((k, 1))  # noqa: E731
        self.Xt_train = obj.row_gradients(obj.X, ones(self.n))  # x̃ = [x, 1]
        self.Xt_test = obj.row_gradients(X_test, ones(X_test.shape[0]))
        y_enc = obj.targets.encode(y_test, X_test.shape[0])
        self.G_test = obj.test_gradients(X_test, y_enc)  # ∇θ L_t(z_test)
        self.z_test = obj.decision(X_test)[:, 0]

    def removal(self, influence):
        """Δθ_j ≈ −(s_j/n)·I_up,params(z_j)."""
        return -(self.s / self.n)[:, None] * influence

    def paper_influence(self):
        """−H⁻¹∇θφ_t(m_j): the training gradient from the smooth loss itself."""
        obj = self.obj
        dz = obj.loss.value_grad(obj.decision(obj.X), obj.y)[1]
        G = obj.row_gradients(obj.X, dz * obj.class_weight)
        return -self.solver.solve(G.T).T

    def leverage(self):
        obj = self.obj
        curv = obj.loss.hessian(obj.decision(obj.X), obj.y)[:, 0, 0]
        q = np.einsum("ip,ip->i", self.Xt_train, self.solver.solve(self.Xt_train.T).T)
        return obj.row_weight[:, 0] * curv * q / self.n

    def unpinned_removal(self, dtheta):
        """t = 0: Δθ_j with row j's pin released (the others kept), for pinned rows j."""
        obj = self.obj
        out = dtheta.copy()
        if obj.pinned is None or not obj.pinned.any():
            return out, 0
        pinned = np.flatnonzero(obj.pinned[:, 0])
        fixed = obj.fixed_directions()  # one column per pinned row, in row order
        assert fixed.shape[1] == len(pinned)
        rows, _ = obj.train_gradients()
        H = self.explainer.hessian_
        for c, j in enumerate(pinned):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                solver = CholeskySolver(H, np.delete(fixed, c, axis=1))
            out[j] = (self.s[j] / self.n) * solver.solve(rows[j])
        return out, len(pinned)

    def newton_change(self, dtheta, loss):
        """L(z_t + x̃_t·Δθ_j) − L(z_t) for every (test t, removal j), not linearised."""
        z_new = self.z_test[:, None] + self.Xt_test @ dtheta.T
        before = loss(self.y_sign * self.z_test)
        return loss(self.y_sign[:, None] * z_new) - before[:, None]


def library_newton(explainer, X_test, y_test, prototype):
    """Cross-check against ``leave_one_out(method="newton")`` where the library has it.

    ``prototype``: this script's Newton prediction with the explainer's own test loss.
    Returns the relative max difference and the library's time (best of 3), or why
    it is unavailable.
    """
    try:
        t_lib, lib = best_of(
            lambda: explainer.leave_one_out(X_test, y_test, method="newton"))
    except (TypeError, NotImplementedError, ValueError) as exc:
        return {"available": False, "reason": f"{type(exc).__name__}: {exc}"}
    scale = max(np.abs(prototype).max(), 1e-300)
    diff = float(np.nanmax(np.abs(lib - prototype)) / scale)
    return {"available": True, "max_rel_diff": diff, "time_s": t_lib,
            "n_nan": int(np.isnan(lib).sum())}


# -- one model ---------------------------------------------------------------------------
def actual_changes(z_full, z_loo, y_sign, loss):
    """(n_test, n_train): L(ỹ z_t(θ̂_{−j})) − L(ỹ z_t(θ̂))."""
    return (loss(y_sign[None, :] * z_loo) - loss(y_sign * z_full)[None, :]).T


def newton_removal(inn, d1):
    """Leverage-corrected removal Δθ_j = Δθ_j^(1) / (1 − lev_j), and lev."""
    lev = inn.leverage()
    return d1 / (1.0 - lev)[:, None], lev


def fd_oracles(est, X, y, n_jobs):
    return [fd_derivatives(est, X, y, n_jobs, h) for h in FD_STEPS]


def run_smooth_reference(kind, C, data, loss, n_jobs, fd):
    """Squared hinge / logistic: first order vs Newton (no smoothing involved)."""
    X, Xt, y, yt = data
    est = make_estimator(kind, C)
    explainer, warns = fit_explainer(est, X, y)
    t_fit, _ = best_of(lambda: fit_explainer(est, X, y))
    t_loo, pred1 = best_of(lambda: explainer.leave_one_out(Xt, yt))
    model = explainer.estimator_
    ys = signed(yt, model.classes_)
    z_full = model.decision_function(Xt)
    theta_loo, z_loo, wall = loo_refits(est, X, y, Xt, n_jobs)
    act = actual_changes(z_full, z_loo, ys, loss)
    dtheta_true = theta_loo - params_of(model)

    inn = Internals(explainer, Xt, yt, ys)
    d1 = inn.removal(explainer.param_influence())
    t_newton, (d3, lev) = best_of(lambda: newton_removal(inn, d1))
    t_eval, pred3 = best_of(lambda: inn.newton_change(d3, loss))
    lib_check = library_newton(explainer, Xt, yt, pred3)
    margin = ys * z_full
    # removing a row moves θ̂ iff its loss has a nonzero gradient at θ̂
    train_margin = signed(y, model.classes_) * model.decision_function(X)
    hinged = kind == "squared_hinge"
    groups = {"all": train_margin < 1 if hinged else np.ones(len(y), bool)}
    protocol = margin < 1 if hinged else np.ones(len(yt), bool)
    out = {
        "estimator": repr(est),
        "explainer_warnings": warns,
        "optimality": explainer.optimality_,
        "condition_number": float(explainer.hessian_solver_.condition_number_),
        "max_leverage": float(lev.max()),
        "library_newton": lib_check,
        "timing": {"fit_s": t_fit, "leave_one_out_s": t_loo,
                   "newton_extra_s": t_newton + t_eval,
                   "refits_wall_s": wall, "n_refits": len(y)},
        "predictors": {
            "first-order": {"target": compare(act, pred1, protocol),
                            "dtheta_err": dtheta_error(d1, dtheta_true, groups)},
            "newton": {"target": compare(act, pred3, protocol),
                       "dtheta_err": dtheta_error(d3, dtheta_true, groups)},
        },
    }
    if fd:
        out["derivative_rel_error"] = derivative_error(
            explainer.param_influence(), fd_oracles(est, X, y, n_jobs))
    return out


def run_hinge(kind, C, data, n_jobs, fd):
    X, Xt, y, yt = data
    est = make_estimator(kind, C)
    base = _fit_quiet(est, X, y)
    ys = signed(yt, base.classes_)
    z_full = base.decision_function(Xt)
    theta_full = params_of(base)
    margin_test = ys * z_full
    margin_train = signed(y, base.classes_) * base.decision_function(X)
    warm, _ = fit_explainer(est, X, y, smoothing=0.0)  # warm-up (imports, pools)
    warm.leave_one_out(Xt, yt)
    beta0 = np.abs(warm.risk_.training_dz()[:, 0])  # β_j = α_j / (C s_j c_j)
    support, margin_sv = beta0 > 1e-6, (beta0 > 1e-6) & (beta0 < 1 - 1e-6)

    theta_loo, z_loo, wall = loo_refits(est, X, y, Xt, n_jobs)
    dtheta_true = theta_loo - theta_full
    # other training rows whose status (inside / on / outside the margin) changes when
    # row j is removed: 0 means the removal stays on one linear piece of the solution
    status_changes = np.array([
        np.sum(np.delete(margin_status(margin_train), j)
               != np.delete(margin_status(margin_of(theta_loo[j], X, y, base)), j))
        for j in range(len(y))
    ])
    one_piece = support & (status_changes == 0)
    groups = {"all": support, "margin SV": margin_sv, "inside": support & ~margin_sv,
              "one piece": one_piece}
    oracles = fd_oracles(est, X, y, n_jobs) if fd else None

    result = {"estimator": repr(est), "refits_wall_s": wall, "n_refits": len(y),
              "by_t": {}}
    for t in T_VALUES:
        explainer, warns = fit_explainer(est, X, y, smoothing=t)
        t_fit, _ = best_of(lambda t=t: fit_explainer(est, X, y, smoothing=t))
        t_loo, pred1 = best_of(lambda ex=explainer: ex.leave_one_out(Xt, yt))
        assert np.allclose(params_of(explainer.estimator_), theta_full, atol=1e-12)
        inn = Internals(explainer, Xt, yt, ys)
        I1 = explainer.param_influence()
        d1 = inn.removal(I1)
        # the internal pieces reproduce the public API
        recomputed = inn.G_test @ d1.T
        consistency = float(np.abs(recomputed - pred1).max()
                            / max(np.abs(pred1).max(), 1e-300))
        I2 = inn.paper_influence()
        d2 = inn.removal(I2)
        pred2 = inn.G_test @ d2.T
        t_newton, (d3, lev) = best_of(lambda inn=inn, d1=d1: newton_removal(inn, d1))
        t_eval, _ = best_of(lambda inn=inn, d3=d3: inn.newton_change(d3, hinge))

        entry = {
            "explainer_warnings": warns,
            "condition_number": float(explainer.hessian_solver_.condition_number_),
            "max_leverage": float(lev.max()),
            "api_consistency_rel": consistency,

            "timing": {"fit_s": t_fit, "leave_one_out_s": t_loo,
                       "newton_extra_s": t_newton + t_eval},
            "predictors": {},
        }
        deltas = {"skinfluence": d1, "paper": d2, "newton": d3}
        linear = {"skinfluence": pred1, "paper": pred2}
        if t == 0:
            start = time.perf_counter()
            deltas["newton-unpin"], entry["n_pinned"] = inn.unpinned_removal(d1)
            entry["timing"]["newton_unpin_extra_s"] = time.perf_counter() - start
        # the library's method="newton" (where it exists), against the prototype: at
        # t = 0 that is newton-unpin (support vectors on the margin released)
        entry["library_newton"] = library_newton(
            explainer, Xt, yt,
            inn.newton_change(deltas["newton-unpin" if t == 0 else "newton"],
                              smooth_hinge(t)))
        for target, loss in (("hinge", hinge), ("smooth", smooth_hinge(t))):
            act = actual_changes(z_full, z_loo, ys, loss)
            for name, d in deltas.items():
                pred = linear[name] if name in linear else inn.newton_change(d, loss)
                entry["predictors"].setdefault(name, {})[target] = compare(
                    act, pred, margin_test < 1)
        for name, d in deltas.items():
            entry["predictors"][name]["dtheta_err"] = dtheta_error(d, dtheta_true, groups)
        if oracles is not None:
            entry["derivative_rel_error"] = {
                "skinfluence": derivative_error(I1, oracles),
                "paper": derivative_error(I2, oracles),
            }
        result["by_t"][repr(t)] = entry

    result["data"] = {
        "n_support": int(np.sum(beta0 > 1e-6)),
        "n_margin_sv": int(np.sum((beta0 > 1e-6) & (beta0 < 1 - 1e-6))),
        "n_bound_sv": int(np.sum(beta0 >= 1 - 1e-6)),
        "test_accuracy": float(base.score(Xt, yt)),
        "n_test_margin_lt_1": int(np.sum(margin_test < 1)),
        "status_changes_per_removal": {
            "median": float(np.median(status_changes[support])),
            "max": int(status_changes[support].max(initial=0)),
            "n_one_piece": int(one_piece.sum()),
        },
        "non_sv_train_rows_near_margin": {
            f"{eps:g}": int(np.sum((np.abs(margin_train - 1) < eps) & (beta0 < 1e-6)))
            for eps in (1e-3, 1e-2, 1e-1)
        },
    }
    if oracles is not None:
        fd = oracles[0]
        result["fd_zero_rows_max"] = float(np.abs(fd[beta0 < 1e-6]).max(initial=0.0))
        result["fd_margin_rows_max"] = float(
            np.abs(fd[(beta0 > 1e-6) & (beta0 < 1 - 1e-6)]).max(initial=0.0))
        result["fd_scale"] = float(np.abs(fd).max())
    return result


def margin_of(theta, X, y, model):
    return signed(y, model.classes_) * (X @ theta[:-1] + theta[-1])


def margin_status(m, tol=1e-6):
    """−1 inside the margin, 0 on it, +1 outside."""
    return np.where(np.abs(m - 1) <= tol, 0, np.sign(m - 1)).astype(int)


# -- report ------------------------------------------------------------------------------
def fmt(x, spec=".3f"):
    return "nan" if x is None or np.isnan(x) else format(x, spec)


DTHETA_GROUPS = ("all", "margin SV", "inside", "one piece")


def print_hinge_table(res, target):
    print(f"\n  target: {target} — actual = "
          + ("plain hinge max(0, 1 − m) on the refits" if target == "hinge" else
             "smooth hinge φ_t(m) at the same t on the refits"))
    print(f"  {'t':>6} {'predictor':<13} {'pooled R':>8} {'slope':>6} {'pairs':>6} "
          f"{'protocol R':>10} {'k':>5} | {'dθ err: all':>11} {'margin':>6} "
          f"{'inside':>6} {'1-piece':>7} {'dθ=0':>5}")
    for t, e in res["by_t"].items():
        for name, p in e["predictors"].items():
            m, d = p[target], p["dtheta_err"]
            errs = " ".join(f"{fmt(d[g], '.2f'):>{w}}"
                            for g, w in zip(DTHETA_GROUPS, (11, 6, 6, 7), strict=True))
            print(f"  {t:>6} {name:<13} {fmt(m['pooled_r']):>8} "
                  f"{fmt(m['slope'], '.2f'):>6} {m['n_pairs']:>6} "
                  f"{fmt(m['protocol_median_r']):>10} {m['protocol_mean_k']:>5.1f} | "
                  f"{errs} {d['n_predicted_zero']:>5}")


def print_hinge(h):
    d = h["data"]
    sc = d["status_changes_per_removal"]
    print(f"\n== hinge SVM: {h['estimator']}")
    print(f"  {d['n_support']} support vectors ({d['n_margin_sv']} on the margin, "
          f"{d['n_bound_sv']} inside), test accuracy {d['test_accuracy']:.3f}, "
          f"{d['n_test_margin_lt_1']} test points with margin < 1.")
    print(f"  Removing a support vector changes the status (inside/on/outside the "
          f"margin) of {sc['median']:.0f} other rows (median; max {sc['max']}); "
          f"{sc['n_one_piece']} removals stay on one linear piece ('1-piece').")
    print(f"  Non-SV training rows with |m - 1| < eps: "
          f"{d['non_sv_train_rows_near_margin']}")
    print_hinge_table(h, "hinge")
    print_hinge_table(h, "smooth")
    print("  pooled R / slope over (test, train) pairs with a nonzero actual or "
          "predicted change; protocol R: median over test points with m < 1 of R over "
          "the top-k |predicted| rows (k ≤ 100, nonzero predictions only)")
    print("  dθ err: median ‖Δθ_pred − Δθ_true‖/‖Δθ_true‖ over removals of support "
          "vectors (all / on the margin / inside it / staying on one piece); dθ=0: "
          "support-vector removals predicted not to move θ̂")
    if "fd_scale" in h:
        print(f"\n  derivative n·∂θ̂/∂s_j vs refit central differences (h in {FD_STEPS}, "
              f"the better), relative Frobenius error over all rows (refits: max |·| "
              f"{h['fd_scale']:.3g}; non-SV rows {h['fd_zero_rows_max']:.1e}, margin SV "
              f"rows {h['fd_margin_rows_max']:.1e}, i.e. zero):")
        for t, e in h["by_t"].items():
            r = e["derivative_rel_error"]
            print(f"  t={t:>6}: skinfluence {r['skinfluence']:.2e}   "
                  f"paper {r['paper']:.2e}")
    print("\n  per t: condition number, max leverage, timings (best of 3, 1 BLAS thread)")
    for t, e in h["by_t"].items():
        tm = e["timing"]
        warns = e["explainer_warnings"]
        print(f"  t={t:>6}: cond {e['condition_number']:.2e}  max lev "
              f"{e['max_leverage']:.4f}  fit {tm['fit_s'] * 1e3:.1f} ms + leave_one_out "
              f"{tm['leave_one_out_s'] * 1e3:.2f} ms; newton "
              f"+{tm['newton_extra_s'] * 1e3:.2f} ms (api check "
              f"{e['api_consistency_rel']:.0e}; {_lib_note(e['library_newton'])})"
              + (f"  warnings: {warns}" if warns else ""))
    print(f"  {h['n_refits']} LOO refits: {h['refits_wall_s'] * 1e3:.0f} ms wall")


def _lib_note(check):
    if not check["available"]:
        return "library newton: n/a"
    return (f"library newton {check['time_s'] * 1e3:.2f} ms, vs prototype "
            f"{check['max_rel_diff']:.0e}")


def print_reference(r, label):
    tm = r["timing"]
    print(f"\n== {label}: {r['estimator']}")
    print(f"  {'predictor':<13} {'pooled R':>8} {'slope':>6} {'pairs':>6} "
          f"{'protocol R':>10} {'k':>5} | {'dθ err':>6} {'max':>6}")
    for name, p in r["predictors"].items():
        m, d = p["target"], p["dtheta_err"]
        print(f"  {name:<13} {fmt(m['pooled_r']):>8} {fmt(m['slope'], '.2f'):>6} "
              f"{m['n_pairs']:>6} {fmt(m['protocol_median_r']):>10} "
              f"{m['protocol_mean_k']:>5.1f} | {fmt(d['all'], '.3f'):>6} "
              f"{fmt(d['max']['all'], '.3f'):>6}")
    extra = (f"derivative rel. error {r['derivative_rel_error']:.1e}; "
             if "derivative_rel_error" in r else "")
    extra += _lib_note(r["library_newton"]) + "; "
    print(f"  {extra}optimality {r['optimality']:.1e}; cond {r['condition_number']:.2e}; "
          f"max lev {r['max_leverage']:.4f}; fit {tm['fit_s'] * 1e3:.1f} ms + "
          f"leave_one_out {tm['leave_one_out_s'] * 1e3:.2f} ms; newton "
          f"+{tm['newton_extra_s'] * 1e3:.2f} ms; {tm['n_refits']} refits "
          f"{tm['refits_wall_s'] * 1e3:.0f} ms"
          + (f"; warnings: {r['explainer_warnings']}" if r["explainer_warnings"] else ""))


def print_report(out):
    for h in out["hinge_svm"].values():
        print_hinge(h)
    print_reference(out["squared_hinge"], "squared-hinge reference (no smoothing)")
    print_reference(out["logistic"], "logistic sanity check of the Newton Δθ formula")


def _json_safe(obj):
    """NaN → null (strict JSON), recursively."""
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, float) and np.isnan(obj):
        return None
    return obj


def machine_facts():
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = None
    return {"python": sys.version.split()[0], "platform": platform.platform(),
            "cpus_available": cpus, "numpy": np.__version__, "scipy": scipy.__version__,
            "sklearn": sklearn.__version__}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", choices=("svc", "linearsvc"),
                    default=["svc", "linearsvc"],
                    help="hinge SVMs: SVC(kernel='linear'), LinearSVC(loss='hinge')")
    ap.add_argument("--C", type=float, default=0.1, help="C of the SVMs (default 0.1)")
    ap.add_argument("--C-logistic", type=float, default=1.0,
                    help="C of the LogisticRegression sanity check (default 1)")
    ap.add_argument("--n-train", type=int, default=250)
    ap.add_argument("--seed", type=int, default=0, help="train/test split seed")
    ap.add_argument("--n-jobs", type=int, default=1,
                    help="joblib workers for the refits (a refit takes ~1 ms, so 1 is "
                         "fastest here)")
    ap.add_argument("--blas-threads", type=int, default=1,
                    help="BLAS threads (default 1: fastest at this size)")
    ap.add_argument("--no-fd", action="store_true",
                    help="skip the finite-difference derivative checks (4n refits)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke size: 120 training rows, SVC only")
    ap.add_argument("--output", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.quick:
        args.n_train, args.models = 120, ["svc"]
    output = args.output or RESULTS / ("fig3_svm_smoothing_quick.json" if args.quick
                                       else "fig3_svm_smoothing.json")

    # Everything here is small (p = 65): BLAS threads only add wake-up latency (numpy's
    # and scipy's OpenBLAS pools hand the cores back and forth in ~4 ms quanta), and
    # libsvm/liblinear refits are single-threaded: time both sides on one thread.
    with threadpool_limits(limits=args.blas_threads):
        start = time.perf_counter()
        data = load_split(args.n_train, args.seed)
        X, Xt, y, yt = data
        print(f"digits 1 vs 7, pixels/16: {len(y)} train, {len(yt)} test; C={args.C}")
        fd = not args.no_fd
        out = {
            "config": {**{k: (str(v) if isinstance(v, Path) else v)
                          for k, v in vars(args).items()},
                       "t_values": list(T_VALUES), "nonzero": NONZERO, "top_k": TOP_K,
                       "fd_steps": FD_STEPS, "n_test": len(yt)},
            "machine": machine_facts(),
            "hinge_svm": {kind: run_hinge(kind, args.C, data, args.n_jobs, fd)
                          for kind in args.models},
            "squared_hinge": run_smooth_reference("squared_hinge", args.C, data,
                                                  squared_hinge, args.n_jobs, fd),
            "logistic": run_smooth_reference("logistic", args.C_logistic, data,
                                             log_loss, args.n_jobs, fd=False),
        }
        out["total_s"] = time.perf_counter() - start
    print_report(out)
    print(f"\ntotal {out['total_s']:.1f} s")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(_json_safe(out), indent=1) + "\n")
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
