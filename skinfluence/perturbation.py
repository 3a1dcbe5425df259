"""Influence of perturbing a training *input*, and the training-set attack it enables.

Koh & Liang (2017, §2.2 and §5.2): moving training input x_j to x_j + δ moves the
optimum by ``dθ̂ ≈ −(s_j/n) H⁻¹ ∇x∇θL(z_j, θ̂) δ`` and the loss of test point z_t by

    (s_j/n) · I_pert,loss(z_j, z_t)ᵀ δ,
    I_pert,loss(z_j, z_t) = −∇θL(z_t, θ̂)ᵀ H⁻¹ ∇x∇θL(z_j, θ̂).

On the training side ``∇θL(z_j)`` carries the row's class weight c_j, as in
:meth:`InfluenceExplainer.param_influence` (the row's contribution to ∇R is
``(s_j/n) c_j ⊙ dL/dz_j ⊗ [x_j, 1]``). For a linear model with decision values
``z = W x + b`` the mixed derivative is available in closed form (see
:func:`perturbation_influence`), so no n × p × d tensor is ever built: one solve
``V = H⁻¹ ∇θL(z_t)ᵀ`` per test point, then a contraction per training row.

Class weights computed by ``class_weight="balanced"`` depend on the sample weights and
labels only, not on the inputs, so they are constant under input perturbations and
are supported. The exact hinge (SVC, ``LinearSVC(loss="hinge")``; their training rows'
derivative is the dual subgradient) is not differentiable in x: refused.

Pipelines. The explained model is the last step, on the features ``u = T(x)`` the
earlier, fitted steps produce; those steps are held fixed (as everywhere in
skinfluence: a training row's effect on, e.g., a scaler's mean is not part of the
influence). Where T is affine, ``T(x) = J x + c`` (StandardScaler, MinMaxScaler,
MaxAbsScaler, RobustScaler, PCA, ``"passthrough"``, ...), the gradient with respect
to the user's input is ``Jᵀ`` times the gradient with respect to u, and
:func:`training_set_attack` moves the training rows in the input space the user gave.
J and c are read off the fitted steps (``c = T(0)``, column f of J is
``T(e_f) − T(0)``) and the map is checked against T on the data involved; a
non-affine step (PolynomialFeatures, OneHotEncoder, a non-linear
FunctionTransformer, ...) is refused.
"""

import warnings
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.frozen import FrozenEstimator
from sklearn.utils.validation import check_array, check_is_fitted

from ._scoring import check_result_size
from ._utils import check_indices, check_training_inputs, dense, model_input
from .models import pipeline_of

__all__ = [
    "AttackResult",
    "perturbation_influence",
    "refit_loss_change",
    "training_set_attack",
]

#: Relative error ``‖T(x) − (J x + c)‖∞ / ‖|J| |x| + |c|‖∞`` above which a Pipeline's
#: earlier steps are not affine (roundoff of an affine map is ~1e-16).
AFFINE_RTOL = 1e-8

#: Memory of one batch of unit vectors pushed through a Pipeline's earlier steps.
PROBE_BYTES = 2**25


