"""Ridge, RidgeClassifier, LinearRegression: the squared loss, solved exactly.

Objective minimised by scikit-learn (every solver; sparse ``X`` with an intercept takes
another internal path to the same minimiser)::

    F(W, b) = Σ_i s_i ‖y_i − W x_i − b‖² + Σ_k α_k ‖W_k‖²

with no ½ on either term and the intercept unpenalised; ``α_k`` is ``alpha`` (one per
target when an array is given), and ``LinearRegression`` is ``α = 0``. skinfluence uses
``R = F / n`` (this family has no ``C``), i.e. the per-sample loss
``L(z) = Σ_k (y_k − z_k)²`` and the quadratic penalty ``2 α_k / n`` on the coefficients
of output k (R's quadratic term is ½ θᵀ diag(q) θ).

Shapes: a 1-D ``y`` gives ``coef_`` (d,) and a scalar ``intercept_``; a 2-D ``y`` with k
targets gives (k, d) and (k,). The objective always works with (k, d) and (k,), and
``params_`` is ``coef_.ravel()`` followed by ``intercept_`` as before.

``RidgeClassifier`` is the same regression on targets in {−1, +1}: binary, one output
with +1 for ``classes_[1]``; multiclass, K outputs with +1 on the row's own class and
−1 elsewhere (one-vs-all). Its ``class_weight`` multiplies the sample weights by
``c_{y_i}``; "balanced" is computed from the class *counts*, not the sample weights.

``positive=True`` (Ridge's lbfgs, LinearRegression's nnls) bounds the coefficients at
zero: coefficients fitted to exactly zero are held there (``fixed``), as an L1 active set.
"""

import numpy as np
from sklearn.linear_model import LinearRegression, Ridge, RidgeClassifier

from .._objective import LinearObjective
from ._class_weight import class_weight_recipe, recount_on_removal
from ._fitted import coef_intercept
from ._losses import SquaredErrorLoss, signed_targets
from ._targets import ClassLabels, RealTargets


class SignedSquaredErrorLoss(SquaredErrorLoss):
    """L(z) = Σ_k (ỹ_k − z_k)² with ỹ = ±1 built from class indices (RidgeClassifier).

    ``y`` is the index of each row's class in ``classes_``; one output: ỹ = +1 for
    class 1, −1 for class 0; K outputs: ỹ_k = +1 on the row's own class, −1 elsewhere.
    """

    def value_grad(self, Z, y):
        return super().value_grad(Z, signed_targets(y, Z.shape[1]))

    def hessian(self, Z, y):
        return super().hessian(Z, signed_targets(y, Z.shape[1]))


def _alpha_per_output(est, k):
    """α_k for each of the k outputs (LinearRegression: 0); clear error otherwise."""
    if isinstance(est, LinearRegression):
        return np.zeros(k)
    alpha = np.ravel(np.asarray(est.alpha, dtype=np.float64))
    if alpha.size == 1:
        return np.full(k, alpha[0])
    if alpha.size != k:
        raise ValueError(
            f"{type(est).__name__}.alpha has {alpha.size} values but the model has "
            f"{k} output(s): alpha must be a scalar or one value per target."
        )
    return alpha


def _fixed_at_bound(est, coef, p):
    """Mask of θ held at the bound 0 by ``positive=True`` (None when unbounded)."""
    if not getattr(est, "positive", False):
        return None
    fixed = np.zeros(p, dtype=bool)
    fixed[: coef.size] = coef.ravel() == 0.0
    return fixed


def _squared_objective(est, X, y, sample_weight, loss, y_enc, targets, class_weight):
    coef, intercept = coef_intercept(est)
    k, d = coef.shape
    n = X.shape[0]
    p = k * d + (k if intercept is not None else 0)
    quad = np.zeros(p)
    quad[: k * d] = np.repeat(2.0 * _alpha_per_output(est, k) / n, d)  # α‖W_k‖²/n
    return LinearObjective(
        loss,
        coef,
        intercept,
        X,
        y_enc,
        sample_weight,
        class_weight,
        quad,
        np.zeros(p),
        targets=targets,
        fixed=_fixed_at_bound(est, coef, p),
    )


def ridge_objective(est, X, y, sample_weight, **options):
    """R(θ) = F/n of a fitted Ridge or LinearRegression on (X, y, sample_weight)."""
    k = np.atleast_2d(est.coef_).shape[0]
    targets = RealTargets(k)
    Y = targets.encode(y, X.shape[0])
    return _squared_objective(est, X, y, sample_weight, SquaredErrorLoss(), Y, targets,
                              np.ones(X.shape[0]))


def ridge_classifier_objective(est, X, y, sample_weight, **options):
    """R(θ) = F/n of a fitted RidgeClassifier: squared loss on ±1 targets."""
    targets = ClassLabels(est.classes_)
    y_index = targets.encode(y, X.shape[0])
    # scikit-learn multiplies sample_weight by compute_sample_weight(class_weight, y):
    # "balanced" = n / (K · count_g) from class counts, independent of the sample
    # weights, so ∂c/∂s_j = 0 and there is no Jacobian. Removing row j changes the
    # counts, hence the balanced weights: removals see that (removal_row_weight); the
    # sample-weight derivative, which is what the influence function is, does not.
    class_weight, _ = class_weight_recipe(
        est.class_weight, est.classes_, y_index, sample_weight,
        from_sample_weight=False,
    )
    risk = _squared_objective(est, X, y, sample_weight, SignedSquaredErrorLoss(),
                              y_index, targets, class_weight)
    # a refit without rows recounts the classes ("balanced")
    return recount_on_removal(risk, est.class_weight, y_index, len(est.classes_))


def convergence_hint(est, n_samples):
    """Settings of ``est`` that reach the optimum of the same objective."""
    if isinstance(est, LinearRegression):  # least squares, solved exactly
        return ("LinearRegression is solved exactly, so this points to collinear or "
                "badly scaled features: standardise X, or use Ridge(alpha=...) or "
                "InfluenceExplainer(damping=...)")
    if est.positive:  # lbfgs only
        return "fit it more tightly, e.g. with tol=1e-10, max_iter=100000"
    return ("fit it with solver='cholesky' (closed form; on sparse X with an "
            "intercept: solver='sparse_cg', tol=1e-10)")


SUPPORTED = {
    Ridge: ridge_objective,
    LinearRegression: ridge_objective,
    RidgeClassifier: ridge_classifier_objective,
}

#: Support-table row (``models.support_table``): loss, penalty, intercept, vs refits.
DESCRIPTION = {
    (Ridge, LinearRegression, RidgeClassifier): (
        "squared error (y − z)²; classifier: ±1 targets; multi-output",
        "L2 `alpha` (per target); `positive=True` on the active set",
        "unpenalised", "≤ 1.4e-8"),
}
