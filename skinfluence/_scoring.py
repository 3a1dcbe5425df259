"""Influence scores: the solved test side times the stored training gradients.

Every first-order result is a product ``V Gᵀ``: V (T × p) holds the θ-gradients of T
scored quantities (test losses, predictions) solved against the Hessian,
``V = −∇θL(z_test)ᵀ (H + λI)⁻¹``, and G (n_train × p) the training gradients
``∇θL(z_j) = n · ∂(∇R)/∂s_j``, computed once at fit (plus per-group offsets when
class weights depend on the sample weights, "balanced"). :class:`Scorer` owns that
product and what surrounds it: test rows cut into batches (boundaries depend only on
``batch_size``, never on ``n_jobs``; see :mod:`skinfluence._parallel`), the memory
rule of the batches, the ``max_result_bytes`` check and the top-k merge. The removal
estimates beyond first order (``_removal``) hand it their steps to evaluate.
"""

import copy

import numpy as np
import scipy.sparse as sp

from ._parallel import BATCH_BYTES, map_batches
from ._removal import (
    INDEFINITE,
    loss_change,
    newton_weights,
    removal_defects,
    reweights_on_removal,
    shifted_loss_change,
    warn_no_optimum,
)
from ._utils import dense

#: Test rows per block when scoring test rows against groups of training rows.
_GROUP_TEST_BATCH = 1024


