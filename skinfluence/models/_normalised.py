"""Objectives whose sample weights scikit-learn normalises (Lasso family, GLMs).

``Lasso``/``ElasticNet`` rescale the sample weights to sum to n and GLMs to sum to 1
before fitting, so what they minimise is a weighted *average* of the losses plus a
penalty ``P(θ)`` that does not carry the weights::

    F(θ) = (1/S) Σ_i s_i L(y_i, z_i) + P(θ),   S = Σ_i s_i.

skinfluence writes this as ``R = F`` with every row's "class weight" ``c = n/S``
(``R = (1/n) Σ_i s_i c L_i + P``), which moves with the sample weights:
``∂c/∂s_j = −n/S²`` for every row (one group; the ``weight_jacobian`` of
:class:`~skinfluence._objective.LinearObjective`). Up-weighting row j therefore also
shrinks every other row's share, i.e. strengthens the penalty relative to the data:
``n ∂(∇R)/∂s_j = c (∇L_j − (1/S) Σ_i s_i ∇L_i) = c (∇L_j + ∇P(θ̂))`` at the optimum.
Removing row j refits with ``c' = n / (S − s_j)`` (``removal_row_weight``); one
Newton removal step uses the Hessian at c' (the data part rescaled, the penalty not:
exact for squared loss on a fixed active set). Unpenalised (α = 0), the
minimiser does not depend on c at all: c is then held constant, and the Newton step
is the textbook one (Pregibon's one-step for GLMs). n and S are sums over every
training row: on a chunk of the rows they come from ``_population.current()``.
"""

import numpy as np

from .._objective import LinearObjective
from ._population import current


class NormalisedWeightObjective(LinearObjective):
    """R(θ) = (1/S) Σ_i s_i L(y_i, z_i) + ½ θᵀ diag(q) θ + Σ_j a_j |θ_j|.

    Parameters
    ----------
    loss, coef, intercept, X, y, sample_weight, quad_penalty, l1_penalty, targets, \
fixed
        As for :class:`~skinfluence._objective.LinearObjective`; the penalties are
        those of scikit-learn's objective F (R = F).
    penalised : bool or None, default=None
        Whether F has a penalty; None: whether ``quad_penalty`` or ``l1_penalty``
        is nonzero (a subclass with a penalty of its own says True).
    """

    def __init__(self, loss, coef, intercept, X, y, sample_weight, quad_penalty,
                 l1_penalty, *, targets, fixed=None, penalised=None):
        sample_weight = np.asarray(sample_weight, dtype=np.float64)
        m, totals = X.shape[0], current()
        n, total = ((m, sample_weight.sum()) if totals is None
                    else (totals.n_samples, totals.weight_total))
        # Without a penalty the minimiser does not depend on the scale c: then c is
        # a constant (the removals' Newton step downdates H exactly).
        if penalised is None:
            penalised = np.any(np.asarray(quad_penalty) != 0) or \
                np.any(np.asarray(l1_penalty) != 0)
        super().__init__(
            loss, coef, intercept, X, y, sample_weight, np.full(m, n / total),
            quad_penalty, l1_penalty, targets=targets,
            weight_jacobian=np.array([[-n / total**2]]) if penalised else None,
            groups=np.zeros(m, dtype=np.intp) if penalised else None, fixed=fixed,
        )
        if not penalised:
            self.removal_row_weight = None  # the default removal weights

    def removal_row_weight(self, removed):
        """Row weights s_i c' of R without the rows ``removed``: c' = n / (S − S_removed).

        Parameters
        ----------
        removed : array-like of int
            Removed training rows.

        Returns
        -------
        weights : ndarray of shape (n, k)
        """
        s = self.sample_weight
        n = len(s)
        left = s.sum() - s[np.asarray(removed, dtype=np.intp)].sum()
        c = n / left if left > 0 else 0.0  # nothing left: removal_defects says so
        W = np.repeat((s * c)[:, None], self.n_outputs, axis=1)
        W[removed] = 0.0
        return W
