"""Removing a training row beyond first order: one Newton step without the row, or
the exact optimum without it.

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

Both estimate a refit, which may not exist: ``removal_defects`` decides, for any set
of removals (rows or groups), whether R without them has a unique optimum (a class
or every weighted row gone, an unpenalised direction left flat, the remaining rows
separable along unpenalised parameters). Those removals, and those whose Newton step
is undefined or whose iterations do not converge, are NaN with one
``NoOptimumWarning``; removals of rows without weight are exactly 0 (``settle``).

A network (``linear = False``: ``network_removal_steps``) has no leverage form: its
Newton step factorises the downdated Hessian with the removed rows' exact Hessian,
and its exact removal iterates on the network's own risk (chord, then
Levenberg–Marquardt) to a local minimum, for single rows and groups alike.

Groups of rows (``group_steps``: the same Newton step with the group's joint leverage,
or a direct factorisation of the downdated Hessian, and the exact refit; formulas in
:mod:`skinfluence.groups`, which is their public face) are removed here too.
"""

import sys
import warnings
from numbers import Integral

import numpy as np
from scipy.optimize import linprog
from sklearn.exceptions import ConvergenceWarning

from ._hessian import complement_basis
from ._objective import LinearObjective
from ._paths import hinge_exact_steps, path_steps, tube_exact_steps  # noqa: F401
from ._reweight import removal_weights, reweights_on_removal, single_removal_weights
from ._utils import dense
from .models._losses import (
    BinomialLoss,
    MultinomialLoss,
    SmoothHingeLoss,
    signed_targets,
)

#: Rows per batch when building the per-row leverage matrices.
_ROW_BATCH = 4096

#: Losses that approach their infimum only as a margin grows without bound: rows that
#: a direction of unpenalised parameters separates drive R down forever (no optimum).
_UNATTAINED = (BinomialLoss, MultinomialLoss, SmoothHingeLoss)

#: λ_min ≤ _RANK_TOL · λ_max of the unpenalised directions' Gram: a flat direction.
_RANK_TOL = 1e-10

#: Why a Newton step is undefined (reason given with ``NoOptimumWarning``).
ACTIVE_SET_GROWS = ("its refit moves coefficients the penalty holds at zero off zero "
                    "(the active set grows), which the exact path does not follow for "
                    "this penalty (refit instead)")
INDEFINITE = ("its downdated Hessian is not positive definite (one Newton step is "
              "undefined)")


class NoOptimumWarning(ConvergenceWarning):
    """Removing some training rows leaves a training objective with no (unique)
    optimum, or one the Newton step or iterations cannot reach: those removals'
    estimates are NaN (never a number describing no refit)."""


# -- does the objective without the removed rows have an optimum? -------------------
def weighted_rows(objective):
    """Rows whose removal changes R: positive weight on some output (with class
    weights computed from the sample weights, a positive sample weight)."""
    if objective.weight_jacobian is not None:
        return objective.sample_weight > 0
    return (objective.row_weight > 0).any(axis=1)


def removal_defects(objective, removals):
    """Why R without each removal has no (unique) optimum: {position: reason}.

    ``removals`` is a list of arrays of distinct row indices. Removals of rows
    without weight change nothing and are never defects. R_{−G} is convex; it has a
    unique minimiser unless one of these holds, each checked here (first met wins):

    1. no row with positive weight is left;
    2. (classifiers) a class of ``classes_`` is left without a row of positive
       weight: scikit-learn refuses such a refit (or, with zero-weight rows of the
       class left, fits a model no row supports; with an unpenalised intercept no
       optimum exists: the intercept runs to ±∞);
    3. a direction d of unpenalised parameters (no L2 or L1 term, not a softmax's
       flat shift) that no remaining row of positive weight moves (a_iᵀd = 0 for
       every margin direction a_i): R is constant along d, the optimum not unique;
    4. (losses whose infimum needs an infinite margin: log-loss, smooth hinge) the
       remaining rows are separable along unpenalised parameters, a_iᵀd ≥ 0 for all
       and > 0 for some (a linear program): R decreases forever along d.

    3 and 4 are only reported when the full data passes them (the fit's own
    warnings cover a degenerate full problem). With only intercepts unpenalised,
    4 is exactly 2, and the linear program is skipped.
    """
    alive = weighted_rows(objective)
    n_alive = int(alive.sum())
    cut = [rows[alive[rows]] for rows in removals]
    classes = objective.targets.classes
    if classes is not None:
        count = np.bincount(objective.y[alive], minlength=len(classes))
    defects = {}
    for i, rows in enumerate(cut):
        if rows.size == 0:
            continue
        if rows.size >= n_alive:
            defects[i] = "no training row with positive weight is left"
        elif classes is not None:
            left = count - np.bincount(objective.y[rows], minlength=len(classes))
            gone = np.flatnonzero((left == 0) & (count > 0))
            if gone.size:
                defects[i] = (f"class {classes[gone].tolist()[0]!r} is left without a "
                              "training row of positive weight")
    todo = {i: rows for i, rows in enumerate(cut) if rows.size and i not in defects}
    if todo:
        defects.update(_unpenalised_defects(objective, alive, todo))
    return defects


def _unpenalised_defects(objective, alive, removals):
    """Criteria 3 and 4 of ``removal_defects`` for {position: rows}.

    Separation (4) is first screened by a Stiemke certificate: R_{−G} has no
    separating direction iff some y' > 0 has Σ_i y'_i a_i = 0 over the remaining
    margin directions. At θ̂ the optimality condition gives one for all rows,
    y_i = −(weighted dL/dmargin_i) > 0; on the remaining rows it is rescaled,
    y'_i = y_i (1 + a_iᵀx), with x solving Σ_{i∉G} y_i a_i a_iᵀ x = Σ_{i∈G} y_i a_i −
    Σ_i y_i a_i (so that Σ_{i∉G} y'_i a_i = 0). If every 1 + a_iᵀx > 0, no linear
    program is needed.
    """
    Z = _unpenalised_basis(objective)
    if Z is None:
        return {}  # every direction penalised: R is strongly convex
    A, owner, y = _margin_directions(objective, alive, Z)
    bounds = np.searchsorted(owner, np.arange(objective.X.shape[0] + 1))
    G = A.T @ A
    eig = np.linalg.eigvalsh(G)
    if eig[-1] <= 0.0:
        return {}
    flat_ok = eig[0] > _RANK_TOL * eig[-1]
    n_coef = int(objective.free[: objective.n_outputs * objective.n_features].sum())
    separation = (isinstance(objective.loss, _UNATTAINED)
                  and np.abs(Z[:n_coef]).max(initial=0.0) > 0 and flat_ok
                  and not _separable(A))
    residual = A.T @ y  # ≈ 0: the gradient of R at θ̂ on these directions
    Gy = A.T @ (y[:, None] * A)
    out = {}
    for i, rows in removals.items():
        idx = np.concatenate([np.arange(bounds[j], bounds[j + 1]) for j in rows])
        Ar = A[idx]
        GR = G - Ar.T @ Ar
        if flat_ok and np.linalg.eigvalsh(GR)[0] <= _RANK_TOL * eig[-1]:
            out[i] = ("an unpenalised direction of the parameters is moved by no "
                      "remaining row (no unique optimum)")
        elif separation and not _certified(A, y, Gy, residual, idx):
            keep = np.ones(len(A), dtype=bool)
            keep[idx] = False
            if _separable(A[keep]):
                out[i] = ("the remaining rows are linearly separable along "
                          "unpenalised parameters (the loss decreases forever)")
    return out


def _jacobian_times(objective, X, dZ, Z):
    """row_gradients(X, dZ) @ Z, (m, r), without the (m, p) row gradients."""
    k, d = objective.n_outputs, objective.n_features
    full = np.zeros((objective.n_params, Z.shape[1]))
    full[objective.free] = Z
    out = dZ @ full[k * d:] if objective.fit_intercept else 0.0
    for b in range(k):
        out = out + dZ[:, [b]] * np.asarray(X @ full[b * d:(b + 1) * d])
    return np.broadcast_to(out, (X.shape[0], Z.shape[1])).copy()


