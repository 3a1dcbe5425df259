"""Training rows in chunks: the data-access layer for training sets on Dask.

In memory, the fitted risk (:class:`~skinfluence._objective.LinearObjective`) owns its
training rows and every row operation is one numpy expression over all of them. With
a ``dask.array`` X the rows live in chunks (on the workers of a Dask cluster) and are
never gathered. Everything influence functions need from the training rows is one of
three operations, each applied to a *local objective*: the family's objective
restricted to one chunk (same θ̂, loss, targets and penalties; the chunk's X, labels
and weights), a plain in-memory ``LinearObjective``, so the per-row mathematics is the
in-memory code itself:

``RowChunks.reduce(fn, combine)``
    ``combine`` of ``fn(local)`` over the chunks, a tree of fan-in 8 (Gram-like
    sums: the Hessian, the gradient; per-chunk top-k candidates). Small results,
    numpy; the tree depends only on the chunking, never on the workers.
``RowChunks.map(fn, shape)``
    ``fn(local)`` for every chunk, concatenated lazily along the training rows: a
    ``dask.array`` chunked like X (scores, leverages, self-influence).
``RowChunks.take(rows)``
    The local objective of a few rows, gathered (``param_influence(indices)``).

On top of them, :class:`ChunkedObjective` is the fitted risk (``risk_``): the Hessian,
gradient and class-weight offsets come from one reduction at fit; and
:class:`ChunkedScorer` offers the :class:`~skinfluence._scoring.Scorer` operations the
explainer uses. The Hessian solver only sees ``hessian()`` and the fixed directions,
so it does not branch on the kind of array.

What stays in the client: θ̂, the p × p Hessian and its inverse, the test rows, and
the per-row labels and weights (y, sample and class weights: about 48 bytes per row,
which the family's objective builder needs as arrays; sent once to the workers, see
``_row_blocks``); X (8·d bytes per row) and every n_test × n_train result stay on the
workers or lazy.
"""

import copy
import operator

import numpy as np
import scipy.sparse as sp

from ._scoring import Scorer, output_grams, solve_rows
from ._utils import dense

#: Per-row attributes of a LinearObjective: sliced per chunk (first axis: rows).
ROW_ATTRIBUTES = ("y", "sample_weight", "class_weight", "groups", "weighted_mask",
                  "train_dz", "pinned")

#: Largest block of scores (test rows × training rows) a chunk's top-k forms at once.
TOP_BLOCK_BYTES = 2**24


def is_chunked(X):
    """Whether X is a Dask collection (array or DataFrame), without importing dask."""
    return type(X).__module__.split(".")[0] == "dask" and hasattr(X, "dask")


def _dask():
    try:
        import dask
        import dask.array as da
    except ImportError as exc:  # pragma: no cover - is_chunked implies dask
        raise ImportError("Chunked training data needs dask: pip install "
                          "'skinfluence[dask]'.") from exc
    return dask, da


def compute(*collections, verbose=0):
    """``dask.compute`` on the active scheduler, with Dask's progress bar if verbose.

    The progress bar shows the local schedulers; a ``distributed`` cluster shows its
    progress on its dashboard.
    """
    dask, _ = _dask()
    if not verbose:
        return dask.compute(*collections)
    from dask.diagnostics import ProgressBar

    with ProgressBar():
        return dask.compute(*collections)


