"""Class weights and how they move with the sample weights.

scikit-learn multiplies each row's loss by ``c_{y_i}``. With ``class_weight="balanced"``
the class weights are computed from the sample weights,

    c_g = S / (K · S_g),   S = Σ_i s_i,   S_g = Σ_{i in class g} s_i,

so up-weighting one row also moves every class weight:

    ∂c_g/∂s_j = c_g / S − [y_j = g] · c_g / S_g.
"""

import numpy as np
from sklearn.utils.class_weight import compute_class_weight


def class_weight_recipe(class_weight, classes, y_index, sample_weight, *,
                        from_sample_weight=True):
    """Per-row class weights and, for "balanced", their Jacobian in the sample weights.

    Parameters
    ----------
    class_weight : dict, "balanced" or None
        The estimator's ``class_weight`` parameter.
    classes : ndarray of shape (K,)
        The estimator's ``classes_``.
    y_index : ndarray of shape (n,)
        Index into ``classes`` of each training row.
    sample_weight : ndarray of shape (n,)
    from_sample_weight : bool, default=True
        Whether the estimator computes "balanced" weights from the sample weights
        (LogisticRegression, liblinear) or from plain class counts (Ridge, SGD).

    Returns
    -------
    row_class_weight : ndarray of shape (n,)
        ``c_{y_i}``.
    jacobian : ndarray of shape (K, K) or None
        ``jacobian[c, g] = ∂c_g/∂s_j`` for a row j of class c; None when the class
        weights do not depend on the sample weights.
    """
    K = len(classes)
    if class_weight is None:
        return np.ones(len(y_index)), None
    weights = compute_class_weight(
        class_weight, classes=classes, y=classes[y_index],
        sample_weight=sample_weight if from_sample_weight else None,
    )
    weights = np.asarray(weights, dtype=np.float64)
    balanced = isinstance(class_weight, str) and class_weight == "balanced"
    if not (balanced and from_sample_weight):
        return weights[y_index], None
    S = sample_weight.sum()
    S_g = np.bincount(y_index, weights=sample_weight, minlength=K)
    jacobian = np.tile(weights / S, (K, 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        jacobian[np.diag_indices(K)] -= np.where(S_g > 0, weights / S_g, 0.0)
    return weights[y_index], jacobian
