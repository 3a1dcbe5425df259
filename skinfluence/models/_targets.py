"""Turning user labels into what a family's loss expects, with clear errors."""

from numbers import Number

import numpy as np
from sklearn.utils.validation import check_array


def check_label_types(y, input_name="y"):
    """Class labels must be all strings or all numbers (scikit-learn sorts them).

    numpy compares the labels of an object array one by one, which fails with an
    unclear ``'<' not supported`` for ``None`` or a mix of strings and numbers.

    Parameters
    ----------
    y : ndarray
        Labels, as validated (any shape).
    input_name : str, default="y"
        Name in the error message.
    """
    if y.dtype != object:
        return
    flat = y.ravel()
    missing = np.flatnonzero([v is None for v in flat])
    if missing.size:
        raise ValueError(
            f"{input_name} contains None (a missing label) at row(s) "
            f"{missing[:10].tolist()}: classification labels must all be strings or "
            "all be numbers. Drop those rows or give them a label."
        )
    kinds = {"str" if isinstance(v, str) else "number" if isinstance(v, Number)
             else type(v).__name__ for v in flat}
    if len(kinds) > 1:
        found = sorted({type(v).__name__ for v in flat})
        raise ValueError(
            f"{input_name} mixes label types {found}: classification labels must all "
            "be strings or all be numbers, as scikit-learn sorts them. Convert them to "
            f"one type, e.g. {input_name}.astype(str)."
        )


class ClassLabels:
    """Class labels → index into ``classes`` (unseen labels are an error)."""

    def __init__(self, classes):
        self.classes = np.asarray(classes)

    def encode(self, y, n_samples):
        y = _check_1d(y, n_samples)
        classes = self.classes
        try:
            idx = np.minimum(np.searchsorted(classes, y), len(classes) - 1)
            known = np.asarray(classes[idx] == y, dtype=bool)
        except TypeError:  # labels not comparable with the classes (None, str vs int)
            idx, known = _lookup(classes, y)
        if not np.all(known):
            unseen = list(dict.fromkeys(np.asarray(y)[~known].tolist()))
            raise ValueError(
                f"y contains labels not seen during fit: {unseen[:10]}. "
                f"Known classes: {classes.tolist()}."
            )
        return idx

    def decode(self, y_index):
        """Class indices back to the labels (``encode``'s inverse)."""
        return self.classes[np.asarray(y_index)]


def _lookup(classes, y):
    """Index of each label in ``classes`` by equality, one by one (object labels)."""
    index = {}
    for i, c in enumerate(classes.tolist()):
        index.setdefault(c, i)
    idx = np.zeros(len(y), dtype=np.intp)
    known = np.zeros(len(y), dtype=bool)
    for t, label in enumerate(y.tolist()):
        try:
            i = index.get(label)
        except TypeError:  # unhashable: not a class label
            i = None
        if i is not None:
            idx[t], known[t] = i, True
    return idx, known


class RealTargets:
    """Real-valued targets, shape (n, n_outputs)."""

    classes = None

    def __init__(self, n_outputs):
        self.n_outputs = n_outputs

    def encode(self, y, n_samples):
        y = check_array(y, ensure_2d=False, dtype=np.float64, input_name="y")
        if y.ndim == 1:
            y = y[:, None]
        if y.ndim != 2 or y.shape != (n_samples, self.n_outputs):
            raise ValueError(
                f"y must have one target per row of X ({n_samples}) and "
                f"{self.n_outputs} output(s); got shape {y.shape}."
            )
        return y

    def decode(self, Y):
        """(n, n_outputs) targets as the user gave them: 1-D for one output."""
        Y = np.asarray(Y)
        return Y[:, 0] if Y.shape[1] == 1 else Y


def _check_1d(y, n_samples):
    y = check_array(y, ensure_2d=False, dtype=None, ensure_all_finite=True,
                    input_name="y")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.ravel()
    if y.ndim != 1 or y.shape[0] != n_samples:
        raise ValueError(
            f"y must be 1-D with one label per row of X ({n_samples}); got shape "
            f"{y.shape}."
        )
    return y
