"""Turning user labels into what a family's loss expects, with clear errors."""

import numpy as np
from sklearn.utils.validation import check_array


class ClassLabels:
    """Class labels → index into ``classes`` (unseen labels are an error)."""

    def __init__(self, classes):
        self.classes = np.asarray(classes)

    def encode(self, y, n_samples):
        y = _check_1d(y, n_samples)
        classes = self.classes
        try:
            idx = np.minimum(np.searchsorted(classes, y), len(classes) - 1)
            known = classes[idx] == y
        except TypeError:  # labels not comparable with the classes (str vs int)
            idx, known = np.zeros(n_samples, dtype=int), np.zeros(n_samples, bool)
        known = np.asarray(known, dtype=bool)
        if not np.all(known):
            unseen = list(dict.fromkeys(np.asarray(y)[~known].tolist()))
            raise ValueError(
                f"y contains labels not seen during fit: {unseen[:10]}. "
                f"Known classes: {classes.tolist()}."
            )
        return idx


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
