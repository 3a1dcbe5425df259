"""Exact removals of piecewise-linear losses: their solution paths.

The exact hinge, the ε-insensitive tube and the ν-SVMs' hinges of affine output
forms have no curvature: the optimum without some rows is piecewise linear in their
weights. Each path scales the removed rows' weights (or, when a removal reweighs
every row, all weights) from their fitted values to the refit's, solving on each
piece the margin rows' KKT system and stopping at the breakpoints where a row
changes sides (Cauwenberghs & Poggio's decremental SVM). Called by
:mod:`skinfluence._removal` for ``method="exact"``.
"""

import numpy as np

from ._reweight import removal_weights, reweights_on_removal
from ._utils import dense

#: Why an exact hinge / ε-tube removal is undefined.
NO_PATH = ("the piecewise-linear solution path has no unique continuation (e.g. no "
            "support vector left on the margin to fix the intercept)")


def hinge_exact_steps(objective, removals=None, *, tol=1e-9):
    """θ̂_{−G} − θ̂ for an SVM (hinge loss, dual subgradients known), all params, for
    each removal G (an array of rows; default: every single row).

    The weights of G's rows are scaled by (1 − t), t from 0 to 1; the solution is
    piecewise linear in t. On each piece the rows inside the margin (μ_i = v_i), on
    it (m_i = 1, 0 < μ_i < v_i) and outside (μ_i = 0) stay put, and the solution
    solves

        q ⊙ θ = (1/n) Σ_i μ_i ỹ_i x̃_i,    ỹ_i x̃_iᵀ θ = 1 on the margin

    (μ_i = s_i c_i β_i, the dual variables; v_i shrinks with t for i ∈ G); at each
    breakpoint one row changes sides (Cauwenberghs & Poggio's decremental step).
    One-vs-rest outputs are independent problems. Returns (steps (n_removals, p) —
    NaN where the path is undefined — and the number of breakpoints crossed).
    """
    from .models._losses import signed_targets

    obj = objective
    n, k = obj.X.shape[0], obj.n_outputs
    removals = _single_rows(n, removals)
    X = dense(obj.X)
    Xt = np.hstack([X, np.ones((n, 1))]) if obj.fit_intercept else X
    Yt = signed_targets(obj.y, k)
    idx = obj.param_index()
    theta = obj.params
    steps = np.zeros((len(removals), obj.n_params))
    crossings = 0
    reweighs = reweights_on_removal(obj)
    for a in range(k):
        v = obj.row_weight[:, a]
        mu = -obj.train_dz[:, a] * Yt[:, a] * v  # μ_i = β_i v_i ∈ [0, v_i]
        q = obj.quad_penalty[idx[a]]
        A = Yt[:, [a]] * Xt  # rows ỹ_i x̃_i: margin m_i = A_i θ
        for r, rows in enumerate(removals):
            if reweighs:  # every row's weight moves ("balanced" recomputed)
                out = _decrement(A, v, mu, q, rows, n, theta=theta[idx[a]],
                                 target=removal_weights(obj, rows)[:, a])
            elif np.all(mu[rows] <= tol * np.maximum(v[rows], 1e-300)):
                continue  # outside the margin: removing them changes nothing
            else:
                out = _decrement(A, v, mu, q, rows, n, theta=theta[idx[a]])
            if out is None:
                steps[r] = np.nan
            else:
                steps[r, idx[a]] += out[0] - theta[idx[a]]
                crossings += out[1]
    return steps, crossings


def path_steps(objective, removals):
    """The exact solution path of the objective's piecewise-linear loss for each
    removal: the hinge, the ε-tube, or hinges of affine forms of the outputs
    (``exact_path`` "hinge", "tube", "output_hinges"). Returns (steps over all of θ
    (n_removals, p), {position: reason} where the path is undefined)."""
    path = {"tube": tube_exact_steps, "output_hinges": output_hinge_exact_steps}.get(
        getattr(objective, "exact_path", "hinge"), hinge_exact_steps)
    steps, _ = path(objective, removals)
    return steps, {i: NO_PATH for i in np.flatnonzero(np.isnan(steps).any(axis=1))}