def check_chunked_X(X, input_name="X"):
    """A dense 2-D dask array of float64 with known row chunks and one column chunk.

    A dask DataFrame is converted with its partitions' lengths
    (``to_dask_array(lengths=True)``).
    """
    _, da = _dask()
    if hasattr(X, "to_dask_array"):  # dask DataFrame
        X = X.to_dask_array(lengths=True)
    if not isinstance(X, da.Array):
        raise TypeError(f"{input_name} must be a dask.array or dask DataFrame; got "
                        f"{type(X).__name__}.")
    if X.ndim != 2:
        raise ValueError(f"Expected a 2-D {input_name}; got a dask array of shape "
                         f"{X.shape}.")
    if any(np.isnan(c) for c in X.chunks[0]) or np.isnan(X.shape[1]):
        raise ValueError(
            f"{input_name} is a dask array with unknown chunk sizes (e.g. after "
            "boolean indexing): the rows of each chunk must be known to align the "
            f"labels and weights with them. Call {input_name}.compute_chunk_sizes() "
            "first (or, for a dask DataFrame, to_dask_array(lengths=True))."
        )
    if X.shape[0] == 0:
        raise ValueError(f"{input_name} has 0 rows: at least one is required.")
    if sp.issparse(getattr(X, "_meta", None)):
        raise TypeError(f"{input_name} has sparse chunks; chunked training data must "
                        "be dense (call .map_blocks(lambda b: b.toarray())).")
    if not np.issubdtype(X.dtype, np.number) or \
            np.issubdtype(X.dtype, np.complexfloating):
        raise TypeError(f"{input_name} must hold real numbers; got dtype {X.dtype}.")
    return X.astype(np.float64).rechunk({1: -1})


def gather_vector(v, input_name):
    """A per-row vector (labels, weights) as numpy: dask arrays are computed."""
    if v is None:
        return None
    if hasattr(v, "to_dask_array"):  # dask Series
        v = v.to_dask_array(lengths=True)
    if is_chunked(v):
        (v,) = compute(v)
    return np.asarray(v)


# -- local objectives ------------------------------------------------------------------
def _shell(risk):
    """The risk without its rows: what every chunk's local objective shares."""
    shell = copy.copy(risk)
    shell.X = shell.row_weight = None
    for name in ROW_ATTRIBUTES:
        setattr(shell, name, None)
    return shell


def _local(shell, X, rows, first):
    """The shell on one chunk of rows (``first``: the chunk's first row number)."""
    if not np.all(np.isfinite(X)):
        bad = int(np.flatnonzero(~np.isfinite(X).all(axis=1))[0])
        raise ValueError(
            f"Input X contains NaN or infinity (training row {first + bad}, found "
            "while computing on its chunk). Remove or impute those rows (e.g. with "
            "dask's da.nan_to_num or a SimpleImputer on each chunk) and fit again."
        )
    local = copy.copy(shell)
    local.X = X
    for name, value in rows.items():
        setattr(local, name, value)
    local.row_weight = local.sample_weight[:, None] * local.class_weight
    return local


def _run(fn, shell, X, rows, first, args, kwargs):
    return fn(_local(shell, np.asarray(X), rows, first), *args, **kwargs)


def _row_blocks(v, row_chunks):
    """A per-row numpy array cut in the training rows' chunks, one delayed block each.

    Under a ``distributed`` client the blocks are persisted on the workers once, not
    embedded in every pass's task graph; their tasks hold the data, so the scheduler
    rebuilds the blocks of a worker that is lost (scattered data would be gone).
    With the local schedulers they are views of ``v``.
    """
    import warnings

    _, da = _dask()
    arr = da.from_array(v, chunks=(row_chunks,) + v.shape[1:])
    try:
        from distributed import default_client

        default_client()
    except (ImportError, ValueError):
        pass
    else:
        with warnings.catch_warnings():  # sent once, on purpose
            warnings.filterwarnings("ignore", message="Sending large graph")
            arr = arr.persist()
    # optimize_graph=False: the blocks keep the persisted futures alive
    return arr.to_delayed(optimize_graph=False).reshape(len(row_chunks), -1)[:, 0]


def _combine(combine, *parts):
    out = parts[0]
    for part in parts[1:]:
        out = combine(out, part)
    return out


def add(a, b):
    """Elementwise sum of two arrays, or of two tuples of arrays."""
    if isinstance(a, tuple):
        return tuple(map(operator.add, a, b))
    return a + b


