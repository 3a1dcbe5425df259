"""PoissonRegressor, GammaRegressor, TweedieRegressor: GLMs by their half deviance.

Objective minimised by scikit-learn (``sklearn/linear_model/_glm/glm.py``; the sample
weights are normalised, so the data term is a weighted mean)::

    F(w, b) = 1/(2S) Σ_i s_i d(y_i, μ_i) + ½ α ‖w‖²,   μ_i = h(z_i),  z_i = w·x_i + b,

S = Σ_i s_i, d the unit Tweedie deviance of ``power`` p (Poisson p = 1, Gamma p = 2),
h the inverse link (log link: μ = e^z; identity: μ = z; TweedieRegressor's
``link="auto"`` is identity for p ≤ 0, log otherwise), intercept unpenalised.
skinfluence uses ``R = F`` (already per sample, C = 1; see :mod:`.lasso`), with the
per-sample loss the half deviance ``L = d/2`` and the quadratic penalty α on w; the
weight normalisation is part of the influence (:mod:`._normalised`). The half
deviance (zero at μ = y), in μ::

    p = 0: ½ (y − μ)²;  p = 1: y log(y/μ) − y + μ;  p = 2: log(μ/y) + y/μ − 1;
    otherwise: max(y, 0)^{2−p}/((1−p)(2−p)) − y μ^{1−p}/(1−p) + μ^{2−p}/(2−p),

with ∂L/∂μ = μ^{−p}(μ − y). In decision space z, log link: L' = μ^{1−p}(μ − y),
L'' = μ^{1−p}((2 − p)μ − (1 − p)y); identity link: L' = μ^{−p}(μ − y),
L'' = μ^{−p−1}((1 − p)μ + p y). (L'' can be negative for some rows away from the
canonical link, p ∉ {1} with log; the Hessian is positive definite at an optimum.)

The test loss is the model's own half deviance; ``transform(X)`` is the influence on
the prediction ``ŷ = μ = h(z)`` (``n · ∂μ_t/∂s_j = n · h'(z_t) ∂z_t/∂s_j``), and
``test_loss="decision"`` the influence on the linear predictor z.
"""

import numpy as np
from scipy.special import xlogy
from sklearn.linear_model import GammaRegressor, PoissonRegressor, TweedieRegressor

from ._fitted import coef_intercept
from ._normalised import NormalisedWeightObjective
from ._targets import RealTargets


def _power_and_link(est):
    """(p, "log" or "identity") of a fitted GLM regressor."""
    if isinstance(est, PoissonRegressor):
        return 1.0, "log"
    if isinstance(est, GammaRegressor):
        return 2.0, "log"
    if isinstance(est, TweedieRegressor):
        power = float(est.power)
        link = est.link if est.link != "auto" else ("identity" if power <= 0 else "log")
        return power, link
    return 0.0, "identity"  # _GeneralizedLinearRegressor: half squared error


class InverseLink:
    """"Loss" = the prediction μ = h(z): value μ, derivative h'(z) (``transform``)."""

    shift_invariant = False
    separable = True

    def __init__(self, link):
        self.link = link

    def value_grad(self, Z, y=None):
        if self.link == "log":
            mu = np.exp(Z)
            return mu[:, 0], mu
        return Z[:, 0], np.ones_like(Z)

    def hessian(self, Z, y=None):
        d2 = np.exp(Z) if self.link == "log" else np.zeros_like(Z)
        return d2[:, :, None]


class HalfTweedieLoss:
    """L(z) = ½ d_p(y, h(z)), the half unit deviance; real targets (n, 1).

    Parameters
    ----------
    power : float
        Tweedie power p.
    link : {"log", "identity"}
    """

    shift_invariant = False
    separable = True

    def __init__(self, power, link):
        self.power = float(power)
        self.link = link
        self.prediction = InverseLink(link)

    def half_deviance(self, y, mu):
        p = self.power
        if p == 0:
            return 0.5 * (y - mu) ** 2
        if p == 1:
            return xlogy(y, y) - xlogy(y, mu) - y + mu
        if p == 2:
            return np.log(mu / y) + y / mu - 1.0
        return (np.maximum(y, 0.0) ** (2 - p) / ((1 - p) * (2 - p))
                - y * mu ** (1 - p) / (1 - p) + mu ** (2 - p) / (2 - p))

    def _derivatives(self, Z, Y):
        p = self.power
        mu = np.exp(Z) if self.link == "log" else Z
        if self.link == "log":
            m1 = mu ** (1 - p)
            return mu, m1 * (mu - Y), m1 * ((2 - p) * mu - (1 - p) * Y)
        m = mu ** (-p)
        return mu, m * (mu - Y), m / mu * ((1 - p) * mu + p * Y) if p else m

    def value_grad(self, Z, Y):
        mu, d1, _ = self._derivatives(Z, Y)
        return self.half_deviance(Y, mu).sum(axis=1), d1

    def hessian(self, Z, Y):
        return self._derivatives(Z, Y)[2][:, :, None]


class GLMObjective(NormalisedWeightObjective):
    """The GLM's R; its prediction is μ = h(z), so ``prediction_gradients`` is
    ∇θ μ = h'(z) [x, 1] (the influence on ``predict``)."""

    def prediction_gradients(self, X):
        """∇θ μ of each row, μ = h(z) = ``predict(X)``."""
        _, dmu = self.loss.prediction.value_grad(self.decision(X))
        return self.row_gradients(X, dmu)


def glm_objective(est, X, y, sample_weight, **options):
    """R(θ) = F of a fitted Poisson/Gamma/Tweedie regressor.

    Parameters
    ----------
    est : PoissonRegressor, GammaRegressor or TweedieRegressor
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
    objective : GLMObjective
    """
    coef, intercept = coef_intercept(est)
    d = coef.shape[1]
    targets = RealTargets(1)
    Y = targets.encode(y, X.shape[0])
    p = d + (1 if intercept is not None else 0)
    quad = np.zeros(p)
    quad[:d] = est.alpha  # ½ α ‖w‖²
    return GLMObjective(HalfTweedieLoss(*_power_and_link(est)), coef, intercept, X, Y,
                        sample_weight, quad, np.zeros(p), targets=targets)


def convergence_hint(est, n_samples):
    """An exact Newton solver of the same objective."""
    return "fit it with solver='newton-cholesky', tol=1e-12"


SUPPORTED = {PoissonRegressor: glm_objective, GammaRegressor: glm_objective,
             TweedieRegressor: glm_objective}

#: Support-table row (``models.support_table``): loss, penalty, intercept, vs refits.
DESCRIPTION = {
    (PoissonRegressor, GammaRegressor, TweedieRegressor): (
        "half Tweedie deviance, every power; log / identity link; `transform`: μ",
        "L2 `alpha`; weights normalised", "unpenalised",
        "≤ 4e-10 (newton-cholesky); lbfgs floor 3e-3 (log link, p ∉ [1, 2])"),
}
