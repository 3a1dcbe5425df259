"""Hessian solvers: apply H⁻¹ to many right-hand sides.

A solver is built once at fit time from the objective's Hessian and then answers
``solve(B) = H⁻¹ B`` for blocks of vectors. Known flat directions of R (a softmax's
shift invariance) are handled exactly: the answer is the pseudo-inverse on their
orthogonal complement, which is what refits reproduce (fitted solutions carry no
component along them).
"""

import warnings

import numpy as np
from scipy.linalg import LinAlgError, cho_factor, cho_solve
from scipy.linalg.lapack import dpocon

#: Above this estimated condition number, the influence is amplified noise: warn.
CONDITION_WARN = 1e10


class SingularHessianWarning(UserWarning):
    """The Hessian of the training objective is (nearly) singular."""


class CholeskySolver:
    """Dense Cholesky factorisation of ``H + damping·I`` (exact, for moderate p).

    Parameters
    ----------
    hessian : ndarray of shape (p, p)
        Symmetric positive (semi-)definite Hessian of R at θ̂.
    null_space : ndarray of shape (p, m)
        Orthonormal directions along which R is flat; solutions are made orthogonal
        to them.
    damping : float
        λ ≥ 0 added to the diagonal (the paper's damping term).

    Attributes
    ----------
    condition_number_ : float
        LAPACK estimate of the 1-norm condition number of the factorised matrix.
    """

    name = "cholesky"

    def __init__(self, hessian, null_space, damping=0.0):
        p = hessian.shape[0]
        self.null_space = null_space
        A = hessian + damping * np.eye(p)
        if null_space.shape[1]:
            # Lift the flat directions to the Hessian's own scale; projected out again
            # in solve(), so the value of the lift does not matter.
            lift = max(np.trace(hessian) / p, np.finfo(float).tiny)
            A += lift * (null_space @ null_space.T)
        try:
            self._factor = cho_factor(A, lower=True, check_finite=False)
        except LinAlgError:
            raise ValueError(
                "The Hessian of the training objective is singular (not positive "
                "definite), so influence functions are undefined. This happens for "
                "an unpenalised model (C=np.inf) on separable or collinear data. "
                "Fix: set InfluenceExplainer(damping=...) to a small positive value "
                "(e.g. 1e-3) or fit the estimator with a penalty (finite C)."
            ) from None
        anorm = np.abs(A).sum(axis=0).max()
        rcond, _ = dpocon(self._factor[0], anorm, uplo="L")
        self.condition_number_ = np.inf if rcond == 0 else 1.0 / rcond
        if self.condition_number_ > CONDITION_WARN:
            warnings.warn(
                f"The Hessian of the training objective is nearly singular "
                f"(condition number ≈ {self.condition_number_:.2e}); influence "
                "scores may be dominated by round-off. Set "
                "InfluenceExplainer(damping=...) to a small positive value or use a "
                "stronger penalty (smaller C).",
                SingularHessianWarning,
                stacklevel=3,
            )

    def solve(self, B):
        """H⁻¹ B (pseudo-inverse on the complement of the null space)."""
        X = cho_solve(self._factor, B, check_finite=False)
        N = self.null_space
        if N.shape[1]:
            X = X - N @ (N.T @ X)
        return X