class RowChunks:
    """The training rows of a fitted risk, in the row chunks of a dask array.

    Parameters
    ----------
    risk : LinearObjective
        The family's objective built with the dask X (its per-row attributes,
        ``ROW_ATTRIBUTES``, are numpy arrays held by the client).
    verbose : int, default=0
        Dask's progress bar while computing.
    """

    def __init__(self, risk, verbose=0):
        self.X = risk.X
        self.n = risk.X.shape[0]
        self.rows = {name: getattr(risk, name) for name in ROW_ATTRIBUTES
                     if getattr(risk, name) is not None}
        self.shell = _shell(risk)
        self.bounds = np.concatenate([[0], np.cumsum(risk.X.chunks[0])]).astype(int)
        self.verbose = verbose
        # the per-row arrays in X's row chunks, one block per chunk
        self._row_blocks = {name: _row_blocks(v, risk.X.chunks[0])
                            for name, v in self.rows.items()}

    @property
    def n_chunks(self):
        return len(self.bounds) - 1

    def _tasks(self, fn, args=(), kwargs=None, per_row=None, first=False):
        """One delayed ``fn(local, *args, **kwargs, **per_row slices)`` per chunk
        (and ``first=`` the chunk's first row number, if ``first``)."""
        dask, _ = _dask()
        delayed = dask.delayed
        shell, args = delayed(self.shell), delayed(args)  # one key, shared by all
        per_row = {name: _row_blocks(v, self.X.chunks[0])
                   for name, v in (per_row or {}).items()}
        tasks = []
        for i, block in enumerate(self.X.to_delayed()[:, 0]):
            a = self.bounds[i]
            rows = {name: v[i] for name, v in self._row_blocks.items()}
            kw = dict(kwargs or {}, **{name: v[i] for name, v in per_row.items()})
            if first:
                kw["first"] = int(a)
            tasks.append(delayed(_run, pure=False)(fn, shell, block, rows, a, args, kw))
        return tasks

    def reduce(self, fn, combine=add, *, args=(), kwargs=None, per_row=None,
               first=False, fan_in=8):
        """``combine`` of ``fn(local, ...)`` over the chunks, as a tree: numpy.

        ``per_row`` maps keyword names to (n,) arrays, sliced per chunk. The tree's
        shape depends only on the chunking, so the result does not depend on the
        number of workers.
        """
        dask, _ = _dask()
        parts = self._tasks(fn, args, kwargs, per_row, first)
        while len(parts) > 1:
            parts = [dask.delayed(_combine, pure=False)(combine, *parts[i:i + fan_in])
                     for i in range(0, len(parts), fan_in)]
        (out,) = compute(parts[0], verbose=self.verbose)
        return out

    def map(self, fn, shape, *, axis=0, args=(), kwargs=None, per_row=None):
        """``fn(local, ...)`` of every chunk, concatenated lazily along ``axis``.

        ``shape(m)`` is the shape of a chunk's result with m rows; the result is a
        float64 ``dask.array`` chunked like the training rows along ``axis``.
        """
        _, da = _dask()
        tasks = self._tasks(fn, args, kwargs, per_row)
        parts = [da.from_delayed(t, shape=shape(int(b - a)), dtype=np.float64)
                 for t, a, b in zip(tasks, self.bounds[:-1], self.bounds[1:],
                                    strict=True)]
        return da.concatenate(parts, axis=axis)

    def take(self, rows):
        """The local objective of the training rows ``rows`` (gathered, in order)."""
        (X,) = compute(self.X[rows], verbose=self.verbose)
        return _local(self.shell, np.asarray(X),
                      {name: v[rows] for name, v in self.rows.items()}, 0)


# -- the fitted risk ---------------------------------------------------------------------
def _row_sums(local, n_groups):
    """(n_b·H_b, n_b·∇R_b, group sums) of one chunk, without the penalties.

    H_b and ∇R_b are the chunk's data part (``hessian``/``gradient`` divide by the
    chunk's rows); the group sums Σ_{i∈g} s_i ∇θ(class-weighted L_i) give the
    class-weight offsets (``train_gradients`` with an identity Jacobian).
    """
    p = local.quad_penalty.shape
    local.quad_penalty, local.l1_penalty = np.zeros(p), np.zeros(p)
    m = local.X.shape[0]
    groups = np.zeros((0, int(local.free.sum())))
    if local.weight_jacobian is not None:
        local.weight_jacobian = np.eye(n_groups)
        groups = np.asarray(local.train_gradients()[1])
    return m * local.hessian(), m * local.gradient(), groups


