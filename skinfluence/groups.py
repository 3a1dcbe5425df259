"""Removing a group of training rows: first order, one Newton step, exact.

Removing the rows of a group G (row weights v_ja = s_j c_ja) leaves the risk
``R_{−G} = R − (1/n) Σ_{j∈G} Σ_a v_ja L_a(z_j)``. At θ̂ its gradient is
``−(1/n) U_G b_G`` and its Hessian ``H_G = H − (1/n) U_G D_G U_Gᵀ``, where U_G (p × m,
m = ``|G|·k``) stacks the output Jacobians U_j = ∂z_j/∂θ of the group's rows, b_G the
weighted loss derivatives ``s_j c_j ⊙ dL/dz_j`` and D_G the block-diagonal matrix of
``diag(v_j) d²L/dz²_j``. Two estimates of the refit without G:

- first order (Koh & Liang; "influence"): ``Δθ_G = (1/n) H⁻¹ U_G b_G``, the sum of the
  rows' first-order removal effects ``−(s_j/n)·I_up,params(z_j)``; the predicted test
  loss change is the sum of ``leave_one_out`` over the group's rows. Koh et al. (2019)
  found it correlates with true group effects but underestimates them for coherent
  groups (rows sharing a class, a cluster, high leverage).
- one Newton step ("newton"): ``Δθ_G = (1/n) H_G⁻¹ U_G b_G``, by the Woodbury identity
  (``|G|·k < p``) ::

      Δθ_G = (1/n) H⁻¹ U_G (I − M_G)⁻¹ b_G,   M_G = D_G U_Gᵀ H⁻¹ U_G / n,

  (M_G, m × m, is the group's joint leverage), or by factorising H_G directly
  (p × p, when the group is larger). The test loss is evaluated at θ̂ + Δθ_G, not
  linearised. Exact for least squares (the refit is one Newton step).

H⁻¹ stands for the explainer's solve on the complement of the fixed directions. With
the exact hinge (``smoothing=0``) the support vectors on the margin are pinned; the
group's own pinned rows are released (the complement is rebuilt without their pins
and the downdated Hessian factorised on it), which for a single row is the rank-one
release of ``leave_one_out(method="newton")``.

"exact" continues with Newton steps on R_{−G} to its optimum. Both share the row
removals' check (``_removal.removal_defects``): a group whose removal leaves no
unique optimum gets NaN, a group of rows without weight exactly 0.
"""

import copy
from numbers import Integral

import numpy as np
import scipy.sparse as sp
from sklearn.utils.validation import check_is_fitted

from ._hessian import complement_basis
from ._objective import LinearObjective
from ._parallel import BATCH_BYTES
from ._removal import (
    INDEFINITE,
    loss_change,
    newton_refine,
    removal_defects,
    removal_weights,
    settle,
    weighted_rows,
)

__all__ = ["group_influence"]

#: Test rows per block when evaluating the test losses at the Newton steps.
_TEST_BATCH = 1024


