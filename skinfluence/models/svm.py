"""Linear SVMs: LinearSVC (liblinear) and SVC(kernel="linear") (libsvm).

Objectives minimised by scikit-learn, with margins m_i = ỹ_i z_i, ỹ = ±1:

- ``LinearSVC``: F = ½‖w̃‖² + C Σ_i s_i c_i L(m_i) (``penalty="l2"``) or
  F = ‖w̃‖₁ + C Σ_i s_i c_i L(m_i) (``penalty="l1"``), where w̃ = [w, b / intercept_scaling]
  (liblinear penalises the intercept through a constant column). L is the squared
  hinge max(0, 1 − m)² (default) or the hinge max(0, 1 − m). Several classes: one
  independent binary problem per class (one-vs-rest), where the class's own rows carry
  its class weight and all other rows weight 1.
- ``SVC(kernel="linear")``: F = ½‖w‖² + C Σ_i s_i c_i max(0, 1 − m_i), intercept not
  penalised; binary only here (scikit-learn's multiclass SVC is one-vs-one).

skinfluence uses R = F / (C n). The squared hinge is once differentiable: its
generalized second derivative 2·[m < 1] gives the Hessian, exactly. The hinge is not
differentiable: following Koh & Liang, the smooth hinge t·log(1 + exp((1 − m)/t))
(``InfluenceExplainer(smoothing=t)``) stands in for it in the Hessian and in the test
loss, while each training row's derivative is the hinge's own subgradient at the
optimum, read off the dual coefficients: dL/dz_i = −ỹ_i β_i with β_i = α_i / (C s_i c_i)
∈ [0, 1] — zero for rows outside the margin, which therefore have no influence on the
fit. As t → 0 the rows on the margin are pinned to it (curvature 1/(4t)), which is the
exact derivative of the hinge solution while its set of support vectors is unchanged;
``smoothing=0`` computes that limit directly: the hinge has no curvature off the margin,
and the support vectors on it (0 < β < 1) are held there (``pinned``).
"""

import warnings

import numpy as np
from scipy.optimize import lsq_linear
from sklearn.svm import SVC, LinearSVC

from .._objective import LinearObjective
from .._utils import dense
from ._class_weight import class_weight_recipe, recount_on_removal
from ._losses import SquaredHingeLoss, hinge_loss, signed_targets
from ._targets import ClassLabels

#: Margins within this distance of 1 count as "on the margin" when recovering α.
MARGIN_TOL = 1e-4
#: Relative KKT residual above which the recovered dual coefficients are unreliable.
KKT_WARN = 1e-3
#: β within this of 0 or 1 is at a bound (not a support vector on the margin).
BOUND_TOL = 1e-6


class DualRecoveryWarning(UserWarning):
    """LinearSVC's dual coefficients could not be recovered to the KKT tolerance."""


def _class_weights(est, y_index, sample_weight, k):
    """Per-(row, output) class weights c_ik, their Jacobian, and the weighted mask."""
    row_cw, jacobian = class_weight_recipe(
        est.class_weight, est.classes_, y_index, sample_weight
    )
    if k == 1:
        return row_cw, jacobian, None
    # one-vs-rest: output k's loss carries c_k on class-k rows and 1 on the others
    own = y_index[:, None] == np.arange(k)
    return np.where(own, row_cw[:, None], 1.0), jacobian, own.astype(float)