def perturbation_influence(explainer, X, y, indices=None, *, space="model",
                           test_loss=None):
    """I_pert,loss(z_j, z_test) = −∇θL(z_test)ᵀ H⁻¹ ∇x∇θL(z_j, θ̂) for training rows j.

    Entry ``[t, j]`` is n/s_j times the gradient of the loss of test point t with
    respect to the input x_j of training row j: moving x_j by a small δ changes test
    loss t by about ``(s_j / n) · result[t, j] @ δ`` after refitting.

    For a linear model (decision values ``z = W x + b``, k outputs, row weight
    ``w_j = c_j ⊙ dL/dz_j``, curvature ``D_j = c_j ⊙ d²L/dz²_j``)::

        ∂(∇θL_j)/∂x_jf = (D_j W[:, f]) ⊗ [x_j, 1] + w_j ⊗ e_f

    so with ``V_t = H⁻¹ ∇θL(z_t)`` split into ``A_t`` (k × d, the coefficient block)
    and ``b_t`` (k, the intercept block)::

        result[t, j] = −(Wᵀ D_jᵀ (A_t x_j + b_t) + A_tᵀ w_j).

    Parameters held fixed by the explainer (L1 zeros, ``positive=True`` bounds, a
    softmax's flat directions) stay fixed, as in :meth:`param_influence`.

    Parameters
    ----------
    explainer : InfluenceExplainer
        A fitted explainer.
    X : {array-like, sparse matrix} of shape (n_test, n_features)
        Test inputs.
    y : array-like of shape (n_test,) or (n_test, n_outputs)
        Test labels (targets for regressors).
    indices : array-like of int, default=None
        Training rows to compute; all rows when None.
    space : {"model", "input"}, default="model"
        The space of the feature axis, for a Pipeline: ``"model"``, the features the
        explained last step sees (the earlier steps' output); ``"input"``, the
        features the user passes to the pipeline, ``Jᵀ`` times the model-space
        result, where the earlier steps are affine, ``T(x) = J x + c`` (a
        ``ValueError`` otherwise). The earlier steps are held fixed (the influence
        of a row on a scaler's mean is not included). Without a Pipeline both are
        the same.
    test_loss : str or object, default=None
        The test-side loss, as in :meth:`InfluenceExplainer.loss_influence`.

    Returns
    -------
    influence : ndarray of shape (n_test, n_indices, n_features)
        ``(s_j / n) · influence[t, j]`` is the gradient of test loss t with respect to
        training input x_j (after refitting). Positive entries: increasing that
        feature of that training row raises the test loss. ``n_features`` is that
        of the ``space``.

    Raises
    ------
    NotImplementedError
        For the exact hinge (SVC, ``LinearSVC(loss="hinge")``), whose training
        derivative is a subgradient read off the dual coefficients and is not
        differentiable in the inputs.
    ValueError
        With ``space="input"``, when the Pipeline's earlier steps are not affine.
    MemoryError
        When the result would exceed the explainer's ``max_result_bytes``.

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skinfluence import InfluenceExplainer
    >>> from skinfluence.perturbation import perturbation_influence
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> X = StandardScaler().fit_transform(X)[:, :5]
    >>> model = LogisticRegression(solver="newton-cholesky", tol=1e-10)
    >>> explainer = InfluenceExplainer(model).fit(X[:300], y[:300])
    >>> influence = perturbation_influence(explainer, X[300:302], y[300:302], [0, 1])
    >>> influence.shape
    (2, 2, 5)
    >>> grad = influence[0, 1] / 300   # d(test loss 0)/d(x_1): s_1 = 1, n = 300
    """
    check_is_fitted(explainer)
    if space not in ("model", "input"):
        raise ValueError(f'space must be "model" or "input"; got {space!r}.')
    obj = explainer.risk_
    _check_differentiable(obj)
    Xv, y_enc, loss = explainer.validate_test(X, y, test_loss=test_loss)
    rows = check_indices(indices, obj.X.shape[0])
    Jt = None
    if space == "input" and pipeline_of(explainer.estimator_) is not None:
        Jt = _affine_input_map(explainer, X, Xv, "perturbation_influence")[0]
    d = obj.n_features if Jt is None else Jt.shape[0]
    check_result_size((Xv.shape[0], len(rows), d), explainer.max_result_bytes,
                      hint="Pass fewer training rows (indices) or test rows per call, "
                      "or raise max_result_bytes.")
    V = _solved_test_gradients(explainer, Xv, y_enc, loss)
    return _contract(obj, V, rows, Jt)


def _solved_test_gradients(explainer, Xv, y_enc, loss):
    """V = H⁻¹ ∇θL(z_t)ᵀ, (p_free, n_test), for model-space test inputs Xv."""
    G = dense(explainer.risk_.test_gradients(Xv, y_enc, loss))  # (n_test, p_free)
    return explainer.hessian_solver_.solve(G.T)


def _check_differentiable(obj):
    if not obj.linear:
        raise NotImplementedError(
            "perturbation_influence and training_set_attack need ∇x∇θL in closed "
            "form, implemented for linear models only; this model is a neural "
            "network. Use loss_influence (up-weighting) or refit_loss_change."
        )
    if obj.input_map is not None:
        raise NotImplementedError(
            "perturbation_influence and training_set_attack need ∇x of the model's "
            "features, which kernel machines (SVC/SVR with a kernel, KernelRidge, "
            "GaussianProcessRegressor) do not provide: their features are kernel "
            "values K(x, X_train), not x. Use a linear model on x."
        )
    if obj.train_dz is not None or obj.pinned is not None:
        raise NotImplementedError(
            "perturbation_influence is undefined for the exact hinge (SVC, "
            "LinearSVC(loss='hinge')): the hinge is not differentiable, and its "
            "training derivative is a subgradient read off the dual coefficients, "
            "which does not vary smoothly with the inputs (whatever the smoothing). "
            "Use LinearSVC(loss='squared_hinge') or LogisticRegression."
        )