def _certified(A, y, Gy, residual, idx):
    """Whether y'_i = y_i (1 + a_iᵀx) > 0 certifies the rows but ``idx`` inseparable."""
    if y.min(initial=1.0) <= 0:
        return False
    Ar = A[idx]
    try:
        x = np.linalg.solve(Gy - Ar.T @ (y[idx, None] * Ar),
                            Ar.T @ y[idx] - residual)
    except np.linalg.LinAlgError:
        return False
    rise = A @ x
    rise[idx] = 0.0
    return bool(rise.min() > -1.0 + 1e-9)


def _unpenalised_basis(objective):
    """Orthonormal basis (p_free, r) of the unpenalised free directions, less a
    softmax's flat shifts (which leave R unchanged); None if there are none."""
    free = objective.free
    unpenalised = ((objective.quad_penalty == 0) & (objective.l1_penalty == 0))[free]
    cols = np.flatnonzero(unpenalised)
    if cols.size == 0:
        return None
    Z = np.zeros((int(free.sum()), cols.size))
    Z[cols, np.arange(cols.size)] = 1.0
    if objective.loss.shift_invariant and objective.n_outputs > 1:
        local = complement_basis(objective.fixed_directions()[cols])
        if local is not None:
            Z = Z @ local
    return Z if Z.shape[1] else None


def _margin_directions(objective, alive, Z):
    """Unit rows a_i Z (m, r), their training rows (``owner``) and weights y (m,).

    a_i = ∂(margin)/∂θ of each weighted (row, output): ỹ ∂z/∂θ for classifiers'
    margins, ∂(z_y − z_a)/∂θ for a softmax (one per other class a), ∂z/∂θ for
    regressors. The loss of the row changes along d only if a_iᵀd ≠ 0. y_i is the
    weighted slope −∂(s c L)/∂margin_i at θ̂ (times ‖a_i‖), so that Σ_i y_i a_i is
    −∇R(θ̂) on these directions. Sorted by owner.
    """
    obj, k = objective, objective.n_outputs
    positive = (obj.row_weight > 0) & alive[:, None]
    softmax = obj.loss.shift_invariant and k > 1
    slope = obj.row_weight * obj.training_dz()  # s c dL/dz at θ̂
    blocks, owners, weights = [], [], []
    for a in range(k):
        if softmax:
            rows = np.flatnonzero(alive & (obj.y != a))
            dZ = np.zeros((rows.size, k))
            dZ[np.arange(rows.size), obj.y[rows]] = 1.0
            dZ[:, a] = -1.0
            y = slope[rows, a]  # d(z_y − z_a) lowers L at rate p_a
        else:
            rows = np.flatnonzero(positive[:, a])
            dZ = np.zeros((rows.size, k))
            dZ[:, a] = (1.0 if obj.targets.classes is None
                        else signed_targets(obj.y[rows], k)[:, a])
            y = -slope[rows, a] * dZ[:, a]
        if rows.size:
            blocks.append(_jacobian_times(obj, obj.X[rows], dZ, Z))
            owners.append(rows)
            weights.append(y)
    if not blocks:
        return np.zeros((0, Z.shape[1])), np.zeros(0, dtype=int), np.zeros(0)
    A, owner, y = np.vstack(blocks), np.concatenate(owners), np.concatenate(weights)
    norm = np.linalg.norm(A, axis=1)
    keep = norm > 0
    A, owner, y = A[keep] / norm[keep, None], owner[keep], y[keep] * norm[keep]
    order = np.argsort(owner, kind="stable")
    return A[order], owner[order], y[order]


def _separable(A):
    """Whether some d has A d ≥ 0 and 1ᵀA d = 1 (rows weakly separated by d)."""
    if A.shape[0] == 0:
        return False
    res = linprog(np.zeros(A.shape[1]), A_ub=-A, b_ub=np.zeros(A.shape[0]),
                  A_eq=A.sum(axis=0)[None, :], b_eq=[1.0], bounds=(None, None),
                  method="highs")
    return res.status == 0


def settle(objective, removals, steps, defects, kind, stacklevel=5):
    """Final steps: exactly 0 for removals of rows without weight (R is unchanged),
    NaN for ``defects`` with one ``NoOptimumWarning`` naming them (in place)."""
    alive = weighted_rows(objective)
    for i, rows in enumerate(removals):
        if not alive[rows].any():
            steps[i] = 0.0
    bad = sorted(defects)
    steps[bad] = np.nan
    warn_no_optimum(defects, kind, stacklevel=stacklevel)
    return steps


def warn_no_optimum(defects, kind, stacklevel=3):
    """One ``NoOptimumWarning`` naming the first few removals in ``defects``."""
    if not defects:
        return
    items = sorted(defects.items())
    shown = "; ".join(f"{kind} {i}: {reason}" for i, reason in items[:5])
    more = f"; and {len(items) - 5} more" if len(items) > 5 else ""
    warnings.warn(
        f"Removing {len(items)} {kind}(s) leaves no refit to estimate here, so their "
        f"estimates are NaN ({shown}{more}). Use method='influence' for the "
        "first-order estimate.",
        NoOptimumWarning,
        stacklevel=stacklevel,
    )


def _downdate_parts(objective, solver):
    """S = H⁻¹ (p_free, p_free), D_j (n, k, k) and the leverage matrices M_j."""
    X, n, k = objective.X, objective.X.shape[0], objective.n_outputs
    p = int(objective.free.sum())
    S = solver.solve(np.eye(p))  # H⁻¹ on the (reduced) space of free parameters
    D = objective.row_curvature()  # D_j[a, b] = v_ja h_j,ab
    M = np.empty((n, k, k))
    for start in range(0, n, _ROW_BATCH):
        rows = slice(start, min(start + _ROW_BATCH, n))
        U = [dense(u) for u in objective.output_jacobians(X[rows])]
        US = [u @ S for u in U]
        A = np.stack([np.stack([np.einsum("ip,ip->i", US[a], U[b]) for b in range(k)],
                               axis=1) for a in range(k)], axis=1)  # U_jᵀ H⁻¹ U_j
        M[rows] = D[rows] @ A / n
    return S, D, M


def removal_steps(objective, solver, hessian, method, *, rows=None, verbose=0):
    """θ̂_{−j} − θ̂ estimated for every training row j, over all of θ (n, p).

    ``method`` "newton" (one Newton step) or "exact". Rows without weight get exactly
    0 (R is unchanged); rows whose removal leaves no optimum (``removal_defects``),
    an indefinite Newton step, or iterations that do not converge get NaN, with one
    ``NoOptimumWarning``. ``rows``: only these rows' removals are estimated (and
    warned about); the other rows' entries are left 0. ``verbose > 0`` reports the
    exact iterations' progress.
    """
    n = objective.X.shape[0]
    removals = [np.array([j]) for j in range(n)]
    wanted = np.arange(n) if rows is None else np.unique(rows)
    if not objective.linear:  # a network: each row's own exact Hessian
        steps = np.zeros((n, objective.n_params))
        steps[wanted], found = network_removal_steps(
            objective, hessian, [removals[j] for j in wanted], method,
            getattr(solver, "damping", 0.0), basis=solver.basis, verbose=verbose)
        defects = {int(wanted[i]): reason for i, reason in found.items()}
        return settle(objective, removals, steps, defects, "row")
    found = removal_defects(objective, [removals[j] for j in wanted])
    defects = {int(wanted[i]): reason for i, reason in found.items()}
    if method == "newton":
        steps, _ = newton_steps(objective, solver, hessian)
        for j in wanted[np.isnan(steps[wanted]).any(axis=1)]:
            defects.setdefault(int(j), INDEFINITE)
        steps = full_steps(objective, steps)
    else:
        skip = np.ones(n, dtype=bool)
        skip[wanted] = False
        skip[list(defects)] = True
        steps, failed = exact_steps(objective, solver, hessian,
                                    skip=np.flatnonzero(skip), verbose=verbose)
        defects.update(failed)
    steps = _grow_active_sets(objective, removals, steps, defects,
                              exact=method == "exact", only=wanted)
    if rows is not None:
        others = np.ones(n, dtype=bool)
        others[wanted] = False
        steps[others] = 0.0
    return settle(objective, removals, steps, defects, "row")


def full_steps(objective, steps):
    """Steps over the free parameters (m, p_free) as steps over all of θ (m, p)."""
    out = np.zeros((steps.shape[0], objective.n_params))
    out[:, objective.free] = steps
    return out