def linear_svc_objective(est, X, y, sample_weight, *, smoothing="auto", **options):
    """R(θ) = F/(C n) of a fitted LinearSVC."""
    targets = ClassLabels(est.classes_)
    y_index = targets.encode(y, X.shape[0])
    coef = est.coef_
    k, d = coef.shape
    intercept = est.intercept_ if est.fit_intercept else None
    class_weight, jacobian, mask = _class_weights(est, y_index, sample_weight, k)

    p = k * d + (k if est.fit_intercept else 0)
    quad, l1 = np.zeros(p), np.zeros(p)
    scale = 1.0 / (est.C * X.shape[0])  # R = F / (C n)
    strength = quad if est.penalty == "l2" else l1
    strength[: k * d] = scale
    if est.fit_intercept:  # the penalised weight is b / intercept_scaling
        power = 2 if est.penalty == "l2" else 1
        strength[k * d :] = scale / est.intercept_scaling**power

    train_dz = pinned = None
    if est.loss == "hinge":
        loss = hinge_loss(smoothing, auto=0.0)
        cw = class_weight if class_weight.ndim == 2 else class_weight[:, None]
        train_dz = _hinge_subgradient_linear_svc(est, X, y_index,
                                                 sample_weight[:, None] * cw)
        pinned = _on_margin(train_dz, smoothing)
    else:
        loss = SquaredHingeLoss()
    return LinearObjective(
        loss, coef, intercept, X, y_index, sample_weight, class_weight, quad, l1,
        targets=targets, weight_jacobian=jacobian,
        groups=y_index if jacobian is not None else None, weighted_mask=mask,
        train_dz=train_dz, pinned=pinned,
    )


def _on_margin(train_dz, smoothing):
    """Support vectors on the margin (0 < β < 1), pinned for the exact hinge."""
    if smoothing != "auto" and smoothing > 0:
        return None
    beta = np.abs(train_dz)
    return (beta > BOUND_TOL) & (beta < 1.0 - BOUND_TOL)


def _hinge_subgradient_linear_svc(est, X, y_index, weights):
    """−ỹ_i β_i from the KKT conditions of LinearSVC(loss="hinge").

    Stationarity: w̃ = C Σ_i s_i c_i β_i ỹ_i x̃_i, with β_i = 1 inside the margin
    (m < 1), 0 outside (m > 1) and in [0, 1] on it; the last are solved for by bounded
    least squares. ``weights`` holds s_i c_ik, shape (n, k) or (n, 1).
    """
    n, k = X.shape[0], est.coef_.shape[0]
    Yt = signed_targets(y_index, k)
    Z = np.asarray(X @ est.coef_.T) + (est.intercept_ if est.fit_intercept else 0.0)
    M = Yt * Z
    beta = np.zeros((n, k))
    for j in range(k):
        w_tilde = est.coef_[j]
        if est.fit_intercept:
            w_tilde = np.r_[w_tilde, est.intercept_[j] / est.intercept_scaling]
        inside = M[:, j] < 1 - MARGIN_TOL
        on = np.abs(M[:, j] - 1) <= MARGIN_TOL
        beta[inside, j] = 1.0
        def columns(rows, j=j):  # rows' C s_i c_i ỹ_i x̃_i, one per row
            Xr = dense(X[rows])
            if est.fit_intercept:
                Xr = np.hstack([Xr, np.full((Xr.shape[0], 1), est.intercept_scaling)])
            w = weights[rows, j if weights.shape[1] > 1 else 0]
            return (est.C * w * Yt[rows, j])[:, None] * Xr

        residual = w_tilde - columns(inside).sum(axis=0)
        if on.any():
            fit = lsq_linear(columns(on).T, residual, bounds=(0.0, 1.0))
            beta[on, j] = fit.x
            residual = residual - columns(on).T @ fit.x
        kkt = np.linalg.norm(residual) / max(np.linalg.norm(w_tilde), 1e-300)
        if kkt > KKT_WARN:
            warnings.warn(
                f"Could not recover LinearSVC(loss='hinge')'s dual coefficients from "
                f"its weights (relative KKT residual {kkt:.1e}): the fit is not tight "
                "enough. Refit with a smaller tol (e.g. 1e-8) and larger max_iter.",
                DualRecoveryWarning,
                stacklevel=4,
            )
    return -Yt * beta


def svc_objective(est, X, y, sample_weight, *, smoothing="auto", **options):
    """R(θ) = F/(C n) of a fitted binary SVC(kernel="linear")."""
    return binary_svc_risk(est, X, dense(est.coef_), y, sample_weight, smoothing)