def _contract(obj, V, rows, Jt=None):
    """−∇θL(z_t)ᵀ H⁻¹ ∂(∇θL_j)/∂x_j for the rows, from V = H⁻¹∇θL(z_t) (p_free, T).

    With ``Jt`` (d_in × d_out, the transposed Jacobian of a Pipeline's affine earlier
    steps), the feature axis is the input's: ``∂/∂x = Jᵀ ∂/∂u``.
    """
    # ∂(∇θL_j)/∂x_jf = (c_j ⊙ d²L/dz²_j W[:, f]) ⊗ [x_j, 1] + (c_j ⊙ dL/dz_j) ⊗ e_f
    k, d, T = obj.n_outputs, obj.n_features, V.shape[1]
    full = np.zeros((obj.n_params, T))
    full[obj.free] = V  # fixed parameters do not move: zero there
    idx = obj.param_index()
    A = np.ascontiguousarray(full[idx[:, :d]].transpose(2, 0, 1))  # (T, k, d)
    b = full[idx[:, d]].T if obj.fit_intercept else np.zeros((T, k))  # (T, k)
    Xr = dense(obj.X[rows])  # (n_r, d)
    Z = obj.decision(Xr)
    y = obj.y[rows]
    c = obj.class_weight[rows]  # (n_r, k)
    w = c * obj.loss.value_grad(Z, y)[1]  # c_j ⊙ dL/dz_j
    U = c[:, :, None] * (obj.loss.hessian(Z, y) @ obj.coef)  # (D_j W), (n_r, k, d)
    out = np.matmul(w, _to_input(A, Jt))  # Σ_k w_jk A_t[k]: (T, n_r, d_in)
    U = _to_input(U, Jt)
    for a in range(k):
        Q = A[:, a, :] @ Xr.T + b[:, a, None]  # (A_t x_j + b_t)_a: (T, n_r)
        out += Q[:, :, None] * U[None, :, a, :]
    np.negative(out, out=out)
    return out


def _to_input(M, Jt):
    """``M @ J`` on the last axis (model features → input features); M when no J."""
    if Jt is None:
        return M
    flat = M.reshape(-1, M.shape[-1])
    return np.asarray(Jt @ flat.T).T.reshape(*M.shape[:-1], Jt.shape[0])


@dataclass
class AttackResult:
    """Outcome of :func:`training_set_attack`.

    Attributes
    ----------
    X : ndarray or sparse matrix of shape (n_train, n_features)
        The perturbed training inputs (a float64 copy; only rows ``indices``
        differ), in the space of the training inputs the user gave (a Pipeline's
        input space).
    indices : ndarray of shape (k,)
        The attacked training rows, strongest first.
    delta : ndarray of shape (k, n_features)
        ``X[indices]`` minus the original rows.
    predicted_increase : float
        Predicted increase of the (summed) test loss: the sum over steps of the
        first-order prediction ``Σ_j (s_j/n) I_pert(z_j)ᵀ Δx_j`` at each step's fit.
    """

    X: object
    indices: np.ndarray
    delta: np.ndarray
    predicted_increase: float


