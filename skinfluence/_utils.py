"""Small helpers shared by the explainer, its analyses and the removal math."""

import numpy as np
import scipy.sparse as sp
from sklearn.utils.validation import check_array


def dense(M):
    """M as a numpy array (sparse matrices densified)."""
    return M.toarray() if sp.issparse(M) else np.asarray(M)


def check_indices(indices, n):
    """Training row numbers in [0, n) (negative ones count from the end); all if None."""
    if indices is None:
        return np.arange(n)
    rows = np.asarray(indices)
    if rows.ndim == 1 and rows.size == 0:  # [] is float64 to numpy: no rows
        return np.empty(0, dtype=np.intp)
    if rows.dtype == bool:
        raise TypeError("indices must be integer row numbers, not a boolean mask.")
    if rows.ndim != 1 or not np.issubdtype(rows.dtype, np.integer):
        raise TypeError(f"indices must be a 1-D array of integers; got {indices!r}.")
    if rows.size and (rows.min() < -n or rows.max() >= n):
        raise IndexError(
            f"indices out of range for {n} training rows: "
            f"{rows[(rows < -n) | (rows >= n)][:10].tolist()}."
        )
    return np.where(rows < 0, rows + n, rows)


def model_input(estimator, X, copy=False):
    """A fitted Pipeline's transform of X by all but its last step, as float64."""
    from .models import pipeline_of  # models use dense(): imported here, not above

    steps = pipeline_of(estimator)[:-1]
    return check_array(steps.transform(X), accept_sparse="csr", dtype=np.float64,
                       copy=copy, input_name="X (transformed by the pipeline)")