def group_influence(explainer, groups, X, y, method="influence", *, test_loss=None):
    """Predicted change of each test loss when a group of training rows is removed.

    Parameters
    ----------
    explainer : InfluenceExplainer
        A fitted explainer.
    groups : list of array-like of int, or array-like of shape (n_train,)
        Either a list of index arrays (one per group, rows of the training data;
        negative indices count from the end; groups may overlap, but a group may not
        list a row twice), or one label per training row: the groups are then the
        unique labels **in sorted order** (``np.unique(groups)``), one column each.
        A 2-D integer array is read row by row as index arrays.
    X : {array-like, sparse matrix} of shape (n_test, n_features)
        Test inputs.
    y : array-like of shape (n_test,)
        Test labels.
    method : {"influence", "newton", "exact"}, default="influence"
        - "influence": the first-order sum ``−Σ_{j∈G} (s_j/n) · I_up,loss[t, j]``,
          i.e. the sum of ``leave_one_out(X, y)`` over the group's rows.
        - "newton": one Newton step from θ̂ on the objective without the group's rows
          (a rank-``|G|·k`` Woodbury downdate of the factorised Hessian for small groups,
          a direct factorisation of the downdated Hessian for large ones), with the
          test loss evaluated at the resulting parameters. Exact for least squares.
          For the exact hinge, the group's support vectors on the margin are
          released (rows outside the margin give exactly 0, like the refit; for
          groups of several support vectors the step tracks refits only roughly,
          as the active set changes). With ``class_weight="balanced"`` the class
          weights are recomputed without the group, as the refit does.
        - "exact": continues from the Newton step (class weights recomputed
          without the group when "balanced", as the refit does) with
          Newton steps on the objective without the group, its exact Hessian at each
          iterate, to a relative tolerance of 1e-10: the refit's answer. Smooth and
          once-differentiable losses (not the hinge).
    test_loss : str or object, default=None
        As in :meth:`InfluenceExplainer.loss_influence`.

    Returns
    -------
    delta : ndarray of shape (n_test, n_groups)
        Predicted ``L(z_test, θ̂_{−G}) − L(z_test, θ̂)``, same units as
        :meth:`InfluenceExplainer.leave_one_out`. Groups of rows with zero sample
        weight give exactly 0. "newton" and "exact" give NaN, with one
        :class:`~skinfluence.NoOptimumWarning` naming them, for groups whose
        removal leaves no refit to estimate: no unique optimum (a class left
        without rows of positive weight, an unpenalised direction no remaining row
        moves, remaining rows separable along unpenalised parameters; see
        ``_removal.removal_defects``), a downdated Hessian that is not positive
        definite ("newton"), or iterations that do not converge ("exact").

    Raises
    ------
    ValueError
        ``method="newton"`` or ``"exact"`` with a group holding every training row
        of positive weight (no model exists without it).
    MemoryError
        The result (n_test × n_groups) or the per-group steps or influence rows
        (n_groups × n_params) exceed the explainer's ``max_result_bytes``.
    NotImplementedError
        ``method="newton"`` or ``"exact"`` for a hinge SVM with
        ``class_weight="balanced"``, and ``"exact"`` for the hinge.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import load_diabetes
    >>> from sklearn.linear_model import Ridge
    >>> from skinfluence import InfluenceExplainer
    >>> from skinfluence.groups import group_influence
    >>> X, y = load_diabetes(return_X_y=True)
    >>> explainer = InfluenceExplainer(Ridge(alpha=1.0)).fit(X[:200], y[:200])
    >>> groups = [np.arange(0, 20), np.arange(20, 30)]
    >>> delta = group_influence(explainer, groups, X[200:], y[200:], method="newton")
    >>> delta.shape
    (242, 2)

    For least squares the Newton step is the refit:

    >>> keep = np.ones(200, dtype=bool)
    >>> keep[:20] = False
    >>> refit = Ridge(alpha=1.0).fit(X[:200][keep], y[:200][keep])
    >>> before = (explainer.predict(X[200:]) - y[200:]) ** 2
    >>> after = (refit.predict(X[200:]) - y[200:]) ** 2
    >>> bool(np.allclose(delta[:, 0], after - before))
    True

    One label per training row (columns follow ``np.unique(labels)``):

    >>> labels = np.arange(200) % 4
    >>> group_influence(explainer, labels, X[200:], y[200:]).shape
    (242, 4)
    """
    check_is_fitted(explainer)
    if method not in ("influence", "newton", "exact"):
        raise ValueError(
            f"method must be 'influence', 'newton' or 'exact'; got {method!r}."
        )
    n = len(explainer.sample_weight_)
    members = _check_groups(groups, n)
    Xv = explainer._validate_X(X)  # as the explained model sees it
    obj = explainer._objective
    y_enc = explainer._encode(y, Xv)
    loss = explainer._test_loss(test_loss)
    explainer._check_result_size((Xv.shape[0], len(members)))
    # the (n_groups, p) step or influence rows the result is computed from
    explainer._check_result_size((len(members), int(obj.free.sum())))
    out = np.empty((Xv.shape[0], len(members)))
    if method == "influence":
        # −(s_j/n) I_up,params summed over each group: one (n_groups, n) sparse sum
        sizes = np.array([len(g) for g in members])
        rows = np.repeat(np.arange(len(members)), sizes)
        cols = np.concatenate(members)
        P = sp.csr_matrix((-explainer.sample_weight_[cols] / n, (rows, cols)),
                          shape=(len(members), n))
        factor = explainer._combined_influence_rows(P)
        for sl in _test_batches(Xv.shape[0], len(members)):
            out[sl] = np.asarray(obj.test_gradients(Xv[sl], y_enc[sl], loss)
                                 @ factor.T)
        return out
    _check_not_everything(obj, members)
    # with an iterative solver (no p × p Hessian), each group's Jacobian is solved
    # for: the Woodbury form of the step
    hessian = None if explainer.hessian_ is None else explainer._damped_hessian()
    steps = group_steps(obj, explainer.hessian_solver_, hessian, members, method)
    for sl in _test_batches(Xv.shape[0], len(members) * obj.n_outputs):
        out[sl] = loss_change(obj, Xv[sl], y_enc[sl], steps, loss)
    return out


