"""Linear support vector regression: LinearSVR (liblinear) and SVR(kernel="linear").

Objectives minimised by scikit-learn, with residuals r_i = z_i − y_i, z = w·x + b:

- ``LinearSVR``: F = ½‖w̃‖² + C Σ_i s_i ψ(r_i), w̃ = [w, b / intercept_scaling]
  (liblinear penalises the intercept through a constant column of value
  ``intercept_scaling``, as for LinearSVC). ψ is the ε-insensitive loss
  max(0, |r| − ε) (``loss="epsilon_insensitive"``, dual solver only) or its square
  max(0, |r| − ε)² (``"squared_epsilon_insensitive"``, primal with ``dual=False``).
- ``SVR(kernel="linear")``: F = ½‖w‖² + C Σ_i s_i max(0, |r_i| − ε), intercept not
  penalised (libsvm).

skinfluence uses R = F / (C n): quadratic penalty 1/(C n) on w (and
1/(C n intercept_scaling²) on b for LinearSVR). The squared loss is once
differentiable: its generalized second derivative 2·[|r| > ε] gives the Hessian,
exactly (as the squared hinge). The ε-insensitive loss is piecewise linear, like the
hinge: rows strictly outside the tube (|r| > ε) have ψ' = sign(r), rows inside 0, and
rows on the tube's edges (|r| = ε) are kinks with ψ' ∈ [0, 1] (r = ε) or [−1, 0]
(r = −ε). Their subgradients come from the optimum itself:

- SVR: ``dual_coef_`` holds α_i − α_i* = −C s_i ψ'(r_i) (stationarity
  w = −C Σ_i s_i ψ'(r_i) x_i), exact for every row.
- LinearSVR exposes no dual coefficients: rows within a tolerance of an edge are
  identified from their residuals, and their ψ' is solved for by bounded least
  squares in the stationarity condition w̃ = −C Σ_i s_i ψ'(r_i) x̃_i
  (a :class:`~skinfluence.models.svm.DualRecoveryWarning` says when that fails).

``smoothing=0`` (the default, ``"auto"``) is the exact derivative: no curvature off
the edges, and the rows on an edge with a subgradient strictly inside its range are
held there (``pinned``), as the exact hinge's margin rows. ``smoothing=t > 0`` uses
the smooth ε-insensitive loss t·[softplus((r − ε)/t) + softplus((−r − ε)/t)] (two
smooth hinges, one per edge) in the Hessian and the test loss, with the exact
subgradients above for the training rows. ``leave_one_out(method="exact")`` (the
solution path as a row's weight goes to zero) is
followed for the ε-insensitive loss too (``exact_path = "tube"``: each row is two
hinges with offsets, one per edge; :func:`skinfluence._paths.tube_exact_steps`)
and matches refits without the row (to the solver's floor); groups are not
supported (``method="newton"``).
"""

import warnings

import numpy as np
from scipy.optimize import lsq_linear
from sklearn.svm import SVR, LinearSVR

from .._objective import LinearObjective
from .._utils import dense
from ._fitted import coef_intercept
from ._targets import RealTargets
from .sgd import ResidualLoss, SmoothEpsilonInsensitiveLoss, SquaredEpsilonInsensitiveLoss
from .svm import KKT_WARN, MARGIN_TOL, DualRecoveryWarning, _on_margin, dual_on_rows


class EpsilonInsensitiveLoss(ResidualLoss):
    """ψ(r) = max(0, |r| − ε): ψ' = sign(r)·[|r| > ε], ψ'' = 0 (exact, t = 0).

    Its curvature lives on the tube's edges; the family pins the rows there.
    """

    def __init__(self, epsilon):
        self.epsilon = float(epsilon)

    def psi(self, r):
        slack = np.abs(r) - self.epsilon
        return np.maximum(0.0, slack), np.sign(r) * (slack > 0), np.zeros_like(r)


