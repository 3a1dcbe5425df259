"""Row weights of the training objective without some rows, as the refit weighs them.

Removing rows zeroes their weights; where scikit-learn recomputes weights from the
rows it is given, every other row's weight moves too: "balanced" class weights
(from the sample weights, ``weight_jacobian``; or from the class counts, a family's
``removal_row_weight``) and normalised sample weights (``removal_row_weight``).
"""

import numpy as np


def removal_weights(objective, removed):
    """Row weights s_i c'_ik of R without the rows ``removed``, shape (n, k).

    Their own weights are zero; with "balanced" class weights every class weight is
    recomputed without them, c'_g = S'/(K S'_g), as the refit does.
    """
    recompute = getattr(objective, "removal_row_weight", None)
    if recompute is not None:  # a family's own recipe (normalised sample weights)
        return recompute(removed)
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


def reweights_on_removal(objective):
    """Whether a refit without some rows weighs the other rows differently too:
    "balanced" class weights recomputed (from the sample weights or the class
    counts) or normalised sample weights (``removal_weights``)."""
    return (objective.weight_jacobian is not None
            or getattr(objective, "removal_row_weight", None) is not None)


def single_removal_weights(objective, rows):
    """``removal_weights`` for each single removed row j = rows[m], (n, m, k)."""
    if not reweights_on_removal(objective):
        W = np.repeat(objective.row_weight[:, None, :], len(rows), axis=1)
        W[rows, np.arange(len(rows)), :] = 0.0
        return W
    return np.stack([removal_weights(objective, [j]) for j in rows], axis=1)
