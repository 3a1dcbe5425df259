"""The whitened empirical kernel map: a kernel machine as a linear model.

A kernel machine's function is ``f(x) = Σ_i β_i K(x, x_i) + b`` over basis rows
``X_B``: all training rows (so that removing or re-weighting a row, which may turn
any row into a support vector, stays inside the model), or only the support vectors
where every derivative stays in their span (the exact hinge and ε-insensitive
losses: rows off the support have no gradient and no curvature, so the features,
Hessian and every first-order or Newton step live on ``n × n_support``). With the
eigendecomposition ``K_BB = U Λ Uᵀ`` (eigenvalues below ``rtol · λ_max`` dropped,
``r`` kept), the features::

    φ(x) = K(x, X_B) U Λ^{-1/2}                       (r columns)

are orthonormal coordinates of the span of ``K(·, x_i)`` in the RKHS:
``f(x) = φ(x)·w + b`` with ``w = Λ^{1/2} Uᵀ β`` and ``‖f‖²_H = βᵀ K β = ‖w‖²``. The
kernel penalty becomes an identity ridge penalty on w, so every loss, solver and
removal of the linear models applies unchanged to the features ``Φ = φ(X_train)``
(``= U Λ^{1/2}`` on the basis). Back to the dual: ``β = U Λ^{-1/2} w``, the
minimum-norm dual coefficients of f (the estimator's own when ``K_BB`` is
non-singular). Any whitening ``W`` with ``W Wᵀ = K_BB⁻¹`` in place of ``U Λ^{-1/2}``
gives the same model (an orthogonal change of w); a well-conditioned ``K_BB`` uses
its Cholesky factor, ``W = L^{-T}`` (an order of magnitude faster than the
eigendecomposition).

The kernel's hyperparameters (``gamma``, a Gaussian process's fitted ``kernel_``)
are held fixed: influences are derivatives of the optimum at fixed kernel.
"""

import numpy as np
from scipy.linalg import LinAlgError, cholesky, eigh, solve_triangular
from sklearn.metrics.pairwise import pairwise_kernels

from .._utils import dense

#: Reconstructed decision values must match the estimator's to this, relative to
#: max(1, max |z|): else the kernel was not rebuilt as the estimator computes it.
RECONSTRUCTION_RTOL = 1e-6
#: The support vectors are the basis when their features rebuild ``K(·, X_S) β_S`` on
#: every training row to this, relative to max(1, max |f|) (else every row is).
SUPPORT_RTOL = 1e-9


class TrainingKernel:
    """``(X, rows) ↦ K(X, X_train[rows])``: a kernel against the training rows.

    Parameters
    ----------
    kernel : callable or "precomputed"
        ``kernel(X, Y)``, the estimator's kernel with its fitted parameters; with
        "precomputed", inputs are their kernel rows against every training row
        (``X_train`` is the training Gram matrix) and columns are taken from them.
    X_train : {ndarray, sparse matrix}
        The training inputs as the estimator sees them.
    """

    def __init__(self, kernel, X_train):
        self.kernel, self.X_train = kernel, X_train
        self.precomputed = isinstance(kernel, str) and kernel == "precomputed"
        self.n_train = X_train.shape[0]

    def __call__(self, X, rows=None):
        """K(X, X_train[rows]) as a float64 ndarray (all training rows when None)."""
        width = self.n_train if rows is None else len(rows)
        if not (X.shape[0] and width):  # kernels refuse empty arrays
            return np.zeros((X.shape[0], width))
        if self.precomputed:
            out = X if rows is None else X[:, rows]
        else:
            out = self.kernel(X, self.X_train if rows is None else self.X_train[rows])
        return np.asarray(dense(out), dtype=np.float64)

    def gram(self, rows=None):
        """K(X_train[rows], X_train[rows])."""
        if self.precomputed:
            return np.asarray(dense(self.X_train if rows is None
                                    else self.X_train[rows][:, rows]),
                              dtype=np.float64)
        inputs = self.X_train if rows is None else self.X_train[rows]
        return self(inputs, rows)


