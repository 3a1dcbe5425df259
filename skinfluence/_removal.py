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

Exact removal (``exact_steps``) continues from the Newton step with chord iterations
on R_{−j}: the exact gradient ∇R_{−j}(θ̂ + Δ_j), preconditioned by the downdated
Hessian at θ̂ (applied by Woodbury, never refactorised), until the step is below the
tolerance: the refit's optimum, for all rows at once (two GEMMs per iteration).
"""

import copy
import warnings

import numpy as np
import scipy.sparse as sp

#: Rows per batch when building the per-row leverage matrices.
_ROW_BATCH = 4096


def _check_supported(objective):
    if objective.weight_jacobian is not None and objective.train_dz is not None:
        raise NotImplementedError(
            "method='newton' for a hinge SVM with class weights computed from the "
            "sample weights (class_weight='balanced') is not supported yet. Use "
            "method='influence', or explicit class weights."
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


def _downdate_parts(objective, solver):
    """S = H⁻¹ (p_free, p_free), D_j (n, k, k) and the leverage matrices M_j."""
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
    return S, D, M


def newton_steps(objective, solver, hessian, parts=None):
    """Δθ_j for every training row (n, p_free) and the leverage matrices (n, k, k).

    ``hessian`` is the (damped) Hessian over the free parameters that ``solver``
    factorised; it is needed to release pinned rows.

    When the class weights are recomputed from the sample weights ("balanced"),
    removing row j moves every class weight: the step is then ``−H'_j⁻¹ ∇R_{−j}(θ̂)``
    with the exact gradient at the recomputed weights and H'_j the row's downdate
    (the Hessian's own class-weight shift, O(1/n), is left to method="exact").
    """
    _check_supported(objective)
    X, n, k = objective.X, objective.X.shape[0], objective.n_outputs
    S, D, M = _downdate_parts(objective, solver) if parts is None else parts
    if objective.weight_jacobian is not None:
        steps = np.empty((n, S.shape[0]))
        for rows in _row_batches(n, k):
            U = [_dense(u) for u in _output_jacobians(objective, X[rows])]
            g = _removal_gradients(objective, rows, np.zeros((len(rows), S.shape[0])))
            steps[rows] = -_chord(objective, S, D, M, rows, U, g[:, objective.free])
        return steps, M
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


def exact_steps(objective, solver, hessian, *, tol=1e-10, max_iter=100):
    """θ̂_{−j} − θ̂ for every training row, to ``tol`` (relative, ∞-norm).

    Chord iterations Δ ← Δ − H'_j⁻¹ ∇R_{−j}(θ̂ + Δ) from the Newton step, with H'_j
    the downdated Hessian at θ̂. Returns (steps (n, p_free), iterations used).
    """
    _check_supported(objective)
    if objective.train_dz is not None:
        raise NotImplementedError(
            "method='exact' for the hinge loss is not supported yet: removing a "
            "support vector moves other rows across the margin, which needs "
            "active-set (path-following) steps. Use method='newton'."
        )
    X, n, k = objective.X, objective.X.shape[0], objective.n_outputs
    parts = S, D, M = _downdate_parts(objective, solver)
    steps, _ = newton_steps(objective, solver, hessian, parts)
    scale = max(1.0, np.abs(objective.params).max(initial=0.0))
    stalled = []
    for rows in _row_batches(n, k):
        delta = steps[rows].copy()
        U = [_dense(u) for u in _output_jacobians(objective, X[rows])]
        active = np.ones(len(rows), dtype=bool)
        last = np.full(len(rows), np.inf)
        for _ in range(max_iter):
            g = _removal_gradients(objective, rows[active], delta[active])
            step = _chord(objective, S, D, M, rows[active], [u[active] for u in U],
                          g[:, objective.free])
            size = np.abs(step).max(axis=1)
            grew = size > 0.9 * last[active]  # the chord stopped contracting
            idx = np.flatnonzero(active)
            delta[idx[~grew]] -= step[~grew]
            last[idx] = size
            active[idx[(size <= tol * scale) | grew]] = False
            stalled.extend(rows[idx[grew & (size > tol * scale)]].tolist())
            if not active.any():
                break
        stalled.extend(rows[active].tolist())
        steps[rows] = delta
    unconverged = 0
    for j in stalled:  # curvature changed along the way: full (semismooth) Newton
        steps[j], ok = newton_refine(objective, solver, j, steps[j], tol * scale,
                                     max_iter)
        unconverged += not ok
    _check_exact_result(objective, steps, unconverged, max_iter)
    return steps, len(stalled)


def _row_batches(n, k):
    """Batches of removed rows, so that (n, rows, k) blocks stay near 16M floats."""
    batch = max(1, (16 * 2**20) // (n * k))
    return [np.arange(i, min(i + batch, n)) for i in range(0, n, batch)]


def _chord(objective, S, D, M, rows, U, g):
    """H'_j⁻¹ g_j for each removed row j (Woodbury on the row's rank-k downdate)."""
    n, k = objective.X.shape[0], objective.n_outputs
    Sg = g @ S
    Ug = np.stack([np.einsum("ip,ip->i", u, Sg) for u in U], axis=1)  # U_jᵀ H⁻¹ g
    r = np.linalg.solve(np.eye(k) - M[rows], (D[rows] @ Ug[:, :, None]) / n)[:, :, 0]
    return Sg + sum(u * r[:, [a]] for a, u in enumerate(U)) @ S


def removal_weights(objective, removed):
    """Row weights s_i c'_ik of R without the rows ``removed``, shape (n, k).

    Their own weights are zero; with "balanced" class weights every class weight is
    recomputed without them, c'_g = S'/(K S'_g), as the refit does.
    """
    W = objective.row_weight.copy()
    if objective.weight_jacobian is not None:
        s, g = objective.sample_weight, objective.groups
        K = objective.weight_jacobian.shape[0]
        total, per_class = s.sum(), np.bincount(g, weights=s, minlength=K)
        left = per_class - np.bincount(g[removed], weights=s[removed], minlength=K)
        with np.errstate(divide="ignore", invalid="ignore"):
            c_new = np.where(left > 0, (total - s[removed].sum()) / (K * left), 0.0)
        shift = (c_new - total / (K * per_class))[g]  # c'_{y_i} − c_{y_i}
        mask = 1.0 if objective.weighted_mask is None else objective.weighted_mask
        W += (s * shift)[:, None] * np.broadcast_to(mask, W.shape)
    W[removed] = 0.0
    return W


def _removal_weights(objective, rows):
    """``removal_weights`` for each single removed row j = rows[m], (n, m, k)."""
    if objective.weight_jacobian is None:
        W = np.repeat(objective.row_weight[:, None, :], len(rows), axis=1)
        W[rows, np.arange(len(rows)), :] = 0.0
        return W
    return np.stack([removal_weights(objective, [j]) for j in rows], axis=1)


def newton_refine(objective, solver, rows, delta, tol, max_iter):
    """Newton steps on R without ``rows``, with its exact (generalized) Hessian at
    each iterate, backtracking on the gradient norm. Returns (step, converged)."""
    removed = copy.copy(objective)
    removed.row_weight = removal_weights(objective, np.atleast_1d(rows))
    basis = getattr(solver, "basis", None)
    free = objective.free
    full = objective.params.copy()

    def set_params(d):
        theta = full.copy()
        theta[free] += d
        k, dd = objective.n_outputs, objective.n_features
        removed.coef = theta[: k * dd].reshape(k, dd)
        if objective.fit_intercept:
            removed.intercept = theta[k * dd :]
        return removed.gradient()

    g = set_params(delta)
    for _ in range(max_iter):
        H = removed.hessian()
        if basis is not None:
            step = basis @ np.linalg.lstsq(basis.T @ H @ basis, basis.T @ g,
                                           rcond=None)[0]
        else:
            step = np.linalg.lstsq(H, g, rcond=None)[0]
        alpha, norm = 1.0, np.linalg.norm(g)
        for _ in range(40):
            g_new = set_params(delta - alpha * step)
            if np.linalg.norm(g_new) < norm:
                break
            alpha /= 2
        delta = delta - alpha * step
        g = g_new
        if np.abs(alpha * step).max(initial=0.0) <= tol:
            return delta, True
    return delta, False


def _removal_gradients(objective, rows, steps):
    """∇R_{−j} at θ̂ + steps[i] for each removed row j = rows[i], full θ, (m, p)."""
    X, n, k, d = objective.X, objective.X.shape[0], objective.n_outputs, \
        objective.n_features
    m = len(rows)
    theta = np.tile(objective.params, (m, 1))
    theta[:, objective.free] += steps
    Z = np.asarray(X @ theta[:, : k * d].reshape(m * k, d).T).reshape(n, m, k)
    if objective.fit_intercept:
        Z = Z + theta[:, k * d :][None, :, :]
    y = np.repeat(objective.y, m, axis=0)
    _, dZ = objective.loss.value_grad(Z.reshape(n * m, k), y)
    dZ = dZ.reshape(n, m, k) * _removal_weights(objective, rows)
    grad = [np.asarray(X.T @ dZ.reshape(n, m * k)).T.reshape(m, k * d)]
    if objective.fit_intercept:
        grad.append(dZ.sum(axis=0))
    return (np.hstack(grad) / n + objective.quad_penalty * theta
            + objective.l1_penalty * np.sign(theta))


def _check_exact_result(objective, steps, unconverged, max_iter):
    if unconverged:
        warnings.warn(
            f"method='exact' did not converge within max_iter={max_iter} for "
            f"{unconverged} row(s); their estimates are the last iterate.",
            RuntimeWarning,
            stacklevel=4,
        )
    fixed = ~objective.free & (objective.l1_penalty > 0)
    if fixed.any():
        rows = np.arange(steps.shape[0])
        g = _removal_gradients(objective, rows, steps)[:, fixed]
        freed = np.abs(g) > objective.l1_penalty[fixed] * (1 + 1e-8)
        if freed.any():
            warnings.warn(
                f"Removing {int(freed.any(axis=1).sum())} row(s) would move "
                "coefficients held at zero by the L1 penalty off zero; their exact "
                "estimates keep the active set of the full fit.",
                RuntimeWarning,
                stacklevel=4,
            )


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
