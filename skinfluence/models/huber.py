"""HuberRegressor: the Huber loss with a jointly fitted scale σ.

scikit-learn (``sklearn/linear_model/_huber.py``, ``_huber_loss_and_gradient``)
minimises over the coefficients w, the intercept b and the scale σ > 0::

    F(w, b, σ) = Σ_i s_i [σ + σ H_ε(r_i / σ)] + α ‖w‖²,   r_i = y_i − x_i·w − b,

with H_ε(u) = u² for |u| ≤ ε and 2ε|u| − ε² beyond (so σ H_ε(r/σ) = r²/σ inside,
2ε|r| − σε² outside). The intercept and σ are not penalised; L-BFGS-B keeps σ ≥
10·machine-ε (when the rows can be fitted exactly, σ goes to that bound and is held
there: ``fixed``). skinfluence's R = F / n (C = 1): quadratic penalty 2α/n on w.

σ is a parameter: θ = ``[coef_, intercept_, scale_]`` (``params_``; without
``intercept_`` when ``fit_intercept=False``). Internally the model has two outputs,
z₀ = x·w + b (the prediction) and z₁ = σ, an output that carries only an intercept
(its coefficients are structural zeros, ``hidden``), and the loss of a row is the
jointly convex (a perspective function) L(z₀, z₁) = z₁ + z₁ H_ε((y − z₀)/z₁). With
r = z₀ − y (sign immaterial):

- inside (|r| ≤ εσ): ∂L/∂z₀ = 2r/σ, ∂L/∂σ = 1 − r²/σ²; the 2 × 2 Hessian is
  (2/σ) [1, −r/σ]ᵀ[1, −r/σ] (rank one);
- outside (|r| > εσ): ∂L/∂z₀ = 2ε sign(r), ∂L/∂σ = 1 − ε², Hessian 0.

L is C¹; its second derivative jumps at the threshold |r| = εσ. Rows there are
kinks: the influence there is the derivative on the side the generalized Hessian
takes (inside), and it has one-sided limits only. At a fitted optimum they do not
occur generically (unlike an SVM's margin, the threshold does not attract rows);
``huber_kinks`` lists rows within a tolerance of it.

Test losses: by default the model's own per-row term L(y, z₀, σ) (its value
σ + σ H_ε(r/σ), a function of the prediction and of σ); named test losses
("squared_error", "decision") and ``transform`` see the prediction z₀ only (the
influence on ``predict``).
"""

import numpy as np
from sklearn.linear_model import HuberRegressor

from .._objective import LinearObjective
from ._fitted import coef_intercept
from ._targets import RealTargets

#: σ is at its lower bound when ∂F/∂σ > SCALE_BOUND_TOL · Σ s_i (``_scale_at_bound``).
SCALE_BOUND_TOL = 1e-3

#: Rows with ||r| − εσ| ≤ KINK_TOL · σ sit at the Huber threshold (``huber_kinks``).
KINK_TOL = 1e-8


class HuberScaleLoss:
    """L(z₀, σ) = σ + σ H_ε((y − z₀)/σ) of a row, on the outputs (z₀, σ) = (x·w + b, σ).

    Non-separable (the 2 × 2 Hessian couples the prediction and the scale).
    """

    shift_invariant = False
    separable = False

    def __init__(self, epsilon):
        self.epsilon = float(epsilon)

    def _parts(self, Z, Y):
        r, sigma = Z[:, 0] - Y[:, 0], Z[:, 1]
        return r, sigma, np.abs(r) <= self.epsilon * sigma

    def value_grad(self, Z, Y):
        r, sigma, inside = self._parts(Z, Y)
        eps = self.epsilon
        u = r / sigma
        value = sigma + np.where(inside, r * u, 2 * eps * np.abs(r) - sigma * eps**2)
        dZ = np.empty(Z.shape)
        dZ[:, 0] = np.where(inside, 2 * u, 2 * eps * np.sign(r))  # ∂L/∂z₀
        dZ[:, 1] = np.where(inside, 1 - u**2, 1 - eps**2)  # ∂L/∂σ
        return value, dZ

    def hessian(self, Z, Y):
        r, sigma, inside = self._parts(Z, Y)
        a = np.stack([np.ones_like(r), -r / sigma], axis=1)  # [1, −r/σ]
        return np.where(inside, 2 / sigma, 0.0)[:, None, None] * \
            (a[:, :, None] * a[:, None, :])