class KernelMap:
    """φ(x) = K(x, X_B) W, and the maps between w and β.

    Any W with ``W Wᵀ = K_BB⁻¹`` gives the same inner products
    ``φ(x)·φ(z) = K(x, X_B) K_BB⁻¹ K(X_B, z)``: the Cholesky factor's
    ``W = L^{-T}`` (``K_BB = L Lᵀ``, fast) when ``K_BB`` is well conditioned, else
    the eigendecomposition's ``W = U Λ^{-1/2}`` with numerically zero eigenvalues
    dropped (``r < n_basis`` columns). On the basis ``φ(X_B) = K_BB W``, and
    ``w = (K_BB W)ᵀ β``, ``β = W w``.

    Parameters
    ----------
    kernel : TrainingKernel
        The kernel against the training rows.
    basis : array-like of int, default=None
        The basis rows B (training row numbers); None: every training row.
    gram : ndarray of shape (n_basis, n_basis), default=None
        ``K_BB`` when already computed (symmetrised here).
    rtol : float, default=None
        Eigenvalues at most ``rtol · λ_max`` are dropped (numerically zero);
        None: ``n_basis · ε``, the rank tolerance of ``numpy.linalg.matrix_rank``.

    Attributes
    ----------
    basis_features : ndarray of shape (n_basis, r)
        φ(X_B).
    """

    #: The Cholesky route is taken when every pivot² ≥ this × the largest diagonal
    #: entry of K_BB (W's rounding error stays near ε / this).
    CHOLESKY_MIN_PIVOT = 1e-8

    def __init__(self, kernel, basis=None, gram=None, rtol=None):
        self.kernel = kernel
        self.n_train = kernel.n_train
        self.basis = None if basis is None else np.asarray(basis, dtype=np.intp)
        gram = kernel.gram(self.basis) if gram is None else gram
        gram = dense(gram).astype(np.float64)
        gram = 0.5 * (gram + gram.T)
        self.n_basis = gram.shape[0]
        factor = _well_conditioned_cholesky(gram, self.CHOLESKY_MIN_PIVOT)
        self._projection = None
        if factor is not None:  # W = L^{-T} (formed on first use), φ(X_B) = L
            self.basis_features = factor
        else:
            self._projection, self.basis_features = _eigen_whitening(gram, rtol)
        self.rank = self.basis_features.shape[1]

    @property
    def projection(self):
        """W (n_basis, r), ``W Wᵀ = K_BB⁻¹``; the Cholesky route inverts its
        triangular factor on first use (n_basis³ / 3 flops)."""
        if self._projection is None:
            self._projection = solve_triangular(
                self.basis_features, np.eye(self.n_basis), lower=True).T
        return self._projection

    def __call__(self, X):
        """φ(X) = K(X, X_B) W, (n, r), as :class:`KernelFeatures` (computed when
        first needed: a kernel-space scorer reads the kernel rows it needs only)."""
        return KernelFeatures(self, X)

    def dense(self, X):
        """φ(X) = K(X, X_B) W as an ndarray (n, r)."""
        return self.whiten(self.cross_matrix(X))

    def whiten(self, cross):
        """K(X, X_B) W for kernel rows (n, n_basis): through the Cholesky factor
        (``(L⁻¹ K(X_B, X))ᵀ``, n_basis² per row) unless W is formed."""
        if self._projection is not None:
            return cross @ self._projection
        return solve_triangular(self.basis_features, cross.T, lower=True,
                                check_finite=False).T

    def cross_matrix(self, X):
        """K(X, X_B) as a float64 ndarray (n, n_basis)."""
        return self.kernel(X, self.basis)

    def cross_rows(self, X, rows):
        """K(X, X_train[rows]) as a float64 ndarray (n, len(rows)) for training row
        numbers ``rows``: only those columns are computed."""
        return self.kernel(X, rows)

    def weights(self, beta):
        """w = (K_BB W)ᵀ β for dual coefficients β (n_basis, k) on the basis rows:
        W of shape (k, r)."""
        beta = np.asarray(beta, dtype=np.float64).reshape(self.n_basis, -1)
        return (self.basis_features.T @ beta).T

    def param_map(self, n_outputs, fit_intercept):
        """θ rows ``[W.ravel(), b]`` → ``[B.ravel(), b]`` with B = W (U Λ^{-1/2})ᵀ.

        The reported parameters are the dual coefficients of every output on every
        training row (zero off the basis; output by output), then the intercepts.
        """
        return DualParams(self, n_outputs, fit_intercept)

    def dual(self, W):
        """β = W_proj wᵀ for rows w (m, r): (m, n_basis). The Cholesky route solves
        with its factor (``L^{-T} w``, n_basis² per row) unless W is formed."""
        if self._projection is not None:
            return W @ self._projection.T
        return solve_triangular(self.basis_features, W.T, lower=True, trans="T",
                                check_finite=False).T

    def on_training_rows(self, B):
        """Dual coefficients on the basis (m, n_basis) → on every training row
        (m, n_train), zero off the basis."""
        if self.basis is None:
            return B
        out = np.zeros((B.shape[0], self.n_train))
        out[:, self.basis] = B
        return out


