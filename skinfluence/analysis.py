"""Analyses built on a fitted :class:`~skinfluence.InfluenceExplainer`.

Three uses of influence functions from Koh & Liang (2017), each checked against
refits of the real scikit-learn estimator in ``tests/test_analysis.py``:

- **Mislabel search** (the paper's §5.4): :func:`mislabel_ranking` orders the
  training rows by how suspicious they are, :func:`mislabel_curve` measures how fast
  a ranking finds known flipped labels, and :func:`accuracy_after_fixing` refits with
  the labels of the top-ranked rows corrected (the paper's Fig 6).
- **Validation** (the paper's Fig 2): :func:`validate` refits without the most
  influential training rows and compares the predicted with the actual changes of
  the test loss.
- **Model selection**: :func:`loo_score` approximates the leave-one-out error of the
  wrapped model from a single fit, and :func:`approximate_loo_cv` scores a parameter
  grid with it (a stand-in for ``GridSearchCV(cv=LeaveOneOut())``).

Training data. These functions work on the rows the explainer was fitted on. The
explainer's public API does not expose them, so they are read from the explainer's
rebuilt objective: ``X`` as validated at fit (float64 ndarray or CSR matrix, without
column names) and the labels decoded from its encoding. Refits are done on that data
with ``sample_weight_``, and the "loss" is always the model's own plain per-sample
loss (log-loss, squared hinge, …), the one :meth:`~InfluenceExplainer.leave_one_out`
predicts changes of.
"""

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Integral

import numpy as np
from joblib import Parallel, delayed
from scipy.stats import rankdata
from sklearn.base import clone
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import ParameterGrid
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, check_is_fitted

from ._refit import fit_params, refit_loss_changes
from ._removal import reweights_on_removal
from ._scoring import output_grams
from ._utils import check_training_inputs
from .diagnostics import own_loss_change
from .explainer import InfluenceExplainer
from .models import pipeline_of
from .models._losses import test_loss as resolve_test_loss

__all__ = [
    "MISLABEL_STRATEGIES",
    "ValidationResult",
    "accuracy_after_fixing",
    "approximate_loo_cv",
    "loo_score",
    "mislabel_curve",
    "mislabel_ranking",
    "validate",
]

#: Strategies accepted by :func:`mislabel_ranking`.
MISLABEL_STRATEGIES = ("self_influence", "leverage_corrected", "loss", "random")

#: Largest (rows × n_train) block of leave-one-out changes computed in one call.
_LOO_BLOCK = 2**25


# -- access to the explainer's training data (its public fitted risk) ------------------
def _objective(explainer):
    check_is_fitted(explainer)
    return explainer.risk_


def _training_data(explainer, X_train=None, y_train=None, what="This analysis"):
    """(X, y, sample_weight) to refit the explained model on, y as the user's labels.

    The explainer's own copy of the training rows, as the explained model sees them;
    for a Pipeline those are the transformed features, so the pipeline's input must be
    given (``X_train``, ``y_train``: the data ``fit`` saw), and is checked against it.
    """
    if pipeline_of(explainer.estimator_) is None:
        return explainer.X_fit_, _training_labels(explainer), explainer.sample_weight_
    if X_train is None or y_train is None:
        raise ValueError(
            f"{what} refits the explained Pipeline on its training rows, but the "
            "explainer keeps them only as the last step sees them (transformed): pass "
            "the data fit was given as X_train=..., y_train=...."
        )
    n = len(explainer.sample_weight_)
    if _num_samples(X_train) != n or len(y_train) != n:
        raise ValueError(
            f"X_train/y_train have {_num_samples(X_train)}/{len(y_train)} rows but the "
            f"explainer was fitted on {n}."
        )
    check_training_inputs(explainer, X_train, what)
    return X_train, np.asarray(y_train), explainer.sample_weight_


def _num_samples(X):
    return X.shape[0] if hasattr(X, "shape") else len(X)


def _training_labels(explainer):
    """The labels the explainer was fitted on, as the user gave them."""
    obj = _objective(explainer)
    return obj.targets.decode(obj.y)


def _training_losses(explainer):
    """The model's own plain loss at each training row (no sample or class weight)."""
    obj = _objective(explainer)
    return obj.test_loss(obj.X, obj.y)


