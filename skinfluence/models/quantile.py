"""QuantileRegressor: the pinball loss with an L1 penalty, a linear program.

scikit-learn (``sklearn/linear_model/_quantile.py``) solves, with ``scipy.optimize.
linprog`` (HiGHS by default),

    F(w, b) = Σ_i s_i ρ_τ(y_i − x_i·w − b) + α S ‖w‖₁,   S = Σ_i s_i,

ρ_τ(u) = τ max(u, 0) + (1 − τ) max(−u, 0) (``quantile`` τ), the intercept not
penalised; as a linear program over the positive and negative parts of w, b and the
residuals. skinfluence's R = F / n: L1 penalty α S / n on w.

The solution is a vertex of the LP: as many rows with zero residual as free
parameters (nonzero coefficients and the intercept), which hold it in place. Under a
small change of the sample weights (or of the penalty, which moves with S) the
vertex stays optimal, so **the first-order influence is zero almost everywhere**:
``param_influence``, ``loss_influence``, ``transform`` and the Newton estimates are
zero (rows at zero residual are pinned kinks, ``pinned``; coefficients at zero are
held there; the Hessian is zero and everything else is fixed). Only removals are
informative: ``leave_one_out(method="exact")`` / ``param_change(method="exact")``
and ``group_influence(method="exact")`` **re-solve the linear program** without the
rows (``linprog`` with HiGHS, the same formulation, α times the remaining S): one LP
per removal. Where the LP has several optimal vertices the re-solve may return
another one than scikit-learn's refit; their objective values agree.
``method="newton"`` is NaN for pinned rows (no curvature: one Newton step is
undefined) and zero for the others.

The default test loss is the pinball loss ρ_τ of the test rows.
"""

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog
from sklearn.linear_model import QuantileRegressor

from .._objective import LinearObjective
from ._fitted import coef_intercept
from ._targets import RealTargets
from .sgd import ResidualLoss

#: Rows with |r| ≤ ZERO_RESIDUAL_TOL · max(1, max |y|) sit at the kink (pinned).
ZERO_RESIDUAL_TOL = 1e-9


class PinballLoss(ResidualLoss):
    """ψ(r) = ρ_τ(−r) of r = z − y: (1 − τ) r for r > 0, −τ r below; ψ'' = 0.

    ψ'(0) is taken as 0: rows there are pinned (their subgradient is not used).
    """

    def __init__(self, quantile):
        self.quantile = float(quantile)

    def psi(self, r):
        tau = self.quantile
        value = np.where(r > 0, (1 - tau) * r, -tau * r)
        d1 = np.where(r > 0, 1 - tau, np.where(r < 0, -tau, 0.0))
        return value, d1, np.zeros_like(r)


class QuantileObjective(LinearObjective):
    """R(θ) of a QuantileRegressor; removals re-solve the LP (see the module)."""

    def __init__(self, *args, estimator, **kwargs):
        super().__init__(*args, **kwargs)
        self.estimator = estimator
        # every coefficient is reported and stays "free": those at zero are held by
        # fixed directions instead, so that a removal's refit may move them
        self._at_zero = (self.l1_penalty > 0) & (self.params == 0)
        self.free |= self._at_zero

    def fixed_directions(self):
        """The pinned rows' ∂z/∂θ and the unit directions of zero coefficients."""
        cols = [super().fixed_directions()]
        at_zero = np.flatnonzero(self._at_zero[self.free])
        unit = np.zeros((int(self.free.sum()), at_zero.size))
        unit[at_zero, np.arange(at_zero.size)] = 1.0
        return np.hstack(cols + [unit])

    def exact_removal_steps(self, removals):
        """θ̂ without each removal − θ̂ (all parameters: coefficients the full fit
        holds at zero may move), by re-solving the LP.

        ``removals``: list of arrays of row indices. Returns (steps, {position:
        reason} where the LP solver failed).
        """
        steps = np.zeros((len(removals), self.n_params))
        failed = {}
        for i, rows in enumerate(removals):
            keep = np.ones(self.X.shape[0], dtype=bool)
            keep[rows] = False
            theta, message = solve_quantile_lp(
                self.estimator, self.X[keep], self.y[keep, 0],
                self.sample_weight[keep])
            if theta is None:
                steps[i] = np.nan
                failed[i] = f"the linear program failed ({message})"
            else:
                steps[i] = theta - self.params
        return steps, failed


def solve_quantile_lp(est, X, y, sample_weight):
    """θ = [w, b] minimising scikit-learn's QuantileRegressor objective on (X, y).

    The same linear program as scikit-learn: x = (w⁺, w⁻, u, v) ≥ 0 with
    [X̃, −X̃, I, −I] x = y, cost (α S on w±, 0 on b±, τ s, (1 − τ) s); rows of zero
    weight dropped. Returns (θ, None) or (None, the solver's message).
    """
    keep = sample_weight > 0
    X, y, s = X[keep], y[keep], sample_weight[keep]
    m, d = X.shape
    Xt = sp.hstack([sp.csc_array(X), np.ones((m, 1))]) if est.fit_intercept \
        else sp.csc_array(X)
    p = Xt.shape[1]
    eye = sp.eye_array(m, format="csc")
    A = sp.hstack([Xt, -Xt, eye, -eye], format="csc")
    penalty = np.full(p, est.alpha * s.sum())
    if est.fit_intercept:
        penalty[-1] = 0.0
    c = np.concatenate([penalty, penalty, s * est.quantile, s * (1 - est.quantile)])
    res = linprog(c, A_eq=A, b_eq=y, bounds=(0, None), method="highs")
    if res.status != 0:
        return None, res.message
    return res.x[:p] - res.x[p:2 * p], None


def quantile_objective(est, X, y, sample_weight, **options):
    """R(θ) = F / n of a fitted QuantileRegressor.

    Parameters
    ----------
    est : QuantileRegressor
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
    objective : QuantileObjective
    """
    targets = RealTargets(1)
    Y = targets.encode(y, X.shape[0])
    n = X.shape[0]
    coef, intercept = coef_intercept(est)
    d = coef.shape[1]
    p = d + (1 if intercept is not None else 0)
    l1 = np.zeros(p)
    l1[:d] = est.alpha * sample_weight.sum() / n
    z = np.asarray(X @ coef[0]) + (0.0 if intercept is None else intercept[0])
    scale = max(1.0, float(np.abs(Y).max(initial=0.0)))
    pinned = (np.abs(z - Y[:, 0]) <= ZERO_RESIDUAL_TOL * scale) & (sample_weight > 0)
    return QuantileObjective(
        PinballLoss(est.quantile), coef, intercept, X, Y, sample_weight, np.ones(n),
        np.zeros(p), l1, targets=targets, pinned=pinned[:, None], estimator=est,
    )


SUPPORTED = {QuantileRegressor: quantile_objective}

#: Support-table row (``models.support_table``): loss, penalty, intercept, vs refits.
DESCRIPTION = {
    (QuantileRegressor,): (
        "pinball ρ_τ (a linear program): influence 0 a.e. (zero-residual rows "
        "pinned); exact removal re-solves the LP",
        "L1 `alpha` (times Σ s)", "unpenalised",
        "influence 0 (refits: unchanged to 1e-12); exact LOO / groups (LP "
        "re-solved) = refits ≤ 1e-9"),
}