def _grow_active_sets(objective, removals, steps, defects, exact=True, only=None):
    """Exact removals off the full fit's active set under an elementwise L1
    penalty: refits that free a coefficient held at zero (``ACTIVE_SET_GROWS``) and
    estimates that are not optimal because a coefficient should stop at zero (its
    sign flipped under the chord iterations). Both are solved again by
    ``l1_exact_removal`` (in place on the full steps); the removals it solves leave
    ``defects``. ``only``: the positions of ``removals`` estimated (all when None)."""
    if not exact or not _elementwise_l1(objective) or not np.any(
            objective.l1_penalty > 0):
        return steps
    redo = [i for i, reason in defects.items() if reason is ACTIVE_SET_GROWS]
    positions = range(len(removals)) if only is None else only
    finite = [int(i) for i in positions
              if i not in defects and np.isfinite(steps[i]).all()]
    redo += [finite[i] for i in np.flatnonzero(
        _subgradient_residuals(objective, [removals[i] for i in finite],
                               steps[finite]) > _KKT_TOL * objective.l1_penalty.max())]
    for i in redo:
        step, ok = l1_exact_removal(objective, removals[i], steps[i])
        if ok:
            steps[i] = step
            defects.pop(i, None)
        else:
            defects[i] = ("the active-set iterations for its refit did not converge "
                          "(refit instead)")
    return steps


#: Optimality residual (relative to the largest L1 weight) above which an exact
#: L1 removal is solved again with the active set free to change.
_KKT_TOL = 1e-6


def _subgradient_residuals(objective, removals, steps):
    """‖smallest subgradient of R without each removal at θ̂ + step‖∞, (m,)."""
    a, free = objective.l1_penalty, objective.free
    if not len(removals):
        return np.zeros(0)
    theta = objective.params + steps
    if all(len(rows) == 1 for rows in removals):  # single rows: in batches
        rows = np.array([rows[0] for rows in removals])
        size = len(_row_batches(objective.X.shape[0], objective.n_outputs)[0])
        G = np.vstack([_removal_gradients(objective, rows[i:i + size],
                                          steps[i:i + size][:, free])
                       for i in range(0, len(rows), size)])
    else:
        G = np.vstack([_full_removal_gradient(objective, rows, step[free])
                       for rows, step in zip(removals, steps, strict=True)])
    g = G - a * np.sign(theta)  # the smooth part (G has the penalty's a sign(θ))
    on = (theta != 0) | (a == 0)
    r = np.where(on, g + a * np.sign(theta), np.maximum(np.abs(g) - a, 0.0))
    return np.abs(r).max(axis=1, initial=0.0)


def _elementwise_l1(objective):
    """Whether removals may free coefficients one at a time: an elementwise L1
    penalty, no bounds, no pinned rows (the hinge has its own path)."""
    return (getattr(objective, "active_set_violations", None) is None
            and (objective.fixed is None or not objective.fixed.any())
            and objective.train_dz is None and objective.pinned is None)


def l1_exact_removal(objective, rows, start, *, tol=1e-10, max_iter=50):
    """θ̂_{−rows} − θ̂ over all of θ for R = f + Σ_j a_j |θ_j| (f smooth), letting
    the active set change.

    Proximal Newton iterations: at θ, the quadratic model of f plus the L1 penalty,
    min_u gᵀ(u − θ) + ½ (u − θ)ᵀ H (u − θ) + Σ_j a_j |u_j|, is solved exactly by
    a feature-sign search (``_l1_quadratic``); the step is taken whole when it
    lowers the optimality residual (halved otherwise). One iteration is exact for a
    squared loss. At the end every zero coefficient satisfies |∂f/∂θ_j| ≤ a_j and
    the others ∂f/∂θ_j = −a_j sign(θ_j).

    Parameters
    ----------
    objective : LinearObjective
    rows : array-like of int
        The removed training rows.
    start : ndarray of shape (n_params,)
        Initial step (e.g. the estimate on the full fit's active set).

    Returns
    -------
    step : ndarray of shape (n_params,)
    converged : bool
    """
    p, a = objective.n_params, objective.l1_penalty
    theta0 = objective.params
    smooth = objective.replace(row_weight=removal_weights(objective, np.atleast_1d(rows)),
                               l1_penalty=np.zeros(p), free=np.ones(p, dtype=bool))
    scale = max(1.0, np.abs(theta0).max(initial=0.0))
    gscale = max(1.0, np.abs(a).max(initial=0.0))

    def residual(th):  # the smallest subgradient of R without the rows, ∞-norm
        g = smooth.replace(params=th).gradient()
        r = np.where(th != 0, g + a * np.sign(th),
                     np.sign(g) * np.maximum(np.abs(g) - a, 0.0))
        return np.abs(r).max(initial=0.0)

    theta = theta0 + np.nan_to_num(start)
    if residual(theta) > residual(theta0):
        theta = theta0.copy()
    for _ in range(max_iter):
        at = smooth.replace(params=theta)
        g, H = at.gradient(), at.hessian()
        u = _l1_quadratic(g - H @ theta, H, a, theta)
        if u is None:
            return theta - theta0, False
        d, t, now = u - theta, 1.0, residual(theta)
        new = u  # the whole step, with its exact zeros
        for _ in range(30):
            if residual(new) < now or np.abs(t * d).max() <= tol * scale:
                break
            t /= 2
            new = theta + t * d
        theta = new
        if np.abs(t * d).max(initial=0.0) <= tol * scale:
            break
    else:
        return theta - theta0, False
    return theta - theta0, bool(residual(theta) <= 1e-7 * gscale)


def _l1_quadratic(c, H, a, u, *, max_sweeps=20_000):
    """argmin_u cᵀu + ½ uᵀHu + Σ_j a_j |u_j| from ``u``; None if not found.

    Coordinate descent (soft-thresholding one coefficient at a time) finds the
    active set and the signs; the solution is then solved for exactly on them,
    −H_AA⁻¹ (c_A + a_A s_A), and accepted when it keeps the signs and every zero
    coefficient's gradient stays within its penalty.
    """
    p = len(c)
    u = u.copy()
    diag = np.diag(H).copy()
    if np.any(diag <= 0):
        return None
    tol = 1e-13 * max(1.0, np.abs(c).max(), np.abs(a).max())

    def polished(v):
        active = (v != 0) | (a == 0)
        idx, sgn = np.flatnonzero(active), np.sign(v)
        out = np.zeros(p)
        try:
            out[idx] = np.linalg.solve(H[np.ix_(idx, idx)],
                                       -(c[idx] + a[idx] * sgn[idx]))
        except np.linalg.LinAlgError:
            return None
        grad = c + H @ out
        penalised = active & (a > 0)
        kept = np.all(np.sign(out[penalised]) == sgn[penalised])
        inside = np.all(np.abs(grad[~active]) <= a[~active] * (1 + 1e-9) + tol)
        return out if kept and inside else None

    grad = c + H @ u
    for sweep in range(max_sweeps):
        biggest = 0.0
        for j in range(p):
            old = u[j]
            z = old - grad[j] / diag[j]  # the unpenalised coordinate minimum
            new = np.sign(z) * max(abs(z) - a[j] / diag[j], 0.0)
            if new != old:
                grad += H[:, j] * (new - old)
                u[j] = new
                biggest = max(biggest, abs(new - old))
        still = biggest <= 1e-15 * max(1.0, np.abs(u).max())
        if sweep % 10 == 9 or still:
            exact = polished(u)
            if exact is not None:
                return exact
        if still:
            break
    return None