def output_hinge_exact_steps(objective, removals=None):
    """θ̂_{−G} − θ̂ for a loss Σ_h max(0, a_h·z + c_h) + g·z of the outputs z (the
    ν-SVMs: ν-SVC's max(0, ρ − ỹ f) − ν ρ, ν-SVR's two tube edges + ν ε), over
    the free parameters, for each removal G (default: every single row).

    Each hinge h of row i is max(0, u_ih) with u_ih = a_h·z_i + c_ih affine in θ:
    the hinge path (``_decrement``) with rows A = −∂u/∂θ, offsets u − ∂u/∂θ·θ̂, the
    row's weight on each of its hinges, and the linear term (1/n) Σ_i v_i g·z_i,
    which shrinks with the removed rows' weights. The hinges' dual variables come
    from ``train_dz`` (dL/dz = Σ_h β_h a_h + g, β_h ∈ [0, 1]). Returns (steps
    (n_removals, p) — NaN where the path is undefined — and the breakpoints crossed).
    """
    obj = objective
    n = obj.X.shape[0]
    removals = _single_rows(n, removals)
    free = obj.free
    a, c_h, g = obj.loss.forms(obj.y)  # (n, h, k), (n, h), (k,)
    h = a.shape[1]
    every = obj.replace(free=np.ones(obj.n_params, dtype=bool))
    J = np.stack([dense(u) for u in every.output_jacobians(obj.X)], axis=1)
    du = np.einsum("nhk,nkp->nhp", a, J)  # ∂u_ih/∂θ (all of θ)
    theta = obj.params
    u = np.einsum("nhp,p->nh", du, theta) + c_h
    A = -du[:, :, free].reshape(n * h, -1)
    c = u.reshape(n * h) + A @ theta[free]  # c − A θ = u
    v = obj.row_weight[:, 0]
    # (n, h): dL/dz = Σ_h β_h a_h + g, solved row by row (least squares)
    beta = np.einsum("nhk,nk->nh", np.linalg.pinv(np.swapaxes(a, 1, 2)),
                     obj.train_dz - g)
    V = np.repeat(v, h)
    mu = (np.clip(beta, 0.0, 1.0) * v[:, None]).reshape(n * h)
    q = obj.quad_penalty[free]
    lin_row = (J[:, :, free] * g[None, :, None]).sum(axis=1)  # ∂(g·z_i)/∂θ (n, p_f)
    lin = v @ lin_row / n
    steps = np.zeros((len(removals), obj.n_params))
    crossings = 0
    for r, rows in enumerate(removals):
        slope = np.zeros(n)
        slope[rows] = -v[rows]
        hinge_rows = (rows[:, None] * h + np.arange(h)).ravel()
        out = _decrement(A, V, mu, q, hinge_rows, n, c=c, theta=theta[free],
                         linear=(lin, slope @ lin_row / n))
        if out is None:
            steps[r] = np.nan
        else:
            steps[r, free] = out[0] - theta[free]
            crossings += out[1]
    return steps, crossings


def _single_rows(n, removals):
    """``removals`` as a list of row arrays; every single row when None."""
    if removals is None:
        return [np.array([j]) for j in range(n)]
    return [np.atleast_1d(np.asarray(rows, dtype=np.intp)) for rows in removals]


