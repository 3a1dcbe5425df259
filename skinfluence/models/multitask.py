"""MultiTaskLasso, MultiTaskElasticNet and their CV variants: a group penalty.

Objective minimised by scikit-learn (``sklearn/linear_model/_coordinate_descent.py``;
since 1.9 ``fit`` takes sample weights, rescaled to sum to n as for ``Lasso``)::

    F(W, b) = 1/(2S) Σ_i s_i ‖y_i − W x_i − b‖² + α r Σ_j ‖w_j‖₂ + ½ α (1 − r) ‖W‖²_Fro,

``w_j = W[:, j]`` the coefficients of feature j across the k tasks, S = Σ_i s_i,
r = ``l1_ratio`` (1 for MultiTaskLasso), intercept unpenalised. As for the
single-task family (:mod:`.lasso`), R = F: the loss is ``½ Σ_k (y_k − z_k)²``, the
quadratic penalty ``α (1 − r)`` and the sample-weight normalisation is part of the
influence (:mod:`._normalised`). Without sample weights (all ones) the influence is
the same derivative in a row's weight, at s = 1.

The group penalty ``g Σ_j ‖w_j‖`` (g = α r) is smooth wherever ``w_j ≠ 0``: its
gradient is ``g u_j`` and its Hessian block ``g (I − u_j u_jᵀ) / ‖w_j‖``, with
``u_j = w_j / ‖w_j‖`` (curvature across tasks only: the penalty is linear along
``w_j`` itself). Features whose whole column is zero stay zero under a small
re-weighting (group active set) and are held fixed.

``MultiTaskLassoCV``/``MultiTaskElasticNetCV`` are explained as the final refit at the
selected ``alpha_`` (and ``l1_ratio_``); the selection itself is held fixed.
"""

import numpy as np
from sklearn.linear_model import (
    MultiTaskElasticNet,
    MultiTaskElasticNetCV,
    MultiTaskLasso,
    MultiTaskLassoCV,
)

from ._fitted import coef_intercept, selected_penalty
from ._losses import SquaredErrorLoss
from ._normalised import NormalisedWeightObjective
from ._targets import RealTargets
from .lasso import convergence_hint  # noqa: F401 (the family's hint, re-exported)