def network_removal_steps(objective, hessian, removals, method, damping=0.0, *,
                          basis=None, tol=1e-10, max_iter=100, verbose=0):
    """θ̂_{−G} − θ̂ of a network for each removal G (rows), over all of θ (m, p).

    With ``A = H + λI`` (``hessian``, λ = ``damping``), the removed rows' exact
    Hessian ``H_G = (1/n) Σ_{j∈G} s_j ∇²L_j`` (``rows_hessian``: Gauss–Newton and
    second-order terms; a network's is not ``U_j D_j U_jᵀ``, so the leverage form
    above does not apply) and their gradient ``b_G = (1/n) Σ_{j∈G} s_j ∇L_j``:

    - "newton": one Newton step, ``Δθ_G = (A − H_G)⁻¹ b_G``, one p × p
      factorisation per removal;
    - "exact": from that step, iterations to the stationary point of::

          E_G(θ) = R_{−G}(θ) − gᵀ(θ − θ̂) + (λ/2) ‖θ − θ̂‖²,   g = ∇R(θ̂),

      of which "newton" is the first Newton step from θ̂. At an optimum (g = 0) and
      λ = 0 this is the leave-G-out refit continued from θ̂ (the local optimum it
      reaches); λ > 0 is the paper's damping taken exactly: the refit held near θ̂
      by ``λ/2 ‖θ − θ̂‖²``, whose quadratic model at θ̂ is the damped one of the
      Newton step; g ≠ 0 (a fit stopped short of its optimum) is discounted as in
      Koh & Liang's appendix B, so that only the removal's own effect is measured.
      Chord iterations ``Δ ← Δ − (A − H_G)⁻¹ ∇E_G(θ̂ + Δ)`` (the factorisation
      reused, one gradient pass each). They converge only to local minima of
      E_G (at a saddle with Hessian H*, ``I − (A − H_G)⁻¹ H*`` has an eigenvalue
      above 1). Where the one-step matrix is indefinite, or the chord stops
      contracting (e.g. a nearly singular one-step matrix sends the Newton step
      far), Levenberg–Marquardt steps with E_G's exact Hessian descend from θ̂
      instead (``_network_descent``), into the local minimum of θ̂'s basin.

    A non-convex R may have several local minima without G: a refit by another
    optimiser (e.g. L-BFGS from θ̂) can land in a farther one when the removal
    moves the weights much. Every step is on the complement of ``basis`` (a
    softmax's flat directions). Returns (steps (m, p), {position: reason}) with
    NaN steps where the Newton step's matrix is not positive definite ("newton")
    or no local minimum is reached within ``max_iter`` ("exact").
    """
    if method not in ("newton", "exact"):
        raise ValueError(f"method must be 'newton' or 'exact'; got {method!r}.")
    n, p = objective.n_samples, objective.n_params
    if len(removals) * p**3 > 1e12:
        raise NotImplementedError(
            f"method={method!r} for a network factorises one {p} × {p} matrix per "
            f"removal ({len(removals)} of them): too costly. Use method='influence'."
        )
    G = objective.train_gradients()[0]
    steps = np.zeros((len(removals), p))
    failed = {}
    for i, rows in enumerate(removals):
        w = objective.sample_weight[rows] / n
        if not np.any(w > 0):
            continue
        A = hessian - objective.rows_hessian(rows)
        b = w @ G[rows]
        if basis is not None:
            A, b = basis.T @ A @ basis, basis.T @ b
        A = 0.5 * (A + A.T)  # also E_G's Hessian at θ̂ (below)
        try:
            factor = np.linalg.cholesky(A)
            step = _cholesky_solve(factor, b)
        except np.linalg.LinAlgError:
            if method == "newton":
                steps[i], failed[i] = np.nan, INDEFINITE
                continue
            factor, step = None, np.zeros_like(b)  # exact: descend from θ̂
        if method == "exact":
            step, reason = _network_exact(objective, rows, A, factor, step,
                                          damping, basis, tol, max_iter)
            if reason is not None:
                steps[i], failed[i] = np.nan, reason
                continue
        steps[i] = step if basis is None else basis @ step
        if verbose and method == "exact" and (i + 1) % 100 == 0:
            _progress(verbose, f"exact removals: {i + 1} of {len(removals)} done")
    return steps, failed


def _network_exact(objective, rows, A, factor, step, damping, basis, tol,
                   max_iter):
    """``network_removal_steps``' iterations for one removal: (step, None) at a
    local minimum of E_G, or (step, reason) where none was reached. ``A``: the
    one-step matrix (E_G's Hessian at θ̂); ``factor``: its Cholesky factor, None
    where it is indefinite (the iterations then start from θ̂)."""
    theta0 = objective.params
    removed = objective.replace(row_weight=removal_weights(objective, rows))
    tilt = objective.gradient()  # ∇R(θ̂): 0 at an optimum

    def at(u):  # E_G's risk at θ̂ + Z u, E_G's value and reduced gradient
        d = u if basis is None else basis @ u
        risk = removed.replace(params=theta0 + d)
        g = risk.gradient() - tilt + damping * d
        value = risk.value() - tilt @ d + 0.5 * damping * d @ d
        return risk, value, (g if basis is None else basis.T @ g)

    scale = max(1.0, np.abs(theta0).max(initial=0.0))
    # chord: the one-step factorisation reused; each correction must shrink, the
    # first below the Newton step itself
    u, last, steps = step, np.abs(step).max(initial=0.0), 0
    while factor is not None and steps < max_iter:
        delta = _cholesky_solve(factor, at(u)[2])
        size = np.abs(delta).max(initial=0.0)
        if not size <= 0.9 * last:
            break
        u, last, steps = u - delta, size, steps + 1
        if size <= tol * scale:
            return u, None
    if steps:  # the chord contracted, then stalled: continue from where it got
        return _network_descent(at, u, damping, basis, tol * scale, max_iter)
    # the Newton step is undefined, or no guide (the chord diverges at once):
    # descend from θ̂, where E_G's Hessian is the one-step matrix
    return _network_descent(at, np.zeros_like(step), damping, basis, tol * scale,
                            max_iter, hessian=A)


def _network_descent(at, u, damping, basis, tol, max_iter, hessian=None):
    """Levenberg–Marquardt on E_G from u: steps ``(∇²E_G + μI)⁻¹ ∇E_G`` with μ ≥ 0
    at least what makes the matrix positive definite, accepted when E_G falls by a
    quarter of the quadratic model's prediction (μ then shrinks; otherwise it grows
    tenfold), so the iterates descend into the basin of u. Converged when E_G's
    Hessian is positive definite and its Newton step is below ``tol``: a local
    minimum. ``hessian``: E_G's (reduced) Hessian at u, when known.
    Returns (u, None) or (u, reason)."""
    risk, value, g = at(u)
    mu, H, fresh = 0.0, hessian, hessian is not None
    for _ in range(max_iter):
        if H is None:  # E_G's Hessian at the current iterate
            H = risk.hessian() + damping * np.eye(risk.n_params)
            if basis is not None:
                H = basis.T @ H @ basis
            H, fresh = 0.5 * (H + H.T), True
        if fresh:
            fresh = False
            newton, _ = _shifted_cholesky(H, 0.0, shift=False)
            if newton is not None:  # E_G's Hessian is positive definite here
                delta = _cholesky_solve(newton, g)
                if np.abs(delta).max(initial=0.0) <= tol:
                    return u - delta, None  # the Newton step is below tol: a minimum
        factor, mu = _shifted_cholesky(H, mu)
        if factor is None:
            break
        delta = _cholesky_solve(factor, g)
        risk_new, value_new, g_new = at(u - delta)
        predicted = g @ delta - 0.5 * delta @ (H @ delta)  # the model's decrease
        noise = 1e-12 * max(1.0, abs(value))  # below it, E_G's change is round-off
        if value - value_new >= 0.25 * predicted or (
                predicted <= noise and np.linalg.norm(g_new) < np.linalg.norm(g)):
            u, risk, value, g, H = u - delta, risk_new, value_new, g_new, None
            mu /= 10
        else:
            mu = max(10 * mu, 1e-6 * np.abs(np.diag(H)).max(initial=0.0))
    return u, (f"no local minimum of the objective without it was reached within "
               f"max_iter={max_iter} steps (try damping > 0)")


def _shifted_cholesky(A, mu=0.0, *, shift=True):
    """(Cholesky factor of A + μ'I, μ') for the least μ' on the ladder μ, 10μ, …
    (from 1e-10 s, s the largest diagonal entry; μ below it counts as 0) that
    factorises; (None, inf) if none up to 1e3 s does (``shift=False``: μ' = μ)."""
    top = max(np.abs(np.diag(A)).max(initial=0.0), 1e-300)
    mu = 0.0 if mu < 1e-10 * top else mu
    while mu <= 1e3 * top:
        try:
            return np.linalg.cholesky(A + mu * np.eye(len(A))), mu
        except np.linalg.LinAlgError:
            if not shift:
                break
            mu = max(10 * mu, 1e-10 * top)
    return None, np.inf


