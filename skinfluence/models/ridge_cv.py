"""RidgeCV and RidgeClassifierCV: the ridge refit at the selected ``alpha_``.

Both select ``alpha`` (by efficient leave-one-out, ``cv=None``, the "GCV" path, or by
K-fold cross-validation) and return the ridge solution of the full training data at
the selected ``alpha_`` (one per target with ``alpha_per_target=True``): the objective
of :mod:`.ridge`, ``F = Σ_i s_i ‖y_i − W x_i − b‖² + α_ ‖W‖²``, ``R = F / n``. The
selection is held fixed (as ``LogisticRegressionCV`` at ``C_``): influences are those
of ``Ridge(alpha=alpha_)``.
"""

from types import SimpleNamespace

import numpy as np
from sklearn.linear_model import RidgeClassifierCV, RidgeCV

from . import ridge


def _at_selected_alpha(est):
    """A Ridge-like view of ``est`` with ``alpha = alpha_`` (what ridge.py reads)."""
    return SimpleNamespace(
        coef_=est.coef_, intercept_=est.intercept_, fit_intercept=est.fit_intercept,
        alpha=np.asarray(est.alpha_, dtype=np.float64), positive=False,
        classes_=getattr(est, "classes_", None),
        class_weight=getattr(est, "class_weight", None),
    )


def ridge_cv_objective(est, X, y, sample_weight, **options):
    """R(θ) = F/n of a fitted RidgeCV: Ridge at the selected ``alpha_``."""
    return ridge.ridge_objective(_at_selected_alpha(est), X, y, sample_weight)


def ridge_classifier_cv_objective(est, X, y, sample_weight, **options):
    """R(θ) = F/n of a fitted RidgeClassifierCV: RidgeClassifier at ``alpha_``."""
    return ridge.ridge_classifier_objective(_at_selected_alpha(est), X, y,
                                            sample_weight)


def convergence_hint(est, n_samples):
    """Ridge's solvers are direct: point to the data."""
    return ("its solution at alpha_ is computed in closed form, so this points to "
            "badly scaled or collinear features: standardise X")


SUPPORTED = {RidgeCV: ridge_cv_objective,
             RidgeClassifierCV: ridge_classifier_cv_objective}

#: Support-table row (``models.support_table``): loss, penalty, intercept, vs refits.
DESCRIPTION = {
    (RidgeCV, RidgeClassifierCV): (
        "squared error (y − z)²; classifier: ±1 targets",
        "L2 at the selected `alpha_` (GCV or K-fold; held fixed)", "unpenalised",
        "≤ 2.3e-10"),
}
