"""Regression diagnostics per training row: the table of statsmodels'
``OLSInfluence.summary_frame`` for every supported model family.

Row j's removal moves θ̂ by one Newton step Δθ_j = θ̂_{−j} − θ̂ (exact for least
squares; see :mod:`skinfluence._removal`). With H the Hessian of R = objective/(C·n)
and p the number of free parameters:

- ``leverage``: h_j, the largest eigenvalue of the row's leverage matrix (the
  diagonal of the hat matrix for least squares);
- ``self_influence``: I_up,loss(z_j, z_j);
- ``loo_loss_change``: L(z_j, θ̂ + Δθ_j) − L(z_j, θ̂), the change of the row's own
  loss when it is left out (the deleted residual's loss minus the residual's);
- ``cooks_distance``: D_j = Δθ_jᵀ (n H) Δθ_j / (p φ̂) (Cook, 1977);
- ``dfbetas_<param>``: −Δθ_j / √(φ̂_(j) [(n H)⁻¹]_kk), the change θ̂ − θ̂_{−j} of each
  parameter in units of its standard error (Belsley, Kuh & Welsch, 1980).

φ̂ is the dispersion: for regressors (squared error) the Pearson estimate
φ̂ = Σ_i s_i (L'_i)² / L''_i / (n − p), which with L = (y − z)² makes φ̂ (nH)⁻¹ the
covariance of θ̂ (φ̂ = 2 s², nH = 2 XᵀX); φ̂_(j) is the same estimate without row j,
((n − p) φ̂ − s_j (L'_j)² / L''_j / (1 − h_j)) / (n − p − 1). For classifiers the
dispersion is fixed at 1, as for statsmodels' binomial GLM. For OLS every column equals
the textbook definition (statsmodels' ``OLSInfluence``); for an unpenalised logistic
regression, Cook's distance equals statsmodels' ``GLMInfluence.cooks_distance``. With a
penalty, n H includes the penalty (the covariance of the penalised estimate's
linearisation), and p counts every free parameter.
"""

import numpy as np
import scipy.sparse as sp

from ._removal import removal_steps

__all__ = ["summary_frame", "top_rows_frame"]

#: ``dfbetas="auto"`` adds the per-parameter columns up to this many parameters.
AUTO_DFBETAS_MAX = 100


def summary_frame(explainer, *, dfbetas="auto"):
    """Per-row diagnostics of a fitted explainer as a pandas DataFrame.

    See :meth:`skinfluence.InfluenceExplainer.summary_frame`.
    """
    pd = _pandas()
    if dfbetas not in ("auto", True, False):
        raise ValueError(f"dfbetas must be 'auto', True or False; got {dfbetas!r}.")
    obj = explainer.risk_
    n = len(explainer.sample_weight_)
    free = obj.free[obj.reported_mask]  # in the params_ layout
    p = int(free.sum())
    leverage = explainer.leverages()
    phi, phi_loo = _dispersion(obj, leverage, p)
    steps = _newton_steps(explainer)[:, obj.free]  # Δθ_j, (n, p_free)
    nH = n * explainer.hessian_solver_.damped_hessian()

    labels = _labels(explainer)
    columns = {} if labels is None else {"label": labels}
    columns.update({
        "sample_weight": explainer.sample_weight_,
        "leverage": leverage,
        "self_influence": explainer.self_influence(),
        "loo_loss_change": own_loss_change(obj, steps),
        "cooks_distance": np.einsum("jp,pq,jq->j", steps, nH, steps) / (p * phi),
    })
    if dfbetas is True and obj.param_map is not None:
        raise ValueError(
            "dfbetas are per parameter of θ, which for a kernel machine are "
            "coordinates of its whitened kernel features, not its reported dual "
            "coefficients: use dfbetas=False (param_change gives the dual "
            "coefficients' changes)."
        )
    if obj.param_map is None and (
            dfbetas is True or (dfbetas == "auto" and p <= AUTO_DFBETAS_MAX)):
        cov_diag = np.diag(explainer.hessian_solver_.inverse) / n  # [(nH)⁻¹]_kk
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.sqrt(phi_loo[:, None] * cov_diag[None, :])
            values = np.where(scale > 0, -steps / scale, 0.0)
        names = np.asarray(parameter_names(explainer), dtype=object)[free]
        columns.update({f"dfbetas_{name}": values[:, i] for i, name in enumerate(names)})
    return pd.DataFrame(columns, index=explainer.training_index_)