def newton_weights(M, w):
    """q_j = (I − M_j)⁻¹ w_j (n, k), NaN where the downdated Hessian is indefinite.

    H'_j = H − U_j D_j U_jᵀ/n is positive definite (H is) iff every eigenvalue of
    M_j = D_j U_jᵀ H⁻¹ U_j / n (real, ≥ 0) is below 1. Returns (q, indefinite).
    """
    k = M.shape[1]
    top = M[:, 0, 0] if k == 1 else np.linalg.eigvals(M).real.max(axis=1)
    indefinite = ~(top < 1.0 - 1e-10)
    q = np.full(w.shape, np.nan)
    ok = ~indefinite
    q[ok] = np.linalg.solve(np.eye(k) - M[ok], w[ok][:, :, None])[:, :, 0]
    return q, indefinite


def newton_steps(objective, solver, hessian, parts=None):
    """Δθ_j for every training row (n, p_free) and the leverage matrices (n, k, k).

    ``hessian`` is the (damped) Hessian over the free parameters that ``solver``
    factorised; it is needed to release pinned rows. Rows whose downdated Hessian is
    not positive definite get NaN steps (no warning: see ``removal_steps``).

    When the class weights are recomputed from the sample weights ("balanced"),
    removing row j moves every class weight: the step is then ``−H'_j⁻¹ ∇R_{−j}(θ̂)``
    with the exact gradient at the recomputed weights. When one scale moves every
    weight (normalised sample weights), H'_j is the exact Hessian at the new scale
    (``_uniform_scale_solver``); for per-class weights it is the row's downdate (the
    class-weight shift of the Hessian, O(1/n), is left to method="exact").
    """
    X, n, k = objective.X, objective.X.shape[0], objective.n_outputs
    S, D, M = _downdate_parts(objective, solver) if parts is None else parts
    if reweights_on_removal(objective) and objective.train_dz is not None:
        return _reweighted_hinge_steps(objective, S, hessian), M
    if reweights_on_removal(objective):
        scaled = _uniform_scale_solver(objective, solver, hessian)
        _, indefinite = newton_weights(M, np.zeros((n, k)))
        steps = np.full((n, S.shape[0]), np.nan)
        for rows in _row_batches(n, k):
            U = [dense(u) for u in objective.output_jacobians(X[rows])]
            g = _removal_gradients(objective, rows, np.zeros((len(rows), S.shape[0])))
            g = g[:, objective.free]
            if scaled is not None:
                steps[rows] = -scaled(rows, U, g)
            else:
                keep = ~indefinite[rows]
                steps[rows[keep]] = -_chord(objective, S, D, M, rows[keep],
                                            [u[keep] for u in U], g[keep])
        return steps, M
    w = objective.class_weight * objective.training_dz()
    q, indefinite = newton_weights(M, w)
    q[indefinite] = 0.0
    G = dense(objective.row_gradients(X, q))  # U_j q_j
    steps = solver.solve(G.T).T
    steps[indefinite] = np.nan
    if objective.pinned is not None and objective.pinned.any():
        _release_pins(objective, S, hessian, G, steps)
    return steps * (objective.sample_weight / n)[:, None], M


def _reweighted_hinge_steps(objective, S, H):
    """Newton steps of the exact hinge / ε-tube when a removal reweighs every row
    ("balanced" class weights recomputed): ``−H_j⁻¹ ∇R_{−j}(θ̂)``, H_j the pinned
    system with row j's pins released. No row is curved, so ∇R_{−j}(θ̂) is the
    subgradients (``train_dz``) at the removal's row weights, and H is unchanged."""
    n, k = objective.X.shape[0], objective.n_outputs
    dz = objective.training_dz()
    G = np.empty((n, S.shape[0]))
    for rows in _row_batches(n, k):
        W = single_removal_weights(objective, rows) - objective.row_weight[:, None, :]
        # Σ_i ΔW_i dL/dz_i ∂z_i/∂θ for each removed row
        G[rows] = -_data_gradients(objective, W * dz[:, None, :])[:, objective.free]
    steps = G @ S.T
    if objective.pinned is not None and objective.pinned.any():
        _release_pins(objective, S, H, G, steps)
    return steps


def _release_pins(objective, S, H, G, steps):
    """Steps of pinned rows with their own pins released (in place); NaN where the
    objective is flat along the released direction (e.g. the only support vector
    fixing an unpenalised intercept: use smoothing > 0)."""
    _, rows = np.nonzero(objective.pinned.T)  # by output, then row
    A = objective.pin_gradients()  # (p, m) pins, in the same order
    U = A @ np.linalg.pinv(A.T @ A)  # column i ⟂ every pin but i
    U /= np.linalg.norm(U, axis=0)
    V = U - S @ (H @ U)  # v = (I − S H) u
    curvature = np.einsum("pi,pi->i", V, H @ V)  # vᵀ H v
    flat = curvature <= 1e-12 * np.abs(np.diag(H)).max()
    for i, j in enumerate(rows):
        if flat[i]:
            steps[j] = np.nan
        else:
            steps[j] += V[:, i] * (V[:, i] @ G[j]) / curvature[i]


def exact_steps(objective, solver, hessian, *, skip=(), tol=1e-10, max_iter=100,
                verbose=0):
    """θ̂_{−j} − θ̂ for every training row, to ``tol`` (relative, ∞-norm).

    Chord iterations Δ ← Δ − H'_j⁻¹ ∇R_{−j}(θ̂ + Δ) from the Newton step, with H'_j
    the downdated Hessian at θ̂; rows where the chord stops contracting (or whose
    Newton step is undefined) continue with full Newton steps (``newton_refine``).
    Rows in ``skip`` and rows without weight are not iterated. Returns (steps over
    all of θ (n, p), {row: reason} for rows that did not converge). ``verbose > 0`` prints
    the progress (rows done, iterations) to stderr.
    """
    refusal = getattr(objective, "exact_removal_refusal", None)
    if refusal is not None:  # a family without an exact removal path says why
        raise NotImplementedError(refusal)
    own = getattr(objective, "exact_removal_steps", None)
    if own is not None:  # a family's own exact removal (e.g. re-solving an LP)
        return _own_exact_steps(objective, own, skip)
    if objective.train_dz is not None:  # hinge / ε-tube: follow the solution path
        todo = np.ones(objective.X.shape[0], dtype=bool)
        todo[list(skip)] = False
        rows = np.flatnonzero(todo)
        steps = np.zeros((len(todo), objective.n_params))
        steps[rows], failed = path_steps(objective, [np.array([j]) for j in rows])
        return steps, {int(rows[i]): reason for i, reason in failed.items()}
    X, n, k = objective.X, objective.X.shape[0], objective.n_outputs
    parts = S, D, M = _downdate_parts(objective, solver)
    steps, _ = newton_steps(objective, solver, hessian, parts)
    todo = weighted_rows(objective)
    todo[list(skip)] = False
    stalled = np.flatnonzero(todo & np.isnan(steps).any(axis=1)).tolist()
    steps[stalled] = 0.0  # the Newton step is undefined: start from θ̂
    todo[stalled] = False
    scale = max(1.0, np.abs(objective.params).max(initial=0.0))
    done = 0
    for rows in _row_batches(n, k):
        done += len(rows)
        rows = rows[todo[rows]]
        delta = steps[rows].copy()
        U = [dense(u) for u in objective.output_jacobians(X[rows])]
        active = np.ones(len(rows), dtype=bool)
        last = np.full(len(rows), np.inf)
        n_iter = 0
        for _ in range(max_iter):
            if not active.any():
                break
            n_iter += 1
            g = _removal_gradients(objective, rows[active], delta[active])
            step = _chord(objective, S, D, M, rows[active], [u[active] for u in U],
                          g[:, objective.free])
            size = np.abs(step).max(axis=1)
            grew = ~(size <= 0.9 * last[active])  # the chord stopped contracting
            idx = np.flatnonzero(active)
            delta[idx[~grew]] -= step[~grew]
            last[idx] = size
            active[idx[(size <= tol * scale) | grew]] = False
            stalled.extend(rows[idx[grew & ~(size <= tol * scale)]].tolist())
        stalled.extend(rows[active].tolist())
        steps[rows] = delta
        _progress(verbose, f"exact leave-one-out: {done} of {n} rows, chord iterations "
                           f"converged in {n_iter} step(s)")
    failed = {}
    if stalled:
        _progress(verbose, f"exact leave-one-out: {len(stalled)} row(s) continue with "
                           "full Newton steps")
    for j in stalled:  # curvature changed along the way: full (semismooth) Newton
        steps[j], ok = newton_refine(objective, solver, j, steps[j], tol * scale,
                                     max_iter)
        if not ok:
            failed[int(j)] = f"did not converge within max_iter={max_iter}"
    failed.update(_check_exact_result(objective, steps, todo))
    return full_steps(objective, steps), failed