def training_set_attack(explainer, x_test, y_test, k=1, bound=0.5, *,
                        feature_range=None, n_steps=1, step_size=None,
                        X_train=None, y_train=None, test_loss=None):
    """Perturb k training inputs, within an L∞ bound, to raise a test loss (§5.2).

    Koh & Liang's training-set attack: the k training rows whose inputs can raise
    the loss of the test point(s) most are moved by signed gradient steps
    ``x_j ← Π(x_j + α sign(I_pert,loss(z_j, z_test)))``, where Π projects onto the L∞
    ball of radius ``bound`` around the original x_j intersected with
    ``feature_range``. Rows are ranked by the first-order loss increase of the full
    step, ``(s_j/n) I_pert(z_j)ᵀ (Π(x_j + bound·sign(I_pert)) − x_j)``: the
    ``(s_j/n)·‖I_pert(z_j)‖₁ · bound`` of the dual norm, less what the feature range
    clips away.

    With ``n_steps=1`` (the default) this is one step of size ``bound``: the exact
    maximiser, within the box, of the linearised test loss (no refit). With
    ``n_steps > 1``, the explainer is refitted (a clone, same settings) on the
    perturbed data after each step and I_pert recomputed there: projected
    sign-gradient ascent on the refitted test loss, for the same k rows.

    For a Pipeline, the attack works in the input space of the pipeline (the user's
    features): pass the training inputs as ``X_train``; ``bound``,
    ``feature_range`` and the returned rows are in that space, and the gradient is
    ``Jᵀ`` times the explained model's, where the earlier steps are affine,
    ``T(x) = J x + c`` (anything else raises a ``ValueError``; the workaround is to
    explain the last step on the transformed features). The prediction holds the
    earlier steps fixed, while a refit of the pipeline on the returned rows refits
    them too (e.g. a scaler's mean and scale): :func:`refit_loss_change` measures
    the outcome of that real refit.

    Parameters
    ----------
    explainer : InfluenceExplainer
        A fitted explainer (not modified).
    x_test : array-like of shape (n_features,) or (n_test, n_features)
        The test point(s); with several, their summed loss is attacked.
    y_test : label or array-like of shape (n_test,)
        Their labels.
    k : int, default=1
        Number of training rows to perturb.
    bound : float, default=0.5
        L∞ bound on each perturbed row's change, per feature.
    feature_range : (lower, upper) or None, default=None
        Bounds of the perturbed inputs, scalars or arrays of shape (n_features,);
        None: the training data's per-feature min and max.
    n_steps : int, default=1
        Projected gradient steps (refits between them, see above).
    step_size : float or None, default=None
        Step α; None: ``bound`` for one step, ``2·bound/n_steps`` otherwise.
    X_train : {array-like, sparse matrix} of shape (n_train, n_features), \
            default=None
        The training inputs the explainer was fitted on. Required for a Pipeline
        (the explainer keeps only their transform by the earlier steps); otherwise
        optional (checked against the explainer's training data).
    y_train : array-like of shape (n_train,), default=None
        Training labels, only used for refits (``n_steps > 1``); None: recovered
        from the explainer.
    test_loss : str or object, default=None
        As in :meth:`InfluenceExplainer.loss_influence`.

    Returns
    -------
    result : AttackResult
        ``X`` (perturbed copy of the training inputs, in the space of ``X_train``),
        ``indices``, ``delta``, ``predicted_increase``. Check it with
        :func:`refit_loss_change`.

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skinfluence import InfluenceExplainer
    >>> from skinfluence.perturbation import refit_loss_change, training_set_attack
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> X = StandardScaler().fit_transform(X)[:, :10]
    >>> model = LogisticRegression(solver="newton-cholesky", tol=1e-10)
    >>> explainer = InfluenceExplainer(model).fit(X[:300], y[:300])
    >>> attack = training_set_attack(explainer, X[300], y[300], k=3, bound=0.5)
    >>> attack.indices.shape, bool(attack.predicted_increase > 0)
    ((3,), True)
    >>> actual = refit_loss_change(explainer, attack.X, y[:300], X[300], y[300])
    >>> bool(actual[0] > 0)
    True

    On a Pipeline, the rows are attacked and returned in the pipeline's input space:

    >>> from sklearn.pipeline import make_pipeline
    >>> pipe = make_pipeline(StandardScaler(), model)
    >>> X_raw = load_breast_cancer().data[:, :10]
    >>> explainer = InfluenceExplainer(pipe).fit(X_raw[:300], y[:300])
    >>> attack = training_set_attack(explainer, X_raw[300], y[300], k=3, bound=0.5,
    ...                              X_train=X_raw[:300])
    >>> bool(abs(attack.delta).max() <= 0.5)
    True
    """
    check_is_fitted(explainer)
    obj = explainer.risk_
    _check_differentiable(obj)
    n = obj.X.shape[0]
    if not isinstance(k, Integral) or not 1 <= k <= n:
        raise ValueError(f"k must be an integer in [1, {n}]; got {k!r}.")
    if not isinstance(bound, Real) or not np.isfinite(bound) or bound <= 0:
        raise ValueError(f"bound must be a positive finite number; got {bound!r}.")
    if not isinstance(n_steps, Integral) or n_steps < 1:
        raise ValueError(f"n_steps must be a positive integer; got {n_steps!r}.")
    if step_size is None:
        step_size = bound if n_steps == 1 else 2.0 * bound / n_steps
    elif not isinstance(step_size, Real) or not step_size > 0:
        raise ValueError(f"step_size must be positive; got {step_size!r}.")
    x_test, y_test = _test_point(x_test, y_test)
    X_in, Jt, offset = _training_inputs(explainer, X_train)  # the user's space
    d = X_in.shape[1]
    lower, upper = _feature_range(X_in, feature_range, d)

    X0 = dense(X_in)  # original training inputs (never modified)
    sw = explainer.sample_weight_
    scale = sw / n

    def gradients(current, Jt, rows):  # (s_j/n) · Σ_t d loss_t / d x_j (input space)
        G = _summed_input_gradient(current, x_test, y_test, rows, Jt, test_loss)
        return G * scale[rows][:, None]

    # feasible box: the L∞ ball ∩ feature_range (a value already outside the range
    # may stay where it is, or move towards the range)
    lo = np.minimum(np.maximum(X0 - bound, lower), X0)
    hi = np.maximum(np.minimum(X0 + bound, upper), X0)
    # rank all rows by the first-order gain of a full, feasible step
    g = gradients(explainer, Jt, np.arange(n))
    reach = np.clip(X0 + bound * np.sign(g), lo, hi) - X0
    gain = np.einsum("jf,jf->j", g, reach)
    rows = np.argsort(-gain, kind="stable")[:k]

    lo, hi = lo[rows], hi[rows]
    Xcur = X0[rows].copy()
    predicted = 0.0
    g = g[rows]
    y_fit = None
    for step in range(n_steps):
        if step > 0:
            _check_refittable(explainer)
            if y_fit is None:
                y_fit = _training_targets(explainer) if y_train is None else y_train
            X_step = _with_rows(X_in, rows, Xcur)
            current = _refit_explainer(explainer).fit(X_step, y_fit, sample_weight=sw)
            Jt_step = None if Jt is None else _affine_input_map(
                current, X_step, current.risk_.X, "training_set_attack")[0]
            g = gradients(current, Jt_step, rows)
        Xnew = np.clip(Xcur + step_size * np.sign(g), lo, hi)
        predicted += float(np.einsum("jf,jf->", g, Xnew - Xcur))
        Xcur = Xnew
    if Jt is not None:  # the map must hold where the rows went, too
        moved = sp.csr_matrix(Xcur) if sp.issparse(X_in) else Xcur
        _check_affine(explainer, Jt, offset, moved,
                      model_input(explainer.estimator_, moved),
                      "training_set_attack", "the perturbed rows")
    return AttackResult(
        X=_with_rows(X_in, rows, Xcur), indices=rows, delta=Xcur - X0[rows],
        predicted_increase=predicted,
    )


