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

"exact" continues with Newton steps on R_{−G} to its optimum (the hinge and the
ε-tube: their piecewise-linear solution path as the group's weights shrink). Both
share the row
removals' check (``_removal.removal_defects``): a group whose removal leaves no
unique optimum gets NaN, a group of rows without weight exactly 0. The steps are
computed in :mod:`skinfluence._removal`, with those of single rows.
"""

from sklearn.utils.validation import check_is_fitted

__all__ = ["group_influence"]


def group_influence(explainer, groups, X, y=None, method="influence", *,
                    test_loss=None):
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
    y : array-like of shape (n_test,), default=None
        Test labels; None with ``test_loss="decision"``.
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
          iterate, to a relative tolerance of 1e-10: the refit's answer. For the
          exact hinge and ε-insensitive losses (SVMs, SVR, kernel machines) the
          piecewise-linear solution path is followed as all the group's weights
          shrink to zero together (rows crossing the margin or the tube on the
          way): exact too.
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
        ``class_weight="balanced"``; ``"exact"`` for NuSVC / NuSVR.

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
    return explainer.group_influence(groups, X, y, method=method, test_loss=test_loss)
