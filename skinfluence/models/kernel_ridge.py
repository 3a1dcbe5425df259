"""KernelRidge and GaussianProcessRegressor's posterior mean: kernel ridge regression.

``KernelRidge`` minimises, over ``f(x) = Σ_i β_i K(x, x_i)`` (no intercept)::

    F = Σ_i s_i ‖y_i − f(x_i)‖² + Σ_k α_k ‖f_k‖²_H

(``dual_coef_`` is β, one column per target; ``α_k`` is ``alpha``, one per target
when an array is given). In the whitened features of every training row,
``φ(x) = K(x, X) U Λ^{-1/2}`` (:mod:`._kernel_map`), ``f_k = φ(x)·w_k`` with
``‖f_k‖²_H = ‖w_k‖²``: Ridge without intercept on those features (:mod:`.ridge`),
``R = F / n`` with the squared loss and the penalty ``2 α_k / n``. It is a linear
smoother, so one Newton step without a row is its exact leave-one-out.

``GaussianProcessRegressor``'s posterior mean ``k(x, X)ᵀ (K + diag(a))⁻¹ y`` is the
same kernel ridge at the fitted kernel ``kernel_`` with noise ``a_i``: ``alpha``
(scalar or per row) plus the diagonal the kernel adds on the training rows only
(a ``WhiteKernel``)::

    F = Σ_i (ā / a_i) (y_i − f(x_i))² + ā ‖f‖²_H,      ā = mean(a)

The hyperparameters of ``kernel_`` and the noise are held fixed (influences are
derivatives of the posterior mean at fixed hyperparameters; the marginal-likelihood
fit is not differentiated). ``fit`` takes no sample weight: the "weight" s_j whose
derivative the influences are is the multiplier of row j's data-fit term, i.e. its
noise ``a_j / s_j`` (a refit with ``alpha`` changed that way is the oracle).
``normalize_y=True`` is refused (the normalisation's mean and scale depend on every
row): standardise y before fitting.

Parameters (``params_``): the dual coefficients on every training row, output by
output (``dual_coef_`` / ``alpha_`` transposed and flattened; ``β = U Λ^{-1/2} w``,
the minimum-norm ones when K is singular).
"""

import numpy as np
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.kernel_ridge import KernelRidge

from .._objective import LinearObjective
from ._kernel_map import (
    KernelMap,
    PairwiseKernel,
    TrainingKernel,
    check_reconstruction,
    training_kernel_map,
)
from ._losses import SquaredErrorLoss
from ._targets import RealTargets
from .ridge import _alpha_per_output


def _kernel_ridge_kernel(est):
    """K(X, Y) as KernelRidge computes it (``kernel_params`` for a callable)."""
    if callable(est.kernel):
        return PairwiseKernel(est.kernel, **(est.kernel_params or {}))
    return PairwiseKernel(est.kernel, gamma=est.gamma, degree=est.degree,
                          coef0=est.coef0)


def _ridge_risk(est, kmap, X, y, row_weight, sample_weight, alpha):
    """Ridge without intercept on φ(X): loss Σ_k (y_k − z_k)², penalty 2α_k/n."""
    beta = np.asarray(est.dual_coef_ if isinstance(est, KernelRidge) else est.alpha_,
                      dtype=np.float64)
    k = 1 if beta.ndim == 1 else beta.shape[1]
    targets = RealTargets(k)
    n = X.shape[0]
    coef = kmap.weights(beta)
    quad = np.repeat(2.0 * np.broadcast_to(alpha, (k,)) / n, kmap.rank)
    risk = LinearObjective(
        SquaredErrorLoss(), coef, None, kmap.basis_features, targets.encode(y, n),
        sample_weight, row_weight, quad, np.zeros(quad.size), targets=targets,
        input_map=kmap, inputs=X, param_map=kmap.param_map(k, False),
    )
    check_reconstruction(risk.decision(risk.X), est.predict(X), type(est).__name__)
    return risk


def kernel_ridge_objective(est, X, y, sample_weight, **options):
    """R(θ) = F/n of a fitted KernelRidge (see the module)."""
    kernel = "precomputed" if est.kernel == "precomputed" else \
        _kernel_ridge_kernel(est)
    kmap = training_kernel_map(kernel, X)
    k = 1 if np.ndim(est.dual_coef_) == 1 else est.dual_coef_.shape[1]
    return _ridge_risk(est, kmap, X, y, np.ones(X.shape[0]), sample_weight,
                       _alpha_per_output(est, k))


def gaussian_process_objective(est, X, y, sample_weight, **options):
    """R(θ) = F/n of a fitted GaussianProcessRegressor's posterior mean."""
    X_fit = est.X_train_
    cross = est.kernel_(X_fit, X_fit)  # no WhiteKernel term between given X and Y
    extra = est.kernel_(X_fit) - cross  # the noise a kernel adds on the training rows
    if np.any(extra - np.diag(np.diag(extra))):
        raise TypeError(
            "GaussianProcessRegressor's kernel_ differs between kernel_(X) and "
            "kernel_(X, X) off the diagonal: its posterior mean is not a kernel ridge "
            "in kernel_(X, X_train), which skinfluence needs."
        )
    noise = np.broadcast_to(np.asarray(est.alpha, dtype=np.float64), (X.shape[0],)) \
        + np.diag(extra)
    reference = float(np.mean(noise))  # ā: F = Σ (ā/a_i) r_i² + ā ‖f‖²
    kmap = KernelMap(TrainingKernel(est.kernel_, X_fit), gram=cross)
    return _ridge_risk(est, kmap, X, y, reference / noise, sample_weight, reference)


def validate(est):
    """Refuse, before fitting, what is not a kernel ridge at fixed hyperparameters."""
    if isinstance(est, GaussianProcessRegressor) and est.normalize_y:
        raise TypeError(
            "GaussianProcessRegressor(normalize_y=True) normalises y with the mean and "
            "standard deviation of all training targets, which every row moves: "
            "skinfluence explains normalize_y=False. Standardise y before fitting "
            "(and undo it on the predictions)."
        )


def convergence_hint(est, n_samples):
    """Kernel ridge is solved in closed form: a miss points to an ill-posed K."""
    return ("the dual coefficients are solved for in closed form, so this points to "
            "an ill-conditioned kernel matrix: use a larger alpha")


SUPPORTED = {KernelRidge: kernel_ridge_objective,
             GaussianProcessRegressor: gaussian_process_objective}
FITTED_STATE = ("dual_coef_", "alpha_")

#: Support-table row (``models.support_table``): loss, penalty, intercept, vs refits.
DESCRIPTION = {
    (KernelRidge, GaussianProcessRegressor): (
        "squared error; any kernel (callable, precomputed); multi-output; θ = dual "
        "coefficients. GP: the posterior mean at the fitted `kernel_` "
        "(`normalize_y=False`)",
        "RKHS norm `alpha` (GP: noise `alpha`, WhiteKernel), kernel held fixed",
        "none", "≤ 2e-10; exact LOO ≤ 1e-8 (GP: vs fixed-kernel refits)"),
}