def epsilon_insensitive_loss(epsilon, smoothing):
    """The ε-insensitive loss at temperature t ("auto" = 0, the exact loss)."""
    t = 0.0 if smoothing == "auto" else float(smoothing)
    if t > 0:
        return SmoothEpsilonInsensitiveLoss(epsilon, t)
    return EpsilonInsensitiveLoss(epsilon)


class TubeObjective(LinearObjective):
    """R(θ) of an ε-insensitive SVR: exact removals follow the tube's solution path
    (see the module)."""

    exact_path = "tube"


def _tube_scale(est, Y):
    """Scale of the residuals: tolerances on |r| − ε are relative to it."""
    spread = float(np.std(Y))
    return max(float(est.epsilon), spread) or 1.0


def linear_svr_objective(est, X, y, sample_weight, *, smoothing="auto", **options):
    """R(θ) = F/(C n) of a fitted LinearSVR.

    Parameters
    ----------
    est : LinearSVR
        Fitted estimator.
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)
        Training data (float64).
    y : ndarray of shape (n_samples,)
        Training targets.
    sample_weight : ndarray of shape (n_samples,)
        Sample weights.
    smoothing : float or "auto", default="auto"
        Temperature of the smooth ε-insensitive loss (``loss="epsilon_insensitive"``);
        0 or "auto": the exact loss with the rows on the tube's edges pinned.
    **options
        Other explainer settings (unused).

    Returns
    -------
    objective : LinearObjective
    """
    targets = RealTargets(1)
    Y = targets.encode(y, X.shape[0])
    coef, intercept = coef_intercept(est)
    d = coef.shape[1]
    p = d + (1 if est.fit_intercept else 0)
    quad = np.full(p, 1.0 / (est.C * X.shape[0]))  # R = F / (C n)
    if est.fit_intercept:  # the penalised weight is b / intercept_scaling
        quad[d:] /= est.intercept_scaling**2
    common = dict(targets=targets)
    if est.loss == "squared_epsilon_insensitive":
        return LinearObjective(SquaredEpsilonInsensitiveLoss(est.epsilon), coef,
                               intercept, X, Y, sample_weight, np.ones(X.shape[0]),
                               quad, np.zeros(p), **common)
    train_dz = _subgradient_linear_svr(est, X, Y, sample_weight)
    return TubeObjective(
        epsilon_insensitive_loss(est.epsilon, smoothing), coef, intercept, X, Y,
        sample_weight, np.ones(X.shape[0]), quad, np.zeros(p), **common,
        train_dz=train_dz, pinned=_on_margin(train_dz, smoothing),
    )


def _subgradient_linear_svr(est, X, Y, sample_weight):
    """ψ'(r_i) of LinearSVR(loss="epsilon_insensitive") from its KKT conditions.

    Stationarity: w̃ = −C Σ_i s_i ψ'_i x̃_i, with ψ' = sign(r) outside the tube, 0
    inside, and on an edge in [0, 1] (r = ε) or [−1, 0] (r = −ε) (both, [−1, 1],
    when ε = 0): the last are solved for by bounded least squares.
    """
    coef = np.ravel(est.coef_)
    r = (np.asarray(X @ coef) + (est.intercept_ if est.fit_intercept else 0.0)
         - Y[:, 0])
    tol = MARGIN_TOL * _tube_scale(est, Y)
    eps = float(est.epsilon)
    upper = np.abs(r - eps) <= tol
    lower = np.abs(r + eps) <= tol
    on = upper | lower
    out = ~on & (np.abs(r) > eps)
    dz = np.where(out, np.sign(r), 0.0)
    w_tilde = np.r_[coef, est.intercept_ / est.intercept_scaling] \
        if est.fit_intercept else coef

    def columns(rows):  # −C s_i x̃_i, one row per training row
        Xr = dense(X[rows])
        if est.fit_intercept:
            Xr = np.hstack([Xr, np.full((Xr.shape[0], 1), est.intercept_scaling)])
        return -(est.C * sample_weight[rows])[:, None] * Xr

    residual = w_tilde - dz[out] @ columns(out)
    if on.any():
        bounds = (np.where(lower[on], -1.0, 0.0), np.where(upper[on], 1.0, 0.0))
        fit = lsq_linear(columns(on).T, residual, bounds=bounds)
        dz[on] = fit.x
        residual = residual - columns(on).T @ fit.x
    kkt = np.linalg.norm(residual) / max(np.linalg.norm(w_tilde), 1e-300)
    if kkt > KKT_WARN:
        warnings.warn(
            f"Could not recover LinearSVR(loss='epsilon_insensitive')'s subgradients "
            f"from its weights (relative KKT residual {kkt:.1e}): the fit is not tight "
            "enough. Refit with a smaller tol (e.g. 1e-10) and larger max_iter.",
            DualRecoveryWarning,
            stacklevel=4,
        )
    return dz[:, None]