def top_rows_frame(explainer, X, Xv, y_enc, loss, indices, scores, kind, method):
    """``most_influential(..., as_frame=True)``: one row per (test point, rank)."""
    pd = _pandas()
    n_test, k = indices.shape
    n = len(explainer.sample_weight_)
    found = indices >= 0
    rows = np.where(found, indices, 0)
    weights, training, labels = _row_details(explainer, rows.ravel())
    if method == "newton":
        loo = _newton_pair_changes(explainer, Xv, y_enc, loss, rows)
    else:
        loo = -(weights.reshape(rows.shape) / n) * scores
    test_index = getattr(X, "index", None)
    if test_index is None or not hasattr(X, "columns"):
        test_index = np.arange(n_test)
    training[~found.ravel()] = None
    columns = {
        "test_row": np.repeat(np.asarray(test_index, dtype=object), k),
        "rank": np.tile(np.arange(1, k + 1), n_test),
        "training_row": training,
        "kind": kind,
        "score": scores.ravel(),
        "loo_change": np.where(found, loo, np.nan).ravel(),
    }
    if labels is not None:
        labels[~found.ravel()] = None
        columns["label"] = labels
    return pd.DataFrame(columns)


def _row_details(explainer, rows):
    """(sample weights, ``training_index_`` labels, labels or None) of the training
    rows ``rows``; on chunked data only those rows are gathered."""
    from ._chunked import compute, is_chunked

    if is_chunked(explainer.X_fit_):
        local = explainer.risk_.rows.take(rows)
        (training,) = compute(explainer.training_index_[rows])
        labels = local.targets.decode(local.y)
        return (local.sample_weight, np.asarray(training, dtype=object),
                np.asarray(labels, dtype=object) if labels.ndim == 1 else None)
    labels = _labels(explainer)
    return (explainer.sample_weight_[rows],
            np.asarray(explainer.training_index_, dtype=object)[rows],
            None if labels is None else np.asarray(labels, dtype=object)[rows])


def _newton_pair_changes(explainer, Xv, y_enc, loss, rows):
    """L(z_t, θ̂ + Δθ_j) − L(z_t, θ̂) for each test point t and its rows j (n_test, k)."""
    obj = explainer.risk_
    unique, where = np.unique(rows, return_inverse=True)
    where = where.reshape(rows.shape)
    steps = _newton_steps(explainer, unique)[:, obj.free]  # (m, p_free)
    Z = obj.decision(Xv)  # (n_test, n_outputs)
    if not obj.linear:  # a network: the test outputs at each row's stepped weights
        moved = np.stack([obj.decision_at(Xv, obj.params + step) for step in steps])
        shift = moved[where, np.arange(Xv.shape[0])[:, None]] - Z[:, None, :]
    else:  # U_tᵀ Δθ_j for every output: (n_test, m) per output, then each test's rows
        shift = np.stack([np.take_along_axis(np.asarray(u @ steps.T), where, axis=1)
                          for u in obj.output_jacobians(Xv)], axis=2)  # (n_test, k, out)
    before = loss.value_grad(Z, y_enc)[0]
    n_test, k = rows.shape
    after = loss.value_grad((Z[:, None, :] + shift).reshape(n_test * k, -1),
                            np.repeat(y_enc, k, axis=0))[0]
    return after.reshape(n_test, k) - before[:, None]


def _newton_steps(explainer, rows=None):
    """Δθ_j of one Newton step without each row j (all rows when None), over all of
    θ: ``param_change(rows, method="newton")`` where ``params_`` is θ itself, else
    the removal steps before the public layout (``risk_.reported``)."""
    risk = explainer.risk_
    if risk.param_map is None and risk.reported_mask.all():
        return explainer.param_change(rows, method="newton")
    steps = removal_steps(risk, explainer.hessian_solver_,
                          explainer.hessian_solver_.damped_hessian(), "newton")
    steps = steps if rows is None else steps[rows]
    return np.where(np.isnan(steps).any(axis=1, keepdims=True), np.nan, steps)


def _pandas():
    try:
        import pandas as pd
    except ImportError as exc:  # pragma: no cover - pandas is a test extra
        raise ImportError("This returns a pandas DataFrame: pip install pandas.") \
            from exc
    return pd


