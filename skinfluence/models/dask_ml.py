"""dask-ml's LogisticRegression, LinearRegression, PoissonRegression (``dask_glm``).

These estimators fit on Dask collections (``pip install dask-ml``; an optional extra:
this module is imported by the registry only once ``dask_ml`` is, see
``models._families``). Objective minimised by ``dask_glm`` (``families.py``,
``regularizers.py``, ``algorithms.py``; ``dask_ml/linear_model/glm.py``)::

    F(β) = Σ_i ℓ(y_i, z_i) + λ P(β),   z_i = x̃_i · β,   λ = 1 / C,

a *sum* over rows (no mean, no sample weights: ``fit(X, y)`` takes none), with
``x̃_i = [x_i, 1]`` when ``fit_intercept`` (the intercept is the last entry of β and
is **penalised** like the coefficients). The per-row losses:

- LogisticRegression: ℓ = log(1 + e^z) − y z, y ∈ {0, 1};
- LinearRegression: ℓ = (y − z)² (no ½);
- PoissonRegression: ℓ = e^z − y z, which is the half Poisson deviance
  y log(y/μ) − y + μ (μ = e^z, used here as the test loss) minus a constant in β.

The penalty: ``"l2"`` P = ½‖β‖², ``"l1"`` P = ‖β‖₁, ``"elastic_net"`` (or a
``dask_glm.regularizers`` instance) w‖β‖₁ + (1 − w)½‖β‖². The solvers "newton" and
"gradient_descent" drop it (λ = 0: the unpenalised sum); "lbfgs", "admm" and
"proximal_grad" use it (``solver_kwargs`` may override ``regularizer``/``lamduh``:
the estimator's own solver arguments are read). In scikit-learn's form the objective
is C·F = C Σ_i ℓ_i + P(β), so skinfluence's ``R = C·F/(C n) = F/n``: the loss ℓ with
weights s_i = 1 and the penalty λ/n on every entry of θ (intercept included).

"newton" and "lbfgs" with a small ``tol`` reach the optimum (relative Newton step
≤ 1e-9); "admm" (the default) stops at its own loose tolerances (relative step
~1e-3–1e-2), which the explainer reports with its ConvergenceWarning.
"""

import numpy as np
from dask_glm.regularizers import L1, L2, ElasticNet, Regularizer
from dask_ml.linear_model import LinearRegression, LogisticRegression, PoissonRegression

from .._objective import LinearObjective
from ._fitted import coef_intercept
from ._losses import BinomialLoss, SquaredErrorLoss
from ._targets import ClassLabels, RealTargets
from .glm import HalfTweedieLoss


def _penalty_strengths(est):
    """(λ_L2, λ_L1) of the penalty λ P(β) the estimator's solver minimises."""
    kwargs = est._get_solver_kwargs()  # the solver's own arguments (solver_kwargs too)
    regularizer, lamduh = kwargs.get("regularizer"), kwargs.get("lamduh")
    if regularizer is None or lamduh is None:  # newton, gradient_descent: none
        return 0.0, 0.0
    reg = Regularizer.get(regularizer)
    lam = float(lamduh)
    if isinstance(reg, ElasticNet):  # w ‖β‖₁ + (1 − w) ½ ‖β‖²
        return (1.0 - reg.weight) * lam, reg.weight * lam
    if isinstance(reg, L2):
        return lam, 0.0
    if isinstance(reg, L1):
        return 0.0, lam
    raise TypeError(
        f"{type(est).__name__}(penalty={est.penalty!r}): skinfluence models the "
        "penalties 'l2', 'l1' and 'elastic_net' of dask_glm only."
    )


def dask_ml_objective(est, X, y, sample_weight, **options):
    """R(θ) = F/n of a fitted dask-ml GLM on (X, y, sample_weight).

    Parameters
    ----------
    est : dask_ml.linear_model.LogisticRegression, LinearRegression or
        PoissonRegression
        Fitted estimator.
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)
        Training data (float64).
    y : ndarray of shape (n_samples,)
        Training targets (0/1 labels for LogisticRegression).
    sample_weight : ndarray of shape (n_samples,)
        Sample weights (1 for the fit dask-ml did; the influence is their derivative).
    **options
        Explainer settings (unused).

    Returns
    -------
    objective : LinearObjective
    """
    coef, intercept = coef_intercept(est)
    if isinstance(est, LogisticRegression):
        targets = ClassLabels(LABELS[LogisticRegression])
        loss = BinomialLoss()
    else:
        targets = RealTargets(1)
        loss = (HalfTweedieLoss(1.0, "log") if isinstance(est, PoissonRegression)
                else SquaredErrorLoss())
    y_enc = targets.encode(y, X.shape[0])
    p = coef.size + (0 if intercept is None else intercept.size)
    l2, l1 = _penalty_strengths(est)
    n = X.shape[0]
    return LinearObjective(loss, coef, intercept, X, y_enc, sample_weight,
                           np.ones(n), np.full(p, l2 / n), np.full(p, l1 / n),
                           targets=targets)


def validate(est):
    """Penalties other than dask_glm's L2, L1 and elastic net: fail before fitting."""
    _penalty_strengths(est)


def convergence_hint(est, n_samples):
    """Settings of ``est`` that reach the optimum of the same objective."""
    if est.solver in ("newton", "gradient_descent"):
        return "fit it with solver='newton', tol=1e-12 (the same unpenalised objective)"
    return ("fit it with solver='lbfgs', tol=1e-10, max_iter=1000 (the same objective; "
            "'admm' stops at loose tolerances)")


SUPPORTED = {LogisticRegression: dask_ml_objective, LinearRegression: dask_ml_objective,
             PoissonRegression: dask_ml_objective}
#: Estimators the explainer fits itself on dask training data (``fit(X, y)``).
FITS_ON_CHUNKS = (LogisticRegression, LinearRegression, PoissonRegression)
#: Labels of the classifier, which has no ``classes_`` (checked before fitting).
LABELS = {LogisticRegression: np.array([0, 1])}