class KernelFeatures:
    """φ(X) = K(X, X_B) W for inputs X, computed on first use (array-like).

    What the explainer hands on as test features for a kernel machine: numpy
    functions see the dense φ (``__array__``, cached); ``F @ M`` is
    ``K(X, X_B) (W M)`` (decision values without the n × r features); slices of
    rows stay lazy; :attr:`inputs` are the inputs themselves, from which a
    kernel-space scorer computes only the kernel columns it needs
    (:meth:`KernelMap.cross_rows`).
    """

    ndim = 2
    dtype = np.dtype(np.float64)

    def __init__(self, kmap, inputs):
        self.kmap, self.inputs = kmap, inputs
        self._cross = self._phi = None

    @property
    def shape(self):
        return (self.inputs.shape[0], self.kmap.rank)

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, key):
        if isinstance(key, tuple):  # (rows, columns): of the dense features
            return np.asarray(self)[key]
        return KernelFeatures(self.kmap, self.inputs[key])

    def cross(self):
        """K(X, X_B) (n, n_basis), computed once."""
        if self._cross is None:
            self._cross = self.kmap.cross_matrix(self.inputs)
        return self._cross

    def __array__(self, dtype=None, copy=None):
        if self._phi is None:
            self._phi = self.kmap.whiten(self.cross())
        phi = self._phi if dtype is None else self._phi.astype(dtype, copy=False)
        return phi.copy() if copy and phi is self._phi else phi

    def __matmul__(self, M):
        if self._phi is not None:
            return self._phi @ M
        M = np.asarray(M)
        dual = self.kmap.dual(M.reshape(M.shape[0], -1).T).T  # W M
        return self.cross() @ dual.reshape((-1,) + M.shape[1:])


class DualParams:
    """θ rows ``[W.ravel(), b]`` → ``[B.ravel(), b]``, B = W (U Λ^{-1/2})ᵀ
    (:meth:`KernelMap.dual`)."""

    def __init__(self, kmap, n_outputs, fit_intercept):
        self.kmap, self.n_outputs = kmap, n_outputs
        self.fit_intercept = fit_intercept

    def __call__(self, rows):
        rows = np.asarray(rows)
        k, r = self.n_outputs, self.kmap.rank
        W = rows[:, : k * r].reshape(len(rows) * k, r)
        B = self.kmap.on_training_rows(self.kmap.dual(W))
        B = B.reshape(len(rows), k * self.kmap.n_train)
        return np.hstack([B, rows[:, k * r:]]) if self.fit_intercept else B


class PairwiseKernel:
    """``K(X, Y)`` by :func:`sklearn.metrics.pairwise.pairwise_kernels` (a named
    kernel or a callable on pairs of rows) with fixed parameters."""

    def __init__(self, metric, **params):
        self.metric, self.params = metric, params

    def __call__(self, X, Y):
        return pairwise_kernels(X, Y, metric=self.metric, filter_params=True,
                                **self.params)


