"""The refit oracle shared by the analyses: the real model refit without some rows."""

import numpy as np
from sklearn.base import clone, is_classifier
from sklearn.utils import _safe_indexing
from sklearn.utils.parallel import Parallel, delayed

from .models import sample_weight_param


def decision_values(model, X):
    """Decision values (classifiers) or predictions (regressors), (n, n_outputs).

    A classifier without ``decision_function`` (a network) gives them from its
    probabilities: the logit for two classes, log-probabilities (the softmax inputs
    up to a shift, which its loss ignores) otherwise.
    """
    if is_classifier(model) and not hasattr(model, "decision_function"):
        P = np.clip(np.asarray(model.predict_proba(X), dtype=np.float64), 1e-300, 1)
        Z = np.log(P[:, 1]) - np.log(P[:, 0]) if P.shape[1] == 2 else np.log(P)
    else:
        Z = model.decision_function(X) if is_classifier(model) else model.predict(X)
    Z = np.asarray(Z, dtype=np.float64)
    return Z.reshape(Z.shape[0], -1)


def fit_params(estimator, sample_weight):
    """``fit`` keyword arguments passing ``sample_weight`` (to a Pipeline's last step);
    none when the weights are all ones (the default)."""
    if sample_weight is None or np.all(np.asarray(sample_weight) == 1.0):
        return {}
    return {sample_weight_param(estimator): np.asarray(sample_weight)}


def refit_loss_changes(estimator, X_train, y_train, sample_weight, rows, X, y_enc,
                       loss, *, n_jobs=None):
    """Actual change of each test loss when training row j is removed and refit.

    Refits ``clone(estimator)`` once on all rows (the baseline, so that solver noise
    cancels) and once without each row of ``rows`` (its sample weight dropped with
    it), and evaluates ``loss`` (in decision space, labels ``y_enc``) at ``X``.

    Returns
    -------
    change : ndarray of shape (n_test, len(rows))
    """
    sw = None if not fit_params(estimator, sample_weight) else np.asarray(sample_weight)
    losses = Parallel(n_jobs=n_jobs)(
        delayed(_refit_loss)(estimator, X_train, y_train, sw, drop, X, y_enc, loss)
        for drop in [None, *np.asarray(rows, dtype=np.intp).tolist()]
    )
    if len(losses) == 1:
        return np.empty((losses[0].shape[0], 0))
    return np.stack(losses[1:], axis=1) - losses[0][:, None]


def _refit_loss(estimator, X_train, y_train, sw, drop, X, y_enc, loss):
    keep = np.ones(len(y_train), dtype=bool)
    if drop is not None:
        keep[drop] = False
    params = {} if sw is None else fit_params(estimator, sw[keep])
    model = clone(estimator).fit(_safe_indexing(X_train, keep),
                                 _safe_indexing(y_train, keep), **params)
    return loss.value_grad(decision_values(model, X), y_enc)[0]