def _test_batches(n_test, width):
    """Slices of test rows whose (rows, width) blocks stay near ``BATCH_BYTES``."""
    rows = max(1, min(_TEST_BATCH, BATCH_BYTES // (24 * max(width, 1))))
    return [slice(i, min(i + rows, n_test)) for i in range(0, n_test, rows)]


def _check_not_everything(objective, members):
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
    """θ̂_{−G} − θ̂ estimated for every group (n_groups, p_free).

    ``method`` "newton" (``newton_group_steps``) or "exact" (``exact_group_steps``).
    Groups of rows without weight get exactly 0 (R is unchanged); groups whose
    removal leaves no optimum (``_removal.removal_defects``), an indefinite Newton
    step, or iterations that do not converge get NaN, with one
    ``NoOptimumWarning`` naming them.
    """
    defects = removal_defects(objective, members)
    todo = [g for g in range(len(members)) if g not in defects]
    steps = np.full((len(members), int(objective.free.sum())), np.nan)
    if todo:
        some = [members[g] for g in todo]
        if method == "exact":
            found, failed = exact_group_steps(objective, solver, hessian, some)
        else:
            found = newton_group_steps(objective, solver, hessian, some)
            failed = {i: INDEFINITE for i in np.flatnonzero(np.isnan(found).any(1))}
        steps[todo] = found
        defects.update({todo[i]: reason for i, reason in failed.items()})
    return settle(objective, members, steps, defects, "group")


def exact_group_steps(objective, solver, hessian, members, *, tol=1e-10,
                      max_iter=100):
    """θ̂_{−G} − θ̂ over the free parameters for every group (n_groups, p_free).

    Newton steps on R without the group (``newton_refine``) from its one-step
    estimate (from θ̂ where that step is undefined). Returns (steps, {position:
    reason} for groups that did not converge). Groups of rows without weight are
    not iterated.
    """
    if objective.train_dz is not None:
        raise NotImplementedError(
            "group_influence(method='exact') for the hinge loss is not supported "
            "yet: removing support vectors moves other rows across the margin, which "
            "needs active-set steps. Use method='newton'."
        )
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
    return steps, failed


def _balanced_group_steps(objective, solver, hessian, members):
    """Newton steps when removing rows recomputes every class weight ("balanced").

    The objective without the group differs from R on every row, not by a low-rank
    term: its gradient and Hessian at θ̂ (at the recomputed class weights) are
    formed directly and solved on the complement of the fixed directions.
    """
    if objective.train_dz is not None:
        raise NotImplementedError(
            "group_influence(method='newton') for a hinge SVM with "
            "class_weight='balanced' is not supported yet."
        )
    basis = getattr(solver, "basis", None)
    steps = np.empty((len(members), hessian.shape[0]))
    for g, rows in enumerate(members):
        removed = copy.copy(objective)
        removed.row_weight = removal_weights(objective, rows)
        # H without the group = the (damped) H plus the Hessian of the weight change
        change = copy.copy(objective)
        change.row_weight = removed.row_weight - objective.row_weight
        change.quad_penalty = np.zeros_like(objective.quad_penalty)
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
    >>> from skinfluence.groups import newton_group_steps
    >>> X, y = load_diabetes(return_X_y=True)
    >>> e = InfluenceExplainer(Ridge()).fit(X[:100], y[:100])
    >>> args = (e._objective, e.hessian_solver_, e._damped_hessian(), [np.arange(5)])
    >>> a = newton_group_steps(*args, strategy="woodbury")
    >>> b = newton_group_steps(*args, strategy="direct")
    >>> bool(np.allclose(a, b))
    True
    """
    if strategy not in ("auto", "woodbury", "direct"):
        raise ValueError(f"strategy must be 'auto', 'woodbury' or 'direct'; "
                         f"got {strategy!r}.")
    if hessian is None:
        if objective.weight_jacobian is not None or strategy == "direct":
            raise NotImplementedError(
                "This group Newton step needs the factorised Hessian (class weights "
                "computed from the sample weights, or strategy='direct'): refit the "
                "explainer with hessian_solver='cholesky'."
            )
        strategy = "woodbury"
    elif objective.weight_jacobian is not None:
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
                     else getattr(solver, "basis", None))
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
    cols = [flats]
    for a in range(objective.n_outputs):
        kept = np.flatnonzero(keep[:, a])
        if kept.size:
            onehot = np.zeros((kept.size, objective.n_outputs))
            onehot[:, a] = 1.0
            cols.append(_dense(objective.row_gradients(objective.X[kept], onehot)).T)
    return complement_basis(np.hstack(cols))


def _group_jacobian(objective, Xg):
    """∂z_ja/∂θ for the group's rows j and outputs a, as (|G|·k, p_free), row-major."""
    blocks = [_dense(u) for u in objective.output_jacobians(Xg)]
    return np.stack(blocks, axis=1).reshape(Xg.shape[0] * len(blocks), -1)


def _apply_blocks(blocks, V):
    """blockdiag(blocks) @ V for g blocks (k, k) and V (g·k, r), without forming it."""
    g, k, _ = blocks.shape
    return np.einsum("jab,jbr->jar", blocks, V.reshape(g, k, -1)).reshape(g * k, -1)


def _check_groups(groups, n):
    """Validated groups as a list of arrays of row indices in [0, n)."""
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


def _dense(M):
    return M.toarray() if sp.issparse(M) else np.asarray(M)