def _newton_self_changes(explainer, test_loss=None):
    """Diagonal of ``leave_one_out(X_train, y_train, method="newton")``.

    Entry j: predicted change of training row j's own loss (or of ``test_loss``) when
    row j is removed and the model refitted. Row j's decision values move by
    ``Δz_j = U_jᵀ Δθ_j = (s_j/n) A_j (I − M_j)⁻¹ w_j`` (A_j = U_jᵀ H⁻¹ U_j, M_j = D_j A_j
    / n, see :mod:`skinfluence._removal`): k × k blocks per row, no (n, n) matrix.
    Pinned hinge rows and "balanced" class weights take other steps: for those the
    diagonal is read off ``leave_one_out`` in blocks of rows.
    """
    obj = _objective(explainer)
    loss = obj.loss if test_loss is None else resolve_test_loss(test_loss, obj)
    if not obj.linear:  # a network: each row's loss at its own Newton step
        return own_loss_change(obj, explainer.param_change(method="newton"), loss)
    if reweights_on_removal(obj) or (obj.pinned is not None and obj.pinned.any()):
        return _newton_self_changes_by_blocks(explainer, test_loss)
    n, k = obj.X.shape[0], obj.n_outputs
    A = output_grams(obj, explainer.hessian_solver_, batch_size=explainer.batch_size,
                     n_jobs=explainer.n_jobs, verbose=explainer.verbose)
    M = obj.row_curvature() @ A / n
    w = obj.class_weight * obj.training_dz()
    q = np.linalg.solve(np.eye(k) - M, w[:, :, None])  # (I − M_j)⁻¹ w_j
    shift = (A @ q)[:, :, 0] * (obj.sample_weight / n)[:, None]
    Z = obj.decision(obj.X)
    return loss.value_grad(Z + shift, obj.y)[0] - loss.value_grad(Z, obj.y)[0]


