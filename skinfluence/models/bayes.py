"""BayesianRidge and ARDRegression: the posterior mean as a ridge solution.

Both alternate between the posterior of w given the precisions and an update of the
precisions (noise α_ = ``alpha_``, weights λ = ``lambda_``; one λ for BayesianRidge,
one per feature for ARDRegression). At the end, ``coef_`` is the posterior mean at the
fitted precisions, the minimiser of::

    F(w, b) = Σ_i s_i (y_i − w·x_i − b)² + Σ_k (λ_k / α_) w_k²

(the negative log posterior times 2/α_; intercept unpenalised, fitted by centring;
BayesianRidge rescales the rows by √s_i, ARDRegression takes no sample weights).
skinfluence explains this ridge problem with the **hyperparameters held fixed**: the
influence of a row on ``coef_`` through the re-estimated α_ and λ is not included (a
refit re-estimates them; the influence matches ``Ridge(alpha=lambda_/alpha_)``
refits). ``R = F / n`` as for :mod:`.ridge`: per-sample loss (y − z)², quadratic
penalty 2 λ_k / (α_ n) on coefficient k.

ARDRegression prunes features whose λ_k exceeds ``threshold_lambda``: their
coefficients are exactly 0 and stay there (held fixed, like an L1 active set).
"""

import numpy as np
from sklearn.linear_model import ARDRegression, BayesianRidge

from .._objective import LinearObjective
from ._fitted import coef_intercept
from ._losses import SquaredErrorLoss
from ._targets import RealTargets


def bayes_objective(est, X, y, sample_weight, **options):
    """R(θ) = F/n of a fitted BayesianRidge or ARDRegression at its precisions.

    Parameters
    ----------
    est : BayesianRidge or ARDRegression
        Fitted estimator.
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)
        Training data (float64).
    y : ndarray of shape (n_samples,)
        Training targets.
    sample_weight : ndarray of shape (n_samples,)
        Sample weights.
    **options
        Explainer settings (unused).

    Returns
    -------
    objective : LinearObjective
    """
    coef, intercept = coef_intercept(est)
    d, n = coef.shape[1], X.shape[0]
    targets = RealTargets(1)
    Y = targets.encode(y, n)
    p = d + (1 if intercept is not None else 0)
    lam = np.broadcast_to(np.asarray(est.lambda_, dtype=np.float64), (d,))
    quad, fixed = np.zeros(p), np.zeros(p, dtype=bool)
    if isinstance(est, ARDRegression):
        pruned = lam >= est.threshold_lambda  # removed from the model: coef_ = 0
        fixed[:d] = pruned
        lam = np.where(pruned, 0.0, lam)
    quad[:d] = 2.0 * lam / (est.alpha_ * n)  # (λ_k/α_) w_k² / n
    return LinearObjective(SquaredErrorLoss(), coef, intercept, X, Y, sample_weight,
                           np.ones(n), quad, np.zeros(p), targets=targets,
                           fixed=fixed if fixed.any() else None)


def convergence_hint(est, n_samples):
    """The posterior mean is computed in closed form at the fitted precisions."""
    return ("its coef_ is the posterior mean at the fitted precisions in closed form, "
            "so this points to badly scaled or collinear features: standardise X")


SUPPORTED = {BayesianRidge: bayes_objective, ARDRegression: bayes_objective}

#: Support-table row (``models.support_table``): loss, penalty, intercept, vs refits.
DESCRIPTION = {
    (BayesianRidge, ARDRegression): (
        "squared error (y − z)²: the posterior mean",
        "L2 `lambda_/alpha_` (per feature for ARD; precisions held fixed); ARD's "
        "pruned features held at 0", "unpenalised",
        "≤ 9e-10 (vs fixed-precision ridge refits)"),
}
