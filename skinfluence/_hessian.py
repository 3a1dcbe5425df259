"""Hessian solvers: apply H⁻¹ to many right-hand sides.

A solver is built once at fit time from the objective's Hessian (``make_solver``, which
also applies the "auto" rule, ``choose_solver``) and then answers
``solve(B) = H⁻¹ B`` for blocks of vectors. Some directions are held fixed: flat
directions of R (a softmax's shift invariance), along which fitted solutions carry no
component, and constraints that stay active under a small re-weighting (an exact
hinge's support vectors on the margin). The answer is then the solution restricted to
their orthogonal complement, ``Z (Zᵀ H Z)⁻¹ Zᵀ B`` with Z an orthonormal basis of it —
which is what refits reproduce.
"""

import os
import warnings

import numpy as np
import scipy.sparse as sp
from scipy.linalg import (
    LinAlgError,
    cho_solve,
    cholesky,
    qr,
    solve_triangular,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state

#: "auto" factorises the Hessian up to this many free parameters.
AUTO_CHOLESKY_MAX = 4096

#: Beyond that, "auto" solves in data space when its float32 n × n system fits here.
AUTO_WOODBURY_BYTES = 2**31

#: Above this 1-norm condition number of H + λI, round-off may be amplified: warn.
CONDITION_WARN = 1e10

#: Above this one, refuse: a solve's relative round-off error is bounded by about
#: κ·ε (ε = 2.2e-16, unit round-off), which here exceeds 1e-2, so not even two
#: digits of a score can be trusted (≈ 4.5e13; e.g. 1.4e264-sized scores at 1e260).
CONDITION_MAX = 1e-2 / np.finfo(np.float64).eps


class SingularHessianWarning(UserWarning):
    """The Hessian of the training objective is (nearly) singular."""


def _span_and_complement(directions):
    """Orthonormal bases of the columns' span and of its complement (pivoted QR)."""
    p = directions.shape[0]
    Q, R, _ = qr(directions, mode="full", pivoting=True)
    diag = np.abs(np.diag(R))
    rank = int(np.sum(diag > diag.max(initial=0.0) * p * np.finfo(float).eps))
    return Q[:, :rank], Q[:, rank:]


def complement_basis(directions):
    """Orthonormal basis (p, p − rank) of the orthogonal complement of the columns."""
    if directions.shape[1] == 0:
        return None
    return _span_and_complement(directions)[1]


_SINGULAR = (
    "The Hessian of the training objective is singular (not positive definite), so "
    "influence functions are undefined. This happens for an unpenalised model "
    "(C=np.inf, alpha=0, LinearRegression) on separable or collinear data, or with "
    "fewer training rows than parameters. Fix: set InfluenceExplainer(damping=...) to "
    "a small positive value (e.g. 1e-3) or fit the estimator with a penalty."
)


def _norm_1(A):
    """Matrix 1-norm: the largest absolute column sum."""
    return np.abs(A).sum(axis=0).max(initial=0.0)


class HessianSolver:
    """What every solver of ``H + λI`` offers (``hessian_solver_``).

    Attributes
    ----------
    name : str
        The ``hessian_solver`` option that builds it.
    reason : str
        Why it was chosen (the "auto" rule, or the user's choice).
    condition_number_ : float
        1-norm condition number of ``H + λI`` (NaN where it is not computed).
    inverse : ndarray of shape (p_free, p_free) or None
        The dense inverse on the complement of the fixed directions, when formed.
    basis : ndarray of shape (p_free, m) or None
        Orthonormal basis of that complement, when formed (None: all directions).
    hessian : ndarray of shape (p_free, p_free) or None
        The undamped Hessian H, when formed ("cholesky").
    """

    name: str | None = None
    reason = None
    condition_number_ = np.nan
    inverse = None
    basis = None
    hessian = None

    def solve(self, B):
        """(H + λI)⁻¹ B on the complement of the fixed directions, B (p,) or (p, m)."""
        raise NotImplementedError

    def leverages(self):
        """Leverage of every training row read off the solver's factor, or None.

        None when the solver has no cheaper way than solving for each row's output
        Jacobians (the explainer then does that).
        """
        return None

    def damped_hessian(self):
        """The dense ``H + λI`` (p_free, p_free) the solver factorised.

        Raises
        ------
        NotImplementedError
            For the solvers that never form the p × p Hessian.
        """
        raise NotImplementedError(
            "This needs the factorised Hessian: refit the explainer with "
            "hessian_solver='cholesky' (exact leave-one-out and group removals "
            "need the p × p Hessian, which the \"cg\", \"woodbury\" and "
            "\"lissa\" solvers never form)."
        )


class CholeskySolver(HessianSolver):
    """Dense Cholesky factorisation of ``H + damping·I`` (exact, for moderate p).

    Parameters
    ----------
    hessian : ndarray of shape (p, p)
        Symmetric positive (semi-)definite Hessian of R at θ̂.
    fixed_directions : ndarray of shape (p, m)
        Directions the solution must be orthogonal to (flat directions, active
        constraints); may have zero columns.
    damping : float
        λ ≥ 0 added to the diagonal (the paper's damping term).

    Attributes
    ----------
    condition_number_ : float
        1-norm condition number of the factorised matrix (‖A‖₁ ‖A⁻¹‖₁).

    Raises
    ------
    ValueError
        If the matrix is singular, or its condition number exceeds
        ``CONDITION_MAX`` (≈ 4.5e13); both name damping as the remedy.
    """

    name = "cholesky"

    def __init__(self, hessian, fixed_directions, damping=0.0):
        self.hessian, self.damping = hessian, damping  # H + λI on demand, no copy
        H = hessian + damping * np.eye(hessian.shape[0])
        flat = np.flatnonzero(np.all(H == 0, axis=1))
        try:
            self._factorise(H, fixed_directions)
            if flat.size and not self.condition_number_ <= CONDITION_MAX:
                raise LinAlgError  # singular but for rounding: as if exactly
        except LinAlgError:
            if not flat.size:
                raise ValueError(_SINGULAR) from None
            # R has no curvature at all along these parameters (e.g. the unpenalised
            # intercept of an exact hinge with no support vector on the margin): their
            # derivative is undefined; hold them fixed rather than divide by zero.
            warnings.warn(
                f"The training objective has no curvature along parameter(s) "
                f"{flat.tolist()} (an unpenalised parameter that no training row's "
                "loss bends: e.g. the intercept of an exact hinge with no support "
                "vector on the margin, or an output whose rows all sit beyond a "
                "once-differentiable loss's flat part): their influence is undefined "
                "and is set to zero. Use smoothing > 0 or damping > 0 for a smooth "
                "answer.",
                SingularHessianWarning,
                stacklevel=4,  # the explainer's fit, through make_solver
            )
            unit = np.zeros((H.shape[0], flat.size))
            unit[flat, np.arange(flat.size)] = 1.0
            try:
                self._factorise(H, np.hstack([fixed_directions, unit]))
            except LinAlgError:
                raise ValueError(_SINGULAR) from None
        if not self.condition_number_ <= CONDITION_MAX:
            raise ValueError(
                f"The Hessian of the training objective is numerically singular "
                f"(1-norm condition number ≈ {self.condition_number_:.2e}, above "
                f"{CONDITION_MAX:.1e}): round-off would dominate every influence "
                "score. Fix: set InfluenceExplainer(damping=...) to a small positive "
                "value (e.g. 1e-3), use a stronger penalty (smaller C, larger "
                "alpha), or, for a smoothed hinge, a larger smoothing."
            )
        if self.condition_number_ > CONDITION_WARN:
            warnings.warn(
                f"The Hessian of the training objective is nearly singular "
                f"(condition number ≈ {self.condition_number_:.2e}); influence "
                "scores may be dominated by round-off. Set "
                "InfluenceExplainer(damping=...) to a small positive value, use a "
                "stronger penalty (smaller C, larger alpha), or, for a smoothed "
                "hinge, a larger smoothing.",
                SingularHessianWarning,
                stacklevel=4,  # the explainer's fit, through make_solver
            )

    def _factorise(self, H, fixed_directions):
        """Cholesky of Zᵀ H Z (Z: complement of the fixed directions), its inverse
        and condition number; returns Zᵀ H Z (LinAlgError when singular)."""
        self.basis = complement_basis(fixed_directions)
        A = H
        if self.basis is not None:
            A = self.basis.T @ A @ self.basis
            A = 0.5 * (A + A.T)
        # numpy's LAPACK, not scipy's: scipy's BLAS has its own thread pool, which
        # competes with numpy's for the cores between calls (a 201² factorisation
        # took 30–40 ms after a numpy product instead of 1–3 ms)
        self._factor = np.linalg.cholesky(A)
        # (ZᵀAZ)⁻¹ = L⁻ᵀ L⁻¹, then its exact 1-norm condition number ‖A‖₁ ‖A⁻¹‖₁
        L_inv = np.linalg.inv(self._factor)
        inner = L_inv.T @ L_inv
        inner = 0.5 * (inner + inner.T)
        Z = self.basis
        self._inverse = inner if Z is None else Z @ inner @ Z.T
        self.condition_number_ = _norm_1(A) * _norm_1(inner) if A.size else 1.0
        return A

    @property
    def inverse(self):
        """The p × p matrix Z (Zᵀ H Z)⁻¹ Zᵀ (computed once, at construction).

        Applying it is a numpy product: scoring loops never call scipy's BLAS, whose
        thread pool competes with numpy's (it halved a following GEMM's speed).
        """
        return self._inverse

    def solve(self, B):
        """H⁻¹ B on the complement of the fixed directions."""
        return self.inverse @ B

    def damped_hessian(self):
        """The dense ``H + λI`` (p_free, p_free), formed on demand."""
        return self.hessian + self.damping * np.eye(self.hessian.shape[0])


def _refuse_pinned(objective, name):
    """Iterative solvers do not hold an exact hinge's margin rows fixed."""
    if objective.pinned is not None and objective.pinned.any():
        raise NotImplementedError(
            f"hessian_solver='{name}' does not support the exact hinge "
            "(smoothing=0), whose support vectors on the margin are pinned: use "
            "hessian_solver='cholesky', or smoothing > 0."
        )


class ConjugateGradientSolver(HessianSolver):
    """Matrix-free preconditioned conjugate gradients on ``H + damping·I``.

    Never forms H: each iteration is one Hessian-vector product per block of
    right-hand sides, ``objective.hessian_product(V) + λV`` (for a linear model two
    products with X, sparse X staying sparse; for a network Pearlmutter's
    R-operator). Jacobi (diagonal) preconditioner from
    ``objective.hessian_diagonal()``; the fixed directions are projected out, so the
    answer is the same as :class:`CholeskySolver`'s up to ``tol``. A direction of
    zero or negative curvature (an indefinite H: a network away from a local
    minimum) stops its columns with a :class:`SingularHessianWarning`.

    Parameters
    ----------
    objective : risk
        The fitted risk (``hessian_product``, ``hessian_diagonal``, ``free``).
    fixed_directions : ndarray of shape (p, m)
        Directions the solution is kept orthogonal to.
    damping : float
        λ ≥ 0 added to the diagonal.
    tol : float
        Relative residual ‖H x − b‖ ≤ tol ‖b‖ per right-hand side.
    max_iter : int or None
        Iteration cap (None: 10·p); a ConvergenceWarning names the shortfall.
    """

    name = "cg"

    def __init__(self, objective, fixed_directions, damping=0.0, *, tol=1e-10,
                 max_iter=None):
        _refuse_pinned(objective, "cg")
        self.objective = objective
        self.damping = damping
        self.tol = tol
        p = int(objective.free.sum())
        self.max_iter = 10 * p if max_iter is None else max_iter
        self._basis = None  # orthonormal span of the fixed directions
        if fixed_directions.shape[1]:
            self._basis = _span_and_complement(fixed_directions)[0]
        diag = objective.hessian_diagonal() + damping
        self._inv_diag = 1.0 / np.where(diag > 0, diag, 1.0)

    def matvec(self, V):
        """(H + λI) V for V of shape (p_free, m)."""
        return self.objective.hessian_product(V) + self.damping * V

    def _project(self, V):
        N = self._basis
        return V if N is None else V - N @ (N.T @ V)

    def solve(self, B):
        """(H + λI)⁻¹ B on the complement of the fixed directions, B (p,) or (p, m)."""
        vector = B.ndim == 1
        B = self._project(np.asarray(B, dtype=float).reshape(B.shape[0], -1))
        x, self.n_iter_ = _pcg(
            lambda V: self._project(self.matvec(V)),
            lambda R: self._project(self._inv_diag[:, None] * R),
            B, self.tol, self.max_iter,
        )
        return x[:, 0] if vector else x


def _pcg(matvec, precondition, B, tol, max_iter):
    """Preconditioned conjugate gradients on every column of B at once.

    Columns stop one by one when ‖b − A x‖ ≤ tol ‖b‖; a column that meets a direction
    without curvature stops there (with a warning), and columns still short of tol
    after ``max_iter`` iterations are reported in a ConvergenceWarning.
    Returns the solutions and the number of iterations run.
    """
    scale = np.abs(B).max(axis=0)  # unit columns: tiny ones would underflow in rᵀz
    scale[scale == 0] = 1.0
    B = B / scale
    x = np.zeros_like(B)
    r = B.copy()
    z = precondition(r)
    p = z.copy()
    rz = np.einsum("pm,pm->m", r, z)
    target = tol * np.linalg.norm(B, axis=0)
    active = np.linalg.norm(r, axis=0) > target
    it = 0
    while active.any() and it < max_iter:
        it += 1
        Hp = matvec(p[:, active])
        curvature = np.einsum("pm,pm->m", p[:, active], Hp)
        flat = curvature <= 0
        if flat.any():  # no curvature along the search direction: undefined
            warnings.warn(
                "Conjugate gradients met a direction of zero or negative curvature "
                f"(pᵀ(H + λI)p = {curvature[flat].min():.2e}: a parameter no training "
                "row's loss bends, or an indefinite Hessian, e.g. a neural network "
                "at a saddle point or short of a local minimum); those influences "
                "are left at their last iterate. Use damping > 0 (for a network, "
                "above minus the Hessian's smallest eigenvalue) or "
                "hessian_solver='cholesky'.",
                SingularHessianWarning,
                stacklevel=4,
            )
            idx = np.flatnonzero(active)
            active[idx[flat]] = False
            Hp, curvature = Hp[:, ~flat], curvature[~flat]
            if not active.any():
                break
        alpha = rz[active] / curvature
        x[:, active] += alpha * p[:, active]
        r[:, active] -= alpha * Hp
        active[active] = np.linalg.norm(r[:, active], axis=0) > target[active]
        if not active.any():  # converged: skip the (possibly costly) preconditioner
            break
        z_a = precondition(r[:, active])
        rz_new = np.einsum("pm,pm->m", r[:, active], z_a)
        p[:, active] = z_a + (rz_new / rz[active]) * p[:, active]
        rz[active] = rz_new
    if active.any():
        warnings.warn(
            f"Conjugate gradients did not reach tol={tol:g} within {max_iter} "
            f"iterations for {int(active.sum())} right-hand side(s): influences are "
            "approximate. Raise cg_max_iter, loosen cg_tol, add damping, or use "
            "hessian_solver='cholesky'.",
            ConvergenceWarning,
            stacklevel=4,
        )
    return x * scale, it


class LissaSolver(ConjugateGradientSolver):
    """LiSSA (Agarwal et al., 2017), the stochastic solver of Koh & Liang.

    ``H⁻¹v ≈ (1/scale) Σ_t (I − (H_B + λI)/scale)^t v``: the recursion
    ``h ← v + h − (H_B + λI) h / scale`` run ``depth`` times, with H_B the Hessian on a
    random batch of training rows, averaged over ``repeats``. It converges when
    ``scale`` exceeds the largest eigenvalue (estimated by power iteration when not
    given), geometrically at rate ``1 − λ_min/scale``. Seeded: the same
    ``random_state`` gives the same answers. Less accurate than CG at equal cost on
    linear models; provided for the paper's experiments.
    """

    name = "lissa"

    def __init__(self, objective, fixed_directions, damping=0.0, *, scale=None,
                 depth=1000, repeats=1, batch_size=None, random_state=None):
        super().__init__(objective, fixed_directions, damping)
        n = objective.X.shape[0]
        self.depth, self.repeats = int(depth), int(repeats)
        self.batch_size = n if batch_size is None else min(int(batch_size), n)
        self.random_state = random_state
        self.scale = self._largest_eigenvalue() * 1.1 if scale is None else scale

    def _largest_eigenvalue(self, iterations=50):
        v = self._project(np.random.RandomState(0).standard_normal((len(
            self._inv_diag), 1)))
        for _ in range(iterations):
            v = self._project(self.matvec(v))
            v /= np.linalg.norm(v)
        return float(np.linalg.norm(self._project(self.matvec(v))))

    def _batch_matvec(self, rows, V):
        """(H_B + λI) V with H_B the Hessian of the rows ``rows`` (rescaled to n)."""
        return self.objective.hessian_product(V, rows=rows) + self.damping * V

    def solve(self, B):
        vector = B.ndim == 1
        B = self._project(np.asarray(B, dtype=float).reshape(B.shape[0], -1))
        rng = np.random.RandomState(self.random_state)
        n = self.objective.X.shape[0]
        total = np.zeros_like(B)
        for _ in range(self.repeats):
            h = B.copy()
            for _ in range(self.depth):
                rows = (np.arange(n) if self.batch_size == n
                        else rng.choice(n, self.batch_size, replace=False))
                h = self._project(B + h - self._batch_matvec(rows, h) / self.scale)
            total += h / self.scale
        x = total / self.repeats
        return x[:, 0] if vector else x


#: Panel width of the blocked Cholesky factorisation (see ``_blocked_cholesky``).
PANEL = 2048

#: The data-space factor is kept in float64 up to this size, in float32 beyond.
WOODBURY_FLOAT64_BYTES = 2**29


class WoodburySolver(HessianSolver):
    """Data-space solve for wide data (p ≫ n): an n × n system, never a p × p one.

    For a single-output model ``H = diag(a) + X̃ᵀ W X̃`` on the free parameters, with
    ``a`` the quadratic penalty plus damping, ``X̃ = [X, 1]`` and
    ``w_i = s_i c_i L''(z_i) / n``. The intercept, usually unpenalised, is eliminated
    exactly by its Schur complement, which is a weighted centring of X::

        S = diag(a) + X_cᵀ W X_c,   X_c = X − 1 μᵀ,   μ = Xᵀw / σ,
        σ = c − √(c a_b),  c = Σ w_i + a_b        # so that X_cᵀWX_c = XᵀWX − mmᵀ/c

    and the coefficient block by the Woodbury identity::

        S⁻¹ = A⁻¹ − A⁻¹ X_cᵀ √W M⁻¹ √W X_c A⁻¹,   M = I + √W X_c A⁻¹ X_cᵀ √W.

    M (eigenvalues ≥ 1) is formed in row panels straight from sparse X and factorised
    by a blocked Cholesky, in float64 up to n = 8,192 and in float32 beyond (half the
    memory: 4 n² bytes); conjugate gradients on M in float64, with products through X
    itself, use that factor as preconditioner and reach ``tol`` in one iteration
    (float64) or a few (float32).

    Parameters
    ----------
    objective : LinearObjective
        The objective at θ̂ (one output, no pinned rows).
    damping : float
        λ ≥ 0 added to the diagonal.
    tol : float
        Relative residual of the n × n system per right-hand side.
    max_iter : int or None
        Iteration cap for the refining conjugate gradients (None: 100).
    """

    name = "woodbury"

    def __init__(self, objective, damping=0.0, *, tol=1e-10, max_iter=None):
        if objective.n_outputs != 1:
            raise NotImplementedError(
                "hessian_solver='woodbury' supports single-output models (binary "
                f"classifiers, one regression target); this one has "
                f"{objective.n_outputs} outputs. Use hessian_solver='cg'."
            )
        _refuse_pinned(objective, "woodbury")
        if not objective.linear:
            raise NotImplementedError(
                "hessian_solver='woodbury' solves in data space, which needs decision "
                "values linear in θ; this model (a neural network) is not linear. Use "
                "hessian_solver='cholesky' (small networks) or 'cg'."
            )
        if hasattr(objective, "penalty_hessian_product"):
            raise NotImplementedError(
                "hessian_solver='woodbury' needs a diagonal penalty; this objective "
                "has a non-diagonal one (e.g. a MultiTask group penalty). Use "
                "hessian_solver='cholesky' or 'cg'."
            )
        self.tol = tol
        self.max_iter = 100 if max_iter is None else max_iter
        X, n, d = objective.X, objective.X.shape[0], objective.n_features
        free = objective.free
        self._cols = free[:d]
        self._X = X if self._cols.all() else X[:, self._cols]
        if sp.issparse(self._X):
            self._X = sp.csr_matrix(self._X)
        diag = objective.quad_penalty + damping
        self._a = diag[:d][self._cols]
        if np.any(self._a <= 0):
            raise ValueError(
                "hessian_solver='woodbury' needs a quadratic penalty on every "
                "coefficient (an L2 penalty, or InfluenceExplainer(damping > 0)); "
                "use hessian_solver='cg' or 'cholesky' otherwise."
            )
        w = objective.row_curvature()[:, 0, 0] / n
        self._sqrt_w = np.sqrt(np.maximum(w, 0.0))
        self._intercept = objective.fit_intercept and bool(free[-1])
        self._mu = np.zeros(len(self._a))
        if self._intercept:
            a_b = diag[-1]
            self._c = w.sum() + a_b
            if self._c <= 0:
                raise ValueError(_SINGULAR)
            self._sigma = self._c - np.sqrt(self._c * a_b)
            if self._sigma > 0:
                self._mu = np.asarray(self._X.T @ w).ravel() / self._sigma
        self._factor = self._factorised_system()

    # -- the centred, scaled design U = √W X_c A^{-1/2} through sparse X ---------------
    def _center(self, V):
        """X_c V = X V − 1 μᵀV for V (p, m)."""
        return np.asarray(self._X @ V) - self._mu @ V

    def _center_t(self, Y):
        """X_cᵀ Y = Xᵀ Y − μ 1ᵀY for Y (n, m)."""
        return np.asarray(self._X.T @ Y) - np.outer(self._mu, Y.sum(axis=0))

    def matvec(self, Y):
        """M Y = Y + √W X_c A⁻¹ X_cᵀ √W Y, in float64."""
        s = self._sqrt_w[:, None]
        return Y + s * self._center(self._center_t(s * Y) / self._a[:, None])

    def _factorised_system(self):
        """Lower Cholesky factor of M, built in row panels."""
        X, n = self._X, self._X.shape[0]
        Xa = X.multiply(1.0 / self._a).tocsr() if sp.issparse(X) else X / self._a
        u = np.asarray(Xa @ self._mu).ravel()  # X A⁻¹ μ
        gamma = self._mu @ (self._mu / self._a)  # μᵀ A⁻¹ μ
        dtype = np.float64 if 8 * n * n <= WOODBURY_FLOAT64_BYTES else np.float32
        need = np.dtype(dtype).itemsize * n * n
        if need > 0.8 * _physical_memory():
            raise MemoryError(
                f"hessian_solver='woodbury' needs a {n} × {n} system "
                f"({need / 2**30:.1f} GiB), more than this machine's memory allows. "
                "Use hessian_solver='cg' (matrix-free), or fewer training rows."
            )
        M = np.empty((n, n), dtype=dtype)
        s = self._sqrt_w
        for r0 in range(0, n, PANEL):
            r1 = min(r0 + PANEL, n)
            block = Xa[r0:r1] @ X[:r1].T  # X A⁻¹ Xᵀ, the lower panel
            block = block.toarray() if sp.issparse(block) else np.asarray(block)
            # centring: X_c A⁻¹ X_cᵀ = X A⁻¹ Xᵀ − u 1ᵀ − 1 uᵀ + γ 11ᵀ
            block -= u[r0:r1, None] + u[None, :r1] - gamma
            block *= s[r0:r1, None] * s[None, :r1]
            block[np.arange(r1 - r0), np.arange(r0, r1)] += 1.0
            M[r0:r1, :r1] = block
        try:
            return _blocked_cholesky(M)
        except LinAlgError:
            raise ValueError(
                "The data-space system of hessian_solver='woodbury' lost positive "
                "definiteness in finite precision (extreme scaling of X or of the "
                "sample weights). Use hessian_solver='cg' or add damping."
            ) from None

    def _precondition(self, R):
        """M⁻¹ R with the stored factor (columns scaled to unit size for float32)."""
        scale = np.abs(R).max(axis=0)
        scale[scale == 0] = 1.0
        # the C-ordered lower factor L is, read in Fortran order, the upper factor Lᵀ:
        # LAPACK takes it as is (passing L itself would copy all n² entries per call)
        Z = cho_solve((self._factor.T, False),
                      (R / scale).astype(self._factor.dtype), check_finite=False)
        return Z.astype(np.float64) * scale

    def _refine(self, Y):
        """M⁻¹ Y to ``tol``: CG in float64, preconditioned by the stored factor."""
        Z, self.n_iter_ = _pcg(self.matvec, self._precondition, Y, self.tol,
                               self.max_iter)
        return Z

    def leverages(self):
        """h_j = w_j x̃_jᵀ (H + λI)⁻¹ x̃_j of every training row, from M's factor.

        With the intercept eliminated (see :class:`WoodburySolver`), x̃_j's quadratic
        form splits into the centred part and the intercept's::

            h = 1 − diag(M⁻¹) + 2ε √w ⊙ M⁻¹r + ε² w (νᵀν − rᵀM⁻¹r) + w / c

        with ε = 1 − σ/c, ν = A^{-1/2} μ and r = √W X_c A⁻¹ μ (no intercept:
        h = 1 − diag(M⁻¹)). diag(M⁻¹) is the squared column norms of L⁻¹, solved for
        in n × 2,048 panels with the stored factor (n³ flops): with a float32
        factor (n > 8,192), h carries float32 accuracy (about 1e-7 absolute), and so
        does 1 − h, which the Newton step divides by, relatively.
        """
        L = self._factor
        n = L.shape[0]
        diag_inv = np.empty(n)
        for j0 in range(0, n, PANEL):
            j1 = min(j0 + PANEL, n)
            E = np.zeros((n, j1 - j0), dtype=L.dtype, order="F")
            E[np.arange(j0, j1), np.arange(j1 - j0)] = 1.0
            # L z = e through Lᵀ read in Fortran order (no copy of the n² factor)
            Z = solve_triangular(L.T, E, lower=False, trans="T", check_finite=False,
                                 overwrite_b=True)
            diag_inv[j0:j1] = np.einsum("ij,ij->j", Z, Z, dtype=np.float64)
        h = 1.0 - diag_inv
        if self._intercept:
            s, mu, a = self._sqrt_w, self._mu, self._a
            w = s * s
            eps = 1.0 - self._sigma / self._c
            r = s * self._center((mu / a)[:, None])[:, 0]
            Minv_r = self._refine(r[:, None])[:, 0]
            h += 2 * eps * s * Minv_r + eps**2 * w * (mu @ (mu / a) - r @ Minv_r)
            h += w / self._c
        return h

    def solve(self, B):
        """(H + λI)⁻¹ B for B of shape (p_free,) or (p_free, m)."""
        vector = B.ndim == 1
        B = np.asarray(B, dtype=float).reshape(B.shape[0], -1)
        pc = len(self._a)
        rhs = B[:pc]
        if self._intercept:  # Schur complement of the intercept: S v_w = g_w − m g_b/c
            rhs = rhs - (self._sigma / self._c) * np.outer(self._mu, B[pc])
        t = rhs / self._a[:, None]
        s = self._sqrt_w[:, None]
        z = self._refine(s * self._center(t))
        x = np.empty_like(B)
        x[:pc] = t - self._center_t(s * z) / self._a[:, None]
        if self._intercept:  # v_b = (g_b − mᵀ v_w) / c, m = σ μ
            x[pc] = (B[pc] - self._sigma * (self._mu @ x[:pc])) / self._c
        return x[:, 0] if vector else x


class PinnedDiagonalSolver(HessianSolver):
    """Exact solver of a diagonal ``H + λI`` held orthogonal to fixed directions.

    The exact hinge and ε-insensitive losses curve no row (``row_curvature()`` is
    zero): H is the penalty's diagonal alone, and the pinned rows' directions
    ``A`` (p × m, ``fixed_directions()``) carry all of the structure. The answer
    ``Z (Zᵀ (H + λI) Z)⁻¹ Zᵀ b`` of :class:`CholeskySolver` is the solution of
    ``min ½ vᵀ (H + λI) v − bᵀ v`` subject to ``Aᵀ v = 0``; with h the diagonal of
    ``H + λI``, P the coordinates with h > 0 and O those without curvature (an
    unpenalised intercept), its KKT conditions give, without the basis Z::

        v_P = (b_P − A_P μ) / h_P,      v_O = −y,
        [S    A_Oᵀ] [μ]   [A_Pᵀ (b_P / h_P)]
        [A_O  0   ] [y] = [b_O             ],     S = A_Pᵀ diag(1 / h_P) A_P,

    an (m + |O|)-dimensional symmetric system, decomposed once (eigenvalues below
    ``(m + |O|) ε`` times the largest dropped: a repeated pinned direction leaves
    μ, not v, undetermined). v is unique when A_O has full row rank (else
    :class:`CholeskySolver` takes over, which holds such a parameter fixed with a
    warning). Cost: p m² to build S, (m + |O|)³ to decompose it, p m per
    right-hand side, where the dense route pays p³ several times (the complement
    basis, Zᵀ H Z, its factor and inverse). The complement basis ``basis`` is
    formed on first use (removals beyond first order read it).
    """

    name = "pinned"

    def __init__(self, diagonal, fixed_directions, damping=0.0):
        self.damping, self._diagonal = damping, diagonal
        self._fixed, self._basis = fixed_directions, None
        h = diagonal + damping
        self._pos = h > 0
        self._h = h[self._pos]
        A_P, A_O = fixed_directions[self._pos], fixed_directions[~self._pos]
        m, o = fixed_directions.shape[1], A_O.shape[0]
        if o and np.linalg.matrix_rank(A_O) < o:
            raise _NotUnique
        system = np.zeros((m + o, m + o))
        system[:m, :m] = A_P.T @ (A_P / self._h[:, None])
        system[:m, m:], system[m:, :m] = A_O.T, A_O
        lam, V = np.linalg.eigh(0.5 * (system + system.T))
        keep = np.abs(lam) > (m + o) * np.finfo(float).eps * np.abs(lam).max(
            initial=0.0)
        V = V[:, keep]
        self._pinv = (V / lam[keep]) @ V.T
        self._A_P, self._m = A_P, m

    @property
    def hessian(self):
        """The undamped H (p_free, p_free): the penalty's diagonal, dense."""
        return np.diag(self._diagonal)

    @property
    def basis(self):
        """Orthonormal basis of the complement of the fixed directions (first use:
        a QR of the p × m directions with its full p × p Q)."""
        if self._basis is None:
            self._basis = complement_basis(self._fixed)
        return self._basis

    def solve(self, B):
        """(H + λI)⁻¹ B on the complement of the fixed directions, B (p,) or (p, m)."""
        B = np.asarray(B, dtype=float)
        vector = B.ndim == 1
        B = B.reshape(B.shape[0], -1)
        pos, h, m = self._pos, self._h, self._m
        B_P = B[pos] / h[:, None]
        sol = self._pinv @ np.vstack([self._A_P.T @ B_P, B[~pos]])
        x = np.empty_like(B)
        x[pos] = B_P - (self._A_P @ sol[:m]) / h[:, None]
        x[~pos] = -sol[m:]
        return x[:, 0] if vector else x

    def damped_hessian(self):
        """The dense ``H + λI`` (p_free, p_free), formed on demand."""
        return np.diag(self._diagonal + self.damping)


class _NotUnique(Exception):
    """The pinned diagonal system leaves an uncurved parameter undetermined."""


def _pinned_diagonal(objective):
    """The exact-hinge structure :class:`PinnedDiagonalSolver` solves: rows pinned,
    no row's loss curved, a diagonal penalty; kernel machines (p = n + 1)."""
    from ._objective import LinearObjective

    return (objective.pinned is not None and objective.pinned.any()
            and getattr(objective, "input_map", None) is not None
            and type(objective).hessian is LinearObjective.hessian
            and not hasattr(objective, "penalty_hessian_product")
            and not objective.row_curvature().any())


def choose_solver(name, objective, damping):
    """The solver to build, and why: ``(name, reason)``; "auto" applies its rule.

    "auto": "pinned" (:class:`PinnedDiagonalSolver`) for a kernel machine's exact
    hinge or ε-insensitive loss (pinned rows, no curved row); "cholesky" up to
    ``AUTO_CHOLESKY_MAX`` free parameters (and always for the other exact hinges,
    whose pinned rows only it and "pinned" hold); beyond, "woodbury" for one output,
    fewer training rows than parameters and a quadratic term on every coefficient,
    when its float32 n × n system fits in ``AUTO_WOODBURY_BYTES``; else "cg".
    """
    if name != "auto":
        return name, f"hessian_solver={name!r} was requested"
    p = int(objective.free.sum())
    if objective.linear and _pinned_diagonal(objective):
        return "pinned", ("auto: a kernel machine's exact hinge: its Hessian is the "
                          "diagonal penalty, the pinned rows an (m + 1)-dimensional "
                          "system")
    if objective.pinned is not None and objective.pinned.any():
        return "cholesky", "auto: the exact hinge pins rows, which only it holds"
    if p <= AUTO_CHOLESKY_MAX:
        return "cholesky", f"auto: {p} free parameters <= {AUTO_CHOLESKY_MAX}"
    if not objective.linear:
        return "cg", (f"auto: {p} free parameters > {AUTO_CHOLESKY_MAX}, a network "
                      "(no data-space solve)")
    n, d = objective.X.shape
    penalised = np.all((objective.quad_penalty[:d] + damping)[objective.free[:d]] > 0)
    if (objective.n_outputs == 1 and n < p and penalised
            and 4 * n * n <= AUTO_WOODBURY_BYTES):
        return "woodbury", (f"auto: {p} free parameters > {AUTO_CHOLESKY_MAX}, "
                            f"{n} training rows fewer, one output, L2 on every "
                            "coefficient")
    return "cg", f"auto: {p} free parameters > {AUTO_CHOLESKY_MAX}, no data-space solve"


def make_solver(name, objective, damping, *, tol=1e-10, max_iter=None,
                lissa_params=None, random_state=None):
    """The solver of ``H + damping·I`` for ``objective`` (the registry of solvers).

    Parameters
    ----------
    name : {"auto", "cholesky", "cg", "woodbury", "lissa"}
        As ``InfluenceExplainer(hessian_solver=...)``; "auto": ``choose_solver``.
    objective : LinearObjective
        The fitted risk.
    damping : float
        λ ≥ 0.
    tol, max_iter : float, int or None
        Conjugate gradients' settings ("cg", "woodbury").
    lissa_params : dict or None
        LiSSA's settings (``scale``, ``depth``, ``repeats``, ``batch_size``).
    random_state : int, RandomState instance or None
        Seeds LiSSA (drawn from only when "lissa" is built).

    Returns
    -------
    solver : HessianSolver
        With ``name`` and ``reason`` set.
    """
    name, reason = choose_solver(name, objective, damping)
    if name == "pinned":
        diagonal = objective.quad_penalty[objective.free]
        try:
            solver = PinnedDiagonalSolver(diagonal, objective.fixed_directions(),
                                          damping)
        except _NotUnique:  # the dense route holds the parameter fixed, warned
            name, reason = "cholesky", reason + "; an uncurved parameter: dense"
        else:
            solver.reason = reason
            return solver
    if name == "woodbury":
        solver = WoodburySolver(objective, damping, tol=tol, max_iter=max_iter)
    elif name == "cg":
        solver = ConjugateGradientSolver(objective, objective.fixed_directions(),
                                         damping, tol=tol, max_iter=max_iter)
    elif name == "lissa":
        seed = check_random_state(random_state).randint(2**31 - 1)
        solver = LissaSolver(objective, objective.fixed_directions(), damping,
                             random_state=seed, **(lissa_params or {}))
    else:
        hessian = objective.hessian()
        if not np.all(np.isfinite(hessian)):
            raise ValueError(
                "The Hessian of the training objective is not finite (NaN or inf): "
                "the fit diverged or overflowed, and influences would be NaN. "
                "Standardise X (e.g. StandardScaler), use a stronger penalty, or "
                "for SGD a smaller learning rate (eta0), and check the model's "
                "coef_ and intercept_."
            )
        try:
            solver = CholeskySolver(hessian, objective.fixed_directions(), damping)
        except ValueError as exc:
            _check_definite(hessian, objective.fixed_directions(), damping)
            raise ValueError(
                f"{exc} (training data: n_samples={objective.X.shape[0]}, "
                f"n_params={objective.n_params})"
            ) from None
    solver.reason = reason
    return solver


def smallest_eigenvalue(hessian, fixed_directions):
    """The smallest eigenvalue of H on the complement of the fixed directions."""
    Z = complement_basis(fixed_directions)
    A = hessian if Z is None else Z.T @ hessian @ Z
    return float(np.linalg.eigvalsh(0.5 * (A + A.T))[0]) if A.size else np.inf


def _check_definite(hessian, fixed_directions, damping):
    """ValueError naming the smallest eigenvalue when H + λI is indefinite.

    A linear model's risk is convex (H is positive semi-definite); a network's is
    not, and its Hessian at the fitted weights may have negative eigenvalues (a
    saddle point, or weights short of a local minimum). Influence is then undefined
    unless damped: ``H + λI`` with λ above −λ_min (Koh & Liang, section 4.2).
    """
    lam = smallest_eigenvalue(hessian, fixed_directions)
    scale = max(1.0, float(np.max(np.abs(np.diag(hessian)), initial=0.0)))
    if lam + damping < -1e-10 * scale:
        raise ValueError(
            f"The Hessian of the training objective is not positive definite at the "
            f"fitted parameters (smallest eigenvalue {lam:.3e}, damping={damping!r}): "
            "the model (a neural network's non-convex risk) is at a saddle point or "
            "short of a local minimum, and influence functions are undefined there. "
            f"Set InfluenceExplainer(damping=...) above {-lam:.2e} (e.g. "
            f"{max(2 * -lam, 1e-3):.1e}; the influence is then that of the damped "
            "quadratic model, as in Koh & Liang 2017), or fit the model to a local "
            "minimum (solver='lbfgs', a small tol, a larger max_iter)."
        )


def _physical_memory():
    """Installed memory in bytes (inf where the OS does not say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return np.inf


def _blocked_cholesky(A, block=PANEL):
    """Lower Cholesky factor of A's lower triangle, in place, in ≤ ``block``-wide panels.

    Right-looking: factor a diagonal panel, solve the panel below it, update the
    trailing lower triangle one panel of columns at a time (temporaries stay n ×
    block). Whole-matrix LAPACK/BLAS calls at n ≈ 16–20k crashed OpenBLAS on machines
    of this class; panel-sized calls do not. The strict upper triangle is left as is.
    """
    n = A.shape[0]
    for j in range(0, n, block):
        e = min(j + block, n)
        L = cholesky(A[j:e, j:e], lower=True, check_finite=False)
        A[j:e, j:e] = L
        if e == n:
            break
        A[e:, j:e] = solve_triangular(L, A[e:, j:e].T, lower=True,
                                      check_finite=False).T
        P = A[e:, j:e]
        for k in range(e, n, block):
            f = min(k + block, n)
            A[k:, k:f] -= P[k - e:] @ P[k - e:f - e].T
    return A