class ChunkedObjective:
    """The fitted risk R on chunked training rows (``risk_`` for dask X).

    Everything about θ̂ and the test side is the family's objective (attributes are
    looked up on it); the row sums come from one pass over the chunks at
    construction: ``H = Σ_b m_b H_b / n + diag(q)`` and the same for ∇R, with H_b
    the chunk's data part (m_b rows). ``training_dz`` and ``row_curvature`` are lazy.

    Parameters
    ----------
    risk : LinearObjective
        The family's objective built with the dask X.
    verbose : int, default=0
    """

    def __init__(self, risk, verbose=0):
        self._risk = risk
        self.rows = RowChunks(risk, verbose=verbose)
        n_groups = 0 if risk.weight_jacobian is None else risk.weight_jacobian.shape[0]
        H, g, group_sums = self.rows.reduce(_row_sums, args=(n_groups,))
        n, free = self.rows.n, risk.free
        theta = risk.params[free]
        self._hessian = H / n + np.diag(risk.quad_penalty[free])
        self._gradient = (g / n + risk.quad_penalty[free] * theta
                          + risk.l1_penalty[free] * np.sign(theta))
        self._offsets = (None if risk.weight_jacobian is None
                         else risk.weight_jacobian @ group_sums)

    def __getattr__(self, name):
        return getattr(self._risk, name)

    def hessian(self):
        """∇²R(θ̂) on the free parameters (p_free, p_free), reduced at fit."""
        return self._hessian.copy()

    def gradient(self):
        """∇R(θ̂) on the free parameters, reduced at fit."""
        return self._gradient.copy()

    def train_offsets(self):
        """The class-weight offsets of ``train_gradients`` (n_groups, p_free) or None."""
        return self._offsets

    def training_dz(self):
        """dL/dz at the training rows, lazy (n, k)."""
        k = self.n_outputs
        return self.rows.map(lambda local: local.training_dz(), lambda m: (m, k))

    def row_curvature(self):
        """D_j of every training row, lazy (n, k, k)."""
        k = self.n_outputs
        return self.rows.map(lambda local: local.row_curvature(), lambda m: (m, k, k))

    def train_gradients(self):
        raise NotImplementedError(
            "The training gradients of chunked data are computed chunk by chunk "
            "inside each scoring pass (ChunkedScorer), never as one n × p array."
        )


def check_chunkable(risk, solver_name):
    """Refuse what the chunked path does not do (before any pass over the data)."""
    from ._hessian import AUTO_CHOLESKY_MAX

    if risk.n_outputs != 1:
        raise NotImplementedError(
            f"Chunked (dask) training data is supported for single-output models; "
            f"this one has {risk.n_outputs} outputs. Gather the data into memory "
            "(X.compute()) or explain a binary / single-target model."
        )
    if risk.pinned is not None and np.any(risk.pinned):
        raise NotImplementedError(
            "The exact hinge (smoothing=0) pins support vectors on the margin, which "
            "needs every training row at once: use smoothing > 0 with chunked data."
        )
    if solver_name not in ("auto", "cholesky"):
        raise NotImplementedError(
            f"hessian_solver={solver_name!r} works on training rows in memory; "
            "chunked (dask) training data uses 'cholesky' (the p × p Hessian is one "
            "reduction over the chunks). Use hessian_solver='auto' or 'cholesky'."
        )
    p = int(risk.free.sum())
    if p > AUTO_CHOLESKY_MAX:
        raise NotImplementedError(
            f"Chunked (dask) training data needs the p × p Hessian in the client; "
            f"{p} free parameters exceed {AUTO_CHOLESKY_MAX}."
        )
    n = risk.X.shape[0]
    extra = [name for name, value in vars(risk).items()
             if name not in ROW_ATTRIBUTES + ("row_weight", "X")
             and isinstance(value, np.ndarray) and value.ndim and value.shape[0] == n
             and value.shape[0] != risk.n_params]
    if extra:
        raise NotImplementedError(
            f"{type(risk).__name__} keeps per-row data {extra} that the chunked path "
            "does not slice; fit on data in memory."
        )


