"""LogisticRegression: the log-loss and scikit-learn's exact training objective.

Objective minimised by scikit-learn (all solvers but liblinear)::

    F(W, b) = C Σ_i s_i c_{y_i} ℓ(y_i, z_i) + (1 − r)/2 ‖W‖² + r ‖W‖₁,   r = l1_ratio

with ``z_i = W x_i + b``. liblinear appends a constant column of value
``intercept_scaling`` and penalises its weight ``b / intercept_scaling`` like the others.
skinfluence uses ``R = F / (C n)``. ``LogisticRegressionCV`` (refit=True) is explained
as the LogisticRegression refit at the selected ``C_`` (and ``l1_ratio_``).

Losses in decision space ``z`` (see ``_losses.py``): binary (``coef_`` of shape (1, d),
class 1 = ``classes_[1]``) ℓ = log(1 + e^z) − y z; multinomial (K classes, softmax over
all K) ℓ = logsumexp(z) − z_y.
"""

import numpy as np
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV

from .._objective import LinearObjective
from ._class_weight import class_weight_recipe
from ._losses import BinomialLoss, MultinomialLoss
from ._targets import ClassLabels


def _penalty_mix(penalty, l1_ratio, C):
    """(L2 strength 1 − r, L1 strength r) of the penalty term, None if unpenalised."""
    if penalty is None or (penalty == "deprecated" and C == np.inf):
        return None
    if penalty == "deprecated":
        r = 0.0 if l1_ratio is None else float(l1_ratio)
    else:
        r = {"l2": 0.0, "l1": 1.0, "elasticnet": l1_ratio}[penalty]
    return 1.0 - r, r


def logistic_objective(est, X, y, sample_weight, **options):
    """R(θ) = F/(C n) of a fitted LogisticRegression on (X, y, sample_weight)."""
    penalty = getattr(est, "penalty", "deprecated")
    return _objective(est, X, y, sample_weight, est.C, penalty, est.l1_ratio)


def logistic_cv_objective(est, X, y, sample_weight, **options):
    """LogisticRegressionCV: the final refit's objective, at the selected ``C_``."""
    C, l1_ratio = _selected(est)
    penalty = getattr(est, "penalty", "deprecated")
    return _objective(est, X, y, sample_weight, C, penalty, l1_ratio)


def _selected(est):
    """LogisticRegressionCV's selected (C, l1_ratio): arrays per class, or scalars
    with ``use_legacy_attributes=False`` (the default from scikit-learn 1.10)."""
    r = None if est.l1_ratio_ is None else np.ravel(est.l1_ratio_)[0]  # [None]: L2
    return float(np.ravel(est.C_)[0]), None if r is None else float(r)


def _objective(est, X, y, sample_weight, C, penalty, l1_ratio):
    targets = ClassLabels(est.classes_)
    y_index = targets.encode(y, X.shape[0])
    classes = est.classes_
    coef = est.coef_
    intercept = est.intercept_ if est.fit_intercept else None
    k, d = coef.shape
    n = X.shape[0]
    loss = BinomialLoss() if k == 1 else MultinomialLoss()

    class_weight, jacobian = class_weight_recipe(
        est.class_weight, classes, y_index, sample_weight
    )
    p = k * d + (k if est.fit_intercept else 0)
    quad, l1 = np.zeros(p), np.zeros(p)
    mix = _penalty_mix(penalty, l1_ratio, C)
    if mix is not None:
        l2_strength, l1_strength = mix
        scale = 1.0 / (C * n)  # R = F / (C n)
        quad[: k * d] = l2_strength * scale
        l1[: k * d] = l1_strength * scale
        if est.solver == "liblinear" and est.fit_intercept:
            # the penalised weight is b / intercept_scaling
            quad[k * d :] = l2_strength * scale / est.intercept_scaling**2
            l1[k * d :] = l1_strength * scale / est.intercept_scaling
    return LinearObjective(
        loss,
        coef,
        intercept,
        X,
        y_index,
        sample_weight,
        class_weight,
        quad,
        l1,
        targets=targets,
        weight_jacobian=jacobian,
        groups=y_index if jacobian is not None else None,
    )


def convergence_hint(est, n_samples):
    """Settings of ``est`` that reach the optimum of the same objective."""
    if est.solver == "liblinear":  # its objective (penalised intercept) is its own
        return "fit it more tightly, e.g. with tol=1e-10, max_iter=10000"
    if isinstance(est, LogisticRegressionCV):
        C, l1_ratio = _selected(est)
    else:
        l1_ratio, C = est.l1_ratio, est.C
    mix = _penalty_mix(getattr(est, "penalty", "deprecated"), l1_ratio, C)
    if mix is not None and mix[1] > 0:  # an L1 part: saga or liblinear only
        return "fit it more tightly, e.g. with tol=1e-8, max_iter=10000"
    return ("fit it with solver='newton-cholesky', tol=1e-10 (an exact Newton solver "
            "of the same objective)")


def validate(est):
    """LogisticRegressionCV(refit=False) averages the folds' models: no optimum."""
    if isinstance(est, LogisticRegressionCV) and not est.refit:
        raise TypeError(
            "LogisticRegressionCV(refit=False) averages the coefficients of the "
            "cross-validation folds, which minimise no single objective; use "
            "refit=True (the default) to explain the model refit at the selected C_."
        )


# LogisticRegressionCV subclasses LogisticRegression: its entry comes first in the MRO.
SUPPORTED = {LogisticRegressionCV: logistic_cv_objective,
             LogisticRegression: logistic_objective}
BALANCED_FROM_SAMPLE_WEIGHT = (LogisticRegression,)  # class_weight="balanced": S/(K·S_g)

#: Support-table row (``models.support_table``): loss, penalty, intercept, vs refits.
DESCRIPTION = {
    (LogisticRegression, LogisticRegressionCV): (
        "log-loss (binary; multinomial softmax)",
        "L2, none; L1 / elastic-net on the active set; CV: the refit at `C_`",
        "unpenalised; liblinear: penalised (`intercept_scaling`)",
        "≤ 2e-11 (newton solvers), ~1e-6 (lbfgs), 6e-7 (saga L1)"),
}