def _margin_kkt(A_M, q, n, rhs_theta, rhs_margin):
    """Solve ``q ⊙ θ − A_Mᵀ μ / n = r`` and ``A_M θ = m`` for (θ, μ), for each pair
    (r, m) of ``rhs_theta``/``rhs_margin``.

    Eliminating the penalised coordinates P (q > 0), θ_P = (r_P + A_M,Pᵀ μ/n) / q_P,
    leaves a system in μ and the unpenalised coordinates U (e.g. the intercept) of
    the margin rows' size:

        [A_P diag(1/q_P) A_Pᵀ / n   A_U] [μ  ]   [m − A_P (r_P / q_P)]
        [A_Uᵀ                        0 ] [θ_U] = [−n r_U             ]

    (a kernel machine's features are as many as its training rows; its margin rows
    are few). Raises LinAlgError when singular.
    """
    P, U = q > 0, q == 0
    AP, AU = A_M[:, P], A_M[:, U]
    m, u = A_M.shape[0], int(U.sum())
    S = np.zeros((m + u, m + u))
    S[:m, :m] = (AP / q[P]) @ AP.T / n
    S[:m, m:] = AU
    S[m:, :m] = AU.T
    R = np.zeros((m + u, len(rhs_theta)))
    for i, (r, margin) in enumerate(zip(rhs_theta, rhs_margin, strict=True)):
        R[:m, i] = margin - AP @ (r[P] / q[P])
        R[m:, i] = -n * r[U]
    if m + u:
        sol = np.linalg.solve(S, R)
        if not np.all(np.isfinite(sol)):
            raise np.linalg.LinAlgError("singular margin system")
    else:
        sol = R
    out = []
    for i, r in enumerate(rhs_theta):
        theta = np.empty(len(q))
        mu = sol[:m, i]
        theta[P] = (r[P] + AP.T @ mu / n) / q[P]
        theta[U] = sol[m:, i]
        out.append((theta, mu))
    return out


def _decrement(A, v, mu, q, shrink, n, c=None, target=None, linear=None,
               theta=None):
    """Follow the SVM solution as the weights of the hinge rows ``shrink`` go from v
    to 0 (bound_i(t) = (1 − t) v_i, t from 0 to 1), or every weight from v to
    ``target`` (bound(t) = v + t (target − v)); returns (θ at t = 1, pieces), or
    None where the path is undefined (a singular margin system).

    Hinge rows max(0, c_i − A_i θ) (c = 1: the SVM margin). A removed data row of the
    ε-tube shrinks both its edges (two hinge rows), so it may cross the whole tube.
    ``linear``: ``(g, dg)``, a linear term gᵀθ of R (g + t dg along the path: ν-SVMs'
    ν Σ s_i ρ / n, which the removal shrinks). ``theta``: θ̂, to resolve a
    degenerate vertex: when the margin rows leave the unpenalised parameters
    undetermined (at the start, or after a breakpoint where another row reached its
    kink at the same t), the optimum sits where other rows touch their kink with μ
    at a bound; the nearest such rows join the margin set (their μ then moves off
    the bound, or they leave at the next breakpoint).
    """
    c = np.ones(len(v)) if c is None else c
    mu = mu.copy()
    state = np.where(mu >= v * (1 - 1e-6), 1, np.where(mu <= v * 1e-6, -1, 0))
    # 1 inside (μ = bound), 0 on the margin, −1 outside (μ = 0)
    if target is None:
        slope = np.zeros(len(v))
        slope[shrink] = -v[shrink]  # d bound / dt
    else:
        slope = target - v
    g, dg = (np.zeros(len(q)), np.zeros(len(q))) if linear is None else linear
    t, pieces, added = 0.0, 0, 0
    for _ in range(10 * len(v) + 10):
        M = np.flatnonzero(state == 0)
        inside = np.flatnonzero(state == 1)
        bound = v + t * slope
        # derivative of the right-hand side in t: the shrinking bounds of rows inside
        moving = A[inside].T @ slope[inside] / n - dg
        try:
            (th, mu_M), (dth, dmu_M) = _margin_kkt(
                A[M], q, n, [A[inside].T @ bound[inside] / n - (g + t * dg), moving],
                [c[M], np.zeros(len(M))])
        except np.linalg.LinAlgError:
            if theta is None or added >= 3:
                return None
            # a degenerate vertex: the row nearest its kink joins the margin set
            gap = np.abs(A @ theta - c) / (1.0 + np.linalg.norm(A, axis=1))
            gap[state == 0] = np.inf
            state[int(np.argmin(gap))] = 0
            added += 1  # at most 3 per path: a cycling vertex has no unique path
            continue
        if not (np.all(np.isfinite(th)) and np.all(np.isfinite(mu_M))):
            return None
        # the next breakpoint: a margin row's μ hits 0 or its (moving) bound, or
        # another row's margin reaches c
        best, event = 1.0 - t, None
        m, dm = A @ th, A @ dth
        for i_pos, i in enumerate(M):
            rate = dmu_M[i_pos]
            if rate < 0 and -mu_M[i_pos] / rate < best:
                best, event = max(-mu_M[i_pos] / rate, 0.0), (i, -1)
            speed = rate - slope[i]  # μ_i(t + s) = bound_i(t + s) at s = gap / speed
            if speed > 0 and (bound[i] - mu_M[i_pos]) / speed < best:
                best, event = max((bound[i] - mu_M[i_pos]) / speed, 0.0), (i, 1)
        # rows inside (m < c) whose margin rises to c, rows outside (m > c) whose
        # margin falls to c; a row already at m ≈ c moving the wrong way goes now
        others = np.flatnonzero(state != 0)
        toward = np.where(state[others] == 1, dm[others] > 1e-14, dm[others] < -1e-14)
        crossing = others[toward]
        when = np.maximum((c[crossing] - m[crossing]) / dm[crossing], 0.0)
        ok = (c[crossing] - m[crossing]) / dm[crossing] > -1e-9
        if ok.any():
            first = np.argmin(np.where(ok, when, np.inf))
            if when[first] < best:
                best, event = when[first], (crossing[first], 0)
        if event is None:  # no breakpoint before t = 1
            return th + (1.0 - t) * dth, pieces
        i, new_state = event
        t += best
        pieces += 1
        state[i] = new_state
        if t >= 1.0 - 1e-12:
            return th + best * dth, pieces
        theta = None if theta is None else th + best * dth  # θ at the breakpoint
        # carry μ of margin rows (for the next bounds), at the breakpoint
        mu[M] = mu_M + best * dmu_M
        if new_state == 1:
            mu[i] = v[i] + t * slope[i]
        elif new_state == -1:
            mu[i] = 0.0
    return None