def _newton_self_changes_by_blocks(explainer, test_loss=None):
    """The same diagonal from ``leave_one_out`` itself, computed in blocks of rows.

    At most ``_LOO_BLOCK`` entries of the (n_train, n_train) matrix are held.
    """
    if pipeline_of(explainer.estimator_) is not None:
        raise NotImplementedError(
            "The Newton change of each training row's own loss for a Pipeline with "
            "class weights computed from the sample weights (class_weight='balanced') "
            "or the exact hinge is not supported yet: explain the last step on the "
            "transformed features, or use strategy='self_influence'."
        )
    X, y, _ = _training_data(explainer)
    n = X.shape[0]
    rows = max(1, _LOO_BLOCK // n)
    out = np.empty(n)
    with warnings.catch_warnings():
        # fitted on a DataFrame: the stored training data is an array without names
        warnings.filterwarnings("ignore", message=".*valid feature names.*",
                                category=UserWarning)
        for start in range(0, n, rows):
            sl = slice(start, min(start + rows, n))
            block = explainer.leave_one_out(X[sl], y[sl], method="newton",
                                            test_loss=test_loss)
            out[sl] = block[np.arange(block.shape[0]), np.arange(n)[sl]]
    return out


def _refit_model(explainer, what):
    """The explained model, unfitted, with the parameters it was fitted with.

    ``clone(explainer.estimator_)``, not ``explainer.estimator``: parameters set on the
    explainer after fit (``set_params(estimator__C=100)``) describe another model than
    the one whose influences are checked.
    """
    estimator = explainer.estimator_
    if isinstance(estimator, FrozenEstimator):
        raise TypeError(
            f"{what} refits the estimator, but {type(estimator.estimator).__name__} is "
            "wrapped in sklearn.frozen.FrozenEstimator, which cannot be refitted. Wrap "
            "the unfitted estimator instead: InfluenceExplainer(estimator).fit(X, y)."
        )
    return clone(estimator)


def _check_explainer(explainer):
    if not isinstance(explainer, InfluenceExplainer):
        raise TypeError(
            f"Expected a fitted InfluenceExplainer; got {type(explainer).__name__}."
        )
    check_is_fitted(explainer)


# -- mislabel search --------------------------------------------------------------------
def mislabel_ranking(explainer, strategy="self_influence", *, random_state=None):
    """Training rows ordered from most to least suspicious of being mislabelled.

    The paper's §5.4: a user with a budget to check labels by hand should check the
    rows the model bends towards most first.

    Parameters
    ----------
    explainer : InfluenceExplainer
        Fitted on the (possibly noisy) training data.
    strategy : {"self_influence", "leverage_corrected", "loss", "random"}, \
default="self_influence"
        - "self_influence": by ``self_influence()`` = I_up,loss(z_j, z_j)
          = −∇L(z_j)ᵀ H⁻¹ ∇L(z_j), most negative first. For a positive semi-definite
          Hessian (every smooth convex loss) it is ≤ 0, so this is the paper's
          ranking by magnitude: up-weighting row j lowers its own loss most, i.e. the
          model bends most towards it. (Rows with a positive value, possible with
          ``class_weight="balanced"``, come last.)
        - "leverage_corrected": by the Newton leave-one-out change of row j's own
          loss, largest first: the diagonal of
          ``leave_one_out(X_train, y_train, method="newton")`` without its
          (n_train, n_train) cost. It corrects the self-influence with the row's
          k × k leverage matrix M_j, ``Δz_j = (s_j/n) U_jᵀ H⁻¹ U_j (I − M_j)⁻¹ w_j``
          (see :meth:`~skinfluence.InfluenceExplainer.leverages`), and evaluates
          the loss at the moved decision values. High-leverage rows, which first
          order underrates, move up. (Undefined changes, NaN, come last.)
        - "loss": the model's own training loss of row j, largest first.
        - "random": a random permutation (a baseline).
    random_state : int, RandomState instance or None, default=None
        For "random" only.

    Returns
    -------
    ranking : ndarray of shape (n_train,)
        Training row indices, most suspicious first (ties keep row order).

    See Also
    --------
    mislabel_curve : Fraction of known mislabelled rows found along a ranking.
    accuracy_after_fixing : Test accuracy after fixing the top-ranked labels.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skinfluence import InfluenceExplainer
    >>> from skinfluence.analysis import mislabel_curve, mislabel_ranking
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> X = StandardScaler().fit_transform(X)[:300]
    >>> flipped = np.zeros(300, dtype=bool)
    >>> flipped[::10] = True                              # 30 labels flipped
    >>> y_noisy = np.where(flipped, 1 - y[:300], y[:300])
    >>> model = LogisticRegression(solver="newton-cholesky", tol=1e-10)
    >>> explainer = InfluenceExplainer(model).fit(X, y_noisy)
    >>> ranking = mislabel_ranking(explainer, "self_influence")
    >>> checked, found = mislabel_curve(ranking, flipped)
    >>> bool(found[60] > 0.8)                  # checking 20% finds over 80% of flips
    True
    """
    _check_explainer(explainer)
    if strategy not in MISLABEL_STRATEGIES:
        raise ValueError(
            f"strategy must be one of {list(MISLABEL_STRATEGIES)}; got {strategy!r}."
        )
    n = len(explainer.sample_weight_)
    if strategy == "random":
        return check_random_state(random_state).permutation(n)
    if strategy == "loss":
        return np.argsort(-_training_losses(explainer), kind="stable")
    if strategy == "leverage_corrected":
        change = _newton_self_changes(explainer)
        return np.argsort(-np.nan_to_num(change, nan=-np.inf), kind="stable")
    return np.argsort(explainer.self_influence(), kind="stable")


def mislabel_curve(ranking, flipped_mask):
    """Fraction of the flipped labels found after checking the top of a ranking.

    Parameters
    ----------
    ranking : array-like of int of shape (n_train,)
        A permutation of the training rows, most suspicious first
        (:func:`mislabel_ranking`).
    flipped_mask : array-like of bool of shape (n_train,)
        Which training labels are wrong (known in an experiment).

    Returns
    -------
    fraction_checked : ndarray of shape (n_train + 1,)
        ``i / n_train`` for i = 0, …, n_train rows checked.
    fraction_found : ndarray of shape (n_train + 1,)
        Fraction of the flipped rows among the first i rows of ``ranking``.

    Examples
    --------
    >>> from skinfluence.analysis import mislabel_curve
    >>> checked, found = mislabel_curve([2, 0, 1, 3], [False, False, True, True])
    >>> checked.tolist(), found.tolist()
    ([0.0, 0.25, 0.5, 0.75, 1.0], [0.0, 0.5, 0.5, 0.5, 1.0])
    """
    flipped = np.asarray(flipped_mask)
    if flipped.dtype != bool or flipped.ndim != 1:
        raise TypeError("flipped_mask must be a 1-D boolean array.")
    ranking = _check_ranking(ranking, len(flipped))
    if not flipped.any():
        raise ValueError("flipped_mask marks no row as flipped.")
    n = len(flipped)
    found = np.r_[0, np.cumsum(flipped[ranking])] / flipped.sum()
    return np.arange(n + 1) / n, found


def _check_ranking(ranking, n):
    ranking = np.asarray(ranking)
    if ranking.ndim != 1 or not np.issubdtype(ranking.dtype, np.integer):
        raise TypeError("ranking must be a 1-D array of training row indices.")
    if len(ranking) != n or not np.array_equal(np.sort(ranking), np.arange(n)):
        raise ValueError(f"ranking must be a permutation of the {n} training rows.")
    return ranking


def accuracy_after_fixing(explainer, ranking, y_clean, X_test, y_test,
                          fractions=(0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3), *,
                          n_jobs=None, X_train=None):
    """Test accuracy after checking, and fixing, the top of a ranking (paper's Fig 6).

    For each fraction f, the labels of the first ``ceil(f · n_train)`` rows of
    ``ranking`` are replaced by their true labels (rows that were right stay as they
    are) and the explained model is refitted (``clone(explainer.estimator_)``: the
    parameters it was fitted with), with ``sample_weight_``.

    Parameters
    ----------
    explainer : InfluenceExplainer
        Fitted on the noisy labels; its estimator must be refittable (not a
        ``FrozenEstimator``).
    ranking : array-like of int of shape (n_train,)
        Training rows, most suspicious first.
    y_clean : array-like of shape (n_train,)
        The true training labels, which checking a row reveals.
    X_test, y_test : array-like
        Where accuracy is measured (``estimator.score``).
    fractions : sequence of float, default=(0, 0.05, …, 0.3)
        Fractions of the training rows checked.
    n_jobs : int, default=None
        joblib workers for the refits (None: the explainer's ``n_jobs``).
    X_train : array-like, default=None
        For an explainer of a Pipeline: the training inputs ``fit`` was given (the
        explainer keeps them only as the last step sees them); the whole pipeline is
        refitted on them. Ignored otherwise.

    Returns
    -------
    result : dict
        ``"fraction_checked"`` (the given fractions), ``"n_fixed"`` (labels actually
        changed) and ``"accuracy"`` (test accuracy after refitting), arrays of the
        same length.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skinfluence import InfluenceExplainer
    >>> from skinfluence.analysis import accuracy_after_fixing, mislabel_ranking
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> X = StandardScaler().fit_transform(X)
    >>> y_noisy = y[:300].copy()
    >>> y_noisy[::5] = 1 - y_noisy[::5]                   # 20% of labels flipped
    >>> model = LogisticRegression(solver="newton-cholesky", tol=1e-10)
    >>> explainer = InfluenceExplainer(model).fit(X[:300], y_noisy)
    >>> ranking = mislabel_ranking(explainer)
    >>> res = accuracy_after_fixing(explainer, ranking, y[:300], X[300:], y[300:],
    ...                             fractions=[0.0, 0.3])
    >>> bool(res["accuracy"][1] >= res["accuracy"][0])
    True
    """
    _check_explainer(explainer)
    template = _refit_model(explainer, "accuracy_after_fixing")
    y_noisy = _training_labels(explainer)  # the labels the explainer was fitted on
    X, _, sw = _training_data(explainer, X_train, y_noisy, "accuracy_after_fixing")
    n = len(y_noisy)
    ranking = _check_ranking(ranking, n)
    y_clean = np.asarray(y_clean)
    if y_clean.shape != y_noisy.shape:
        raise ValueError(
            f"y_clean must have shape {y_noisy.shape} (one label per training row); "
            f"got {y_clean.shape}."
        )
    fractions = np.asarray(fractions, dtype=float)
    if fractions.ndim != 1 or np.any((fractions < 0) | (fractions > 1)):
        raise ValueError("fractions must be a 1-D sequence of values in [0, 1].")
    if pipeline_of(explainer.estimator_) is None:
        X_test = check_array(X_test, accept_sparse="csr", dtype=np.float64)
    labels, n_fixed = [], []
    for f in fractions:
        y_fixed = y_noisy.copy()
        top = ranking[: int(np.ceil(f * n - 1e-9))]
        y_fixed[top] = y_clean[top]
        labels.append(y_fixed)
        n_fixed.append(int(np.sum(y_fixed != y_noisy)))

    def score(y_fit):
        model = clone(template).fit(X, y_fit, **fit_params(template, sw))
        return model.score(X_test, y_test)

    n_jobs = explainer.n_jobs if n_jobs is None else n_jobs
    accuracy = Parallel(n_jobs=n_jobs)(delayed(score)(y_fit) for y_fit in labels)
    return {"fraction_checked": fractions, "n_fixed": np.asarray(n_fixed),
            "accuracy": np.asarray(accuracy, dtype=float)}


# -- validation against refits ---------------------------------------------------------
@dataclass
class ValidationResult:
    """Predicted vs actual changes of the test loss when influential rows are removed.

    Attributes
    ----------
    indices : ndarray of shape (k,)
        The training rows removed (one at a time), most influential first.
    predicted : ndarray of shape (k,)
        Predicted change of the mean test loss when each row is removed.
    actual : ndarray of shape (k,)
        Actual change: refit without the row minus refit on all rows.
    predicted_per_point, actual_per_point : ndarray of shape (n_test, k)
        The same for every test point.
    pearson, spearman : float
        Correlations of ``predicted`` and ``actual`` (NaN when one is constant).
    method : str
        The ``leave_one_out`` method used for the predictions.
    """

    indices: np.ndarray
    predicted: np.ndarray
    actual: np.ndarray
    predicted_per_point: np.ndarray
    actual_per_point: np.ndarray
    pearson: float
    spearman: float
    method: str

    def __repr__(self):
        return (f"ValidationResult(k={len(self.indices)}, method={self.method!r}, "
                f"pearson={self.pearson:.4f}, spearman={self.spearman:.4f})")


def _pearson(a, b):
    a, b = a - a.mean(), b - b.mean()
    denom = np.sqrt((a @ a) * (b @ b))
    return float(a @ b / denom) if denom > 0 else float("nan")


def _spearman(a, b):
    return _pearson(rankdata(a), rankdata(b))


def validate(explainer, X, y, k=10, method="influence", n_jobs=None, *,
             X_train=None, y_train=None):
    """Check predicted leave-one-out changes against real refits (the paper's Fig 2).

    Ranks the training rows by the magnitude of their predicted effect on the mean
    loss over the given test points, ``|leave_one_out(X, y, method).mean(axis=0)|``,
    then refits ``clone(explainer.estimator_)`` without each of the top k (one at a
    time, in parallel) and compares the predicted with the actual change. Pass a
    single test point to reproduce the paper's per-test-point check; every refit also
    reports the change of each test point's loss (``*_per_point``).

    Refits use the training rows the explainer was fitted on and its
    ``sample_weight_`` (the removed row's weight is dropped with it); the baseline is
    a refit on all rows, so that solver noise cancels.

    Parameters
    ----------
    explainer : InfluenceExplainer
        Fitted; its estimator must be refittable (not a ``FrozenEstimator``).
    X : {array-like, sparse matrix} of shape (n_test, n_features)
        Test inputs.
    y : array-like of shape (n_test,)
        Test labels.
    k : int, default=10
        Number of training rows to remove and refit, in [2, n_train].
    method : {"influence", "newton"}, default="influence"
        As in :meth:`~skinfluence.InfluenceExplainer.leave_one_out`.
    n_jobs : int, default=None
        joblib workers for the refits (None: the explainer's ``n_jobs``).
    X_train, y_train : array-like, default=None
        For an explainer of a Pipeline: the training data ``fit`` was given (the
        explainer keeps it only as the last step sees it). The whole pipeline is
        refitted, earlier steps included, while the influence holds them fixed: the
        check measures that approximation too. Ignored otherwise.

    Returns
    -------
    result : ValidationResult
        ``indices``, ``predicted``, ``actual``, their ``pearson`` and ``spearman``
        correlations, and the per-test-point changes.

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skinfluence import InfluenceExplainer
    >>> from skinfluence.analysis import validate
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> X = StandardScaler().fit_transform(X)
    >>> model = LogisticRegression(solver="newton-cholesky", tol=1e-10)
    >>> explainer = InfluenceExplainer(model).fit(X[:200], y[:200])
    >>> result = validate(explainer, X[200:210], y[200:210], k=5, method="newton")
    >>> result.predicted.shape, result.actual_per_point.shape
    ((5,), (10, 5))
    >>> bool(result.pearson > 0.99)
    True
    """
    _check_explainer(explainer)
    template = _refit_model(explainer, "validate")
    X_train, y_train, sw = _training_data(explainer, X_train, y_train, "validate")
    n_train = len(sw)
    if not isinstance(k, Integral) or not 2 <= k <= n_train:
        raise ValueError(f"k must be an integer in [2, {n_train}]; got {k!r}.")
    per_point = explainer.leave_one_out(X, y, method=method)
    mean = per_point.mean(axis=0)
    key = np.where(np.isnan(mean), -1.0, np.abs(mean))  # NaN (undefined) last
    order = np.argsort(-key, kind="stable")
    top = order[:k]

    obj = _objective(explainer)
    X_test = X if pipeline_of(explainer.estimator_) is not None else \
        check_array(X, accept_sparse="csr", dtype=np.float64)
    y_enc = obj.targets.encode(y, _num_samples(X_test))
    n_jobs = explainer.n_jobs if n_jobs is None else n_jobs
    actual_per_point = refit_loss_changes(template, X_train, y_train, sw,
                                          top, X_test, y_enc, obj.loss, n_jobs=n_jobs)
    predicted, actual = mean[top], actual_per_point.mean(axis=0)
    return ValidationResult(
        indices=top, predicted=predicted, actual=actual,
        predicted_per_point=per_point[:, top], actual_per_point=actual_per_point,
        pearson=_pearson(predicted, actual), spearman=_spearman(predicted, actual),
        method=method,
    )


# -- model selection -------------------------------------------------------------------
class _Margin:
    """Test "loss" = the classification margin (> 0: the row is classified right).

    One output: ỹ z with ỹ = ±1; several: z_y − max_{k≠y} z_k (prediction is the
    argmax for softmax and one-vs-rest alike). Only its value is used (Newton
    leave-one-out evaluates the test loss at the shifted parameters).
    """

    def value_grad(self, Z, y):
        n, k = Z.shape
        dZ = np.zeros_like(Z)
        if k == 1:
            sign = np.where(y == 1, 1.0, -1.0)
            dZ[:, 0] = sign
            return sign * Z[:, 0], dZ
        rows = np.arange(n)
        others = Z.copy()
        others[rows, y] = -np.inf
        rival = others.argmax(axis=1)
        dZ[rows, y], dZ[rows, rival] = 1.0, -1.0
        return Z[rows, y] - others[rows, rival], dZ

    def hessian(self, Z, y):
        return np.zeros(Z.shape + (Z.shape[1],))


def loo_score(explainer, scoring="loss"):
    """Approximate leave-one-out error of the wrapped model, from one fit.

    Uses ``leave_one_out(X_train, y_train, method="newton")``: its diagonal entry j
    predicts how much training row j's own loss grows when the model is refitted
    without it, so ``loss_j + diagonal_j`` approximates row j's leave-one-out loss
    (exact for least squares: the PRESS statistic).

    Parameters
    ----------
    explainer : InfluenceExplainer
        Fitted. Works for a ``FrozenEstimator`` too (no refit is done).
    scoring : {"loss", "accuracy"}, default="loss"
        - "loss": the mean leave-one-out loss (the model's own plain loss: log-loss
          for LogisticRegression, squared error for Ridge, …; lower is better).
        - "accuracy" (classifiers): the fraction of rows classified correctly by the
          one-Newton-step model without them, i.e. whose Newton leave-one-out
          margin (ỹ·z with one output, z_y − max_{k≠y} z_k with several) stays
          positive (higher is better).

        Both are means weighted by ``sample_weight_`` (plain means without weights).

    Returns
    -------
    score : float

    See Also
    --------
    approximate_loo_cv : Score a parameter grid with it.

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skinfluence import InfluenceExplainer
    >>> from skinfluence.analysis import loo_score
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> X = StandardScaler().fit_transform(X)[:200]
    >>> model = LogisticRegression(C=0.1, solver="newton-cholesky", tol=1e-10)
    >>> explainer = InfluenceExplainer(model).fit(X, y[:200])
    >>> round(loo_score(explainer), 3)          # 200 refits give 0.1226
    0.123
    >>> round(loo_score(explainer, "accuracy"), 3)
    0.965
    """
    _check_explainer(explainer)
    sw = explainer.sample_weight_
    if scoring == "loss":
        values = _training_losses(explainer) + _newton_self_changes(explainer)
    elif scoring == "accuracy":
        obj = _objective(explainer)
        if obj.targets.classes is None:
            raise ValueError("scoring='accuracy' needs a classifier; use 'loss'.")
        margin = _Margin()
        base = margin.value_grad(obj.decision(obj.X), obj.y)[0]
        values = (base + _newton_self_changes(explainer, margin) > 0).astype(float)
    else:
        raise ValueError(f"scoring must be 'loss' or 'accuracy'; got {scoring!r}.")
    return float(np.average(values, weights=sw)) if sw.sum() > 0 else float("nan")


def approximate_loo_cv(estimator, X, y, param_grid, *, scoring="loss",
                       sample_weight=None, **explainer_params):
    """Grid search scored by :func:`loo_score`: one fit per candidate, no refits.

    A stand-in for ``GridSearchCV(estimator, param_grid, cv=LeaveOneOut())`` whose
    cost is one fit (plus one Hessian factorisation) per candidate instead of
    ``n_samples`` fits.

    Parameters
    ----------
    estimator : estimator object
        A supported, unfitted linear model (as for :class:`InfluenceExplainer`).
    X : {array-like, sparse matrix} of shape (n_samples, n_features)
    y : array-like of shape (n_samples,)
    param_grid : dict or list of dicts
        As in ``GridSearchCV``: parameter names of ``estimator`` to lists of values.
    scoring : {"loss", "accuracy"}, default="loss"
        As in :func:`loo_score`.
    sample_weight : array-like of shape (n_samples,), default=None
        Passed to every fit.
    **explainer_params
        Passed to :class:`InfluenceExplainer` (e.g. ``damping``).

    Returns
    -------
    results : dict
        In the spirit of ``GridSearchCV.cv_results_``: ``"params"`` (list of dicts),
        ``"loo_loss"`` or ``"loo_accuracy"`` (array), ``"mean_test_score"``
        (greater is better: the negated loss, or the accuracy),
        ``"rank_test_score"``, ``"best_index"`` and ``"best_params"`` (highest
        ``mean_test_score``, first on ties).

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skinfluence.analysis import approximate_loo_cv
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> X = StandardScaler().fit_transform(X)[:200]
    >>> model = LogisticRegression(solver="newton-cholesky", tol=1e-10)
    >>> res = approximate_loo_cv(model, X, y[:200], {"C": [0.01, 0.1, 1.0, 10.0]})
    >>> res["best_params"]                # as true leave-one-out CV (200 refits each)
    {'C': 1.0}
    """
    if scoring not in ("loss", "accuracy"):
        raise ValueError(f"scoring must be 'loss' or 'accuracy'; got {scoring!r}.")
    _check_param_grid(param_grid)
    candidates = list(ParameterGrid(param_grid))
    values = np.empty(len(candidates))
    for i, params in enumerate(candidates):
        model = clone(estimator).set_params(**params)
        explainer = InfluenceExplainer(model, **explainer_params).fit(
            X, y, sample_weight=sample_weight
        )
        values[i] = loo_score(explainer, scoring)
    score = -values if scoring == "loss" else values
    rank = rankdata(-score, method="min").astype(int)
    best = int(np.argmax(score))
    return {"params": candidates, f"loo_{scoring}": values, "mean_test_score": score,
            "rank_test_score": rank, "best_index": best,
            "best_params": candidates[best]}


def _check_param_grid(param_grid):
    """At least one parameter to vary: an empty grid would score the model as is."""
    grids = [param_grid] if isinstance(param_grid, Mapping) else param_grid
    try:
        empty = not any(len(grid) for grid in grids)
    except TypeError:
        return  # not a dict or a list of dicts: ParameterGrid says so
    if empty:
        raise ValueError(
            f"param_grid is empty ({param_grid!r}): give at least one parameter with "
            "a list of values, e.g. {'C': [0.1, 1.0, 10.0]}. To score the model as "
            "it is, use loo_score(InfluenceExplainer(estimator).fit(X, y))."
        )
