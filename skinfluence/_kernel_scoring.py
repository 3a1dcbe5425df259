"""Kernel-space scores of a kernel machine whose loss curves no row.

A kernel machine is explained as a linear model in the whitened features of every
training row, ``z = φ(x)·w + b`` with ``φ(x)·φ(x') = K(x, x')`` on the training rows
(:mod:`skinfluence.models._kernel_map`). With the exact hinge (``SVC``,
``smoothing=0``) or the exact ε-insensitive loss (``SVR``) no row's loss is curved:
with damping λ the Hessian is ``diag(a I, δ)`` (``a = 1/(C n) + λ`` on w, ``δ = λ``
on the unpenalised intercept), held orthogonal to the pinned rows' directions
``[φ(x_i), 1]``, i ∈ F (support vectors on the margin / on the tube's edges). For a
gradient ``u = γ [φ(x), 1]`` the solution ``v = H⁻¹u`` on that complement solves
``a v_w + Φ_Fᵀ μ = u_w``, ``δ v_b + 1ᵀ μ = u_b``, ``Φ_F v_w + v_b 1 = 0``; in kernel
terms (``y = −a v_b``)::

    [K_FF  1    ] [μ]       [K(X_F, x)]
    [1ᵀ    −δ/a ] [y]  = γ  [1        ],     v_w = (u_w − Φ_Fᵀ μ) / a

so the influence of training row j (``u_j = γ_j [φ_j, 1]``, γ_j = c_j dL/dz_j)
on a test point t (``u_t = g_t [φ_t, 1]``, g_t = dL/dz_t) is::

    I_up,loss(z_j, z_t) = −u_tᵀ v_j = −(g_t γ_j / a) [K(x_t, x_j) − K(x_t, X_F) μ_j − y_j]

with ``[μ_j; y_j]`` the solution above for row j. It vanishes for rows with γ_j = 0
(outside the margin / inside the tube) and, exactly, for the pinned rows themselves
(``[μ_j; y_j] = [e_j; 0]``): only the other support vectors D (at their bound) are
scored. At fit: the kernel block ``K(X_F, X_S)`` over the support vectors S and one
solve of the (|F| + 1)-dimensional system for the |D| columns (|F|³ + |F|² |D|).
Per test batch: its kernel rows against the support vectors only, ``K(X_t, X_S)``,
which also give the decision values ``z_t = K(X_t, X_S) β_S + b``, and one
``(T, |F|) @ (|F|, |D|)`` product. Nothing larger than the support vectors' blocks
(and the result) is formed; the θ-space training gradients (n × (n + 1)) are built
only when a method of the general route needs them (group scores, Newton removals).
"""

import numpy as np

from ._objective import LinearObjective
from ._parallel import map_batches
from ._scoring import Scorer, batch_rows, top_k
from .models._kernel_map import KernelFeatures, KernelMap


