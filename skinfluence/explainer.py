"""InfluenceExplainer: influence functions for a fitted scikit-learn linear model."""

from __future__ import annotations

import warnings
from numbers import Integral, Real
from typing import TYPE_CHECKING, Literal

import numpy as np
import scipy.sparse as sp
from sklearn.base import (
    BaseEstimator,
    MetaEstimatorMixin,
    TransformerMixin,
    clone,
    is_regressor,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.frozen import FrozenEstimator
from sklearn.utils import get_tags
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import (
    _check_feature_names,
    check_array,
    check_is_fitted,
    validate_data,
)

from . import _chunked
from ._hessian import make_solver
from ._removal import (
    check_groups,
    check_not_everything,
    group_steps,
    removal_steps,
)
from ._scoring import make_scorer
from ._typing import ArrayLike, FloatArray, IntArray, MatrixLike, Method, TestLoss
from ._utils import check_indices, dense, largest_leverages, model_input
from .models import (
    balanced_from_sample_weight,
    binary_only,
    convergence_hint,
    fits_on_chunks,
    fitted_state,
    fixed_labels,
    objective_builder,
    pipeline_of,
    sample_weight_param,
    unwrap,
)
from .models._class_weight import class_totals
from .models._losses import test_loss as resolve_test_loss
from .models._targets import check_label_types

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

#: Relative Newton step ‖H⁻¹∇R(θ̂)‖∞ / max(1, ‖θ̂‖∞) above which θ̂ is not an optimum.
OPTIMALITY_WARN = 1e-3


class FlatTestLossWarning(UserWarning):
    """A test point's loss is flat at θ̂: every training row has influence 0 on it.

    E.g. a confidently classified point under a hinge or squared-hinge loss. Its
    influences are legitimately zero, so no training row can be ranked for it.
    """


def _warn_flat_test_loss(flat, explainer=None):
    """Warn once (FlatTestLossWarning) when some test rows' scores are all zero."""
    count = int(np.count_nonzero(flat))
    basis = None if explainer is None or not count else \
        explainer.hessian_solver_.basis
    if count and basis is not None and basis.shape[1] == 0:
        name = type(unwrap(explainer.estimator_)).__name__
        warnings.warn(
            f"Every first-order influence is 0: the fitted {name} does not move "
            "under a small re-weighting of its rows (its rows on the kinks and its "
            "zero coefficients fix every parameter, e.g. the vertex "
            "of a linear program), so no training row can be ranked by it. Use "
            "leave_one_out(method=\"exact\") for the effect of removing rows.",
            FlatTestLossWarning,
            stacklevel=3,
        )
    elif count:
        warnings.warn(
            f"{count} of {len(flat)} test point(s) have a zero test-loss gradient (the "
            "loss is flat there, e.g. a confidently classified point under a hinge or "
            "squared-hinge loss): every training row has influence 0 on them, so "
            "their rows cannot be ranked (most_influential marks them with index -1 "
            "and score NaN). Score the decision value with test_loss=\"decision\" "
            "(or a smooth test loss such as test_loss=\"log_loss\"), or for a hinge "
            "loss use a smoothing temperature comparable to the margins "
            "(e.g. smoothing=0.1).",
            FlatTestLossWarning,
            stacklevel=3,
        )


def _estimator_has(attr):
    def check(self):
        getattr(self.estimator_ if hasattr(self, "estimator_") else self.estimator, attr)
        return True

    return check


class InfluenceExplainer(TransformerMixin, MetaEstimatorMixin, BaseEstimator):
    """Influence functions (Koh & Liang, 2017) of a scikit-learn linear model.

    Fits (a clone of) ``estimator``, rebuilds its exact training objective in closed
    form from ``coef_``/``intercept_`` and its parameters, and factorises the Hessian.
    The influence of every training row on parameters and test losses then follows
    without refitting.

    Convention. R(θ) is the estimator's objective divided by ``C * n``: the mean loss
    ``(1/n) Σ_i s_i c_{y_i} L(z_i, θ)`` plus ``penalty / (C n)``, where ``n`` is the
    number of training rows, ``s_i`` the sample weight and ``c_{y_i}`` the class
    weight. ``H = ∇²R(θ̂)``. For training row j, ``∇θL(z_j)`` stands for
    ``n · ∂(∇R)/∂s_j`` (the row's loss gradient times its class weight, plus the shift
    of the class weights when ``class_weight="balanced"``), so that
    ``I_up,params(z_j) = −H⁻¹∇θL(z_j) = n · ∂θ̂/∂s_j``. On the test side ``L`` is the
    plain per-sample loss (no weights). A positive loss influence means that
    up-weighting the training row raises the test loss: the row is harmful.

    Parameters
    ----------
    estimator : estimator object
        A supported linear model (see :func:`skinfluence.supported_estimators`:
        LogisticRegression(CV), LinearSVC, Ridge, RidgeClassifier,
        LinearRegression, SGDClassifier, SGDRegressor, ...) or kernel machine (SVC,
        SVR, KernelRidge, GaussianProcessRegressor: linear in their whitened kernel
        features, see the user guide), unfitted, or fitted and wrapped in
        ``sklearn.frozen.FrozenEstimator`` to explain it as is.
    damping : float, default=0.0
        λ ≥ 0 added to the Hessian, ``H + λI``, to keep it invertible (unpenalised
        models on separable data). Biases the influences towards zero.
    smoothing : float or "auto", default="auto"
        Temperature t ≥ 0 of the smooth hinge t·log(1 + exp((1 − m)/t)) that stands
        in for the non-differentiable hinge loss (SVMs, ``SGDClassifier(loss="hinge")``)
        in the Hessian and the test loss. ``0`` is the exact hinge: for SVMs, whose
        dual coefficients give the hinge's subgradient at the optimum, it yields the
        exact derivative n·∂θ̂/∂s_j (support vectors on the margin stay on it);
        t > 0 is the paper's smoothing, which spreads curvature over rows within ~t of
        the margin. "auto": 0 for SVMs, 1e-3 where no dual coefficients exist
        (SGDClassifier). Unused by smooth losses. To predict leave-one-out refits of
        a hinge SVM, ``smoothing=0.01`` with ``leave_one_out(method="newton")``
        tracked true refits best (benchmarks/fig3_svm_smoothing.py).
    n_jobs : int, default=None
        Number of joblib workers scoring batches of test rows. ``None`` means 1 unless
        in a ``joblib.parallel_backend`` context; ``-1`` uses all processors. Results
        do not depend on ``n_jobs``.
    batch_size : int or "auto", default="auto"
        Test rows scored per batch; bounds the memory of intermediate blocks. "auto"
        targets about 128 MiB per block of results.
    verbose : int, default=0
        Progress messages while scoring.
    max_result_bytes : int or None, default=2**30
        Largest result a method may return (1 GiB: e.g. 5,000 test × 25,000
        training rows of float64). Larger requests raise a MemoryError that points
        to :meth:`most_influential` (top-k per test point, streamed) or to scoring
        fewer test rows per call. None removes the limit.
    hessian_solver : {"auto", "cholesky", "cg", "woodbury", "lissa"}, default="auto"
        How H⁻¹ is applied. "cholesky": a dense factorisation of the p × p Hessian and
        its inverse, after which scores are numpy products (fastest for moderate p; the
        only solver for the exact leave-one-out and exact group removal). "cg":
        matrix-free conjugate gradients (Jacobi-preconditioned), for many parameters or
        sparse wide X; each batch of test points is solved for, and no p × p or dense
        n_train × p array is formed (not for the exact hinge). "woodbury": for fewer
        training rows than parameters (wide data such as tf-idf), an n_train × n_train
        system in the training rows (Cholesky, float32 beyond 8,192 rows, refined to
        ``cg_tol`` by conjugate gradients in float64), with the intercept handled
        exactly; its cost does not depend on the conditioning, its memory is
        4–8·n_train² bytes (single-output models with an L2 penalty or damping on every
        coefficient). "auto": "cholesky" up to 4,096 free parameters; beyond, "woodbury"
        when it applies and its system takes at most 2 GiB, else "cg"; for a kernel
        SVC / SVR with the exact loss (``smoothing=0``), "pinned": the same answer as
        "cholesky" from the pinned rows' small system (chosen by "auto" only).
        "lissa": the paper's stochastic solver (see ``lissa_params``). The choice is
        ``hessian_solver_.name``.
    cg_tol : float, default=1e-10
        Relative residual at which conjugate gradients stop ("cg", "woodbury").
    cg_max_iter : int, default=None
        Iteration cap for conjugate gradients (None: 10 × the number of parameters
        for "cg", 100 for "woodbury"); a ConvergenceWarning says when it is
        reached.
    lissa_params : dict, default=None
        Settings of ``hessian_solver="lissa"`` (the paper's stochastic solver):
        ``scale`` (default 1.1 × the largest Hessian eigenvalue, by power iteration),
        ``depth`` (recursion steps, default 1000), ``repeats`` (default 1),
        ``batch_size`` (training rows per Hessian-vector product, default all).
    random_state : int, RandomState instance or None, default=None
        Seeds LiSSA's batches: the same seed gives the same influences.

    Attributes
    ----------
    estimator_ : estimator
        The fitted estimator whose influences are computed.
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of the features, when X has string column names.
    params_ : ndarray of shape (n_params,)
        θ̂ = ``coef_.ravel()`` followed by ``intercept_`` (when fitted), then
        ``scale_`` for HuberRegressor; for a kernel machine, its dual coefficients
        on every training row (one block per output) followed by the intercept; for
        a network, every ``coefs_`` raveled then every ``intercepts_``
        (``risk_.reported(risk_.params[None])[0]``).
    hessian_ : ndarray of shape (n_free, n_free) or None
        H = ∇²R(θ̂) (without damping) over the free parameters (all parameters, but
        for coefficients held at zero by an L1 penalty). None with the "cg",
        "woodbury" and "lissa" solvers, which never form it ("pinned": its diagonal,
        dense).
    hessian_solver_ : object
        The solver of ``H + λI`` (its ``name`` says which); with "cholesky",
        ``hessian_solver_.condition_number_`` is the 1-norm condition number of
        ``H + λI`` (NaN for the other solvers, which do not compute it); fit
        warns above 1e10 and raises above 1e-2/ε ≈ 4.5e13. Every solver has
        ``solve(B)`` (``(H + λI)⁻¹ B`` over the free parameters), ``inverse`` (the
        dense inverse, or None), ``basis``, ``leverages()`` (or None) and
        ``damped_hessian()`` ("cholesky" only).
    risk_ : LinearObjective or NetworkObjective
        The fitted risk R at θ̂ on the training data as the explained model sees it
        (read-only: results assume it unchanged; ``NetworkObjective`` for
        MLPClassifier/MLPRegressor, see docs/architecture.rst, "The risk
        interface"). Its methods give what analyses need: ``decision(X)``,
        ``test_gradients(X, y, loss)`` and ``output_jacobians(X)`` (over the free
        parameters, ``risk_.free``), ``row_curvature()``, ``training_dz()``,
        ``gradient()``; its attributes the training data (``X``, ``y`` in the
        family's encoding, ``targets``) and the loss (``loss``).
    X_fit_ : {ndarray, sparse matrix} of shape (n_train, n_model_features)
        The explainer's copy of the training inputs as the explained model sees them
        (float64; after a Pipeline's earlier steps): what refits are fitted on.
    sample_weight_ : ndarray of shape (n_train,)
        Training sample weights (ones when none were given).
    training_index_ : pandas.Index or ndarray of shape (n_train,)
        Labels of the training rows: the index of a DataFrame ``X`` given to
        ``fit``, else ``0 … n_train − 1``. Results are in this order.
    optimality_ : float
        ``‖H⁻¹∇R(θ̂)‖∞ / max(1, ‖θ̂‖∞)``: the Newton step from θ̂ relative to θ̂. Near
        zero at an optimum; above ``1e-3`` a ``ConvergenceWarning`` is raised and the
        influences are those of the paper's appendix B (a Newton step from θ̂).

    See Also
    --------
    sklearn.frozen.FrozenEstimator : Explain an already-fitted model as is.

    References
    ----------
    Koh, P. W. and Liang, P. (2017). Understanding Black-box Predictions via Influence
    Functions. ICML.

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skinfluence import InfluenceExplainer
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> X = StandardScaler().fit_transform(X)
    >>> model = LogisticRegression(C=0.1, solver="newton-cholesky", tol=1e-10)
    >>> explainer = InfluenceExplainer(model).fit(X[:400], y[:400])
    >>> scores = explainer.loss_influence(X[400:], y[400:])
    >>> scores.shape
    (169, 400)
    >>> most_harmful = scores.argmax(axis=1)  # training row raising each test loss most
    >>> delta = explainer.leave_one_out(X[400:], y[400:])  # change if row j is removed
    >>> bool(abs(delta[0, most_harmful[0]]) > 0)
    True
    """

    _parameter_constraints = {
        "estimator": [HasMethods(["fit"])],
        "damping": [Interval(Real, 0, None, closed="left")],
        "smoothing": [StrOptions({"auto"}), Interval(Real, 0, None, closed="left")],
        "n_jobs": [Integral, None],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "verbose": ["verbose"],
        "max_result_bytes": [Interval(Integral, 1, None, closed="left"), None],
        "hessian_solver": [StrOptions({"auto", "cholesky", "cg", "lissa",
                                        "woodbury"})],
        "lissa_params": [dict, None],
        "random_state": ["random_state"],
        "cg_tol": [Interval(Real, 0, None, closed="neither")],
        "cg_max_iter": [Interval(Integral, 1, None, closed="left"), None],
    }

    def __init__(self, estimator, *, damping=0.0, smoothing="auto", n_jobs=None,
                 batch_size="auto", verbose=0, max_result_bytes=2**30,
                 hessian_solver="auto", cg_tol=1e-10, cg_max_iter=None,
                 lissa_params=None, random_state=None):
        self.estimator = estimator
        self.damping = damping
        self.smoothing = smoothing
        self.n_jobs = n_jobs
        self.batch_size = batch_size
        self.verbose = verbose
        self.max_result_bytes = max_result_bytes
        self.hessian_solver = hessian_solver
        self.cg_tol = cg_tol
        self.cg_max_iter = cg_max_iter
        self.lissa_params = lissa_params
        self.random_state = random_state

    # -- fitting ------------------------------------------------------------------
    def fit(self, X: MatrixLike, y: ArrayLike,
            sample_weight: ArrayLike | None = None) -> InfluenceExplainer:
        """Fit the estimator and factorise the Hessian of its training objective.

        Parameters
        ----------
        X : {array-like, sparse matrix, dask array} of shape (n_samples, n_features)
            Training data. A ``dask.array`` (or dask DataFrame) stays in its chunks:
            the estimator must be a fitted ``FrozenEstimator`` or one that fits on
            Dask collections (dask-ml's GLMs, fitted here), and the methods
            return lazy dask arrays or a top-k (see the user-guide page "Beyond one
            machine").
        y : array-like of shape (n_samples,)
            Training labels (with dask X, a dask array or Series too: never
            gathered).
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights, passed to the estimator's ``fit`` (dask, as y).

        Returns
        -------
        self : object
            The fitted explainer.

        Notes
        -----
        Memory of a fitted explainer: it keeps its own copy of the training data
        (X as float64, 8·n·d bytes dense or 12·nnz sparse, as the explained model sees
        it after a Pipeline's steps; y; the sample weights), so that modifying the
        caller's arrays after fit changes no result, plus the n × p training
        gradients and, with "cholesky", the p × p Hessian and its inverse. With
        dask training data it keeps nothing per training row (X, y and the weights
        stay in their chunks).
        """
        self._validate_params()
        builder = objective_builder(self.estimator)
        pipeline = pipeline_of(self.estimator)
        if _chunked.is_chunked(X):  # rows stay in their chunks, on the workers
            objective, model, Xv = self._fit_chunked(builder, X, y, sample_weight)
        else:
            objective, model, Xv = self._fit_in_memory(builder, pipeline, X, y,
                                                       sample_weight)
        self._fit_damping = self.damping  # H + λI is factorised with this λ
        self._fitted_state = fitted_state(self.estimator_)
        self.risk_ = objective
        self.params_ = objective.reported(objective.params[None])[0]  # public layout
        _check_finite(self.params_, "coef_ or intercept_", model)
        self.hessian_solver_ = make_solver(
            self.hessian_solver, objective, self.damping, tol=self.cg_tol,
            max_iter=self.cg_max_iter, lissa_params=self.lissa_params,
            random_state=self.random_state,
        )
        self.hessian_ = self.hessian_solver_.hessian  # None: "cg", "woodbury", "lissa"
        # n·∂(∇R)/∂s_j of every training row (dense, or sparse for sparse X): every
        # score is a product of these with the solved test side
        self._scorer = (_chunked.ChunkedScorer(objective, self.hessian_solver_)
                        if isinstance(objective, _chunked.ChunkedObjective)
                        else make_scorer(objective, self.hessian_solver_,
                                         self.damping))
        step = self.hessian_solver_.solve(objective.gradient())
        scale = max(1.0, np.max(np.abs(objective.params), initial=0.0))
        self.optimality_ = float(np.max(np.abs(step), initial=0.0) / scale)
        _check_finite(self.optimality_, "Newton step from θ̂ (optimality_)", model)
        if not self.optimality_ <= OPTIMALITY_WARN:
            warnings.warn(
                f"The fitted {type(model).__name__} is not at an optimum of its "
                f"training objective (relative Newton step {self.optimality_:.1e}). "
                "Influences are computed at the given parameters (a Newton step, as "
                "in Koh & Liang's appendix B) and may disagree with refits: "
                f"{convergence_hint(self.estimator_, Xv.shape[0])}."
                + ("" if np.any(objective.quad_penalty + objective.l1_penalty > 0) else
                   " Without a penalty (C=np.inf, alpha=0) on separable data no "
                   "optimum exists: use a penalty, or set damping > 0."),
                ConvergenceWarning,
                stacklevel=2,
            )
        return self

    def _fit_in_memory(self, builder, pipeline, X, y, sample_weight):
        """Fit the estimator on rows in memory: (risk, fitted model, X as it sees)."""
        # The explainer keeps private copies of its training data: later results must
        # not follow the caller's arrays (an in-place ``X *= 3`` after fit).
        if pipeline is None:
            Xv, yv = validate_data(self, X, y, accept_sparse="csr", dtype=np.float64,
                                   multi_output=is_regressor(unwrap(self.estimator)),
                                   copy=True)
        else:  # the pipeline's own steps validate and transform X
            validate_data(self, X, y, skip_check_array=True)
            Xv = None
            yv = check_array(y, ensure_2d=False, dtype=None, input_name="y")
        yv = np.array(yv, copy=True)
        sw = _check_sample_weight(sample_weight, yv.shape[0])
        _check_target_supported(self, yv)
        _check_balanced_weights(self.estimator, yv, sw)

        self.estimator_ = clone(self.estimator)
        fit_params = {}
        if sample_weight is not None:
            fit_params[sample_weight_param(self.estimator)] = sample_weight
        self.estimator_.fit(X, y, **fit_params)
        if pipeline is not None:  # its transform may return X itself: copy
            Xv = self._model_input(X, copy=True)
        model = unwrap(self.estimator_)
        _check_n_features(model, Xv, pipeline is not None)
        if hasattr(model, "classes_"):
            self.classes_ = model.classes_
        self.X_fit_ = Xv
        self.sample_weight_ = sw
        self.training_index_ = _row_index(X, len(sw))
        return builder(model, Xv, yv, sw, smoothing=self.smoothing), model, Xv

    # -- influence ----------------------------------------------------------------
    def param_influence(self, indices: ArrayLike | None = None) -> FloatArray:
        """I_up,params(z_j) = −H⁻¹∇θL(z_j, θ̂) = n · ∂θ̂/∂s_j for training rows j.

        Parameters
        ----------
        indices : array-like of int, default=None
            Training rows to compute; all rows when None.

        Returns
        -------
        influence : ndarray of shape (n_indices, n_params)
            Row j is the derivative of ``params_`` with respect to the sample weight of
            training row j, times n. Removing row j changes θ̂ by about
            ``−(s_j / n) · influence[j]``.
        """
        self._check_unchanged()
        rows = self._check_indices(indices)
        free = self.risk_.free  # over all of θ, then the public layout
        self._scoring().check_result_size((len(rows), len(free)))
        out = np.zeros((len(rows), len(free)))
        out[:, free] = self._scoring().influence_rows(rows)
        return self.risk_.reported(out)

    def loss_influence(self, X: MatrixLike, y: ArrayLike | None = None, *,
                       test_loss: TestLoss = None) -> FloatArray:
        """I_up,loss(z_j, z_test) = −∇θL(z_test, θ̂)ᵀ H⁻¹ ∇θL(z_j, θ̂).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_test, n_features)
            Test inputs.
        y : array-like of shape (n_test,), default=None
            Test labels (must be among ``classes_``). Needed unless
            ``test_loss="decision"``, which scores the decision value (no label).
        test_loss : str or object, default=None
            The loss on the test side: None for the model's own training loss, or
            "log_loss", "hinge", "squared_hinge" (classifiers), "squared_error"
            (regressors), "decision" (the decision value itself), or an object with
            ``value_grad(Z, y) -> (loss, dL/dZ)`` in decision space.

        Returns
        -------
        influence : ndarray of shape (n_test, n_train)
            Entry [t, j] is n times the derivative of the loss of test point t with
            respect to the sample weight of training row j. Positive: up-weighting row
            j raises the test loss (harmful); negative: helpful. A row is all zero,
            legitimately, where the test loss is flat at θ̂ (e.g. a confidently
            classified point under a hinge or squared-hinge loss, whose loss stays 0
            under small re-weightings); a :class:`~skinfluence.FlatTestLossWarning`
            then says how many such rows there are (``test_loss="decision"`` scores
            the decision value instead).
        """
        check_is_fitted(self)
        Xv, y_enc, loss = self.validate_test(X, y, test_loss=test_loss)
        scoring = self._scoring()
        out = scoring.score(Xv.shape[0], scoring.test_side(Xv, y_enc, loss))
        _warn_flat_test_loss(self._flat_rows(out, Xv, y_enc, loss), self)
        return out

    def test_set_influence(self, X: MatrixLike, y: ArrayLike | None = None, *,
                           reduce: Literal["mean", "sum"] = "mean",
                           test_loss: TestLoss = None) -> FloatArray:
        """Influence of every training row on a whole test set's loss, streamed.

        ``reduce`` over test points of :meth:`loss_influence`: which rows hurt the
        validation loss overall. By linearity it is ``−(Σ_t ∇θL(z_t))ᵀ H⁻¹ ∇θL(z_j)``,
        so the test gradients are summed in batches and solved for once: the cost
        is one pass over the test rows plus one score, never n_test × n_train.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_test, n_features)
            Test inputs.
        y : array-like of shape (n_test,), default=None
            Test labels; not needed with ``test_loss="decision"``.
        reduce : {"mean", "sum"}, default="mean"
            Mean or sum of the test losses.
        test_loss : str or object, default=None
            As in :meth:`loss_influence`.

        Returns
        -------
        influence : ndarray of shape (n_train,)
            Entry j: n times the derivative of the reduced test loss with respect to
            the sample weight of training row j (positive: harmful). Removing row j
            changes the reduced test loss by about ``−(s_j / n) · influence[j]``;
            ``np.argsort(-influence)[:k]`` are the k most harmful rows.
        """
        check_is_fitted(self)
        if reduce not in ("mean", "sum"):
            raise ValueError(f"reduce must be 'mean' or 'sum'; got {reduce!r}.")
        Xv, y_enc, loss = self.validate_test(X, y, test_loss=test_loss)
        scoring = self._scoring()
        return scoring.summed(Xv.shape[0], scoring.test_side(Xv, y_enc, loss),
                              mean=reduce == "mean")

    def most_influential(
        self, X: MatrixLike, y: ArrayLike | None = None, k: int = 10,
        kind: Literal["harmful", "helpful", "abs"] = "harmful", *,
        test_loss: TestLoss = None, as_frame: bool = False,
        method: Literal["influence", "newton"] = "influence",
    ) -> tuple[IntArray, FloatArray] | pd.DataFrame:
        """The k most influential training rows for each test point, streamed.

        Scores test points in batches (``batch_size``) and keeps only each one's
        top k, so the full (n_test, n_train) matrix is never held in memory.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_test, n_features)
            Test inputs.
        y : array-like of shape (n_test,), default=None
            Test labels; not needed with ``test_loss="decision"``.
        k : int, default=10
            Number of training rows per test point (at most n_train).
        kind : {"harmful", "helpful", "abs"}, default="harmful"
            "harmful": largest positive loss influence (up-weighting raises the test
            loss); "helpful": most negative; "abs": largest magnitude.
        test_loss : str or object, default=None
            As in :meth:`loss_influence`.
        as_frame : bool, default=False
            Return one tidy pandas DataFrame instead of the two arrays (below).
        method : {"influence", "newton"}, default="influence"
            With ``as_frame=True``, how the ``loo_change`` column predicts the change
            of the test loss when the training row is removed: first order
            (``−(s_j/n) · score``) or one Newton step without the row, as in
            :meth:`leave_one_out` (needs ``hessian_solver="cholesky"``). The ranking
            itself is always by ``score``.

        Returns
        -------
        indices : ndarray of shape (n_test, k)
            Training row indices, most influential first. ``-1`` for a test point
            whose test loss is flat at θ̂ (zero gradient, every score exactly 0: e.g. a
            confidently classified point under a hinge or squared-hinge loss), for
            which no row is more influential than another; a
            :class:`~skinfluence.FlatTestLossWarning` says how many there are and
            how to rank them (``test_loss="decision"``).
        scores : ndarray of shape (n_test, k)
            Their ``loss_influence`` values (NaN where ``indices`` is -1).
        frame : pandas.DataFrame of n_test × k rows
            Instead of ``(indices, scores)`` when ``as_frame=True``, with columns
            ``test_row`` (the test DataFrame's index label, else the position),
            ``rank`` (1 = most influential), ``training_row`` (a label of
            :attr:`training_index_`; missing for a flat test loss), ``kind``,
            ``score``, ``loo_change`` and ``label`` (the training row's label).
        """
        check_is_fitted(self)
        if method not in ("influence", "newton"):
            raise ValueError(f"method must be 'influence' or 'newton'; got {method!r}.")
        if kind not in ("harmful", "helpful", "abs"):
            raise ValueError(
                f"kind must be 'harmful', 'helpful' or 'abs'; got {kind!r}."
            )
        n_train = len(self.sample_weight_)
        if not isinstance(k, Integral) or not 1 <= k <= n_train:
            raise ValueError(f"k must be an integer in [1, {n_train}]; got {k!r}.")
        Xv, y_enc, loss = self.validate_test(X, y, test_loss=test_loss)
        sign = {"harmful": 1.0, "helpful": -1.0}.get(kind)
        scoring = self._scoring()
        out = scoring.most_influential(
            Xv.shape[0], scoring.test_side(Xv, y_enc, loss), k, sign)
        _warn_flat_test_loss(out[:, 0, 0] < 0, self)
        indices, scores = out[:, 0].astype(np.intp), out[:, 1]
        if not as_frame:
            return indices, scores
        from .diagnostics import top_rows_frame

        return top_rows_frame(self, X, Xv, y_enc, loss, indices, scores, kind, method)

    def transform(self, X: MatrixLike) -> FloatArray:
        """Influence at the model's own predictions (needs no y).

        For classifiers, the loss influence at the predicted labels. For regressors
        (where the loss at the prediction is flat), the influence on the prediction
        itself: ``[t, j] = n · ∂ŷ_t/∂s_j`` (the mean over outputs when there are
        several).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_test, n_features)
            Test inputs.

        Returns
        -------
        influence : ndarray of shape (n_test, n_train)
            Classifiers: ``loss_influence(X, predict(X))``.
        """
        check_is_fitted(self)
        Xv = self._validate_X(X)
        obj = self.risk_
        scoring = self._scoring()
        if obj.targets.classes is None:  # regression: the prediction itself
            return scoring.score(Xv.shape[0], scoring.prediction_side(Xv))
        y_pred = self._encode(self.estimator_.predict(X), Xv)
        return scoring.score(Xv.shape[0], scoring.test_side(Xv, y_pred))

    def self_influence(self) -> FloatArray:
        """I_up,loss(z_j, z_j) for every training row j.

        Returns
        -------
        influence : ndarray of shape (n_train,)
            The influence of each training row on its own (unweighted) loss; large
            negative values flag points the model bends towards (e.g. mislabelled).
        """
        self._check_unchanged()
        obj = self.risk_
        scoring = self._scoring()
        if self._chunked:
            return scoring.self_influence()
        out = np.empty(obj.X.shape[0])

        def batch(sl, dest):
            plain = dense(obj.test_gradients(obj.X[sl], obj.y[sl]))
            rows = np.arange(sl.start, sl.stop)
            block = np.einsum("ip,ip->i", plain, scoring.influence_rows(rows))
            if dest is None:
                return block
            dest[...] = block

        return scoring.map(batch, out)

    def leave_one_out(self, X: MatrixLike, y: ArrayLike | None = None,
                      method: Method = "influence", *,
                      test_loss: TestLoss = None) -> FloatArray:
        """Predicted change of each test loss when training row j is removed.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_test, n_features)
            Test inputs.
        y : array-like of shape (n_test,), default=None
            Test labels; None with ``test_loss="decision"``.
        method : {"influence", "newton", "exact"}, default="influence"
            - "influence": the first-order estimate ``−(s_j / n) · I_up,loss[t, j]``
              (Koh & Liang). It shrinks the effect of high-leverage rows by about
              (1 − leverage).
            - "newton": one Newton step from θ̂ on the objective without row j (a
              rank-k downdate of the factorised Hessian, no refit; with an
              iterative solver, each row's leverage is solved for), with the test
              loss evaluated at the resulting parameters, not linearised. Exact for
              least squares. See :meth:`leverages`.
            - "exact": continues from the Newton step (chord iterations with the
              downdated Hessian, no refit) to the optimum without row j, to a
              relative tolerance of 1e-10: the refit's answer, at a fraction of its
              cost. For hinge SVMs, the solution path is followed as the row's
              weight goes to zero (rows crossing the margin on the way), which is
              exact too.
        test_loss : str or object, default=None
            As in :meth:`loss_influence`.

        Returns
        -------
        delta : ndarray of shape (n_test, n_train)
            Predicted ``L(z_test, θ̂_{−j}) − L(z_test, θ̂)``; exactly 0 for rows of
            zero sample weight. "newton" and "exact" give NaN, with one
            :class:`~skinfluence.NoOptimumWarning`, for rows whose removal leaves
            no refit to estimate (see :func:`skinfluence.groups.group_influence`).
        """
        check_is_fitted(self)
        if method not in ("influence", "newton", "exact"):
            raise ValueError(
                f"method must be 'influence', 'newton' or 'exact'; got {method!r}."
            )
        inputs = self._test_inputs(X)
        obj = self.risk_
        Xv = obj.features(inputs)
        y_enc = self._test_targets(y, Xv, test_loss)
        loss = self._test_loss(test_loss)
        scoring = self._scoring()
        if method == "newton" and (self.hessian_ is None or self._chunked):
            return scoring.newton_loss_changes(Xv, y_enc, loss)
        if method in ("newton", "exact"):
            if self._chunked:
                _chunked.refuse("leave_one_out(method='exact')")
            scoring.check_result_size((Xv.shape[0], len(self.sample_weight_)))
            risk, solver, hessian = self._removal_parts(method)
            steps = removal_steps(risk, solver, hessian, method, verbose=self.verbose)
            # steps in θ of ``risk``: its features of X (the wider risk's for exact
            # removals of a kernel machine held on its support vectors)
            return scoring.loss_changes(risk.features(inputs), y_enc, steps, loss,
                                        risk=risk)
        # −(s_j/n) folded into the (n_train, p) factor, not applied to the result
        scale = -self.sample_weight_ / len(self.sample_weight_)
        out = scoring.score(Xv.shape[0], scoring.test_side(Xv, y_enc, loss),
                            row_scale=scale)
        _warn_flat_test_loss(self._flat_rows(out, Xv, y_enc, loss), self)
        return out

    def group_influence(self, groups: ArrayLike, X: MatrixLike,
                        y: ArrayLike | None = None, method: Method = "influence", *,
                        test_loss: TestLoss = None) -> FloatArray:
        """Predicted change of each test loss when a whole group of rows is removed.

        See :func:`skinfluence.groups.group_influence` (Koh et al., 2019).

        Parameters
        ----------
        groups : list of array-like of int, or array-like of shape (n_train,)
            Index arrays, or one group label per training row (groups in sorted
            label order).
        X : {array-like, sparse matrix} of shape (n_test, n_features)
            Test inputs.
        y : array-like of shape (n_test,), default=None
            Test labels; None with ``test_loss="decision"``.
        method : {"influence", "newton", "exact"}, default="influence"
            The first-order sum over the group, one Newton step without it, or
            the optimum without it.
        test_loss : str or object, default=None
            As in :meth:`loss_influence`.

        Returns
        -------
        delta : ndarray of shape (n_test, n_groups)
        """
        check_is_fitted(self)
        if method not in ("influence", "newton", "exact"):
            raise ValueError(
                f"method must be 'influence', 'newton' or 'exact'; got {method!r}."
            )
        if self._chunked:
            _chunked.refuse("group_influence")
        n = len(self.sample_weight_)
        members = check_groups(groups, n)
        inputs = self._test_inputs(X)  # as the explained model sees it
        obj = self.risk_
        Xv = obj.features(inputs)
        y_enc = self._test_targets(y, Xv, test_loss)
        loss = self._test_loss(test_loss)
        scoring = self._scoring()
        scoring.check_result_size((Xv.shape[0], len(members)))
        # the (n_groups, p) step or influence rows the result is computed from
        scoring.check_result_size((len(members), int(obj.free.sum())))
        if not members:  # groups=[]: nothing removed
            return np.empty((Xv.shape[0], 0))
        if method == "influence":
            # −(s_j/n) I_up,params summed over each group: one (n_groups, n) sparse sum
            sizes = np.array([len(g) for g in members])
            rows = np.repeat(np.arange(len(members)), sizes)
            cols = np.concatenate(members)
            P = sp.csr_matrix((-self.sample_weight_[cols] / n, (rows, cols)),
                              shape=(len(members), n))
            return scoring.group_scores(
                Xv.shape[0], lambda sl: obj.test_gradients(Xv[sl], y_enc[sl], loss),
                scoring.combined_rows(P))
        check_not_everything(obj, members)
        # with an iterative solver (no p × p Hessian), each group's Jacobian is solved
        # for: the Woodbury form of the step
        risk, solver, hessian = self._removal_parts(method, factorised=False)
        steps = group_steps(risk, solver, hessian, members, method)
        return scoring.group_loss_changes(risk.features(inputs), y_enc, steps, loss,
                                          risk=risk)

    def perturbation_influence(
        self, X: MatrixLike, y: ArrayLike, indices: ArrayLike | None = None, *,
        space: Literal["model", "input"] = "model", test_loss: TestLoss = None,
    ) -> FloatArray:
        """I_pert,loss: how moving training inputs changes each test loss.

        ``−∇θL(z_test)ᵀ H⁻¹ ∇x∇θL(z_j)``, scaled so that ``(s_j / n) · result[t, j]``
        is the gradient of test loss t with respect to training input x_j (the model
        refit). See :mod:`skinfluence.perturbation` (also ``training_set_attack``).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_test, n_features)
            Test inputs.
        y : array-like of shape (n_test,)
            Test labels.
        indices : array-like of int, default=None
            Training rows; all rows when None.
        space : {"model", "input"}, default="model"
            For a Pipeline, the feature axis: the features the last step sees, or
            the pipeline's input features (affine earlier steps only).
        test_loss : str or object, default=None
            As in :meth:`loss_influence`.

        Returns
        -------
        influence : ndarray of shape (n_test, n_indices, n_features)
        """
        from .perturbation import perturbation_influence

        if self._chunked:
            _chunked.refuse("perturbation_influence")
        return perturbation_influence(self, X, y, indices, space=space,
                                      test_loss=test_loss)

    def leverages(self) -> FloatArray:
        """Leverage of every training row: how much the fit bends towards it.

        Row j's leverage matrix (k × k for k outputs) is ``M_j = D_j U_jᵀ H⁻¹ U_j / n``,
        with U_j = ∂z_j/∂θ (columns e_a ⊗ [x_j, 1]) and D_j = diag(s_j c_j) d²L/dz²_j the
        row's weighted loss curvature (see :mod:`skinfluence._removal`). Its
        leverage is the largest eigenvalue of M_j, i.e. of the symmetric
        ``D_j^{1/2} U_jᵀ H⁻¹ U_j D_j^{1/2} / n``. For one output that is
        ``(s_j c_j / n) · L''(z_j) · x̃_jᵀ H⁻¹ x̃_j`` with x̃ = [x, 1]: the diagonal of the
        hat matrix for least squares.

        Since H includes row j's own curvature, each leverage lies in [0, 1], below
        1 whenever the rest of the objective (penalty, other rows) is curved in
        every direction the row moves. Removing row j takes one Newton step
        ``Δθ_j = (s_j/n) H⁻¹ U_j (I − M_j)⁻¹ w_j``, which is the first-order estimate
        (M_j = 0) amplified by at most ``1 / (1 − leverage)`` in the metric of D_j
        (the eigenvalues of (I − M_j)⁻¹ lie in [1, 1/(1 − leverage)]). The trace of
        M_j (which can exceed 1 with several outputs) is instead the row's share of
        the effective degrees of freedom: ``Σ_j tr M_j = tr(H⁻¹(H − penalty))``.

        Returns
        -------
        leverages : ndarray of shape (n_train,)
        """
        self._check_unchanged()
        scoring = self._scoring()
        if self.risk_.n_outputs == 1:
            return scoring.leverage_matrices()[:, 0, 0]
        if self._chunked:
            return scoring.leverages()
        return largest_leverages(self.risk_.row_curvature(), scoring.output_grams(),
                                 len(self.sample_weight_))

    def param_change(self, indices: ArrayLike | None = None,
                     method: Method = "newton") -> FloatArray:
        """θ̂_{−j} − θ̂: how the parameters move when training row j is removed.

        Parameters
        ----------
        indices : array-like of int, default=None
            Training rows; all rows when None.
        method : {"influence", "newton", "exact"}, default="newton"
            As in :meth:`leave_one_out`: the first-order estimate
            ``−(s_j / n) · param_influence()[j]``, one Newton step without the row
            (exact for least squares), or the refit's optimum. "newton" and "exact"
            need ``hessian_solver="cholesky"``; removals without an optimum are NaN
            (with a :class:`NoOptimumWarning`), rows of zero weight exactly 0.

        Returns
        -------
        change : ndarray of shape (n_indices, n_params)
            Row j is the change of ``params_`` when training row j is left out: the
            DFBETA of regression diagnostics with the opposite sign.
        """
        self._check_unchanged()
        if method not in ("influence", "newton", "exact"):
            raise ValueError(
                f"method must be 'influence', 'newton' or 'exact'; got {method!r}."
            )
        rows = self._check_indices(indices)
        self._scoring().check_result_size((len(rows), len(self.params_)))
        if method == "influence":
            n = len(self.sample_weight_)
            weights = self.sample_weight_[rows]
            if self._chunked:  # lazy: only these rows' weights are computed
                (weights,) = _chunked.compute(weights)
            return -(weights / n)[:, None] * self.param_influence(rows)
        if self._chunked:  # only the rows asked for are gathered
            if method == "exact":
                _chunked.refuse("param_change(method='exact')")
            out = np.zeros((len(rows), len(self.risk_.free)))
            out[:, self.risk_.free] = self._scoring().newton_steps(rows)
            return self.risk_.reported_change(out)
        risk, solver, hessian = self._removal_parts(method)
        steps = removal_steps(risk, solver, hessian, method, rows=rows,
                              verbose=self.verbose)
        out = steps[rows]  # over all of θ
        out[np.isnan(out).any(axis=1)] = np.nan  # no estimate: every entry
        return risk.reported_change(out)

    def summary_frame(
        self, *, dfbetas: Literal["auto"] | bool = "auto",
    ) -> pd.DataFrame:
        """Regression diagnostics of every training row, as a pandas DataFrame.

        Like statsmodels' ``OLSInfluence.summary_frame()``, for every supported
        family, from one Newton removal step per row Δθ_j = θ̂_{−j} − θ̂ (exact for
        least squares; see :mod:`skinfluence.diagnostics` for the formulas): for OLS
        each column equals its textbook definition.

        Parameters
        ----------
        dfbetas : "auto" or bool, default="auto"
            Add one ``dfbetas_<parameter>`` column per parameter (the change
            θ̂ − θ̂_{−j} in units of the parameter's standard error). "auto": when
            there are at most 100 parameters.

        Returns
        -------
        frame : pandas.DataFrame of shape (n_train, n_columns)
            Indexed by the training rows (the index of a DataFrame ``X`` given to
            ``fit``, else 0 … n − 1), with columns ``label`` (the row's label;
            omitted for several real outputs), ``sample_weight``, ``leverage``
            (:meth:`leverages`), ``self_influence`` (:meth:`self_influence`),
            ``loo_loss_change`` (change of the row's own loss when it is left out),
            ``cooks_distance`` and the ``dfbetas_*`` columns.

        Examples
        --------
        >>> from sklearn.datasets import load_diabetes
        >>> from sklearn.linear_model import LinearRegression
        >>> from skinfluence import InfluenceExplainer
        >>> X, y = load_diabetes(return_X_y=True, as_frame=True)
        >>> frame = InfluenceExplainer(LinearRegression()).fit(X, y).summary_frame()
        >>> frame[["leverage", "cooks_distance"]].shape
        (442, 2)
        """
        from .diagnostics import summary_frame

        if self._chunked:
            _chunked.refuse("summary_frame")
        return summary_frame(self, dfbetas=dfbetas)

    # -- fitted state for analyses -------------------------------------------------
    def validate_test(self, X: MatrixLike, y: ArrayLike | None = None, *,
                      test_loss: TestLoss = None) -> tuple:
        """Test data as the explained model sees it: what analyses score.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_test, n_features)
            Test inputs.
        y : array-like of shape (n_test,), default=None
            Test labels; not needed with ``test_loss="decision"``.
        test_loss : str or object, default=None
            As in :meth:`loss_influence`.

        Returns
        -------
        X_model : {ndarray, sparse matrix} of shape (n_test, n_model_features)
            X as float64 after a Pipeline's earlier steps, then a kernel
            machine's feature map (``risk_.features``): the input of
            ``risk_.decision``.
        y_encoded : ndarray
            y in the encoding of :attr:`risk_` (class indices for classifiers);
            placeholders when y is None and ``test_loss="decision"``.
        loss : object
            The test loss, with ``value_grad(Z, y) -> (loss, dL/dz)`` in decision
            space: the model's own training loss (``risk_.loss``) when
            ``test_loss`` is None.
        """
        Xv = self._validate_X(X)
        y_enc = self._test_targets(y, Xv, test_loss)
        return Xv, y_enc, self._test_loss(test_loss) or self.risk_.loss

    def test_losses(self, X: MatrixLike, y: ArrayLike | None = None, *,
                    test_loss: TestLoss = None) -> FloatArray:
        """Per-sample test losses ``L(z_t, θ̂)`` (no sample or class weight).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_test, n_features)
            Test inputs.
        y : array-like of shape (n_test,), default=None
            Test labels; not needed with ``test_loss="decision"``.
        test_loss : str or object, default=None
            As in :meth:`loss_influence`.

        Returns
        -------
        losses : ndarray of shape (n_test,)
            The loss of each test point at the fitted parameters (summed over
            outputs), the quantity whose change :meth:`leave_one_out` predicts.
        """
        Xv, y_enc, loss = self.validate_test(X, y, test_loss=test_loss)
        return loss.value_grad(self.risk_.decision(Xv), y_enc)[0]

    # -- delegation ---------------------------------------------------------------
    @available_if(_estimator_has("predict"))
    def predict(self, X):
        """Predict with the fitted estimator."""
        check_is_fitted(self)
        return self.estimator_.predict(X)

    @available_if(_estimator_has("predict_proba"))
    def predict_proba(self, X):
        """Class probabilities from the fitted estimator."""
        check_is_fitted(self)
        return self.estimator_.predict_proba(X)

    @available_if(_estimator_has("predict_log_proba"))
    def predict_log_proba(self, X):
        """Log class probabilities from the fitted estimator."""
        check_is_fitted(self)
        return self.estimator_.predict_log_proba(X)

    @available_if(_estimator_has("decision_function"))
    def decision_function(self, X):
        """Decision function of the fitted estimator."""
        check_is_fitted(self)
        return self.estimator_.decision_function(X)

    @available_if(_estimator_has("score"))
    def score(self, X: MatrixLike, y: ArrayLike,
              sample_weight: ArrayLike | None = None) -> float:
        """Score of the fitted estimator (accuracy for classifiers)."""
        check_is_fitted(self)
        kwargs = {} if sample_weight is None else {"sample_weight": sample_weight}
        return self.estimator_.score(X, y, **kwargs)

    def get_feature_names_out(self, input_features=None):
        """One output column per training row, named by the training row.

        The labels of :attr:`training_index_` as strings when ``fit`` was given a
        DataFrame (so ``set_output(transform="pandas")`` columns are the training
        rows' index), else ``influence0``, ``influence1``, …
        """
        check_is_fitted(self)
        if self._chunked:
            _chunked.refuse("get_feature_names_out (one name per training row)")
        index = self.training_index_
        if isinstance(index, np.ndarray):  # not from a DataFrame
            return np.asarray([f"influence{j}" for j in index], dtype=object)
        return np.asarray([str(label) for label in index], dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        inner = get_tags(unwrap(self.estimator))
        tags.estimator_type = inner.estimator_type
        tags.classifier_tags = inner.classifier_tags
        if tags.classifier_tags is not None:
            tags.classifier_tags.multi_label = False  # one label per row
            if binary_only(self.estimator):
                tags.classifier_tags.multi_class = False
        # several outputs: regressors that support them (classifiers take 1-D y)
        tags.target_tags.multi_output = (
            inner.target_tags.multi_output and inner.regressor_tags is not None
        )
        tags.target_tags.single_output = inner.target_tags.single_output  # MultiTask
        tags.regressor_tags = inner.regressor_tags
        tags.target_tags.required = True
        outer = get_tags(self.estimator)  # a Pipeline's first step takes the input
        tags.input_tags.sparse = outer.input_tags.sparse
        tags.input_tags.positive_only = outer.input_tags.positive_only
        return tags

    # -- internals ----------------------------------------------------------------
    @property
    def _chunked(self):
        """Whether the training rows are chunks of a dask array (``_chunked``)."""
        return getattr(getattr(self, "_scorer", None), "chunked", False)

    def _flat_rows(self, out, Xv, y_enc, loss):
        """Test rows whose scores are all zero; for a lazy result (not computed
        here), those whose test-loss gradient is zero."""
        if not _chunked.is_chunked(out):
            return ~out.any(axis=1)
        return ~dense(self.risk_.test_gradients(Xv, y_enc, loss)).any(axis=1)

    def _fit_chunked(self, builder, X, y, sample_weight):
        """Dask training data: (risk on the chunks, model, X as a dask array).

        A prefitted estimator (``FrozenEstimator``) is explained as is; one that fits
        on Dask collections (``models.fits_on_chunks``: dask-ml's GLMs) is fitted on
        the dask array first, after its labels are checked; others are refused.
        Nothing per training row is gathered: y and the sample weights are checked
        chunk by chunk, their totals (n, Σ s, per class) come from one reduction, and
        the family's objective is rebuilt on each chunk (``_chunked``).
        """
        fits = fits_on_chunks(self.estimator) and \
            not isinstance(self.estimator, FrozenEstimator)
        if not (fits or isinstance(self.estimator, FrozenEstimator)) or \
                pipeline_of(self.estimator) is not None:
            raise TypeError(
                "With dask training data the model must be fitted already (e.g. on a "
                "sample, or by dask-ml) and wrapped in sklearn.frozen.FrozenEstimator, "
                "or be one that fits on Dask collections (dask-ml's LogisticRegression, "
                f"LinearRegression, PoissonRegression); got "
                f"{type(self.estimator).__name__}. Pipelines are not supported on "
                "chunks: transform the dask array first."
            )
        if fits and sample_weight is not None:
            raise ValueError(
                f"{type(self.estimator).__name__}.fit takes no sample_weight: fit it "
                "without, or fit a model elsewhere and wrap it in FrozenEstimator."
            )
        _check_feature_names(self, getattr(X, "_meta", X), reset=True)  # columns
        Xv = _chunked.check_chunked_X(X)
        self.n_features_in_ = Xv.shape[1]
        yv = _chunked.row_vector(y, Xv, "y")
        sw = _chunked.row_vector(sample_weight, Xv, "sample_weight")
        if sw is not None:  # checked chunk by chunk, whenever a pass reads it
            sw = sw.map_blocks(lambda b: _check_sample_weight(b, len(b)),
                               dtype=np.float64)
        self.estimator_ = clone(self.estimator)
        model = unwrap(self.estimator_)
        if not fits:
            _check_n_features(model, Xv, False)
        classes = getattr(model, "classes_", None)
        if classes is not None:
            self.classes_ = classes
        labels = classes if classes is not None else fixed_labels(model)
        totals = _chunked.row_totals(yv, sw, labels, verbose=self.verbose)
        if fits:  # labels checked: fit on the dask array itself, never gathered
            self.estimator_.fit(Xv, yv)
        if classes is not None:  # the classes present, with their weights
            present = classes[totals.class_counts > 0]
            _check_target_supported(self, present)
            _check_balanced_weights(self.estimator, present,
                                    totals.class_totals[totals.class_counts > 0])
        recipe = _chunked.Recipe(builder, model, {"smoothing": self.smoothing}, totals)
        shell = _chunked.family_risk(recipe, Xv, yv, sw, verbose=self.verbose)
        _chunked.check_chunkable(shell, self.hessian_solver)
        rows = _chunked.RowChunks(Xv, yv, sw, recipe, shell, verbose=self.verbose)
        objective = _chunked.ChunkedObjective(rows, totals)
        self.X_fit_ = Xv
        self.sample_weight_ = rows.sample_weight  # lazy
        self.training_index_ = _chunked.row_index(X, Xv)  # lazy
        return objective, model, Xv

    def _scoring(self):
        """The scorer built at fit, with the current batch, job and memory settings."""
        return self._scorer.with_settings(
            batch_size=self.batch_size, n_jobs=self.n_jobs, verbose=self.verbose,
            max_result_bytes=self.max_result_bytes,
        )

    def _validate_X(self, X):
        """Test X mapped to the features ``risk_`` is linear in (a kernel machine's
        φ(x)); see :meth:`_test_inputs`."""
        return self.risk_.features(self._test_inputs(X))

    def _test_inputs(self, X):
        """Test X validated, as the explained model sees it (after a Pipeline's first
        steps)."""
        self._check_unchanged()
        if pipeline_of(self.estimator_) is None:
            return validate_data(self, X, reset=False, accept_sparse="csr",
                                 dtype=np.float64)
        validate_data(self, X, reset=False, skip_check_array=True)
        return self._model_input(X)

    def _removal_parts(self, method, *, factorised=True):
        """(risk, solver, damped Hessian) the removals of ``method`` run on.

        ``factorised``: the removal needs the dense Hessian (the solver's error
        when it has none); else None stands for it with an iterative solver.

        The fit's, except for exact removals from a risk held on a subspace that
        removals may leave: a kernel machine with the exact hinge or ε-insensitive
        loss is held on its support vectors, and removing a row may bring rows from
        outside the margin into the support. Those run on the risk of every training
        row (``risk_.exact_removal_risk()``, built for the call and dropped after),
        whose solution paths need no solver. Its steps report in the same
        ``params_`` layout; its test features are ``risk.features(inputs)``.
        """
        wider = getattr(self.risk_, "exact_removal_risk", None)
        if method == "exact" and wider is not None:
            return wider(), None, None
        if factorised or self.hessian_ is not None:
            return self.risk_, self.hessian_solver_, self._damped_hessian()
        return self.risk_, self.hessian_solver_, None

    def _check_unchanged(self):
        """Refuse to explain a model whose parameters (or damping) changed since fit."""
        check_is_fitted(self)
        if not np.array_equal(fitted_state(self.estimator_), self._fitted_state):
            model = unwrap(self.estimator_)
            raise ValueError(
                f"The {type(model).__name__} in estimator_ changed after "
                "InfluenceExplainer.fit (its fitted parameters differ from those "
                "explained): influences would describe another model. Call fit again."
            )
        if self.damping != getattr(self, "_fit_damping", self.damping):
            raise ValueError(
                f"damping was set to {self.damping!r} after fit, which factorised "
                f"H + λI with damping={self._fit_damping!r}: influences would mix the "
                "two. Call fit again."
            )

    def _model_input(self, X, copy=False):
        return model_input(self.estimator_, X, copy=copy)

    def _test_loss(self, test_loss):
        return None if test_loss is None else resolve_test_loss(test_loss,
                                                                self.risk_)

    def _damped_hessian(self):
        return self.hessian_solver_.damped_hessian()

    def _test_targets(self, y, Xv, test_loss):
        """Encoded test labels; placeholders when the decision value is scored."""
        if y is not None:
            return self._encode(y, Xv)
        if isinstance(test_loss, str) and test_loss == "decision":
            return np.zeros(Xv.shape[0], dtype=np.intp)  # the loss ignores them
        raise ValueError(
            "y is required to score a test loss; without labels, pass "
            "test_loss=\"decision\" (influence on the decision value)."
        )

    def _encode(self, y, Xv):
        """Test labels in the family's encoding (clear errors for bad labels)."""
        return self.risk_.targets.encode(y, Xv.shape[0])

    def _check_indices(self, indices):
        return check_indices(indices, len(self.sample_weight_))


def _check_target_supported(explainer, y):
    """Honour the ``multi_class`` tag (the wrapped classifier's and ours) before fit."""
    estimator = explainer.estimator
    tags = get_tags(explainer).classifier_tags
    if tags is None:
        return
    check_label_types(y)
    classes = np.unique(y)
    if len(classes) < 2:
        raise ValueError(
            "Influence needs a classifier trained on at least 2 classes, but the "
            f"data contains only one class: {classes.tolist()}."
        )
    if tags.multi_class:
        return
    y_type = type_of_target(y, input_name="y", raise_unknown=True)
    if y_type != "binary":
        raise ValueError(
            "Only binary classification is supported. The type of the target is "
            f"{y_type}, and {unwrap(estimator)!r} is explained for two classes only "
            "(LogisticRegression: use a solver other than liblinear; SVC: use "
            "LinearSVC, which is one-vs-rest)."
        )


def _check_balanced_weights(estimator, y, sample_weight):
    """class_weight="balanced" from sample weights: S / (K · S_g) needs every S_g > 0.

    Checked before fitting (scikit-learn would divide by zero); a FrozenEstimator's
    classes are checked again by the family's class-weight recipe.
    """
    model = unwrap(estimator)
    balanced = isinstance(getattr(model, "class_weight", None), str) and \
        model.class_weight == "balanced"
    if balanced and balanced_from_sample_weight(model):
        classes, y_index = np.unique(y, return_inverse=True)
        class_totals(classes, y_index.ravel(), sample_weight)


def _check_n_features(model, Xv, after_pipeline):
    """The explained coefficients must match X's columns (e.g. a FrozenEstimator)."""
    expected = getattr(model, "n_features_in_", None)
    if expected is None:
        coef = getattr(model, "coef_", None)
        if coef is None:  # e.g. an SVC with a callable kernel takes any input
            return
        expected = coef.shape[-1]
    if Xv.shape[1] != expected:
        where = " after the pipeline's transform" if after_pipeline else ""
        raise ValueError(
            f"X has {Xv.shape[1]} features{where}, but {type(model).__name__} is "
            f"expecting {expected} features as input."
        )


def _check_finite(values, what, model):
    """Fitted state with NaN or inf gives NaN scores: refuse it at fit."""
    if not np.all(np.isfinite(values)):
        raise ValueError(
            f"The {what} of the fitted {type(model).__name__} is not finite (NaN or "
            "inf): the fit diverged or overflowed, and influences would be NaN. "
            "Standardise X (e.g. StandardScaler), use a stronger penalty, or for SGD "
            "a smaller learning rate (eta0), and check the model's coef_ and "
            "intercept_."
        )


def _check_sample_weight(sample_weight, n_samples):
    if sample_weight is None:
        return np.ones(n_samples)
    sw = check_array(
        sample_weight, ensure_2d=False, dtype=np.float64, input_name="sample_weight"
    )
    if sw.ndim != 1 or sw.shape[0] != n_samples:
        raise ValueError(
            f"sample_weight.shape == {sw.shape}, expected ({n_samples},)!"
        )
    if np.any(sw < 0):
        raise ValueError("sample_weight must be non-negative.")
    return sw.copy()


def _row_index(X, n):
    """The labels of X's rows: a DataFrame's index (copied), else 0 … n − 1."""
    index = getattr(X, "index", None)
    if index is not None and hasattr(X, "columns") and len(index) == n:
        return index.copy()
    return np.arange(n)