class GroupPenaltyObjective(NormalisedWeightObjective):
    """R(θ) of :class:`NormalisedWeightObjective` plus ``g Σ_j ‖W[:, j]‖₂``.

    Parameters
    ----------
    loss, coef, intercept, X, y, sample_weight, quad_penalty, targets
        As for :class:`NormalisedWeightObjective` (no elementwise L1 penalty).
    group_penalty : float
        g ≥ 0, the weight of the group norms (α · l1_ratio).

    Notes
    -----
    Coefficient columns that are entirely zero are ``fixed``. Besides ``gradient``
    and ``hessian``, the objective offers hooks for :mod:`skinfluence._removal`:
    ``penalty_gradient(theta)`` (the penalties' gradient in the removal iterations)
    and ``active_set_violations(gradients)`` (removals that free a zero column or
    zero an active one); and for the matrix-free solvers
    ``penalty_hessian_product(V)`` (the group term's Hessian-vector product).
    """

    def __init__(self, loss, coef, intercept, X, y, sample_weight, quad_penalty,
                 group_penalty, *, targets):
        coef = np.asarray(coef, dtype=np.float64)
        k, d = coef.shape
        p = len(quad_penalty)
        fixed = np.zeros(p, dtype=bool)
        fixed[: k * d] = np.repeat((coef == 0).all(axis=0)[None, :], k, axis=0).ravel()
        self.group_penalty = float(group_penalty)
        super().__init__(loss, coef, intercept, X, y, sample_weight, quad_penalty,
                         np.zeros(p), targets=targets, fixed=fixed,
                         penalised=self.group_penalty > 0 or np.any(quad_penalty != 0))

    def _columns(self, theta):
        """W (m, k, d) of parameter rows theta (m, p) and its column norms (m, d)."""
        k, d = self.n_outputs, self.n_features
        W = theta[:, : k * d].reshape(-1, k, d)
        return W, np.linalg.norm(W, axis=1)

    def group_gradient(self, theta):
        """∇ g Σ_j ‖w_j‖ = g w_j / ‖w_j‖ (0 on zero columns), theta (m, p) → (m, p)."""
        W, norms = self._columns(theta)
        with np.errstate(invalid="ignore", divide="ignore"):
            U = np.where(norms[:, None, :] > 0, W / norms[:, None, :], 0.0)
        out = np.zeros_like(theta)
        out[:, : U.shape[1] * U.shape[2]] = self.group_penalty * U.reshape(len(theta), -1)
        return out

    def penalty_gradient(self, theta):
        """∇ of every penalty at parameter rows theta (m, p): q ⊙ θ + group term."""
        theta = np.atleast_2d(theta)
        return self.quad_penalty * theta + self.group_gradient(theta)

    def gradient(self):
        """∇R(θ̂) on the free parameters, the group penalty's included."""
        return super().gradient() + self.group_gradient(self.params[None])[0][self.free]

    def group_hessian(self):
        """∇² g Σ_j ‖w_j‖ on all parameters (p, p): blocks g (I − u uᵀ)/‖w_j‖."""
        H = np.zeros((self.n_params, self.n_params))
        W, norms = self._columns(self.params[None])
        idx = self.param_index()
        for j in np.flatnonzero(norms[0] > 0):
            u = W[0, :, j] / norms[0, j]
            block = np.eye(self.n_outputs) - np.outer(u, u)
            H[np.ix_(idx[:, j], idx[:, j])] = self.group_penalty * block / norms[0, j]
        return H

    def hessian(self):
        """∇²R(θ̂) on the free parameters, the group penalty's blocks included."""
        return super().hessian() + self.group_hessian()[np.ix_(self.free, self.free)]

    def active_set_violations(self, gradients, rtol=1e-6):
        """Whether ∇R at exact removal estimates (rows (m, p), full θ) leaves the
        group active set: (freed, kinked), two (m,) bool.

        Freed: a zero column's subgradient condition ‖∇_{w_j}‖ ≤ g fails (the
        estimate, which keeps it at zero, is the optimum on the active set). Kinked:
        an active column is not stationary (‖∇_{w_j} R‖ > rtol · g): its optimum is
        w_j = 0, where the group norm has its kink, and no estimate keeps it active.
        """
        k, d = self.n_outputs, self.n_features
        G = np.atleast_2d(gradients)[:, : k * d].reshape(-1, k, d)
        norms = np.linalg.norm(G, axis=1)  # (m, d)
        zero = (self.coef == 0).all(axis=0)
        freed = (norms[:, zero] > self.group_penalty * (1 + 1e-8)).any(axis=1)
        kinked = (norms[:, ~zero] > rtol * self.group_penalty).any(axis=1)
        return freed, kinked & (self.group_penalty > 0)

    def penalty_hessian_product(self, V):
        """∇²(g Σ_j ‖w_j‖) V on the free parameters, V (p_free, m)."""
        G = self.group_hessian()[np.ix_(self.free, self.free)]
        return G @ V


def multitask_objective(est, X, y, sample_weight, **options):
    """R(θ) = F of a fitted MultiTask Lasso/ElasticNet (or its CV variant).

    Parameters
    ----------
    est : estimator
        Fitted estimator of this family.
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)
        Training data (float64).
    y : ndarray of shape (n_samples, n_tasks)
        Training targets.
    sample_weight : ndarray of shape (n_samples,)
        Sample weights.
    **options
        Explainer settings (unused).

    Returns
    -------
    objective : GroupPenaltyObjective
    """
    coef, intercept = coef_intercept(est)
    k, d = coef.shape
    targets = RealTargets(k)
    Y = targets.encode(y, X.shape[0])
    alpha, r = selected_penalty(est)
    quad = np.zeros(k * d + (k if intercept is not None else 0))
    quad[: k * d] = alpha * (1.0 - r)  # ½ α (1 − r) ‖W‖²_Fro
    return GroupPenaltyObjective(SquaredErrorLoss(0.5), coef, intercept, X, Y,
                                 sample_weight, quad, alpha * r, targets=targets)


# Subclasses first (MultiTaskLasso < MultiTaskElasticNet).
SUPPORTED = {
    MultiTaskElasticNetCV: multitask_objective,
    MultiTaskLassoCV: multitask_objective,
    MultiTaskLasso: multitask_objective,
    MultiTaskElasticNet: multitask_objective,
}

#: Support-table row (``models.support_table``): loss, penalty, intercept, vs refits.
DESCRIPTION = {
    (MultiTaskLasso, MultiTaskElasticNet, MultiTaskLassoCV, MultiTaskElasticNetCV): (
        "½ ‖y − z‖² (2-D y: the tasks)",
        "group L1 Σ_j ‖W[:, j]‖₂ + L2 (`alpha`, `l1_ratio`) on the active features; "
        "CV: at `alpha_`, `l1_ratio_`; weights normalised", "unpenalised",
        "≤ 4e-11; exact LOO 7e-9"),
}