def dual_on_rows(est, sample_weight):
    """libsvm's ``dual_coef_[0]`` on every training row (zero off the support).

    libsvm drops rows of zero sample weight before fitting, and ``support_`` then
    indexes the rows kept: they are mapped back to the training rows here.
    """
    n = len(sample_weight)
    kept = np.flatnonzero(sample_weight != 0)
    beta = np.zeros(n)
    rows = est.support_ if len(kept) == n else kept[est.support_]
    beta[rows] = dense(est.dual_coef_)[0]
    return beta


def check_binary(est):
    """TypeError for an SVC fitted on more than two classes (one-vs-one)."""
    if len(est.classes_) != 2:
        raise TypeError(
            f"SVC(kernel={est.kernel!r}) with more than two classes fits one-vs-one "
            "classifiers (one per pair of classes, each on that pair's rows), which "
            "skinfluence does not support: explain one pair at a time (fit on the "
            "rows of two classes), or use LinearSVC (one-vs-rest)."
        )


def binary_svc_risk(est, X, coef, y, sample_weight, smoothing, **extra):
    """R(θ) = F/(C n) of a fitted binary SVC whose decision is ``X @ coef.T + b``.

    ``X`` holds the features the model is linear in (the inputs for the linear
    kernel, a kernel map's features otherwise: ``extra`` passes ``input_map``,
    ``inputs`` and ``param_map`` on to :class:`LinearObjective`).
    """
    check_binary(est)
    targets = ClassLabels(est.classes_)
    y_index = targets.encode(y, X.shape[0])
    n, d = X.shape
    class_weight, _ = class_weight_recipe(
        est.class_weight, est.classes_, y_index, sample_weight,
        from_sample_weight=False,  # libsvm's class_weight_ comes from class counts
    )
    p = d + 1
    quad = np.zeros(p)
    quad[:d] = 1.0 / (est.C * n)  # R = F / (C n); the intercept is not penalised
    # dual_coef_ holds α_i ỹ_i for the support vectors, 0 ≤ α_i ≤ C s_i c_i
    alpha_y = dual_on_rows(est, sample_weight)
    upper = est.C * sample_weight * class_weight
    with np.errstate(divide="ignore", invalid="ignore"):
        train_dz = np.where(upper > 0, -alpha_y / upper, 0.0)[:, None]
    risk = LinearObjective(
        hinge_loss(smoothing, auto=0.0), coef, est.intercept_, X, y_index,
        sample_weight, class_weight, quad, np.zeros(p), targets=targets,
        train_dz=train_dz, pinned=_on_margin(train_dz, smoothing), **extra,
    )
    # a refit without rows recounts the classes ("balanced")
    return recount_on_removal(risk, est.class_weight, y_index, len(est.classes_))


def convergence_hint(est, n_samples):
    """Settings of ``est`` that reach the optimum of the same objective."""
    if isinstance(est, SVC):  # libsvm (kernel_svm lists SVC)
        return "fit it more tightly, e.g. with tol=1e-8" + (
            "" if est.max_iter == -1 else ", max_iter=-1")
    if est.loss == "squared_hinge" and est.dual is not False:
        return ("fit it with dual=False, tol=1e-10, max_iter=10000 (liblinear's primal "
                "Newton solver of the same objective)")
    return "fit it more tightly, e.g. with tol=1e-8, max_iter=100000"


def validate(est):
    """Refuse, before fitting, the SVM settings skinfluence does not model."""
    if isinstance(est, LinearSVC) and est.multi_class == "crammer_singer":
        raise TypeError(
            "LinearSVC(multi_class='crammer_singer') optimises a joint multiclass "
            "objective that skinfluence does not model; use multi_class='ovr'."
        )


# SVC (every kernel; "linear" through svc_objective) is listed in kernel_svm
SUPPORTED = {LinearSVC: linear_svc_objective}
BALANCED_FROM_SAMPLE_WEIGHT = (LinearSVC,)  # liblinear: S / (K · S_g)

#: Support-table row (``models.support_table``): loss, penalty, intercept, vs refits.
DESCRIPTION = {
    (LinearSVC,): ("squared hinge (default) or hinge; one-vs-rest",
                   "L2; L1 on the active set", "penalised (`intercept_scaling`)",
                   "liblinear's floor (tests/test_family_svm.py)"),
}
