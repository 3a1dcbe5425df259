"""Hessian solvers: apply H⁻¹ to many right-hand sides.

A solver is built once at fit time from the objective's Hessian and then answers
``solve(B) = H⁻¹ B`` for blocks of vectors. Some directions are held fixed: flat
directions of R (a softmax's shift invariance), along which fitted solutions carry no
component, and constraints that stay active under a small re-weighting (an exact
hinge's support vectors on the margin). The answer is then the solution restricted to
their orthogonal complement, ``Z (Zᵀ H Z)⁻¹ Zᵀ B`` with Z an orthonormal basis of it —
which is what refits reproduce.
"""

import warnings

import numpy as np
from scipy.linalg import LinAlgError, cho_factor, cho_solve, qr
from scipy.linalg.lapack import dpocon

#: Above this estimated condition number, the influence is amplified noise: warn.
CONDITION_WARN = 1e10


class SingularHessianWarning(UserWarning):
    """The Hessian of the training objective is (nearly) singular."""


def complement_basis(directions):
    """Orthonormal basis (p, p − rank) of the orthogonal complement of the columns."""
    p, m = directions.shape
    if m == 0:
        return None
    Q, R, _ = qr(directions, mode="full", pivoting=True)
    diag = np.abs(np.diag(R))
    rank = int(np.sum(diag > diag.max(initial=0.0) * p * np.finfo(float).eps))
    return Q[:, rank:]


_SINGULAR = (
    "The Hessian of the training objective is singular (not positive definite), so "
    "influence functions are undefined. This happens for an unpenalised model "
    "(C=np.inf, alpha=0, LinearRegression) on separable or collinear data, or with "
    "fewer training rows than parameters. Fix: set InfluenceExplainer(damping=...) to "
    "a small positive value (e.g. 1e-3) or fit the estimator with a penalty."
)


class CholeskySolver:
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
        LAPACK estimate of the 1-norm condition number of the factorised matrix.
    """

    name = "cholesky"

    def __init__(self, hessian, fixed_directions, damping=0.0):
        A = hessian + damping * np.eye(hessian.shape[0])
        try:
            A = self._factorise(A, fixed_directions)
        except LinAlgError:
            flat = np.flatnonzero(np.all(A == 0, axis=1))
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
                stacklevel=3,
            )
            unit = np.zeros((A.shape[0], flat.size))
            unit[flat, np.arange(flat.size)] = 1.0
            try:
                A = self._factorise(A, np.hstack([fixed_directions, unit]))
            except LinAlgError:
                raise ValueError(_SINGULAR) from None
        anorm = np.abs(A).sum(axis=0).max() if A.size else 0.0
        rcond, _ = dpocon(self._factor[0], anorm, uplo="L") if A.size else (1.0, 0)
        self.condition_number_ = np.inf if rcond == 0 else 1.0 / rcond
        if self.condition_number_ > CONDITION_WARN:
            warnings.warn(
                f"The Hessian of the training objective is nearly singular "
                f"(condition number ≈ {self.condition_number_:.2e}); influence "
                "scores may be dominated by round-off. Set "
                "InfluenceExplainer(damping=...) to a small positive value, use a "
                "stronger penalty (smaller C, larger alpha), or, for a smoothed "
                "hinge, a larger smoothing.",
                SingularHessianWarning,
                stacklevel=3,
            )

    def _factorise(self, A, fixed_directions):
        """Cholesky of Zᵀ A Z (Z: complement of the fixed directions); returns it."""
        self.basis = complement_basis(fixed_directions)
        if self.basis is not None:
            A = self.basis.T @ A @ self.basis
            A = 0.5 * (A + A.T)
        self._factor = cho_factor(A, lower=True, check_finite=False)
        return A

    def solve(self, B):
        """H⁻¹ B on the complement of the fixed directions."""
        if self.basis is None:
            return cho_solve(self._factor, B, check_finite=False)
        Z = self.basis
        return Z @ cho_solve(self._factor, Z.T @ B, check_finite=False)