def _summed_input_gradient(explainer, X, y, rows, Jt, test_loss):
    """Σ_t I_pert(z_j, z_t), (n_rows, d): the contraction is linear in V, sum V first."""
    V = _solved_test_gradients(explainer, *explainer.validate_test(
        X, y, test_loss=test_loss))
    return _contract(explainer.risk_, V.sum(axis=1, keepdims=True), rows, Jt)[0]


def _training_inputs(explainer, X_train):
    """(X, Jt, c): the training inputs as the user gave them, and T(x) = x Jt + c.

    Without a Pipeline the inputs are the explainer's own (Jt is None).
    """
    obj = explainer.risk_
    pipeline = pipeline_of(explainer.estimator_)
    if pipeline is None:
        if X_train is not None:
            check_training_inputs(explainer, X_train, "training_set_attack")
        return explainer.X_fit_, None, None
    if X_train is None:
        raise ValueError(
            "training_set_attack on a Pipeline needs X_train, the training inputs "
            "passed to InfluenceExplainer.fit: the explainer keeps only their "
            "transform by the earlier steps, and the attacked rows are returned in "
            "the pipeline's input space."
        )
    X_in = check_array(X_train, accept_sparse="csr", dtype=np.float64,
                       input_name="X_train")
    if X_in.shape != (obj.X.shape[0], explainer.n_features_in_):
        raise ValueError(
            f"X_train has shape {X_in.shape}; the explainer was fitted on "
            f"{obj.X.shape[0]} rows of {explainer.n_features_in_} features."
        )
    check_training_inputs(explainer, X_in, "training_set_attack")
    Jt, c = _affine_input_map(explainer, X_in, obj.X, "training_set_attack")
    return X_in, Jt, c