def refuse(what):
    """NotImplementedError for a method that needs every training row in memory."""
    raise NotImplementedError(
        f"{what} needs the training rows in memory and is not available for chunked "
        "(dask) training data. Available on chunks: most_influential, "
        "loss_influence, test_set_influence, transform, self_influence, leverages, "
        "leave_one_out(method='influence' or 'newton'), param_influence(indices). "
        "Fit on X.compute() (or a subset of rows) to use it."
    )


# -- scoring ------------------------------------------------------------------------
def _train_rows(local, offsets):
    """Σ_k c_jk ∇θL_k(z_j) (+ the class-weight offset) of the chunk's rows (m, p)."""
    jacobian, local.weight_jacobian = local.weight_jacobian, None
    G = dense(local.train_gradients()[0])
    local.weight_jacobian = jacobian
    if offsets is not None:
        G = G + offsets[local.groups]
    return G


def _score_block(local, V, offsets, row_scale=None):
    block = V @ _train_rows(local, offsets).T
    return block if row_scale is None else block * row_scale


def _top_candidates(idx, scores, k, sign):
    """The k best of (T, m) candidates by ``sign · scores`` (|scores| if None)."""
    key = np.abs(scores) if sign is None else sign * scores
    k = min(k, scores.shape[1])
    top = np.argpartition(-key, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(key, top, axis=1), axis=1, kind="stable")
    top = np.take_along_axis(top, order, axis=1)
    return (np.take_along_axis(idx, top, axis=1),
            np.take_along_axis(scores, top, axis=1))