def training_kernel_map(kernel, X_train, basis=None):
    """The whitened map on the training rows ``basis`` (None: every row).
    ``kernel="precomputed"``: X_train is the training Gram matrix."""
    return KernelMap(TrainingKernel(kernel, X_train), basis)


def dual_kernel_map(kernel, X_train, dual, exact):
    """(kernel map, φ(X_train), w) of a kernel machine with dual coefficients
    ``dual`` (n_train, k) on every training row.

    With an ``exact`` loss (no derivative leaves the support vectors' span) the basis
    is the support vectors S (rows with a non-zero coefficient), provided their
    features represent ``f = K(·, X_S) β_S`` on every training row to
    ``SUPPORT_RTOL``: a numerically singular ``K_SS`` whose whitening drops a
    direction may not, off the support. Otherwise, and for the smooth losses, every
    training row is a basis row.
    """
    dual = np.asarray(dual, dtype=np.float64).reshape(X_train.shape[0], -1)
    support = np.flatnonzero(np.any(dual != 0, axis=1))
    if exact and 0 < support.size < dual.shape[0]:
        kmap = training_kernel_map(kernel, X_train, support)
        cross = kmap.cross_matrix(X_train)
        features, w = kmap.whiten(cross), kmap.weights(dual[support])
        f = cross @ dual[support]
        error = np.max(np.abs(features @ w.T - f), initial=0.0)
        if error <= SUPPORT_RTOL * max(1.0, np.max(np.abs(f), initial=0.0)):
            return kmap, features, w
    kmap = training_kernel_map(kernel, X_train)
    return kmap, kmap.basis_features, kmap.weights(dual)


def widen_for_exact_removal(risk, kmap, every_row_risk):
    """A risk held on the support vectors (``kmap.basis`` set) runs its exact
    removals, along which rows may join the support, on the risk of every training
    row: ``every_row_risk()`` becomes its ``exact_removal_risk``. Returns ``risk``."""
    if kmap is not None and kmap.basis is not None:
        risk.exact_removal_risk = every_row_risk
    return risk


def _well_conditioned_cholesky(gram, min_pivot):
    """Lower Cholesky factor of K_BB, or None if it fails or has a tiny pivot."""
    try:
        factor = cholesky(gram, lower=True, check_finite=False)
    except LinAlgError:
        return None
    scale = max(float(np.max(np.diag(gram))), 0.0)
    if not np.min(np.diag(factor)) ** 2 >= min_pivot * scale:
        return None
    return factor


def _eigen_whitening(gram, rtol):
    """(U Λ^{-1/2}, U Λ^{1/2}) over the eigenvalues above ``rtol · λ_max``."""
    m = gram.shape[0]
    lam, U = eigh(gram, check_finite=False)
    rtol = m * np.finfo(np.float64).eps if rtol is None else rtol
    keep = lam > rtol * max(lam[-1], 0.0)
    if not keep.any():
        raise ValueError("The kernel matrix of the training rows is zero: the "
                         "kernel machine has no features to explain.")
    U, lam = U[:, keep], lam[keep]
    return U / np.sqrt(lam), U * np.sqrt(lam)


def check_reconstruction(Z, Z_model, name):
    """φ(X)·w + b must be the estimator's own decision values on its training rows.

    Parameters
    ----------
    Z, Z_model : ndarray of shape (n, k)
        Rebuilt and the estimator's decision values (predictions for regressors).
    name : str
        The estimator, for the message.
    """
    Z_model = np.asarray(Z_model, dtype=np.float64).reshape(Z.shape)
    error = np.max(np.abs(Z - Z_model), initial=0.0)
    scale = max(1.0, np.max(np.abs(Z_model), initial=0.0))
    if not error <= RECONSTRUCTION_RTOL * scale:
        raise ValueError(
            f"Could not rebuild the fitted {name}'s decision values from its dual "
            f"coefficients and kernel on the training rows (largest difference "
            f"{error:.1e}): it was fitted on other rows than those given to "
            "InfluenceExplainer.fit (a FrozenEstimator: pass the data it was fitted "
            "on), or its kernel does not give the same values when called again (a "
            "callable kernel with state or randomness: use a deterministic one)."
        )