class HuberObjective(LinearObjective):
    """R(θ) of a HuberRegressor; θ = [coef_, intercept_, scale_] (see the module)."""

    def parameter_names(self, features):
        """Names in the ``params_`` layout: the features, "intercept", "scale"."""
        return list(features) + (["intercept"] if self.reported_mask[-2] else []) + \
            ["scale"]


def huber_objective(est, X, y, sample_weight, **options):
    """R(θ) = F / n of a fitted HuberRegressor.

    Parameters
    ----------
    est : HuberRegressor
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
    objective : HuberObjective
    """
    targets = RealTargets(1)
    Y = targets.encode(y, X.shape[0])
    n, d = X.shape
    w, b = coef_intercept(est)
    coef = np.vstack([w, np.zeros((1, d))])  # the σ output has no coefficients
    intercept = np.array([0.0 if b is None else b[0], float(est.scale_)])
    hidden = np.zeros(2 * d + 2, dtype=bool)
    hidden[d:2 * d] = True  # structural zeros: not part of params_
    hidden[2 * d] = not est.fit_intercept
    loss = HuberScaleLoss(est.epsilon)
    fixed = np.zeros(2 * d + 2, dtype=bool)
    fixed[-1] = _scale_at_bound(loss, coef, intercept, X, Y, sample_weight)
    quad = np.zeros(2 * d + 2)
    quad[:d] = 2 * est.alpha / n  # α‖w‖² / n = ½ (2α/n) ‖w‖²
    return HuberObjective(
        loss, coef, intercept, X, Y, sample_weight, np.ones(n), quad,
        np.zeros(2 * d + 2), targets=targets, fixed=fixed, hidden=hidden,
        predicted=[0],
    )


def _scale_at_bound(loss, coef, intercept, X, Y, sample_weight):
    """Whether σ is held at its lower bound: ∂F/∂σ > 0 at the fit.

    When the rows can be fitted exactly, F decreases to σ → 0 and L-BFGS-B drives
    σ to its bound 10·machine-ε (stopping anywhere near it): ∂F/∂σ / Σ s_i is then
    about 1 − mean (r/σ)² > 0, against 0 at an interior optimum. σ is then fixed
    there, as a coefficient held at a bound (``fixed``).
    """
    Z = np.asarray(X @ coef.T) + intercept
    slope = sample_weight @ loss.value_grad(Z, Y)[1][:, 1]
    return bool(slope > SCALE_BOUND_TOL * max(sample_weight.sum(), 1e-300))


def huber_kinks(objective, tol=KINK_TOL):
    """Training rows at the Huber threshold, ||r| − εσ| ≤ tol · σ (bool, (n,))."""
    Z = objective.decision(objective.X)
    r, sigma = Z[:, 0] - objective.y[:, 0], Z[:, 1]
    return np.abs(np.abs(r) - objective.loss.epsilon * sigma) <= tol * sigma


def convergence_hint(est, n_samples):
    """HuberRegressor's L-BFGS-B also stops on a function change (not settable)."""
    return ("fit it with a larger max_iter and a smaller tol (its L-BFGS-B also "
            "stops on a relative function change, near a relative Newton step of "
            "1e-5, whatever tol)")


SUPPORTED = {HuberRegressor: huber_objective}

FITTED_STATE = ("coef_", "intercept_", "scale_")

#: Support-table row (``models.support_table``): loss, penalty, intercept, vs refits.
DESCRIPTION = {
    (HuberRegressor,): (
        "Huber with its scale σ (σ + σ H_ε(r/σ)); σ is a parameter, "
        "`params_` = [`coef_`, `intercept_`, `scale_`]; `transform`: the prediction",
        "L2 `alpha` (not on b, σ)", "unpenalised",
        "≤ 7e-10 vs tight refits; exact LOO 4e-11; sklearn's lbfgs stops at a "
        "relative Newton step ~2e-5"),
}
