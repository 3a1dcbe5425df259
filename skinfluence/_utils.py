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


def pipeline_of_estimator(estimator):
    """The Pipeline around the explained model, or None (models.pipeline_of)."""
    from .models import pipeline_of  # models use dense(): imported here, not above

    return pipeline_of(estimator)


def model_input(estimator, X, copy=False):
    """A fitted Pipeline's transform of X by all but its last step, as float64."""
    steps = pipeline_of_estimator(estimator)[:-1]
    return check_array(steps.transform(X), accept_sparse="csr", dtype=np.float64,
                       copy=copy, input_name="X (transformed by the pipeline)")


def check_training_inputs(explainer, X_train, what="This analysis"):
    """``X_train`` as the explained model sees it, checked to be the data fit saw.

    Passed through a Pipeline's earlier steps, it must equal the explainer's copy
    ``X_fit_`` (to 1e-10 relative): analyses that refit or move training rows need
    the user's inputs to be those the influences describe.
    """
    pipeline = pipeline_of_estimator(explainer.estimator_)
    if pipeline is None:
        X_model = check_array(X_train, accept_sparse="csr", dtype=np.float64,
                              input_name="X_train")
    else:  # the pipeline's own steps validate its input (e.g. text columns)
        X_model = model_input(explainer.estimator_, X_train)
    X_fit = explainer.X_fit_
    scale = max(1.0, _max_abs(X_fit))
    if X_model.shape != X_fit.shape or _max_abs(X_model - X_fit) > 1e-10 * scale:
        raise ValueError(
            f"{what}: X_train is not the data the explainer was fitted on "
            "(after the pipeline's earlier steps, if any): pass the X given to "
            "InfluenceExplainer.fit."
        )
    return X_model


def _max_abs(M):
    return float(abs(M).max()) if M.shape[0] and M.shape[1] else 0.0


def largest_leverages(curvature, grams, n):
    """Each row's leverage with several outputs: the largest eigenvalue of D_j A_j / n.

    D_j (``curvature``, (m, k, k)) is symmetric PSD (softmax: one class weight per
    row; one-vs-rest: diagonal), so D_j A_j has the eigenvalues of
    D_j^{1/2} A_j D_j^{1/2}; ``grams`` holds A_j = U_jᵀ H⁻¹ U_j (m, k, k).
    """
    vals, vecs = np.linalg.eigh(curvature)
    root = (vecs * np.sqrt(np.clip(vals, 0.0, None))[:, None, :]) @ \
        vecs.transpose(0, 2, 1)
    return np.linalg.eigvalsh(root @ grams @ root / n)[:, -1]