# -- exact removal for the ε-insensitive loss: the same path on two hinges per row ----
def tube_exact_steps(objective, removals=None, *, tol=1e-9):
    """θ̂_{−G} − θ̂ for the ε-insensitive loss (one output, subgradients known), for
    each removal G (an array of rows; default: every single row).

    ψ(r) = max(0, r − ε) + max(0, −r − ε), r = x̃·θ − y, is a sum of two hinges with
    offsets, max(0, c − A θ): the upper edge A = −x̃, c = −y − ε and the lower edge
    A = x̃, c = y − ε, each with the row's weight v. Their dual variables are
    μ = v max(±ψ', 0) (``train_dz`` = ψ'). Removing G follows the hinges' solution
    path (``_decrement``) as both edges of its rows shrink (a row may cross the
    whole tube on the way). Rows strictly inside the tube (ψ' = 0) alone do not
    move the solution. Works on any one-output ``LinearObjective`` with
    ``loss.epsilon`` and ``train_dz`` (e.g. kernel features). Returns (steps
    (n_removals, p) — NaN where the path is undefined — and the number of
    breakpoints crossed).
    """
    obj = objective
    n = obj.X.shape[0]
    removals = _single_rows(n, removals)
    X = dense(obj.X)
    Xt = np.hstack([X, np.ones((n, 1))]) if obj.fit_intercept else X
    y, eps = obj.y[:, 0], float(obj.loss.epsilon)
    psi, v = obj.train_dz[:, 0], obj.row_weight[:, 0]
    A = np.vstack([-Xt, Xt])
    c = np.r_[-y - eps, y - eps]
    V = np.r_[v, v]
    mu = np.r_[v * np.clip(psi, 0, 1), v * np.clip(-psi, 0, 1)]
    theta = obj.params
    steps = np.zeros((len(removals), obj.n_params))
    crossings = 0
    for r, rows in enumerate(removals):
        if np.all(np.abs(psi[rows]) * v[rows] <= tol * np.maximum(v[rows], 1e-300)):
            continue  # inside the tube: removing them changes nothing
        out = _decrement(A, V, mu, obj.quad_penalty, np.r_[rows, n + rows], n, c=c,
                         theta=theta)
        if out is None:
            steps[r] = np.nan
        else:
            steps[r] = out[0] - theta
            crossings += out[1]
    return steps, crossings
