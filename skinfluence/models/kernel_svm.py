"""SVC (binary) and SVR with any kernel: libsvm's objectives in the kernel's features.

scikit-learn's libsvm minimises, over functions ``f(x) = Σ_i β_i K(x, x_i) + b``::

    SVC: F = ½‖f‖²_H + C Σ_i s_i c_i max(0, 1 − ỹ_i f(x_i))      (ỹ = ±1)
    SVR: F = ½‖f‖²_H + C Σ_i s_i max(0, |y_i − f(x_i)| − ε)

with ``‖f‖²_H = βᵀ K β`` and the intercept b not penalised; ``dual_coef_`` holds β on
the support vectors (``α_i ỹ_i`` for SVC, ``α_i − α_i*`` for SVR). In the whitened
features of every training row, ``φ(x) = K(x, X) U Λ^{-1/2}``
(:mod:`._kernel_map`), f is the linear model ``φ(x)·w + b`` with ``‖f‖²_H = ‖w‖²``,
so F is exactly the objective of ``SVC(kernel="linear")`` / ``SVR(kernel="linear")``
(:mod:`.svm`, :mod:`.svr`) on those features: the same hinge (exact at
``smoothing=0``: subgradients read off the dual coefficients, free support vectors
on the margin pinned; the smooth hinge at ``smoothing=t > 0``) and ε-insensitive loss
(rows on the tube's edges pinned). The kernel (``kernel``, ``gamma``, ``degree``,
``coef0``; "precomputed" or a callable) is held fixed. ``kernel="linear"`` keeps the
linear route, with θ = [``coef_``, ``intercept_``].

With the exact losses (``smoothing=0``, the default) no row off the support has a
gradient or curvature, so every first-order and Newton quantity lies in the span of
the support vectors' kernel functions: the features are those of the support
vectors only, ``φ(x) = K(x, X_S) W_S`` (n × n_support, and nothing larger is held).
Exact removals, along which rows outside the margin may join the support, are
computed on the features of every training row, built for that call
(``exact_removal_risk``). The smooth losses curve every row: every row is a basis
row.

Parameters (``params_``) of the other kernels: the dual coefficients on every
training row (``β = U Λ^{-1/2} w``, zero off the support; ``dual_coef_`` on
``support_``), then ``intercept_``. Multiclass SVC is one-vs-one (one classifier per
pair of classes, on that pair's rows): refused. Test points are mapped to φ by the
explainer (``risk_.features``); perturbation of inputs is refused (it needs ∇x φ).
"""

import functools

import scipy.sparse as sp
from sklearn.svm import SVC, SVR

from . import svm, svr
from ._kernel_map import (
    PairwiseKernel,
    check_reconstruction,
    dual_kernel_map,
    widen_for_exact_removal,
)


def kernel_function(est, X_train):
    """``K(X, Y)`` exactly as the fitted libsvm estimator computes it.

    ``gamma="scale"`` is ``1 / (n_features · Var(X_train))`` (1 when the variance is
    0), ``"auto"`` ``1 / n_features``; a callable is called as ``kernel(X, Y)``.
    """
    if callable(est.kernel):
        return est.kernel
    gamma = est.gamma
    if gamma == "scale":
        var = (X_train.multiply(X_train).mean() - X_train.mean() ** 2
               if sp.issparse(X_train) else X_train.var())
        gamma = 1.0 / (X_train.shape[1] * var) if var != 0 else 1.0
    elif gamma == "auto":
        gamma = 1.0 / X_train.shape[1]
    return PairwiseKernel(est.kernel, gamma=gamma, degree=est.degree, coef0=est.coef0)


def _kernel_risk(est, X, build, y, sample_weight, smoothing, model_values,
                 every_row=False):
    """The risk of a fitted SVC/SVR in the whitened features of its basis rows: its
    support vectors for the exact loss (unless ``every_row``;
    :func:`._kernel_map.dual_kernel_map`), whose exact removals (rows outside the
    margin may join the support) run on the risk of every row
    (``exact_removal_risk``); every training row for the smooth losses."""
    kernel = "precomputed" if est.kernel == "precomputed" else kernel_function(est, X)
    kmap, features, coef = dual_kernel_map(
        kernel, X, svm.dual_on_rows(est, sample_weight),
        exact_loss(smoothing) and not every_row)
    risk = build(est, features, coef, y, sample_weight, smoothing,
                 input_map=kmap, inputs=X, param_map=kmap.param_map(1, True))
    check_reconstruction(risk.decision(risk.X), model_values(X), type(est).__name__)
    return widen_for_exact_removal(risk, kmap, functools.partial(
        _kernel_risk, est, X, build, y, sample_weight, smoothing, model_values,
        every_row=True))


def exact_loss(smoothing):
    """Whether ``smoothing`` leaves the hinge / ε-insensitive loss exact."""
    return smoothing == "auto" or smoothing == 0


def kernel_svc_objective(est, X, y, sample_weight, *, smoothing="auto", **options):
    """R(θ) = F/(C n) of a fitted binary SVC; any kernel (see the module)."""
    if est.kernel == "linear":
        return svm.svc_objective(est, X, y, sample_weight, smoothing=smoothing)
    svm.check_binary(est)
    return _kernel_risk(est, X, svm.binary_svc_risk, y, sample_weight, smoothing,
                        est.decision_function)


def kernel_svr_objective(est, X, y, sample_weight, *, smoothing="auto", **options):
    """R(θ) = F/(C n) of a fitted SVR; any kernel (see the module)."""
    if est.kernel == "linear":
        return svr.svr_objective(est, X, y, sample_weight, smoothing=smoothing)
    return _kernel_risk(est, X, svr.svr_risk, y, sample_weight, smoothing,
                        est.predict)


def convergence_hint(est, n_samples):
    """Settings of ``est`` that reach the optimum of the same objective."""
    family = svm if isinstance(est, SVC) else svr
    return family.convergence_hint(est, n_samples)


SUPPORTED = {SVC: kernel_svc_objective, SVR: kernel_svr_objective}
BINARY_ONLY = (SVC,)  # scikit-learn's multiclass SVC is one-vs-one
FITTED_STATE = ("dual_coef_", "intercept_", "support_")

#: Support-table row (``models.support_table``): loss, penalty, intercept, vs refits.
DESCRIPTION = {
    (SVC,): ("hinge (exact, pinned margin rows, or smoothed); binary; any kernel "
             "(kernels other than linear: θ = dual coefficients, kernel held fixed)",
             "L2 (RKHS norm)", "unpenalised",
             "libsvm's float32 kernel floor: linear ~1e-5, rbf / poly / callable "
             "≤ 1.1e-5; exact LOO 2e-7"),
    (SVR,): ("ε-insensitive (exact: tube-edge rows pinned; or smoothed); any kernel "
             "(as SVC)", "L2 (RKHS norm)", "unpenalised",
             "linear ≤ 2e-5, rbf / poly ≤ 2e-6 (libsvm float32 kernel floor); "
             "exact LOO (solution path): linear 5e-6, rbf 1.3e-4 (libsvm floor)"),
}
