"""Lasso, ElasticNet, their CV variants and the LassoLars family: L1 (+ L2) penalties.

Objective minimised by scikit-learn (``sklearn/linear_model/_coordinate_descent.py``;
the sample weights are rescaled to sum to n, so the data term is a weighted mean)::

    F(W, b) = 1/(2S) Σ_i s_i ‖y_i − W x_i − b‖² + α r ‖W‖₁ + ½ α (1 − r) ‖W‖²,

S = Σ_i s_i, r = ``l1_ratio`` (1 for Lasso and the LassoLars family), intercept
unpenalised. skinfluence uses ``R = F``: this objective is already per sample (in
the sum form Σ_i s̃_i ½‖y_i − z_i‖² + n·penalty with s̃ = n s/S, R = sum/n, C = 1). The
per-sample loss is therefore ``L = ½ Σ_k (y_k − z_k)²`` (half of Ridge's), the penalties
are ``α (1 − r)`` (quadratic) and ``α r`` (L1) on the coefficients, and the weight
normalisation is part of the influence (see :mod:`._normalised`): an
``ElasticNet(alpha=a, l1_ratio=0)`` has the ``param_influence`` of
``Ridge(alpha=n·a)`` plus the effect of re-normalising the weights, and half its
loss influence in units of the loss.

Influence lives on the active set: coefficients at exactly zero stay zero under a
small re-weighting (strict complementarity, as for L1 logistic regression), and so do
``positive=True`` coefficients at their bound. A 2-D ``y`` (k targets, not MultiTask)
is k independent problems with one joint R.

- ``LassoCV``/``ElasticNetCV`` are explained as the final refit at the selected
  ``alpha_`` (and ``l1_ratio_``); the selection itself is held fixed.
- ``LassoLars`` minimises the Lasso objective by least-angle regression (no sample
  weights in ``fit``); ``LassoLarsCV`` and ``LassoLarsIC`` at the selected ``alpha_``.
  ``LassoLarsIC`` picks ``alpha_`` among the knots of the path, where a variable
  enters with ``|∇| = α`` and coefficient 0: the influence is the one-sided derivative
  that keeps it at zero.
- Refused: ``LassoLars(jitter=...)`` (fitted on targets with random noise added).
  The MultiTask variants (group penalty) are :mod:`.multitask`.
"""

import numpy as np
from sklearn.linear_model import (
    ElasticNet,
    ElasticNetCV,
    Lasso,
    LassoCV,
    LassoLars,
    LassoLarsCV,
    LassoLarsIC,
)

from ._fitted import coef_intercept, selected_penalty
from ._losses import SquaredErrorLoss
from ._normalised import NormalisedWeightObjective
from ._targets import RealTargets


def enet_objective(est, X, y, sample_weight, **options):
    """R(θ) = F of a fitted Lasso/ElasticNet/LassoLars family model.

    Parameters
    ----------
    est : estimator
        Fitted estimator of this family.
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)
        Training data (float64).
    y : ndarray of shape (n_samples,) or (n_samples, n_targets)
        Training targets.
    sample_weight : ndarray of shape (n_samples,)
        Sample weights.
    **options
        Explainer settings (unused).

    Returns
    -------
    objective : NormalisedWeightObjective
    """
    coef, intercept = coef_intercept(est)
    k, d = coef.shape
    targets = RealTargets(k)
    Y = targets.encode(y, X.shape[0])
    p = k * d + (k if intercept is not None else 0)
    alpha, r = selected_penalty(est)
    quad, l1 = np.zeros(p), np.zeros(p)
    quad[: k * d] = alpha * (1.0 - r)  # ½ α (1 − r) ‖W‖²
    l1[: k * d] = alpha * r  # α r ‖W‖₁
    fixed = None
    if getattr(est, "positive", False):  # coefficients at the bound 0 stay there
        fixed = np.zeros(p, dtype=bool)
        fixed[: k * d] = coef.ravel() == 0.0
    return NormalisedWeightObjective(
        SquaredErrorLoss(0.5), coef, intercept, X, Y, sample_weight, quad, l1,
        targets=targets, fixed=fixed,
    )


def validate(est):
    """Refuse jittered LARS fits before fitting."""
    if isinstance(est, (LassoLars, LassoLarsCV)) and \
            getattr(est, "jitter", None) is not None:
        raise TypeError(
            f"{type(est).__name__}(jitter={est.jitter!r}) fits targets with random "
            "noise added, which the fitted model does not record, so its objective "
            "cannot be rebuilt. Use jitter=None."
        )


def convergence_hint(est, n_samples):
    """Settings of ``est`` that reach the optimum of the same objective."""
    if isinstance(est, (LassoLars, LassoLarsCV)):
        return ("LARS is exact up to round-off; for ill-conditioned X use "
                f"Lasso(alpha={selected_penalty(est)[0]:.6g}, tol=1e-12, "
                "max_iter=100000)")
    return "fit it more tightly, e.g. with tol=1e-12, max_iter=100000"


# Subclasses first where the MRO would otherwise hit a parent (LassoLarsIC < LassoLars).
SUPPORTED = {
    ElasticNetCV: enet_objective,
    LassoCV: enet_objective,
    ElasticNet: enet_objective,
    Lasso: enet_objective,
    LassoLarsIC: enet_objective,
    LassoLarsCV: enet_objective,
    LassoLars: enet_objective,
}

#: Support-table row (``models.support_table``): loss, penalty, intercept, vs refits.
DESCRIPTION = {
    (Lasso, ElasticNet, LassoCV, ElasticNetCV): (
        "½ (y − z)²; 2-D y: one problem per target",
        "L1 + L2 (`alpha`, `l1_ratio`) on the active set; CV: at `alpha_`, "
        "`l1_ratio_`; weights normalised", "unpenalised", "≤ 1.2e-9; exact LOO 3e-10"),
    (LassoLars, LassoLarsCV, LassoLarsIC): (
        "½ (y − z)² (no sample weights in `fit`)",
        "L1 on the active set; at `alpha_`; IC: one-sided at its knot",
        "unpenalised", "≤ 4e-11 (IC: one-sided 3e-8)"),
}
