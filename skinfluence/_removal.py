"""Removing a training row beyond first order: one Newton step without the row.

Removing row j (weights v_jk = s_j c_jk) leaves the risk ``R_{−j} = R − (1/n) Σ_k v_jk
L_k(z_j)``. At θ̂ its gradient is ``−(s_j/n) U_j w_j`` and its Hessian
``H − (1/n) U_j D_j U_jᵀ``, where U_j = ∂z_j/∂θ (p × k; columns e_k ⊗ [x_j, 1]),
w_j = c_j ⊙ dL/dz_j and D_j = diag(v_j) d²L/dz²_j. One Newton step from θ̂, by the
Woodbury identity (no new factorisation)::

    Δθ_j = (s_j/n) H⁻¹ U_j (I − M_j)⁻¹ w_j,   M_j = D_j U_jᵀ H⁻¹ U_j / n.

M_j is the row's leverage (a k × k matrix; a scalar for one output): the first-order
influence ``−(s_j/n)·I_up,params`` is the same step with M_j = 0, which is why it
underestimates removals of high-leverage rows. For a quadratic loss (least squares)
the step is the exact refit (Pregibon 1981; Cook's distance).

The exact hinge (``smoothing=0``) has no curvature, but holds its support vectors on
the margin (pinned directions a_i = ∂z_i/∂θ, solved on their complement: S =
Z (ZᵀHZ)⁻¹ Zᵀ). Removing such a row releases its pin; with u the direction dual to
it (orthogonal to every other pin, u ∝ A (AᵀA)⁻¹ e_i), the released inverse is the
rank-one update ``S + v vᵀ / (vᵀ H v)``, v = (I − S H) u. Rows outside the margin
have Δθ_j = 0, like the refit.
"""

import warnings

import numpy as np
import scipy.sparse as sp

#: Rows per batch when building the per-row leverage matrices.
_ROW_BATCH = 4096


def _check_supported(objective):
    if objective.weight_jacobian is not None:
        raise NotImplementedError(
            "method='newton' with class weights computed from the sample weights "
            "(class_weight='balanced') is not supported yet: removing a row shifts "
            "every class weight. Use method='influence', or explicit class weights."
        )


def _output_jacobians(objective, X):
    """U_a = ∂z_a/∂θ for each output a, as (n, p_free) matrices."""
    n, k = X.shape[0], objective.n_outputs
    out = []
    for a in range(k):
        e = np.zeros((n, k))
        e[:, a] = 1.0
        out.append(objective.row_gradients(X, e))
    return out


def newton_steps(objective, solver, hessian):
    """Δθ_j for every training row (n, p_free) and the leverage matrices (n, k, k).

    ``hessian`` is the (damped) Hessian over the free parameters that ``solver``
    factorised; it is needed to release pinned rows.
    """
    _check_supported(objective)
    X, n, k = objective.X, objective.X.shape[0], objective.n_outputs
    p = int(objective.free.sum())
    S = solver.solve(np.eye(p))  # H⁻¹ on the (reduced) space of free parameters
    Hz = objective.loss.hessian(objective.decision(X), objective.y)
    D = objective.row_weight[:, :, None] * Hz  # D_j[a, b] = v_ja h_j,ab
    M = np.empty((n, k, k))
    for start in range(0, n, _ROW_BATCH):
        rows = slice(start, min(start + _ROW_BATCH, n))
        U = [_dense(u) for u in _output_jacobians(objective, X[rows])]
        US = [u @ S for u in U]
        A = np.stack([np.stack([np.einsum("ip,ip->i", US[a], U[b]) for b in range(k)],
                               axis=1) for a in range(k)], axis=1)  # U_jᵀ H⁻¹ U_j
        M[rows] = D[rows] @ A / n
    w = objective.class_weight * objective.training_dz()
    q = np.linalg.solve(np.eye(k) - M, w[:, :, None])[:, :, 0]  # (I − M_j)⁻¹ w_j
    G = _dense(objective.row_gradients(X, q))  # U_j q_j
    steps = solver.solve(G.T).T
    if objective.pinned is not None and objective.pinned.any():
        _release_pins(objective, S, hessian, G, steps)
    return steps * (objective.sample_weight / n)[:, None], M


def _release_pins(objective, S, H, G, steps):
    """Steps of pinned rows with their own pins released (in place)."""
    rows, outputs = np.nonzero(objective.pinned)
    k = objective.n_outputs
    onehot = np.zeros((len(rows), k))
    onehot[np.arange(len(rows)), outputs] = 1.0
    A = _dense(objective.row_gradients(objective.X[rows], onehot)).T  # (p, m) pins
    U = A @ np.linalg.pinv(A.T @ A)  # column i ⟂ every pin but i
    U /= np.linalg.norm(U, axis=0)
    V = U - S @ (H @ U)  # v = (I − S H) u
    curvature = np.einsum("pi,pi->i", V, H @ V)  # vᵀ H v
    flat = curvature <= 1e-12 * np.abs(np.diag(H)).max()
    if flat.any():
        warnings.warn(
            f"Removing {int(flat.sum())} support vector(s) on the margin leaves the "
            "hinge objective flat along their direction (e.g. the only support vector "
            "fixing an unpenalised intercept): one Newton step is undefined there and "
            "their leave-one-out estimates are NaN. Use smoothing > 0.",
            RuntimeWarning,
            stacklevel=4,
        )
    for i, j in enumerate(rows):
        if flat[i]:
            steps[j] = np.nan
        else:
            steps[j] += V[:, i] * (V[:, i] @ G[j]) / curvature[i]


def loss_change(objective, X_test, y_test, steps, loss=None):
    """L(z_t at θ̂ + Δθ_j) − L(z_t at θ̂) for every test row t and step j."""
    loss = loss or objective.loss
    T, n, k = X_test.shape[0], steps.shape[0], objective.n_outputs
    Z = objective.decision(X_test)
    base = loss.value_grad(Z, y_test)[0]
    shift = np.stack([np.asarray(u @ steps.T) for u in
                      _output_jacobians(objective, X_test)], axis=2)  # (T, n, k)
    shifted = (Z[:, None, :] + shift).reshape(T * n, k)
    y_rep = np.repeat(y_test, n, axis=0)
    new = loss.value_grad(shifted, y_rep)[0].reshape(T, n)
    return new - base[:, None]


def _dense(M):
    return M.toarray() if sp.issparse(M) else np.asarray(M)
