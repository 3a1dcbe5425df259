"""Class weights and how they move with the sample weights.

scikit-learn multiplies each row's loss by ``c_{y_i}``. With ``class_weight="balanced"``
the class weights are computed from the sample weights,

    c_g = S / (K · S_g),   S = Σ_i s_i,   S_g = Σ_{i in class g} s_i,

so up-weighting one row also moves every class weight:

    ∂c_g/∂s_j = c_g / S − [y_j = g] · c_g / S_g.

S, S_g and the class counts are sums over every training row: a builder run on a
chunk of the rows takes them from ``_population.current()`` when set.
"""

import numpy as np
from sklearn.utils.class_weight import compute_class_weight

from ._population import current


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
    balanced = isinstance(class_weight, str) and class_weight == "balanced"
    totals = current()
    if balanced and from_sample_weight:
        S_g = class_totals(classes, y_index, sample_weight)
    if balanced and totals is not None:  # sums over every row, not the rows given
        weights = _balanced(totals, classes, from_sample_weight)
    else:
        weights = compute_class_weight(
            class_weight, classes=classes, y=classes[y_index],
            sample_weight=sample_weight if from_sample_weight else None,
        )
    weights = np.asarray(weights, dtype=np.float64)
    if not (balanced and from_sample_weight):
        return weights[y_index], None
    S = sample_weight.sum() if totals is None else totals.weight_total
    jacobian = np.tile(weights / S, (K, 1))
    jacobian[np.diag_indices(K)] -= weights / S_g
    return weights[y_index], jacobian


def _balanced(totals, classes, from_sample_weight):
    """compute_class_weight("balanced") from the totals: S / (K · S_g), or from the
    class counts n / (K · N_g)."""
    if from_sample_weight:
        S_g = totals.class_totals
        return S_g.sum() / (len(classes) * S_g)
    N_g = np.asarray(totals.class_counts, dtype=np.float64)
    if np.any(N_g == 0):
        raise ValueError("classes should have valid labels that are in y: class(es) "
                         f"{classes[N_g == 0].tolist()} have no training row.")
    return N_g.sum() / (len(classes) * N_g)


def class_totals(classes, y_index, sample_weight):
    """S_g, each class's total sample weight; "balanced" divides by it (must be > 0).

    From ``_population.current()`` when set (a chunk of the rows is given)."""
    totals = current()
    S_g = (np.bincount(y_index, weights=sample_weight, minlength=len(classes))
           if totals is None else totals.class_totals)
    empty = classes[S_g <= 0]
    if empty.size:
        raise ValueError(
            f"class_weight='balanced' computes class g's weight as S / (K · S_g) from "
            f"the sample weights, but the rows of class(es) {empty.tolist()} all have "
            "sample weight 0 (S_g = 0): their class weight is infinite and the "
            "influences are undefined. Drop those rows (and classes), give them "
            "positive sample weights, or use class_weight=None or a dict."
        )
    return S_g


class CountBalancedRemoval:
    """Row weights after a removal when "balanced" comes from class counts.

    libsvm's ``SVC``, ``RidgeClassifier`` and ``SGDClassifier`` compute "balanced"
    class weights from the class counts of the training rows, ``c_g = N / (K · N_g)``,
    whatever their sample weights: the influence (a derivative in the sample weights)
    has no class-weight term, but a refit without rows counts again, so every row's
    weight moves. Called with the removed rows, it returns ``s_i c'_ik`` of R without
    them (the ``removal_row_weight`` hook of ``_reweight.removal_weights``), theirs 0.

    Parameters
    ----------
    sample_weight : ndarray of shape (n,)
    y_index : ndarray of shape (n,)
        Class index of each training row.
    n_classes : int
    n_outputs : int
        Outputs of the risk: one binary output, or one per class (one-vs-rest).
    one_vs_rest : bool, default=False
        Output k weighs its own class's rows by c_k and the others by 1 (SGD); else
        every output weighs row i by c_{y_i} (RidgeClassifier, binary models).
    """

    def __init__(self, sample_weight, y_index, n_classes, n_outputs, *,
                 one_vs_rest=False):
        self.sample_weight = np.asarray(sample_weight, dtype=np.float64)
        self.y_index = np.asarray(y_index, dtype=np.intp)
        self.counts = np.bincount(self.y_index, minlength=n_classes)
        self.n_outputs, self.one_vs_rest = n_outputs, one_vs_rest

    def __call__(self, removed):
        removed = np.asarray(removed, dtype=np.intp)
        K = len(self.counts)
        left = self.counts - np.bincount(self.y_index[removed], minlength=K)
        with np.errstate(divide="ignore", invalid="ignore"):
            c = np.where(left > 0, left.sum() / (K * left), 0.0)  # N' / (K · N'_g)
        row = c[self.y_index]
        if self.one_vs_rest:
            own = self.y_index[:, None] == np.arange(self.n_outputs)
            cw = np.where(own, row[:, None], 1.0)
        else:
            cw = np.repeat(row[:, None], self.n_outputs, axis=1)
        W = self.sample_weight[:, None] * cw
        W[removed] = 0.0
        return W


def recount_on_removal(risk, class_weight, y_index, n_classes, *, one_vs_rest=False):
    """Give ``risk`` the :class:`CountBalancedRemoval` hook (``removal_row_weight``)
    when ``class_weight="balanced"`` is computed from the class counts; returns it."""
    if isinstance(class_weight, str) and class_weight == "balanced":
        risk.removal_row_weight = CountBalancedRemoval(
            risk.sample_weight, y_index, n_classes, risk.n_outputs,
            one_vs_rest=one_vs_rest)
    return risk