def parameter_names(explainer):
    """Names of θ in the ``params_`` layout: coefficients, then intercepts.

    A coefficient is named by its feature (``feature_names_in_``, the names a
    Pipeline's earlier steps give, or ``x0, x1, …``), prefixed by the class
    (``"<class>:<feature>"``) when the model has several outputs; intercepts are
    ``"intercept"`` or ``"intercept:<class>"``. A family with parameters of its own
    (HuberRegressor's ``"scale"``) names them (``risk_.parameter_names(features)``).
    """
    obj = explainer.risk_
    if not obj.linear:  # a network: its own layout (coefs_[l][i, o], intercepts_[l][o])
        return obj.parameter_names()
    k, d = obj.n_outputs, obj.n_features
    features = _feature_names(explainer, d)
    own = getattr(obj, "parameter_names", None)
    if own is not None:
        return own(list(features))
    if k == 1:
        names = list(features)
        outputs = [""]
    else:
        outputs = _output_names(explainer, k)
        names = [f"{o}:{f}" for o in outputs for f in features]
    if obj.fit_intercept:
        names += ["intercept" if k == 1 else f"intercept:{o}" for o in outputs]
    return names


def _feature_names(explainer, d):
    from .models import pipeline_of

    pipeline = pipeline_of(explainer.estimator_)
    if pipeline is not None and len(pipeline) > 1:
        try:
            names = pipeline[:-1].get_feature_names_out()
        except (AttributeError, ValueError, TypeError):
            names = None
        if names is not None and len(names) == d:
            return [str(f) for f in names]
        return [f"x{i}" for i in range(d)]
    names = getattr(explainer, "feature_names_in_", None)
    if names is not None and len(names) == d:
        return [str(f) for f in names]
    return [f"x{i}" for i in range(d)]


def _output_names(explainer, k):
    classes = getattr(explainer, "classes_", None)
    if classes is not None and len(classes) == k:
        return [str(c) for c in classes]
    return [str(a) for a in range(k)]


def _labels(explainer):
    """Each training row's label as the user gave it (classes decoded); None for
    several real outputs."""
    obj = explainer.risk_
    labels = obj.targets.decode(obj.y)
    return labels if labels.ndim == 1 else None


def own_loss_change(obj, steps, loss=None):
    """L(z_j, θ̂ + Δθ_j) − L(z_j, θ̂) of every training row (plain loss, no weight).

    ``steps`` (n, p_free); ``loss`` replaces the model's own loss when given.
    """
    loss = loss or obj.loss
    Z = obj.decision(obj.X)
    if not obj.linear:  # a network: each row's output at its own stepped weights
        shift = np.vstack([obj.decision_at(obj.X[[j]], obj.params + step)
                           for j, step in enumerate(steps)]) - Z
    else:
        shift = np.column_stack([
            np.asarray(u.multiply(steps).sum(axis=1)).ravel() if sp.issparse(u)
            else np.einsum("jp,jp->j", u, steps)
            for u in obj.output_jacobians(obj.X)
        ])  # U_jᵀ Δθ_j, (n, k)
    before = loss.value_grad(Z, obj.y)[0]
    after = loss.value_grad(Z + shift, obj.y)[0]
    return after - before


def _dispersion(obj, leverage, p):
    """φ̂ and the leave-one-out φ̂_(j) (see the module docstring)."""
    n = obj.X.shape[0]
    if obj.targets.classes is not None:  # fixed dispersion (binomial, multinomial)
        return 1.0, np.ones(n)
    Z = obj.decision(obj.X)
    out = obj.predicted  # the outputs that are predictions (not HuberRegressor's σ)
    dZ = obj.loss.value_grad(Z, obj.y)[1][:, out]
    curv = np.einsum("jaa->ja", obj.loss.hessian(Z, obj.y))[:, out]
    flat = np.flatnonzero((curv == 0).any(axis=1))
    if flat.size:
        raise ValueError(
            f"summary_frame's Pearson dispersion s_j (L'_j)² / L''_j needs the loss's "
            f"curvature at every training row; {flat.size} row(s) have none (e.g. "
            f"{flat[:5].tolist()}: beyond a Huber threshold or outside an ε-tube). "
            "Use leverages(), self_influence() and param_change(method='newton') "
            "directly."
        )
    pearson = (obj.row_weight[:, out] * dZ**2 / curv).sum(axis=1)  # s (L')² / L''
    dof = n - p
    if dof <= 1:
        raise ValueError(
            f"summary_frame estimates the dispersion from n - p = {dof} residual "
            "degrees of freedom; it needs at least 2 (more training rows than "
            "parameters)."
        )
    phi = pearson.sum() / dof
    with np.errstate(divide="ignore"):
        phi_loo = (dof * phi - pearson / (1.0 - leverage)) / (dof - 1)
    return phi, phi_loo