# -- a Pipeline's earlier steps as an affine map T(x) = x Jt + c ----------------------
def _affine_input_map(explainer, X_raw, X_model, caller):
    """(Jt, c) of the fitted earlier steps, checked on ``X_raw`` (whose T is X_model).

    ``c = T(0)`` and row f of Jt (d_in × d_out, sparse) is ``T(e_f) − T(0)``.
    """
    steps = pipeline_of(explainer.estimator_)[:-1]
    try:
        X_raw = check_array(X_raw, accept_sparse="csr", dtype=np.float64)
        Jt, c = _probe_affine(explainer, sp.issparse(X_raw))
    except Exception as exc:  # cannot evaluate the steps on numeric probes
        raise _not_affine(steps, caller, "evaluating them on the zero vector and the "
                          f"unit vectors failed ({type(exc).__name__}: {exc})") from exc
    _check_affine(explainer, Jt, c, X_raw, X_model, caller, "the data")
    return Jt, c


def _probe_affine(explainer, sparse):
    d = explainer.n_features_in_

    def transform(E):  # numeric probes carry no feature names: not the user's fault
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="X does not have valid feature")
            return model_input(explainer.estimator_, E)

    c = dense(transform(sp.csr_matrix((1, d)) if sparse else np.zeros((1, d)))).ravel()
    batch = max(1, PROBE_BYTES // (8 * max(d, c.size)))
    blocks = []
    for start in range(0, d, batch):
        stop = min(d, start + batch)
        M = transform(sp.eye(stop - start, d, k=start, format="csr") if sparse
                      else np.eye(stop - start, d, k=start))  # rows e_start, ...
        blocks.append(M.tocsr() if sp.issparse(M) and not c.any()
                      else sp.csr_matrix(dense(M) - c))
    return sp.vstack(blocks, format="csr"), c


def _check_affine(explainer, Jt, c, X_raw, X_model, caller, where):
    """ValueError unless T(X_raw) = X_raw Jt + c to roundoff."""
    pred = X_raw @ Jt
    if c.any() or not (sp.issparse(X_model) and sp.issparse(pred)):
        diff = dense(X_model) - dense(pred) - c
    else:
        diff = X_model - pred
    scale = _max_abs(abs(X_raw) @ abs(Jt)) + np.abs(c).max(initial=0.0)
    err = _max_abs(diff)
    if not err <= AFFINE_RTOL * scale:
        relative = f" (relative {err / scale:.1g})" if scale > 0 else ""
        raise _not_affine(
            pipeline_of(explainer.estimator_)[:-1], caller,
            f"on {where}, T(x) differs from the affine map J x + c read off T(0) and "
            f"T(e_f) by {err:.3g}{relative}")


def _not_affine(steps, caller, reason):
    names = ", ".join(repr(name) for name, _ in steps.steps)
    model = " (or use space='model')" if caller == "perturbation_influence" else ""
    return ValueError(
        f"{caller} works in the Pipeline's input space, which needs its earlier "
        f"steps ({names}) to be an affine map of the input, T(x) = J x + c (e.g. "
        "StandardScaler, MinMaxScaler, MaxAbsScaler, RobustScaler, PCA, "
        f"'passthrough'); {reason}. Workaround: explain the last step on the "
        "transformed features, InfluenceExplainer(pipeline[-1]).fit("
        "pipeline[:-1].fit_transform(X), y): its feature axis and attacked rows are "
        f"then in that transformed space{model}."
    )


def refit_loss_change(explainer, X_train, y_train, X, y, *, test_loss=None):
    """Actual change of test losses when the explainer is refitted on new inputs.

    Refits a clone of ``explainer`` (hence of its estimator, same settings and sample
    weights) on ``(X_train, y_train)`` and returns the test losses there minus the
    losses of the fitted ``explainer``: the refit check of
    :func:`training_set_attack`. For a Pipeline, ``X_train`` is in the pipeline's
    input space and the whole pipeline is refitted, earlier steps included (e.g. a
    scaler's mean and scale, which the first-order prediction holds fixed).

    Parameters
    ----------
    explainer : InfluenceExplainer
        The fitted explainer (not modified).
    X_train : {array-like, sparse matrix} of shape (n_train, n_features)
        Training inputs to refit on (e.g. ``AttackResult.X``), as passed to the
        explainer's ``fit``.
    y_train : array-like of shape (n_train,)
        Training labels (the ones ``explainer`` was fitted with).
    X : array-like of shape (n_features,) or (n_test, n_features)
        Test inputs.
    y : label or array-like of shape (n_test,)
        Test labels.
    test_loss : str or object, default=None
        As in :meth:`InfluenceExplainer.loss_influence`.

    Returns
    -------
    change : ndarray of shape (n_test,)
        Test loss after the refit minus before.

    Examples
    --------
    >>> from sklearn.datasets import load_diabetes
    >>> from sklearn.linear_model import Ridge
    >>> from skinfluence import InfluenceExplainer
    >>> from skinfluence.perturbation import refit_loss_change
    >>> X, y = load_diabetes(return_X_y=True)
    >>> explainer = InfluenceExplainer(Ridge(alpha=0.1)).fit(X[:200], y[:200])
    >>> X_moved = X[:200].copy()
    >>> X_moved[0] += 0.01
    >>> refit_loss_change(explainer, X_moved, y[:200], X[200:202], y[200:202]).shape
    (2,)
    """
    check_is_fitted(explainer)
    _check_refittable(explainer)
    X, y = _test_point(X, y)
    refit = _refit_explainer(explainer).fit(X_train, y_train,
                                            sample_weight=explainer.sample_weight_)
    return (refit.test_losses(X, y, test_loss=test_loss)
            - explainer.test_losses(X, y, test_loss=test_loss))


def _refit_explainer(explainer):
    """An unfitted copy of ``explainer`` around the model it explained.

    ``clone(explainer.estimator_)`` rather than ``explainer.estimator``: parameters set
    after fit (``set_params(estimator__C=100)``) describe another model.
    """
    return clone(explainer).set_params(estimator=clone(explainer.estimator_))


def _check_refittable(explainer):
    if isinstance(explainer.estimator_, FrozenEstimator):
        raise ValueError(
            "The explainer's estimator is a FrozenEstimator, which ignores refits: "
            "refit checks and multi-step attacks need an unfrozen estimator."
        )


def _test_point(x, y):
    """One test point (1-D x, scalar y) as a batch of one; batches pass through."""
    if sp.issparse(x):
        return x, y
    x = np.asarray(x)
    if x.ndim == 1:
        y = np.asarray(y)
        return x[None, :], y.reshape(1) if y.ndim == 0 else y.reshape(1, -1)
    return x, y


def _feature_range(X, feature_range, d):
    if feature_range is None:
        lower = np.asarray(X.min(axis=0).todense() if sp.issparse(X) else X.min(axis=0))
        upper = np.asarray(X.max(axis=0).todense() if sp.issparse(X) else X.max(axis=0))
        return lower.ravel(), upper.ravel()
    try:
        lower, upper = feature_range
    except (TypeError, ValueError):
        raise ValueError(
            f"feature_range must be a pair (lower, upper); got {feature_range!r}."
        ) from None
    lower = np.broadcast_to(np.asarray(lower, dtype=np.float64), (d,))
    upper = np.broadcast_to(np.asarray(upper, dtype=np.float64), (d,))
    if np.any(lower > upper):
        raise ValueError("feature_range: lower must not exceed upper.")
    return lower, upper


def _with_rows(X, rows, values):
    """A copy of X with ``X[rows] = values`` (sparse stays sparse)."""
    if sp.issparse(X):
        out = X.tolil(copy=True)
        out[rows] = values
        return out.asformat(X.format)
    out = np.array(X, dtype=np.float64, copy=True)
    out[rows] = values
    return out


def _training_targets(explainer):
    """The training labels the explainer was fitted on, decoded."""
    obj = explainer.risk_
    return obj.targets.decode(obj.y)


def _max_abs(M):
    return float(abs(M).max()) if M.shape[0] and M.shape[1] else 0.0