def group_row_blocks(n_test, width):
    """Slices of test rows whose (rows, width) blocks stay near ``BATCH_BYTES``."""
    rows = max(1, min(_GROUP_TEST_BATCH, BATCH_BYTES // (24 * max(width, 1))))
    return [slice(i, min(i + rows, n_test)) for i in range(0, n_test, rows)]


def check_result_size(shape, max_result_bytes, hint=None):
    """MemoryError when a float64 array of ``shape`` exceeds ``max_result_bytes``."""
    size = 8 * int(np.prod(shape))
    if max_result_bytes is None or size <= max_result_bytes:
        return
    if hint is None:
        hint = ("Use most_influential(X, y, k) to keep the top-k training rows per "
                "test point (streamed in batches), score fewer test rows per call, or "
                "raise max_result_bytes.")
    raise MemoryError(
        f"The result would be a {' × '.join(map(str, shape))} float64 array "
        f"({size / 2**30:.2f} GiB), above max_result_bytes={max_result_bytes}. "
        + hint
    )


def batch_rows(batch_size, row_bytes):
    """Rows per batch: ``batch_size``, or as many as fit ``BATCH_BYTES`` ("auto")."""
    if batch_size != "auto":
        return batch_size
    return max(1, BATCH_BYTES // row_bytes)


def test_row_bytes(risk, solver):
    """Work per scored test row: its (n_train,) scores; with an iterative solver also
    about five (p,) blocks."""
    per_row = risk.X.shape[0]
    if solver.inverse is None:  # iterative: ~5 (p, rows)
        per_row += 5 * int(risk.free.sum())
    return 8 * per_row


def output_grams(risk, solver, *, batch_size="auto", n_jobs=None, verbose=0):
    """A_j = U_jᵀ H⁻¹ U_j for every training row (n, k, k), any solver.

    U_j = ∂z_j/∂θ: each batch of rows solves for its k output Jacobians (as scoring
    solves for test points, in the same batches), so it costs about as much as
    scoring k · n_train test points (a product with the inverse for "cholesky").
    """
    batch_size = batch_rows(batch_size, test_row_bytes(risk, solver))
    X, n, k = risk.X, risk.X.shape[0], risk.n_outputs
    out = np.empty((n, k, k))

    def batch(sl, dest):
        U = [dense(u) for u in risk.output_jacobians(X[sl])]
        V = [-solve_rows(solver, u) for u in U]  # U_a H⁻¹
        block = np.stack([np.stack([np.einsum("ip,ip->i", V[a], U[b])
                                    for b in range(k)], axis=1)
                          for a in range(k)], axis=1)
        if dest is None:
            return block
        dest[...] = block

    return map_batches(batch, out, batch_size=batch_size, n_jobs=n_jobs,
                       verbose=verbose)


def solve_rows(solver, G):
    """−G H⁻¹ for rows G (T, p): a numpy product with the Cholesky inverse."""
    if solver.inverse is not None:
        return -(G @ solver.inverse)
    return -solver.solve(G.T).T


def top_k(scores, k, sign):
    """The k largest ``sign · scores`` (by magnitude when sign is None) per row.

    Returns a (T, 2, k) block of [indices, scores], most influential first; rows whose
    scores are all zero (a flat test loss: every row ties) get index -1 and NaN.
    """
    key = np.abs(scores) if sign is None else sign * scores
    top = np.argpartition(-key, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(key, top, axis=1), axis=1, kind="stable")
    top = np.take_along_axis(top, order, axis=1)
    block = np.stack([top, np.take_along_axis(scores, top, axis=1)], axis=1)
    block[~scores.any(axis=1)] = [[-1.0], [np.nan]]  # flat: all rows tie at 0
    return block


class Scorer:
    """Scores of test rows against every training row, built at fit.

    Parameters
    ----------
    risk : LinearObjective
        The fitted risk (training data, loss derivatives).
    solver : HessianSolver
        The solver of ``H + λI`` (``_hessian.make_solver``).
    batch_size : int or "auto", default="auto"
        Test rows per batch; "auto" targets ``BATCH_BYTES`` of work per batch.
    n_jobs, verbose : as in :func:`skinfluence._parallel.map_batches`.
    max_result_bytes : int or None, default=2**30
        Largest result a call may return.

    Attributes
    ----------
    train_rows : {ndarray, sparse matrix} of shape (n_train, p_free)
        Σ_k c_jk ∇θL_k(z_j) of every training row (sparse for sparse X).
    train_offsets : ndarray of shape (n_groups, p_free) or None
        Per class offsets of the training gradients ("balanced" class weights): row
        j's gradient is ``train_rows[j] + train_offsets[risk.groups[j]]``.
    """

    def __init__(self, risk, solver, *, batch_size="auto", n_jobs=None, verbose=0,
                 max_result_bytes=2**30):
        self.risk, self.solver = risk, solver
        self.train_rows, self.train_offsets = risk.train_gradients()
        self.batch_size, self.n_jobs, self.verbose = batch_size, n_jobs, verbose
        self.max_result_bytes = max_result_bytes

    def with_settings(self, *, batch_size, n_jobs, verbose, max_result_bytes):
        """A shallow copy with other batching and memory settings (no recomputation)."""
        new = copy.copy(self)
        new.batch_size, new.n_jobs, new.verbose = batch_size, n_jobs, verbose
        new.max_result_bytes = max_result_bytes
        return new

    # -- the test side -------------------------------------------------------------
    def test_side(self, Xv, y_enc, loss=None):
        """``sl ↦`` what the scoring methods take for the test rows ``sl``: here the
        θ-gradients of their test loss (``risk.test_gradients``)."""
        risk = self.risk
        return lambda sl: risk.test_gradients(Xv[sl], y_enc[sl], loss)

    def prediction_side(self, Xv):
        """As :meth:`test_side`, for the predictions (``risk.prediction_gradients``)."""
        risk = self.risk
        return lambda sl: risk.prediction_gradients(Xv[sl])

    # -- batches and memory -----------------------------------------------------------
    @property
    def n_train(self):
        return self.risk.X.shape[0]

    def check_result_size(self, shape):
        """MemoryError when a float64 result of ``shape`` exceeds max_result_bytes."""
        check_result_size(shape, self.max_result_bytes)

    def batch_rows(self, row_bytes=None):
        """Test rows per batch: ``batch_size``, or ``BATCH_BYTES`` of work per batch
        (``test_row_bytes``, or ``row_bytes`` when larger)."""
        per_row = test_row_bytes(self.risk, self.solver)
        return batch_rows(self.batch_size,
                          per_row if row_bytes is None else max(row_bytes, per_row))

    def map(self, fn, out, row_bytes=None):
        """``map_batches`` over test rows in this scorer's batches (``batch_rows``)."""
        return map_batches(fn, out, batch_size=self.batch_rows(row_bytes),
                           n_jobs=self.n_jobs, verbose=self.verbose)

    # -- the scoring kernel -------------------------------------------------------
    def block(self, G_test, train=None, dest=None, row_scale=None, offsets=True):
        """G_test · (−H⁻¹∇θL(z_j)) for every training row j: (T, n_train).

        The test side is solved (T × p) and multiplied with the stored training
        gradients in one product, written straight into ``dest`` when given.
        """
        train = self.train_rows if train is None else train
        V = solve_rows(self.solver, dense(G_test))  # −∇θL(z_test) H⁻¹, (T, p)
        if sp.issparse(train):
            block = np.asarray(train @ V.T).T
        else:
            block = np.matmul(V, train.T, out=dest)
        if offsets and self.train_offsets is not None:
            extra = (V @ self.train_offsets.T)[:, self.risk.groups]
            block += extra if row_scale is None else extra * row_scale
        return block

    def score(self, n_test, test_gradients, row_scale=None):
        """Influence scores of every test row on every training row, in batches.

        ``test_gradients(sl)`` gives the θ-gradients of the scored quantity (a test
        loss, or a prediction) for the test rows ``sl``; ``row_scale`` multiplies
        training row j's column (folded into the training rows, once per call).
        """
        self.check_result_size((n_test, self.n_train))
        out = np.empty((n_test, self.n_train))
        train = self.train_rows
        if row_scale is not None:
            train = (train.multiply(row_scale[:, None]).tocsr() if sp.issparse(train)
                     else train * row_scale[:, None])

        def batch(sl, dest):
            block = self.block(test_gradients(sl), train, dest, row_scale)
            if dest is None:
                return block
            if block is not dest:
                dest[...] = block

        return self.map(batch, out)

    def summed(self, n_test, test_gradients, mean):
        """Scores of the sum (or mean) of the test rows' quantities: (n_train,).

        By linearity the test gradients are summed in batches and solved for once.
        """
        total = np.zeros(int(self.risk.free.sum()))
        rows = self.batch_rows()
        for start in range(0, n_test, rows):
            sl = slice(start, start + rows)
            total += np.asarray(test_gradients(sl).sum(axis=0)).ravel()
        if mean:
            total /= max(n_test, 1)
        return self.block(total[None, :])[0]

    def most_influential(self, n_test, test_gradients, k, sign):
        """Top-k training rows per test row (``top_k``), streamed: (n_test, 2, k)."""
        out = np.empty((n_test, 2, k))  # [indices, scores] per test point

        def batch(sl, dest):
            block = top_k(self.block(test_gradients(sl)), k, sign)
            if dest is None:
                return block
            dest[...] = block

        return self.map(batch, out)

    def combined_rows(self, P):
        """P · (−H⁻¹∇θL(z_j))_j for a (m, n_train) matrix P (e.g. group sums)."""
        G = dense(P @ self.train_rows)
        if self.train_offsets is not None:
            groups = self.risk.groups
            member = sp.csr_matrix((np.ones(len(groups)), (np.arange(len(groups)),
                                                           groups)))
            G = G + dense(P @ member) @ self.train_offsets
        return solve_rows(self.solver, G)

    def influence_rows(self, rows):
        """−H⁻¹∇θL(z_j) (free parameters) for the training rows ``rows``."""
        out = np.empty((len(rows), int(self.risk.free.sum())))

        def batch(sl, dest):
            G = dense(self.train_rows[rows[sl]])
            if self.train_offsets is not None:
                G = G + self.train_offsets[self.risk.groups[rows[sl]]]
            dest[...] = solve_rows(self.solver, G)

        map_batches(batch, out, batch_size=self.batch_size, n_jobs=1)
        return out

    def group_scores(self, n_test, test_gradients, factor):
        """``test_gradients · factorᵀ`` for the rows of ``factor`` (e.g.
        ``combined_rows`` of group sums): (n_test, n_groups), in blocks of rows."""
        out = np.empty((n_test, factor.shape[0]))
        for sl in group_row_blocks(n_test, factor.shape[0]):
            out[sl] = np.asarray(test_gradients(sl) @ factor.T)
        return out

    def group_loss_changes(self, Xv, y_enc, steps, loss, risk=None):
        """``loss_changes`` for a few group steps, in blocks of test rows."""
        risk = self.risk if risk is None else risk
        out = np.empty((Xv.shape[0], steps.shape[0]))
        for sl in group_row_blocks(Xv.shape[0], steps.shape[0] * risk.n_outputs):
            out[sl] = loss_change(risk, Xv[sl], y_enc[sl], steps, loss)
        return out

    # -- leverages and removals ---------------------------------------------------
    def output_grams(self):
        """A_j = U_jᵀ H⁻¹ U_j for every training row (n, k, k) (``output_grams``)."""
        return output_grams(self.risk, self.solver, batch_size=self.batch_size,
                            n_jobs=self.n_jobs, verbose=self.verbose)

    def leverage_matrices(self):
        """M_j = D_j U_jᵀ H⁻¹ U_j / n for every training row (n, k, k), any solver.

        "woodbury" reads them off its data-space factor; the others solve for A_j
        (:meth:`output_grams`).
        """
        h = self.solver.leverages()
        if h is not None:  # data space: from M's factor
            return h[:, None, None]
        return self.risk.row_curvature() @ self.output_grams() / self.n_train

    def loss_changes(self, Xv, y_enc, steps, loss, risk=None):
        """L(z_t at θ̂ + Δθ_j) − L(z_t at θ̂) for every test row t and step j.

        ``steps`` are in the θ of ``risk`` (default: the scorer's), and ``Xv`` are
        that risk's features of the test rows.
        """
        risk = self.risk if risk is None else risk
        out = np.empty((Xv.shape[0], steps.shape[0]))

        def batch(sl, dest):
            block = loss_change(risk, Xv[sl], y_enc[sl], steps, loss)
            if dest is None:
                return block
            dest[...] = block

        # a batch holds (rows, n_steps, n_outputs) shifted decision values
        rows = batch_rows(self.batch_size, 24 * steps.shape[0] * risk.n_outputs)
        return map_batches(batch, out, n_jobs=self.n_jobs, verbose=self.verbose,
                           batch_size=rows)

    def newton_loss_changes(self, Xv, y_enc, loss):
        """leave_one_out(method="newton") without the p × p Hessian.

        The step of row j is Δθ_j = (s_j/n) H⁻¹ U_j q_j with q_j = (I − M_j)⁻¹ w_j
        (see ``_removal``); the test decision values move by U_tᵀ Δθ_j, which is a
        score of the test output Jacobians against the rows U_j q_j: as many
        scoring passes as outputs, then the loss at the shifted decision values.
        """
        obj = self.risk
        if not obj.linear:
            raise NotImplementedError(
                "leave_one_out(method='newton') for a neural network needs the exact "
                "Hessian of each removed row: refit the explainer with "
                "hessian_solver='cholesky' (small networks), or use "
                "method='influence'."
            )
        if reweights_on_removal(obj):
            raise NotImplementedError(
                "When removing a row reweighs the others (class_weight='balanced', "
                "normalised sample weights), the Newton step needs the factorised "
                "Hessian: refit the explainer with hessian_solver='cholesky'."
            )
        n, k = self.n_train, obj.n_outputs
        self.check_result_size((Xv.shape[0], n))
        M = self.leverage_matrices()
        q, indefinite = newton_weights(M, obj.class_weight * obj.training_dz())
        defects = removal_defects(obj, [np.array([j]) for j in range(n)])
        defects.update({int(j): INDEFINITE for j in np.flatnonzero(indefinite)
                        if j not in defects})
        q[list(defects)] = 0.0  # their columns are NaN
        train = obj.row_gradients(obj.X, q * (obj.sample_weight / n)[:, None])
        loss = loss or obj.loss
        out = np.empty((Xv.shape[0], n))

        def batch(sl, dest):
            shift = np.stack([-self.block(dense(u), train, offsets=False)
                              for u in obj.output_jacobians(Xv[sl])], axis=2)
            block = shifted_loss_change(loss, obj.decision(Xv[sl]), y_enc[sl], shift)
            if dest is None:
                return block
            dest[...] = block

        out = self.map(batch, out, row_bytes=8 * (3 * k + 2) * n)
        out[:, list(defects)] = np.nan
        warn_no_optimum(defects, "row", stacklevel=4)
        return out


def make_scorer(risk, solver, damping):
    """The scorer of ``risk`` (the one place that chooses it): a kernel machine's
    exact hinge or ε-insensitive loss scores in kernel space
    (:class:`skinfluence._kernel_scoring.KernelScorer`, when it applies), every
    other risk through :class:`Scorer`."""
    from ._kernel_scoring import KernelScorer

    scorer = KernelScorer.build(risk, solver, damping)
    return Scorer(risk, solver) if scorer is None else scorer