class _KernelSide:
    """``sl ↦ (g, K)``: dL/dz of the test rows ``sl`` (T,) and their kernel rows
    against the support vectors (T, |S|) (what :class:`KernelScorer` scores)."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, sl):
        return self.fn(sl)


class KernelScorer(Scorer):
    """:class:`~skinfluence._scoring.Scorer` of a kernel machine in kernel space.

    Built by :meth:`build` (through :func:`skinfluence._scoring.make_scorer`) for a
    single-output risk linear in a full-rank :class:`KernelMap` with an intercept,
    one quadratic penalty on every feature weight and no curved row (the exact
    hinge, the exact ε-insensitive loss); see the module for the formulas.
    :meth:`test_side` / :meth:`prediction_side` give the kernel form of the test
    side, which :meth:`score`, :meth:`summed` and :meth:`most_influential` score
    directly; :meth:`influence_rows` is formed from the same solve. Every other
    operation is the general one (through the solver, θ-space training gradients
    built on first use).

    Parameters
    ----------
    risk : LinearObjective
        The fitted risk (its ``input_map`` a :class:`KernelMap`).
    solver : HessianSolver
        The solver of the general route (removals, group scores).
    damping : float
        λ of ``H + λI``.
    """

    def __init__(self, risk, solver, damping, *, batch_size="auto", n_jobs=None,
                 verbose=0, max_result_bytes=2**30):
        self.risk, self.solver = risk, solver
        self.batch_size, self.n_jobs, self.verbose = batch_size, n_jobs, verbose
        self.max_result_bytes = max_result_bytes
        self._lazy = {}  # shared by with_settings copies
        n, q = risk.X.shape[0], risk.quad_penalty[0]
        self.a = q + damping
        delta = risk.quad_penalty[-1] + damping
        dz = risk.training_dz()[:, 0]
        self.gamma = dz * risk.class_weight[:, 0]
        pinned = (np.zeros(n, dtype=bool) if risk.pinned is None
                  else risk.pinned[:, 0])
        self.F = np.flatnonzero(pinned)
        self.D = np.flatnonzero((self.gamma != 0) & ~pinned)
        # stationarity q w = −(1/n) Σ s_j c_j dL/dz_j φ_j: the dual coefficients
        beta = -(risk.row_weight[:, 0] * dz) / (n * q)
        self.S = np.union1d(np.flatnonzero(beta), np.union1d(self.F, self.D))
        self._iF = np.searchsorted(self.S, self.F)
        self._iD = np.searchsorted(self.S, self.D)
        self.beta_S, self.b = beta[self.S], float(risk.intercept[0])
        m = len(self.F)
        K_FS = risk.input_map.cross_rows(risk.inputs[self.F], self.S)
        M = np.zeros((m + 1, m + 1))
        M[:m, :m] = 0.5 * (K_FS[:, self._iF] + K_FS[:, self._iF].T)
        M[:m, m] = M[m, :m] = 1.0
        M[m, m] = -delta / self.a
        lam, V = np.linalg.eigh(M)
        if not np.abs(lam).min() > 1e2 * (m + 1) * np.finfo(float).eps * \
                np.abs(lam).max():  # singular: no intercept fixed, repeated pins
            raise _NoKernelRoute
        rhs = np.vstack([K_FS[:, self._iD], np.ones((1, len(self.D)))])
        sol = V @ ((V.T @ rhs) / lam[:, None])
        self.coupling, self.offset = sol[:m], sol[m]  # μ (|F|, |D|), y (|D|)

    @classmethod
    def build(cls, risk, solver, damping):
        """The kernel scorer of ``risk``, or None where it does not apply."""
        kmap = getattr(risk, "input_map", None)
        if not (isinstance(kmap, KernelMap)
                and isinstance(risk, LinearObjective)
                and type(risk).hessian is LinearObjective.hessian
                and not hasattr(risk, "penalty_hessian_product")
                and risk.n_outputs == 1 and risk.fit_intercept
                and risk.free.all() and risk.weight_jacobian is None
                and not np.any(risk.l1_penalty)):
            return None
        q = risk.quad_penalty[:-1]
        if not (q[0] > 0 and np.all(q == q[0])) or risk.row_curvature().any():
            return None
        try:
            return cls(risk, solver, damping)
        except _NoKernelRoute:
            return None

    # -- the θ-space route's training gradients, on first use ---------------------------
    @property
    def train_rows(self):
        if "train" not in self._lazy:
            self._lazy["train"] = self.risk.train_gradients()[0]
        return self._lazy["train"]

    train_offsets = None

    # -- the test side ------------------------------------------------------------------
    def test_side(self, Xv, y_enc, loss=None):
        """``sl ↦ (dL/dz_t, K(x_t, X_S))`` of the test rows ``sl``."""
        if not isinstance(Xv, KernelFeatures):
            return super().test_side(Xv, y_enc, loss)
        loss = loss or self.risk.loss

        def side(sl):
            K = self._kernel_rows(Xv, sl)
            Z = (K @ self.beta_S + self.b)[:, None]
            return loss.value_grad(Z, y_enc[sl])[1][:, 0], K

        return _KernelSide(side)

    def prediction_side(self, Xv):
        """``sl ↦ (1, K(x_t, X_S))``: the prediction's derivative is 1."""
        if not isinstance(Xv, KernelFeatures):
            return super().prediction_side(Xv)
        def side(sl):
            K = self._kernel_rows(Xv, sl)
            return np.ones(K.shape[0]), K

        return _KernelSide(side)

    def _kernel_rows(self, Xv, sl):
        return self.risk.input_map.cross_rows(Xv.inputs[sl], self.S)

    # -- scoring ------------------------------------------------------------------------
    def _scores(self, g, K, dest, row_scale=None):
        """(T, n_train) scores into ``dest`` of test sides with dL/dz g (T,) and
        g-weighted kernel rows K (T, |S|), ``g_t K(x_t, X_S)`` (or sums of them):
        ``−(γ_j / a) [K_tj − K_tF μ_j − g_t y_j]``; only D is non-zero."""
        inner = K[:, self._iD] - K[:, self._iF] @ self.coupling \
            - g[:, None] * self.offset
        weight = -self.gamma[self.D] / self.a
        if row_scale is not None:
            weight = weight * row_scale[self.D]
        dest[...] = 0.0
        dest[:, self.D] = inner * weight
        return dest

    def _map(self, fn, out, width):
        rows = batch_rows(self.batch_size, 8 * (width + 2 * len(self.S)))
        return map_batches(fn, out, batch_size=rows, n_jobs=self.n_jobs,
                           verbose=self.verbose)

    def score(self, n_test, test_gradients, row_scale=None):
        """As :meth:`Scorer.score`; a kernel-form test side is scored in kernel
        space."""
        if not isinstance(test_gradients, _KernelSide):
            return super().score(n_test, test_gradients, row_scale)
        self.check_result_size((n_test, self.n_train))
        out = np.empty((n_test, self.n_train))

        def batch(sl, dest):
            g, K = test_gradients(sl)
            if dest is None:
                dest = np.empty((len(g), self.n_train))
            return self._scores(g, g[:, None] * K, dest, row_scale)

        return self._map(batch, out, self.n_train)

    def summed(self, n_test, test_gradients, mean):
        """As :meth:`Scorer.summed`: Σ_t g_t K(x_t, X_S) and Σ_t g_t, then one row."""
        if not isinstance(test_gradients, _KernelSide):
            return super().summed(n_test, test_gradients, mean)
        total_K, total_g = np.zeros(len(self.S)), 0.0
        rows = batch_rows(self.batch_size, 8 * 2 * len(self.S))
        for start in range(0, n_test, rows):
            g, K = test_gradients(slice(start, min(start + rows, n_test)))
            total_K += g @ K
            total_g += g.sum()
        scale = 1.0 / max(n_test, 1) if mean else 1.0
        return self._scores(np.array([total_g * scale]), total_K[None, :] * scale,
                            np.empty((1, self.n_train)))[0]

    def most_influential(self, n_test, test_gradients, k, sign):
        """As :meth:`Scorer.most_influential`, scored in kernel space."""
        if not isinstance(test_gradients, _KernelSide):
            return super().most_influential(n_test, test_gradients, k, sign)
        out = np.empty((n_test, 2, k))

        def batch(sl, dest):
            g, K = test_gradients(sl)
            block = top_k(self._scores(g, g[:, None] * K,
                                       np.empty((len(g), self.n_train))), k, sign)
            if dest is None:
                return block
            dest[...] = block

        return self._map(batch, out, self.n_train)

    def influence_rows(self, rows):
        """−H⁻¹∇θL(z_j) in θ: ``−γ_j [(φ_j − Φ_Fᵀ μ_j) / a, −y_j / a]`` for rows of D,
        0 for the others (pinned rows exactly, rows without a gradient)."""
        rows = np.asarray(rows, dtype=np.intp)
        Phi = self.risk.X
        out = np.zeros((len(rows), Phi.shape[1] + 1))
        position = np.full(self.n_train, -1)
        position[self.D] = np.arange(len(self.D))
        at = position[rows]
        sel = np.flatnonzero(at >= 0)
        k = at[sel]
        coef = self.gamma[self.D[k]] / self.a
        out[sel, :-1] = -coef[:, None] * (Phi[rows[sel]]
                                         - self.coupling[:, k].T @ Phi[self.F])
        out[sel, -1] = coef * self.offset[k]
        return out


class _NoKernelRoute(Exception):
    """The (|F| + 1)-dimensional system is singular: the general route decides."""