def _chunk_top(local, V, offsets, k, sign, first):
    """Top-k candidates of one chunk, in blocks of at most ``TOP_BLOCK_BYTES``."""
    G = _train_rows(local, offsets)
    step = max(k, TOP_BLOCK_BYTES // (8 * max(V.shape[0], 1)))
    merge, best = _merge_top(k, sign), None
    for a in range(0, G.shape[0], step):
        block = V @ G[a:a + step].T
        idx = np.broadcast_to(first + a + np.arange(block.shape[1]), block.shape)
        found = (*_top_candidates(idx, block, k, sign), block.any(axis=1))
        best = found if best is None else merge(best, found)
    return best


def _merge_top(k, sign):
    def merge(a, b):
        idx, scores = _top_candidates(np.hstack([a[0], b[0]]),
                                      np.hstack([a[1], b[1]]), k, sign)
        return idx, scores, a[2] | b[2]

    return merge


def _self_influence(local, solver, offsets):
    plain = dense(local.test_gradients(local.X, local.y))
    return np.einsum("ip,ip->i", plain, solve_rows(solver, _train_rows(local,
                                                                        offsets)))


def _leverage_matrices(local, solver, n):
    return local.row_curvature() @ output_grams(local, solver, n_jobs=1) / n


def _newton_block(local, solver, n, Vs, Z, y, loss, defect):
    """leave_one_out(method="newton") of one chunk's rows (T, m); see
    ``Scorer.newton_loss_changes``."""
    from ._removal import newton_weights, shifted_loss_change

    M = _leverage_matrices(local, solver, n)
    q, indefinite = newton_weights(M, local.class_weight * local.training_dz())
    bad = indefinite | defect
    q[bad] = 0.0
    train = dense(local.row_gradients(local.X, q * (local.sample_weight / n)[:, None]))
    shift = np.stack([-(V @ train.T) for V in Vs], axis=2)
    block = shifted_loss_change(loss, Z, y, shift)
    block[:, bad] = np.nan
    return block


class ChunkedScorer(Scorer):
    """The :class:`~skinfluence._scoring.Scorer` operations on chunked training rows.

    The test side is solved in the client (``−∇θL(z_test)ᵀ H⁻¹``, T × p) and sent to
    every chunk, which recomputes its training gradients from its rows and returns
    its block of scores (or its top-k candidates). Results over all training rows
    are lazy ``dask.array``s chunked like the rows; ``most_influential`` is a
    reduction to numpy.
    """

    chunked = True

    def __init__(self, risk, solver, *, batch_size="auto", n_jobs=None, verbose=0,
                 max_result_bytes=2**30):
        self.risk, self.solver = risk, solver
        self.rows = risk.rows
        self.train_rows, self.train_offsets = None, risk.train_offsets()
        self.batch_size, self.n_jobs, self.verbose = batch_size, n_jobs, verbose
        self.max_result_bytes = max_result_bytes

    def _solved(self, n_test, test_gradients):
        return solve_rows(self.solver, dense(test_gradients(slice(0, n_test))))

    def score(self, n_test, test_gradients, row_scale=None):
        """Scores (n_test, n_train), lazy, chunked like the training rows."""
        V = self._solved(n_test, test_gradients)
        per_row = None if row_scale is None else {"row_scale": row_scale}
        return self.rows.map(_score_block, lambda m: (n_test, m), axis=1,
                             args=(V, self.train_offsets), per_row=per_row)

    def summed(self, n_test, test_gradients, mean):
        """Scores of the summed (or mean) test loss (n_train,), lazy."""
        total = np.asarray(test_gradients(slice(0, n_test)).sum(axis=0)).ravel()
        if mean:
            total /= max(n_test, 1)
        V = solve_rows(self.solver, total[None, :])
        return self.rows.map(lambda local, V, off: _score_block(local, V, off)[0],
                             lambda m: (m,), args=(V, self.train_offsets))

    def most_influential(self, n_test, test_gradients, k, sign):
        """Top-k per test row, from every chunk's top-k: numpy (n_test, 2, k)."""
        V = self._solved(n_test, test_gradients)
        idx, scores, nonzero = self.rows.reduce(
            _chunk_top, _merge_top(k, sign), args=(V, self.train_offsets, k, sign),
            first=True)
        out = np.empty((n_test, 2, k))
        out[:, 0], out[:, 1] = idx, scores
        out[~nonzero] = [[-1.0], [np.nan]]  # flat: all rows tie at 0
        return out

    def influence_rows(self, rows):
        """−H⁻¹∇θL(z_j) for the training rows ``rows`` (gathers only those rows)."""
        local = self.rows.take(rows)
        return solve_rows(self.solver, _train_rows(local, self.train_offsets))

    def self_influence(self):
        """I_up,loss(z_j, z_j) of every training row, lazy (n_train,)."""
        return self.rows.map(_self_influence, lambda m: (m,),
                             args=(self.solver, self.train_offsets))

    def leverage_matrices(self):
        """M_j = D_j U_jᵀ H⁻¹ U_j / n of every training row, lazy (n, k, k)."""
        k = self.risk.n_outputs
        return self.rows.map(_leverage_matrices, lambda m: (m, k, k),
                             args=(self.solver, self.n_train))

    def newton_loss_changes(self, Xv, y_enc, loss):
        """leave_one_out(method="newton"), lazy (n_test, n_train); NaN for removals
        without a refit (named in one NoOptimumWarning) and for rows whose downdated
        Hessian is indefinite (found chunk by chunk, NaN without a warning)."""
        from ._removal import warn_no_optimum

        obj = self.risk
        if obj.weight_jacobian is not None:
            refuse("leave_one_out(method='newton') with class weights that depend on "
                   "the sample weights (class_weight='balanced', normalised GLM/Lasso "
                   "weights)")
        defects = single_row_defects(obj)
        defect = np.zeros(self.n_train, dtype=bool)
        defect[list(defects)] = True
        Vs = [solve_rows(self.solver, dense(u)) for u in obj.output_jacobians(Xv)]
        out = self.rows.map(
            _newton_block, lambda m: (Xv.shape[0], m), axis=1,
            args=(self.solver, self.n_train, Vs, obj.decision(Xv), y_enc,
                  loss or obj.loss), per_row={"defect": defect})
        warn_no_optimum(defects, "row", stacklevel=4)
        return out

    def newton_steps(self, rows):
        """θ̂_{−j} − θ̂ by one Newton step (free parameters) for the training rows
        ``rows`` (gathers only those): Δθ_j = (s_j/n) H⁻¹ U_j (I − M_j)⁻¹ w_j, NaN
        for removals without a refit (one NoOptimumWarning) or an indefinite step."""
        from ._removal import INDEFINITE, newton_weights, warn_no_optimum

        obj, n = self.risk, self.n_train
        if obj.weight_jacobian is not None:
            refuse("param_change(method='newton') with class weights that depend on "
                   "the sample weights (class_weight='balanced', normalised GLM/Lasso "
                   "weights)")
        local = self.rows.take(rows)
        M = _leverage_matrices(local, self.solver, n)
        q, indefinite = newton_weights(M, local.class_weight * local.training_dz())
        all_defects = single_row_defects(obj)
        named = {int(j): all_defects.get(int(j), INDEFINITE) for i, j in
                 enumerate(rows) if int(j) in all_defects or indefinite[i]}
        bad = np.isin(rows, list(named))
        q[bad] = 0.0
        G = dense(local.row_gradients(local.X, q * (local.sample_weight / n)[:, None]))
        steps = -solve_rows(self.solver, G)  # H⁻¹ U_j q_j s_j / n
        steps[bad] = np.nan
        warn_no_optimum(named, "row", stacklevel=4)
        return steps

    # what needs every training row at once
    def output_grams(self):
        refuse("output_grams")

    def combined_rows(self, P):
        refuse("group_influence")

    def group_scores(self, n_test, test_gradients, factor):
        refuse("group_influence")

    def group_loss_changes(self, Xv, y_enc, steps, loss):
        refuse("group_influence")

    def loss_changes(self, Xv, y_enc, steps, loss):
        refuse("leave_one_out(method='exact')")


def single_row_defects(risk):
    """``removal_defects`` of every single row, from the labels and weights only.

    For one row, criteria 1–2 of ``removal_defects`` (the last weighted row, the last
    weighted row of its class) are found from the per-row arrays the client holds.
    Criteria 3–4 need the rows' X: when only intercepts are unpenalised they reduce
    to 1–2; with unpenalised coefficients a flat direction shows as leverage 1 (NaN
    as an indefinite step), while separation (unattained losses) is refused.
    """
    from ._removal import _UNATTAINED, removal_defects, weighted_rows

    shell = copy.copy(risk._risk)
    d = risk.n_outputs * risk.n_features
    unpenalised = ((risk.quad_penalty[:d] == 0) & (risk.l1_penalty[:d] == 0)
                   & risk.free[:d])
    if unpenalised.any() and isinstance(risk.loss, _UNATTAINED):
        refuse("leave_one_out(method='newton') of an unpenalised classifier "
               "(C=np.inf), whose refits may have no optimum,")
    shell.quad_penalty = np.ones_like(risk.quad_penalty)  # criteria 1-2 only
    alive = weighted_rows(shell)
    candidates = np.flatnonzero(alive) if alive.sum() <= 1 else np.empty(0, int)
    if risk.targets.classes is not None:
        count = np.bincount(risk.y[alive], minlength=len(risk.targets.classes))
        last = alive & (count[risk.y] == 1)
        candidates = np.union1d(candidates, np.flatnonzero(last))
    found = removal_defects(shell, [np.array([j]) for j in candidates])
    return {int(candidates[i]): reason for i, reason in found.items()}