def _own_exact_steps(objective, own, skip):
    """``objective.exact_removal_steps`` for every weighted row not in ``skip``."""
    n = objective.X.shape[0]
    todo = weighted_rows(objective)
    todo[list(skip)] = False
    rows = np.flatnonzero(todo)
    steps = np.zeros((n, objective.n_params))
    found, failed = own([np.array([j]) for j in rows])
    steps[rows] = found
    return steps, {int(rows[i]): reason for i, reason in failed.items()}


def _progress(verbose, message):
    if verbose:
        print(f"[skinfluence] {message}", file=sys.stderr, flush=True)


def _row_batches(n, k):
    """Batches of removed rows, so that (n, rows, k) blocks stay near 16M floats."""
    batch = max(1, (16 * 2**20) // (n * k))
    return [np.arange(i, min(i + batch, n)) for i in range(0, n, batch)]


def _uniform_scale_solver(objective, solver, hessian):
    """Exact Newton steps when removing a row rescales every other row's weight.

    Families whose sample weights scikit-learn normalises (``removal_row_weight``,
    one weight group) refit without row j with every weight scaled by
    ρ = S / (S − s_j). The data part of the Hessian scales with it, the penalty part
    Q (with the damping) does not::

        H'_j = ρ (H − Q − U_j D_j U_jᵀ / n) + Q = ρ (H − ε Q − U_j D_j U_jᵀ / n),

    ε = s_j / S. With the generalized eigendecomposition Q V = H V Λ, Vᵀ H V = I,
    (H − ε Q)⁻¹ = V (I − ε Λ)⁻¹ Vᵀ for every ε at once, and Woodbury adds the row's
    rank-k downdate. Returns ``solve(rows, U, g) -> H'_j⁻¹ g_j`` per removed row (NaN
    where H'_j is not positive definite), or None when the family rescales weights
    otherwise (class weights by class) or fixed directions restrict the solution.
    """
    if (getattr(objective, "removal_row_weight", None) is None
            or objective.weight_jacobian is None
            or objective.weight_jacobian.shape != (1, 1) or hessian is None
            or solver.basis is not None):
        return None
    from scipy.linalg import eigh

    from ._objective import LinearObjective

    data = objective.replace(quad_penalty=np.zeros_like(objective.quad_penalty))
    Q = hessian - LinearObjective.hessian(data)  # penalty curvature and damping
    lam, V = eigh(0.5 * (Q + Q.T), hessian)
    s = objective.sample_weight
    n, k = objective.X.shape[0], objective.n_outputs
    D = objective.row_curvature()

    def solve(rows, U, g):
        eps = s[rows] / s.sum()
        rho = 1.0 / (1.0 - eps)
        scale = 1.0 / (1.0 - eps[:, None] * lam[None, :])  # (m, p): (I − εΛ)⁻¹
        Bg = ((g @ V) * scale) @ V.T  # (H − εQ)⁻¹ g_j
        BU = [((u @ V) * scale) @ V.T for u in U]
        A = np.stack([np.stack([np.einsum("ip,ip->i", BU[a], U[b]) for b in range(k)],
                               axis=1) for a in range(k)], axis=1)  # U_jᵀ B U_j
        Mj = D[rows] @ A / n  # D_j U_jᵀ B U_j / n
        Ug = np.stack([np.einsum("ip,ip->i", u, Bg) for u in U], axis=1)
        top = Mj[:, 0, 0] if k == 1 else np.linalg.eigvals(Mj).real.max(axis=1)
        out = np.full(g.shape, np.nan)
        ok = top < 1.0 - 1e-10
        r = np.linalg.solve(np.eye(k) - Mj[ok], D[rows][ok] @ Ug[ok, :, None] / n)
        corr = sum(BU[a][ok] * r[:, a] for a in range(k))
        out[ok] = (Bg[ok] + corr) / rho[ok, None]  # ρ⁻¹ (B⁻¹ − U_j D_j U_jᵀ/n)⁻¹ g
        return out

    return solve


def _chord(objective, S, D, M, rows, U, g):
    """H'_j⁻¹ g_j for each removed row j (Woodbury on the row's rank-k downdate)."""
    n, k = objective.X.shape[0], objective.n_outputs
    Sg = g @ S
    Ug = np.stack([np.einsum("ip,ip->i", u, Sg) for u in U], axis=1)  # U_jᵀ H⁻¹ g
    r = np.linalg.solve(np.eye(k) - M[rows], (D[rows] @ Ug[:, :, None]) / n)[:, :, 0]
    return Sg + sum(u * r[:, [a]] for a, u in enumerate(U)) @ S


def newton_refine(objective, solver, rows, delta, tol, max_iter):
    """Newton steps on R without ``rows``, with its exact (generalized) Hessian at
    each iterate, backtracking on the gradient norm. Returns (step, converged)."""
    removed = objective.replace(
        row_weight=removal_weights(objective, np.atleast_1d(rows)))
    basis = solver.basis
    free = objective.free
    full = objective.params

    def set_params(d):
        nonlocal removed
        theta = full.copy()
        theta[free] += d
        removed = removed.replace(params=theta)
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
    dZ = dZ.reshape(n, m, k) * single_removal_weights(objective, rows)
    return _data_gradients(objective, dZ) + _penalty_gradient(objective, theta)


def _data_gradients(objective, dZ):
    """(1/n) Σ_i dZ[i, m] ∂z_i/∂θ for each column m of weighted dL/dz (n, m, k):
    the data part of m gradients over all of θ, (m, p)."""
    X, (n, m, k) = objective.X, dZ.shape
    grad = [np.asarray(X.T @ dZ.reshape(n, m * k)).T.reshape(m, -1)]
    if objective.fit_intercept:
        grad.append(dZ.sum(axis=0))
    return np.hstack(grad) / n


def _penalty_gradient(objective, theta):
    """∇ of the penalties at parameter rows theta (m, p): ``q ⊙ θ + a ⊙ sign(θ)``, or
    the objective's own ``penalty_gradient(theta)`` when it has other penalties."""
    own = getattr(objective, "penalty_gradient", None)
    if own is not None:
        return own(theta)
    return objective.quad_penalty * theta + objective.l1_penalty * np.sign(theta)


def _check_exact_result(objective, steps, rows):
    """Removals (``rows``: mask) whose exact estimate is off the full fit's active set,
    as {row: reason}: their estimates become NaN.

    The exact steps move the parameters the full fit left free. A removal whose refit
    frees a coefficient the L1 penalty holds at zero (its gradient exceeds the
    penalty there) changes the active set, which these steps do not follow yet. An
    objective with another penalty decides with its own
    ``active_set_violations(gradients)`` (rows (m, p) of ∇R_{−j} at the exact
    estimates → (freed, kinked), two (m,) bool): kinked removals would zero an active
    group, so no optimum keeps the active set.
    """
    rows = np.flatnonzero(rows & np.isfinite(steps).all(axis=1))
    if not rows.size:
        return {}
    return _active_set_changes(objective, rows,
                               lambda: _removal_gradients(objective, rows, steps[rows]))


def _active_set_changes(objective, removals, gradients):
    """{removal: reason} for removals whose exact estimate leaves the active set.

    ``gradients``: rows (m, p) of ∇R without each removal at its estimate (or a
    callable giving them, evaluated only when some coefficient is held at zero).
    """
    own = getattr(objective, "active_set_violations", None)
    fixed = ~objective.free & (objective.l1_penalty > 0)
    off = {}
    rows = np.asarray(removals)
    if own is not None or fixed.any():
        g = gradients() if callable(gradients) else gradients
        if own is None:
            freed = (np.abs(g[:, fixed])
                     > objective.l1_penalty[fixed] * (1 + 1e-8)).any(axis=1)
        else:
            freed, kinked = own(g)
            off.update({int(j): "its refit zeroes coefficients of the full fit's "
                        "active set (a kink of the penalty), which no estimate on "
                        "that active set reaches" for j in rows[kinked]})
        off.update({int(j): ACTIVE_SET_GROWS for j in rows[freed]})
    return off


def loss_change(objective, X_test, y_test, steps, loss=None):
    """L(z_t at θ̂ + Δθ_j) − L(z_t at θ̂) for every test row t and step j (over all
    of θ, (n_steps, p): removals may move coefficients the full fit held at zero)."""
    if not objective.linear:  # the network's output at θ̂ + Δθ_j: a forward pass each
        theta, Z = objective.params, objective.decision(X_test)
        shift = np.stack([objective.decision_at(X_test, theta + s) for s in steps],
                         axis=1) - Z[:, None, :]
        return shifted_loss_change(loss or objective.loss, Z, y_test, shift)
    every = objective.replace(free=np.ones(objective.n_params, dtype=bool))
    shift = np.stack([np.asarray(u @ steps.T) for u in
                      every.output_jacobians(X_test)], axis=2)  # (T, n, k)
    return shifted_loss_change(loss or objective.loss, objective.decision(X_test),
                               y_test, shift)


def shifted_loss_change(loss, Z, y, shift):
    """L(z_t + Δz_tj) − L(z_t) for decision values Z (T, k) and shifts (T, n, k)."""
    T, n, k = shift.shape
    shifted = (Z[:, None, :] + shift).reshape(T * n, k)
    new = loss.value_grad(shifted, np.repeat(y, n, axis=0))[0].reshape(T, n)
    return new - loss.value_grad(Z, y)[0][:, None]


# -- groups of rows (the formulas: skinfluence.groups) ---------------------------------
def check_not_everything(objective, members):
    """No model exists without every weighted training row: refuse such a group."""
    alive = weighted_rows(objective)
    for g, rows in enumerate(members):
        if alive[rows].sum() == alive.sum():
            raise ValueError(
                f"group {g} holds every training row with positive weight: no model "
                "exists without it, so its removal has no refit to estimate. Remove "
                "it from groups (or use method='influence' for the first-order sum)."
            )


def group_steps(objective, solver, hessian, members, method):
    """θ̂_{−G} − θ̂ estimated for every group, over all of θ (n_groups, p).

    ``method`` "newton" (``newton_group_steps``) or "exact" (``exact_group_steps``).
    Groups of rows without weight get exactly 0 (R is unchanged); groups whose
    removal leaves no optimum (``_removal.removal_defects``), an indefinite Newton
    step, or iterations that do not converge get NaN, with one
    ``NoOptimumWarning`` naming them.
    """
    if not objective.linear:  # a network: the group's own exact Hessian
        if hessian is None:
            raise NotImplementedError(
                f"group removals with method={method!r} for a neural network need "
                "the factorised Hessian: refit the explainer with "
                "hessian_solver='cholesky' (or use method='influence')."
            )
        steps, defects = network_removal_steps(
            objective, hessian, members, method, getattr(solver, "damping", 0.0),
            basis=solver.basis)
        return settle(objective, members, steps, defects, "group")
    defects = removal_defects(objective, members)
    todo = [g for g in range(len(members)) if g not in defects]
    steps = np.full((len(members), objective.n_params), np.nan)
    if todo:
        some = [members[g] for g in todo]
        if method == "exact":
            found, failed = exact_group_steps(objective, solver, hessian, some)
        else:
            found = full_steps(objective, newton_group_steps(objective, solver,
                                                             hessian, some))
            failed = {i: INDEFINITE for i in np.flatnonzero(np.isnan(found).any(1))}
        steps[todo] = found
        defects.update({todo[i]: reason for i, reason in failed.items()})
    steps = _grow_active_sets(objective, members, steps, defects,
                              exact=method == "exact")
    return settle(objective, members, steps, defects, "group")


def exact_group_steps(objective, solver, hessian, members, *, tol=1e-10,
                      max_iter=100):
    """θ̂_{−G} − θ̂ over all of θ for every group (n_groups, p).

    Newton steps on R without the group (``newton_refine``) from its one-step
    estimate (from θ̂ where that step is undefined). Returns (steps, {position:
    reason} for groups that did not converge). Groups of rows without weight are
    not iterated.
    """
    own = getattr(objective, "exact_removal_steps", None)
    if own is not None:  # a family's own exact removal (e.g. re-solving an LP)
        return own(members)
    if objective.train_dz is not None:  # hinge / ε-tube: follow the solution path
        return path_steps(objective, members)
    steps = newton_group_steps(objective, solver, hessian, members)
    steps[~np.isfinite(steps).all(axis=1)] = 0.0  # no Newton step: start from θ̂
    scale = max(1.0, np.abs(objective.params).max(initial=0.0))
    alive = weighted_rows(objective)
    failed = {}
    for g, rows in enumerate(members):
        if not alive[rows].any():
            continue
        steps[g], ok = newton_refine(objective, solver, rows, steps[g], tol * scale,
                                     max_iter)
        if not ok:
            failed[g] = f"did not converge within max_iter={max_iter}"
    done = [g for g in range(len(members)) if g not in failed and alive[members[g]].any()]
    if done:
        gradients = np.vstack([_full_removal_gradient(objective, members[g], steps[g])
                               for g in done])
        off = _active_set_changes(objective, np.asarray(done), gradients)
        failed.update(off)
    return full_steps(objective, steps), failed


def _full_removal_gradient(objective, rows, step):
    """∇R without ``rows`` at θ̂ + step over every parameter (fixed ones too), (p,):
    as ``_removal_gradients`` does for single rows."""
    X, k, d = objective.X, objective.n_outputs, objective.n_features
    theta = objective.params.copy()
    theta[objective.free] += step
    Z = np.asarray(X @ theta[: k * d].reshape(k, d).T)
    if objective.fit_intercept:
        Z = Z + theta[k * d :]
    dZ = objective.loss.value_grad(Z, objective.y)[1] * \
        removal_weights(objective, np.atleast_1d(rows))
    return (_data_gradients(objective, dZ[:, None, :])[0]
            + _penalty_gradient(objective, theta[None, :])[0])


def _balanced_group_steps(objective, solver, hessian, members):
    """Newton steps when removing rows recomputes every class weight ("balanced").

    The objective without the group differs from R on every row, not by a low-rank
    term: its gradient and Hessian at θ̂ (at the recomputed class weights) are
    formed directly and solved on the complement of the fixed directions.
    """
    if objective.train_dz is not None:
        raise NotImplementedError(
            "group_influence(method='newton') for a hinge SVM with "
            "class_weight='balanced' is not supported yet: use method='exact' (the "
            "solution path to the recomputed class weights)."
        )
    basis = solver.basis
    steps = np.empty((len(members), hessian.shape[0]))
    for g, rows in enumerate(members):
        removed = objective.replace(row_weight=removal_weights(objective, rows))
        # H without the group = the (damped) H plus the Hessian of the weight change
        change = objective.replace(
            row_weight=removed.row_weight - objective.row_weight,
            quad_penalty=np.zeros_like(objective.quad_penalty))
        # the data part only: a family's own penalty curvature (hessian() of a
        # subclass, e.g. a group penalty) is already in ``hessian``
        H, grad = hessian + LinearObjective.hessian(change), removed.gradient()
        if basis is not None:
            H, grad = basis.T @ H @ basis, basis.T @ grad
        try:
            step = _cholesky_solve(np.linalg.cholesky(H), grad)
        except np.linalg.LinAlgError:
            steps[g] = np.nan
            continue
        steps[g] = -(basis @ step if basis is not None else step)
    return steps


def newton_group_steps(objective, solver, hessian, members, strategy="auto"):
    """Δθ_G over the free parameters for every group, shape (n_groups, p_free).

    Parameters
    ----------
    objective : LinearObjective
        The explained objective.
    solver : object
        The factorised (damped) Hessian; ``solve(B)`` applies H⁻¹ on the complement
        of the fixed directions, ``basis`` is that complement (or None).
    hessian : ndarray of shape (p_free, p_free) or None
        The damped Hessian ``solver`` factorised; None for an iterative solver,
        which takes the "woodbury" strategy (not available with class weights
        computed from the sample weights).
    members : list of ndarray of int
        Validated row indices of each group.
    strategy : {"auto", "woodbury", "direct"}, default="auto"
        "auto": Woodbury when ``|G|·k < p_free`` (its cost m³ + p²m against the p³
        of a new factorisation), otherwise "direct". Groups releasing pinned rows
        always use "direct".

    Returns
    -------
    steps : ndarray of shape (n_groups, p_free)
        NaN rows for groups whose downdated Hessian is not positive definite (no
        warning here: ``group_steps`` reports them).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import load_diabetes
    >>> from sklearn.linear_model import Ridge
    >>> from skinfluence import InfluenceExplainer
    >>> from skinfluence._removal import newton_group_steps
    >>> X, y = load_diabetes(return_X_y=True)
    >>> e = InfluenceExplainer(Ridge()).fit(X[:100], y[:100])
    >>> solver = e.hessian_solver_
    >>> args = (e.risk_, solver, solver.damped_hessian(), [np.arange(5)])
    >>> a = newton_group_steps(*args, strategy="woodbury")
    >>> b = newton_group_steps(*args, strategy="direct")
    >>> bool(np.allclose(a, b))
    True
    """
    if strategy not in ("auto", "woodbury", "direct"):
        raise ValueError(f"strategy must be 'auto', 'woodbury' or 'direct'; "
                         f"got {strategy!r}.")
    if hessian is None:
        if reweights_on_removal(objective) or strategy == "direct":
            raise NotImplementedError(
                "This group Newton step needs the factorised Hessian (class weights "
                "computed from the sample weights, or strategy='direct'): refit the "
                "explainer with hessian_solver='cholesky'."
            )
        strategy = "woodbury"
    elif reweights_on_removal(objective):
        return _balanced_group_steps(objective, solver, hessian, members)
    X, n, k = objective.X, objective.X.shape[0], objective.n_outputs
    p = int(objective.free.sum())
    D = objective.row_curvature()  # D_j[a, b] = v_ja h_j,ab
    b = objective.row_weight * objective.training_dz()  # s_j c_j ⊙ dL/dz_j
    pinned = objective.pinned
    steps = np.empty((len(members), p))
    for g, rows in enumerate(members):
        m = len(rows) * k
        U = _group_jacobian(objective, X[rows])  # (m, p): row (j, a) = ∂z_ja/∂θ
        bG = b[rows].ravel()
        DG = D[rows]  # the k × k blocks of the block-diagonal D_G
        releases = pinned is not None and pinned[rows].any()
        direct = releases or strategy == "direct" or (strategy == "auto" and m >= p)
        if direct:
            basis = (_released_basis(objective, rows) if releases
                     else solver.basis)
            step = _direct_step(hessian, basis, U, DG, bG, n)
        else:
            step = _woodbury_step(solver, U, DG, bG, n)
        steps[g] = np.nan if step is None else step
    return steps


def _woodbury_step(solver, U, DG, bG, n):
    """(1/n) H⁻¹ U (I − M)⁻¹ b, M = D Uᵀ H⁻¹ U / n; None if H_G is not PD."""
    SU = solver.solve(U.T)  # (p, m)
    M = _apply_blocks(DG, U @ SU) / n
    # H_G is PD on the complement iff every eigenvalue of M (real, ≥ 0) is below 1
    if M.size and np.linalg.eigvals(M).real.max() >= 1.0 - 1e-10:
        return None
    return SU @ np.linalg.solve(np.eye(len(bG)) - M, bG) / n


def _direct_step(hessian, basis, U, DG, bG, n):
    """(1/n) Z (Zᵀ H_G Z)⁻¹ Zᵀ U b with H_G = H − Uᵀ D U / n; None if not PD."""
    HG = hessian - U.T @ _apply_blocks(DG, U) / n
    rhs = U.T @ bG / n
    if basis is not None:
        HG = basis.T @ HG @ basis
        rhs = basis.T @ rhs
    HG = 0.5 * (HG + HG.T)
    try:
        L = np.linalg.cholesky(HG)
    except np.linalg.LinAlgError:
        return None
    diag = np.abs(np.diag(L))
    if diag.size and diag.min() ** 2 <= 1e-12 * np.abs(np.diag(HG)).max():
        return None
    step = _cholesky_solve(L, rhs)
    return step if basis is None else basis @ step


def _cholesky_solve(L, b):
    """(L Lᵀ)⁻¹ b with numpy's LAPACK (scipy's runs on a second BLAS thread pool,
    which stalls small factorisations next to numpy's products)."""
    return np.linalg.solve(L.T, np.linalg.solve(L, b))


def _released_basis(objective, rows):
    """Complement of the fixed directions without the pins of ``rows``."""
    fixed = objective.fixed_directions()
    n_pins = int(objective.pinned.sum())
    flats = fixed[:, : fixed.shape[1] - n_pins]  # pins come last, by output then row
    keep = objective.pinned.copy()
    keep[rows] = False
    return complement_basis(np.hstack([flats, objective.pin_gradients(keep)]))


def _group_jacobian(objective, Xg):
    """∂z_ja/∂θ for the group's rows j and outputs a, as (|G|·k, p_free), row-major."""
    blocks = [dense(u) for u in objective.output_jacobians(Xg)]
    return np.stack(blocks, axis=1).reshape(Xg.shape[0] * len(blocks), -1)


def _apply_blocks(blocks, V):
    """blockdiag(blocks) @ V for g blocks (k, k) and V (g·k, r), without forming it."""
    g, k, _ = blocks.shape
    return np.einsum("jab,jbr->jar", blocks, V.reshape(g, k, -1)).reshape(g * k, -1)


def check_groups(groups, n):
    """Validated groups as a list of arrays of row indices in [0, n)."""
    if isinstance(groups, (list, tuple)) and len(groups) == 0:
        return []  # no groups: an empty result
    if isinstance(groups, np.ndarray) and groups.ndim == 2:
        groups = list(groups)
    if isinstance(groups, (list, tuple)) and not all(np.ndim(g) == 0 for g in groups):
        if not all(np.ndim(g) == 1 for g in groups):
            raise ValueError(
                "groups must be a list of 1-D index arrays (one per group) or one "
                "label per training row; got a list mixing scalars and arrays or "
                "holding arrays with more than one dimension."
            )
        return [_check_members(g, n, i) for i, g in enumerate(groups)]
    labels = np.asarray(groups)
    if labels.ndim != 1:
        raise ValueError(
            f"groups given as labels must be 1-D (one per training row); got shape "
            f"{labels.shape}."
        )
    if labels.shape[0] != n:
        raise ValueError(
            f"groups given as labels must have one label per training row: got "
            f"{labels.shape[0]} labels for {n} training rows. To pass row indices, "
            "give a list of index arrays, one per group."
        )
    _, inverse = np.unique(labels, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.cumsum(np.bincount(inverse))[:-1]
    return np.split(order, bounds)


def _check_members(group, n, i):
    rows = np.asarray(group)
    if rows.dtype == bool:
        raise TypeError(
            f"group {i} is a boolean mask; give the row indices "
            "(np.flatnonzero(mask)) instead."
        )
    if rows.size == 0:
        raise ValueError(f"group {i} is empty; every group needs at least one row.")
    if not np.issubdtype(rows.dtype, np.integer):
        if all(isinstance(r, Integral) for r in rows.tolist()):
            rows = rows.astype(np.intp)
        else:
            raise TypeError(
                f"group {i} must hold integer row indices; got dtype {rows.dtype}."
            )
    bad = rows[(rows < -n) | (rows >= n)]
    if bad.size:
        raise IndexError(
            f"group {i} has row indices out of range for {n} training rows: "
            f"{bad[:10].tolist()}."
        )
    rows = np.where(rows < 0, rows + n, rows).astype(np.intp)
    if np.unique(rows).size != rows.size:
        raise ValueError(f"group {i} lists a training row more than once.")
    return rows