def svr_objective(est, X, y, sample_weight, *, smoothing="auto", **options):
    """R(θ) = F/(C n) of a fitted SVR(kernel="linear").

    Parameters
    ----------
    est : SVR
        Fitted estimator with ``kernel="linear"``.
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)
        Training data (float64).
    y : ndarray of shape (n_samples,)
        Training targets.
    sample_weight : ndarray of shape (n_samples,)
        Sample weights.
    smoothing : float or "auto", default="auto"
        As for :func:`linear_svr_objective`.
    **options
        Other explainer settings (unused).

    Returns
    -------
    objective : LinearObjective
    """
    coef, _ = coef_intercept(est)
    return svr_risk(est, X, coef, y, sample_weight, smoothing)


def svr_risk(est, X, coef, y, sample_weight, smoothing, **extra):
    """R(θ) = F/(C n) of a fitted SVR whose prediction is ``X @ coef.T + b``.

    ``X`` holds the features the model is linear in (the inputs for the linear
    kernel, a kernel map's features otherwise: ``extra`` passes ``input_map``,
    ``inputs`` and ``param_map`` on to :class:`LinearObjective`).
    """
    targets = RealTargets(1)
    Y = targets.encode(y, X.shape[0])
    n, d = X.shape
    quad = np.zeros(d + 1)
    quad[:d] = 1.0 / (est.C * n)  # R = F / (C n); the intercept is not penalised
    # dual_coef_ holds α_i − α_i* = −C s_i ψ'(r_i) for the support vectors
    dual = dual_on_rows(est, sample_weight)
    upper = est.C * sample_weight
    with np.errstate(divide="ignore", invalid="ignore"):
        train_dz = np.where(upper > 0, -dual / upper, 0.0)[:, None]
    return TubeObjective(
        epsilon_insensitive_loss(est.epsilon, smoothing), coef,
        np.atleast_1d(est.intercept_), X, Y, sample_weight, np.ones(n), quad,
        np.zeros(d + 1), targets=targets, train_dz=train_dz,
        pinned=_on_margin(train_dz, smoothing), **extra,
    )


def convergence_hint(est, n_samples):
    """Settings of ``est`` that reach the optimum of the same objective."""
    if isinstance(est, SVR):
        return "fit it more tightly, e.g. with tol=1e-10" + (
            "" if est.max_iter == -1 else ", max_iter=-1")
    # liblinear's primal solver (dual=False) stops at a relative Newton step ~1e-7
    # whatever its tol; its dual solvers reach ~1e-11 at tol=1e-10
    return "fit it more tightly, e.g. with dual=True, tol=1e-10, max_iter=1000000"


# SVR (every kernel; "linear" through svr_objective) is listed in kernel_svm
SUPPORTED = {LinearSVR: linear_svr_objective}

#: Support-table row (``models.support_table``): loss, penalty, intercept, vs refits.
DESCRIPTION = {
    (LinearSVR,): ("ε-insensitive (exact: tube-edge rows pinned; or smoothed) or "
                   "squared ε-insensitive", "L2", "penalised (`intercept_scaling`)",
                   "squared ≤ 4e-7, exact LOO 4e-9; ε-insensitive: liblinear floor "
                   "3e-4, exact LOO (solution path) 5e-8"),
}
