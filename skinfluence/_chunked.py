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

Where the family's objective is built: its per-row arrays (encoded labels, sample
and class weights) by the family's builder on each chunk, on the workers, inside
every task (``Recipe``, ``_local``); the few totals its recipes need from all rows
(n, Σ s, per class N_g and S_g: ``models._population``) by one pass over y and the
weights at fit (``row_totals``); the rest (θ̂, loss, penalties) in the client from
the first rows (``family_risk``). The client holds θ̂, the p × p Hessian and its
inverse, the test rows and a few hundred training rows at fit — nothing per
training row: X, y, the weights and every n_test × n_train result stay on the
workers or lazy.
"""

import copy
import operator
import pickle
import warnings

import numpy as np
import scipy.sparse as sp
from sklearn.utils.validation import check_array

from ._objective import LinearObjective
from ._scoring import Scorer, output_grams, solve_rows
from ._utils import dense, largest_leverages
from .models._population import Population, population
from .models._targets import ClassLabels, check_label_types

#: Per-row attributes of a LinearObjective (first axis: rows): built per chunk.
ROW_ATTRIBUTES = ("y", "sample_weight", "class_weight", "groups", "weighted_mask",
                  "train_dz", "pinned")
#: Everything a LinearObjective holds per row.
ROW_NAMES = ROW_ATTRIBUTES + ("X", "inputs", "row_weight")
#: The client builds the family's objective on up to 3 × this many first rows.
HEAD_ROWS = 64

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
    """A 2-D dask array of float64 with known row chunks and one column chunk: numpy
    blocks, or scipy.sparse blocks (converted to CSR).

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
    if not np.issubdtype(X.dtype, np.number) or \
            np.issubdtype(X.dtype, np.complexfloating):
        raise TypeError(f"{input_name} must hold real numbers; got dtype {X.dtype}.")
    # scipy.sparse blocks become CSR (the meta does not always say: da.concatenate
    # of sparse blocks has a numpy meta), numpy blocks float64
    meta = sp.csr_matrix((0, 0)) if sp.issparse(getattr(X, "_meta", None)) else None
    return X.map_blocks(_rows_of, dtype=np.float64, meta=meta).rechunk({1: -1})


def _rows_of(X):
    """A block of rows as float64 numpy, or CSR for sparse blocks."""
    if sp.issparse(X):
        return sp.csr_matrix(X, dtype=np.float64)
    return np.asarray(X, dtype=np.float64)


def row_vector(v, X, input_name):
    """A per-row array (labels, weights) as a dask array in X's row chunks, or None.

    A dask array or Series is rechunked lazily (never gathered); numpy input is
    copied (later changes to the caller's array change no result) and, under a
    ``distributed`` client, sent to the workers once (``_from_numpy``).
    """
    if v is None:
        return None
    if hasattr(v, "to_dask_array"):  # dask Series or DataFrame
        v = v.to_dask_array(lengths=True)
    if not is_chunked(v):
        v = np.array(v, copy=True)
    if any(np.isnan(size) for size in v.shape):
        raise ValueError(
            f"{input_name} is a dask array with unknown chunk sizes: call "
            f"{input_name}.compute_chunk_sizes() first (for a dask Series, "
            "to_dask_array(lengths=True))."
        )
    if v.ndim not in (1, 2) or v.shape[0] != X.shape[0]:
        raise ValueError(
            f"X has {X.shape[0]} rows but {input_name} has {v.shape[0] if v.ndim else 0}"
            f" (shape {v.shape}): one per training row is needed."
        )
    if not is_chunked(v):
        return _from_numpy(v, X.chunks[0])
    return v.rechunk({0: X.chunks[0], 1: -1} if v.ndim == 2 else {0: X.chunks[0]})


def row_index(X, Xv):
    """``training_index_`` of chunked rows, lazy: a dask DataFrame's index, else
    0 … n − 1 (``Xv``: X as checked)."""
    _, da = _dask()
    if hasattr(X, "index") and hasattr(X, "to_dask_array"):
        return X.index.to_dask_array(lengths=Xv.chunks[0])
    return da.arange(Xv.shape[0], chunks=Xv.chunks[0])


def _from_numpy(v, row_chunks):
    """A per-row numpy array as a dask array cut in the training rows' chunks.

    Under a ``distributed`` client the blocks are persisted on the workers once, not
    embedded in every pass's task graph; their tasks hold the data, so the scheduler
    rebuilds the blocks of a worker that is lost (scattered data would be gone).
    With the local schedulers they are views of ``v``.
    """
    _, da = _dask()
    arr = da.from_array(v, chunks=(tuple(row_chunks),) + v.shape[1:])
    try:
        from distributed import default_client

        default_client()
    except (ImportError, ValueError):
        return arr
    with warnings.catch_warnings():  # sent once, on purpose
        warnings.filterwarnings("ignore", message="Sending large graph")
        return arr.persist()


def _blocks(v, n_chunks):
    """The row blocks of a dask array in the training rows' chunks, one delayed
    object each (None for every chunk when ``v`` is None)."""
    if v is None:
        return [None] * n_chunks
    # optimize_graph=False: persisted blocks keep their futures
    return list(v.to_delayed(optimize_graph=False).reshape(n_chunks, -1)[:, 0])


def _combine(combine, *parts):
    out = parts[0]
    for part in parts[1:]:
        out = combine(out, part)
    return out


def _tree(parts, combine, fan_in, verbose):
    """``combine`` of delayed ``parts`` as a tree of fan-in ``fan_in``, computed."""
    dask, _ = _dask()
    while len(parts) > 1:
        parts = [dask.delayed(_combine, pure=False)(combine, *parts[i:i + fan_in])
                 for i in range(0, len(parts), fan_in)]
    (out,) = compute(parts[0], verbose=verbose)
    return out


def add(a, b):
    """Elementwise sum of two arrays, or of two tuples of arrays."""
    if isinstance(a, tuple):
        return tuple(map(operator.add, a, b))
    return a + b


# -- the population: totals over every row -----------------------------------------
def _chunk_totals(y, sample_weight, classes):
    """(m, Σ s, N_g, S_g) of one chunk's labels and weights, checked (labels among
    ``classes``, or finite real targets)."""
    m = len(y)
    s = np.ones(m) if sample_weight is None else np.asarray(sample_weight)
    if classes is None:  # real targets: finite numbers
        check_array(y, ensure_2d=False, dtype=np.float64, input_name="y")
        return m, s.sum(), np.zeros(0), np.zeros(0)
    y = np.asarray(y)
    check_label_types(y)
    idx = ClassLabels(classes).encode(y, m)
    K = len(classes)
    return (m, s.sum(), np.bincount(idx, minlength=K),
            np.bincount(idx, weights=s, minlength=K))


def row_totals(y, sample_weight, classes, verbose=0, fan_in=8):
    """The totals of the training rows (``Population``): one pass over y and the
    sample weights only (X is not read).

    Parameters
    ----------
    y, sample_weight : dask arrays in X's row chunks (sample_weight may be None)
    classes : ndarray or None
        The classifier's ``classes_``: labels not among them are an error (raised
        while computing on their chunk).
    """
    dask, _ = _dask()
    n_chunks = len(y.chunks[0])
    parts = [dask.delayed(_chunk_totals, pure=False)(yb, sb, classes)
             for yb, sb in zip(_blocks(y, n_chunks), _blocks(sample_weight, n_chunks),
                               strict=True)]
    n, total, counts, totals = _tree(parts, add, fan_in, verbose)
    if classes is None:
        return Population(int(n), float(total))
    return Population(int(n), float(total), counts, totals)


# -- the family's objective, built on chunks -----------------------------------------
class Recipe:
    """The family's builder with everything it needs besides the rows: the fitted
    model, the explainer's options and the population totals (sent once to every
    chunk's task).

    ``build(X, y, sample_weight)`` is the family's objective on those rows, with the
    totals of all rows (``models._population``): its per-row arrays are exactly the
    in-memory objective's rows.
    """

    def __init__(self, builder, model, options, totals):
        self.builder, self.model = builder, model
        self.options, self.totals = options, totals

    def build(self, X, y, sample_weight):
        sw = np.ones(X.shape[0]) if sample_weight is None else \
            np.asarray(sample_weight, dtype=np.float64)
        with population(self.totals):
            return self.builder(self.model, X, np.asarray(y), sw, **self.options)


def _shell(risk):
    """The risk without its rows: what every chunk's local objective shares."""
    shell = copy.copy(risk)
    for name in ROW_NAMES:
        setattr(shell, name, None)
    return shell


def _local(recipe, shell, X, y, sample_weight, first):
    """The family's objective on one chunk of rows: the shell (θ̂, penalties, totals)
    with the chunk's per-row arrays. ``first``: the chunk's first row number, or the
    row numbers of gathered rows."""
    values = X.data if sp.issparse(X) else X
    if not np.all(np.isfinite(values)):
        bad = (int(np.searchsorted(X.indptr, np.flatnonzero(~np.isfinite(values))[0],
                                   side="right") - 1) if sp.issparse(X) else
               int(np.flatnonzero(~np.isfinite(X).all(axis=1))[0]))
        row = first[bad] if isinstance(first, np.ndarray) else first + bad
        raise ValueError(
            f"Input X contains NaN or infinity (training row {row}, found "
            "while computing on its chunk). Remove or impute those rows (e.g. with "
            "dask's da.nan_to_num or a SimpleImputer on each chunk) and fit again."
        )
    built = recipe.build(X, y, sample_weight)
    local = copy.copy(shell)
    for name in ROW_NAMES:
        setattr(local, name, getattr(built, name))
    return local


def _run(fn, recipe, shell, X, y, sample_weight, first, args, kwargs):
    local = _local(recipe, shell, _rows_of(X), y, sample_weight, first)
    return fn(local, *args, **kwargs)


def family_risk(recipe, X, y, sample_weight, verbose=0):
    """The family's objective on chunked rows, without its rows or X (the ``shell``).

    Everything but the per-row arrays — θ̂, loss, targets, penalties, the
    class-weight Jacobian — comes from the builder run in the client on the labels
    and weights of the first r, 2r and 3r rows (gathered, not X; r ≤ ``HEAD_ROWS``) under
    the totals of all rows, with X standing in by its shape (``_ShapeOnly``). What
    still depends on the number of rows given is R's penalty scale, of the form
    a + b/m (F's penalty divided by C·m, or not): read at m = n from the first two
    builds and checked on the third; a row's values must not change with the rows
    after it. A builder whose objective depends on the rows in any other way (it
    computes with X: a kernel map, an SVM's dual solution, Huber's scale at its
    bound, quantile kinks; totals it does not take from ``models._population``; a
    network) needs every row at once and is refused.
    """
    n = X.shape[0]
    r = min(HEAD_ROWS, n // 3)
    sizes = (r, 2 * r, 3 * r) if r else (n,)
    head = [y[:sizes[-1]]]
    if sample_weight is not None:
        head.append(sample_weight[:sizes[-1]])
    head = compute(*head, verbose=verbose)
    yh = np.asarray(head[0])
    sh = np.asarray(head[1]) if len(head) == 2 else None
    name = type(recipe.model).__name__
    builds = []
    for m in sizes:
        try:  # y and the weights passed their checks (row_totals)
            with warnings.catch_warnings():  # about these rows alone: not shown
                warnings.simplefilter("ignore")
                builds.append(recipe.build(_ShapeOnly((m, X.shape[1])), yh[:m],
                                           None if sh is None else sh[:m]))
        except _ReadsRows as exc:
            raise NotImplementedError(_needs_all_rows(
                name, "its objective reads the training rows' features when it is "
                "built (a kernel map, a dual solution, a fitted scale or kinks "
                "found from the residuals), which needs every row at once")) from exc
        except Exception as exc:  # noqa: BLE001 - its fitted state has every row
            raise NotImplementedError(_needs_all_rows(
                name, "its objective cannot be rebuilt from some of the rows "
                f"({type(exc).__name__}: {exc}): its fitted state refers to every "
                "training row (a kernel machine's or an SVM's dual coefficients)"
            )) from exc
    first = builds[0]
    if not isinstance(first, LinearObjective) or first.input_map is not None:
        raise NotImplementedError(_needs_all_rows(
            name, "chunked data needs a model linear in its inputs (a kernel "
            "machine's features and a network's layers depend on every row)"))
    if first.train_dz is not None:
        raise NotImplementedError(_needs_all_rows(
            name, "its hinge loss's dL/dz at the training rows is read off the dual "
            "solution of all rows; use a smooth loss (e.g. LinearSVC(loss="
            "'squared_hinge'), LogisticRegression)"))
    shell = _shell(first)
    for built in builds[1:]:
        for attr in ROW_ATTRIBUTES + ("row_weight",):  # the first r rows: the same
            if not _same(getattr(first, attr), _head(getattr(built, attr), r)):
                raise NotImplementedError(_needs_all_rows(
                    name, f"a row's {attr!r} depends on the other rows"))
    if len(builds) == 3:
        _extrapolate(shell, builds, r, n, name)
    return shell  # without X: sent to every task


class _ReadsRows(Exception):
    """A family builder used the training rows' features (``_ShapeOnly``)."""


class _ShapeOnly:
    """Stands for X while the client builds the family's objective: it has a shape
    and nothing else, so a builder that computes with the rows' features (rather
    than leaving them to the objective's per-chunk methods) is found out."""

    ndim = 2
    dtype = np.dtype(np.float64)

    def __init__(self, shape):
        self.shape = shape

    def _refuse(self, *args, **kwargs):
        raise _ReadsRows

    __array__ = __getitem__ = __matmul__ = __rmatmul__ = __mul__ = __rmul__ = _refuse
    __add__ = __radd__ = __sub__ = __rsub__ = __truediv__ = _refuse
    toarray = tocsr = multiply = dot = sum = _refuse


def _head(v, r):
    return v if v is None else v[:r]


def _same(a, b, rtol=1e-12):
    """Equal values (arrays: to ``rtol`` of their largest entry), else equal
    pickles (losses, targets: the same recipe)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape:
            return False
        if a.dtype.kind in "fc" and b.dtype.kind in "fc":
            scale = np.max(np.abs(a), initial=0.0)
            return bool(np.all(np.abs(a - b) <= rtol * scale))
        return bool(np.array_equal(a, b))
    try:
        return a is b or pickle.dumps(a) == pickle.dumps(b)
    except Exception:  # noqa: BLE001 - unpicklable: not shown to be the same
        return False


def _extrapolate(shell, builds, r, n, name):
    """Attributes that change with the number of rows m given, as a + b/m at m = n."""
    v1s, v2s, v3s = (vars(b) for b in builds)
    for attr, v1 in v1s.items():
        if attr in ROW_NAMES or (_same(v1, v2s[attr]) and _same(v1, v3s[attr])):
            continue
        if attr == "removal_row_weight":  # removals reweigh every row: refused here
            setattr(shell, attr, _RowsNeeded(_needs_all_rows(
                name, "removing a row reweighs every other row")))
            continue
        v2, v3 = v2s[attr], v3s[attr]
        if all(isinstance(v, np.ndarray) and v.dtype.kind == "f" and v.shape == v1.shape
               for v in (v1, v2, v3)):
            a, b = 2 * v2 - v1, 2 * r * (v1 - v2)  # v(m) = a + b/m
            if _same(a + b / (3 * r), v3, rtol=1e-10):
                setattr(shell, attr, a + b / n)
                continue
        raise NotImplementedError(_needs_all_rows(
            name, f"its objective's {attr!r} depends on the training rows beyond "
            "per-row values and their totals"))


class _RowsNeeded:
    """Stands for a hook that needs every row (removals that reweigh all rows):
    ``reweights_on_removal`` sees it, and calling it says why it is refused."""

    def __init__(self, message):
        self.message = message

    def __call__(self, *args, **kwargs):
        raise NotImplementedError(self.message)


def _needs_all_rows(name, why):
    return (f"{name} cannot be explained on chunked (dask) training data: {why}. "
            "Fit on data in memory (X.compute(), or a sample of the rows).")


class RowChunks:
    """The training rows in the row chunks of a dask array, as local objectives.

    Parameters
    ----------
    X : dask array (n, d)
        Checked by ``check_chunked_X``.
    y, sample_weight : dask arrays in X's row chunks (``row_vector``)
        sample_weight may be None (every weight 1).
    recipe : Recipe
        Builds a chunk's per-row arrays.
    shell : LinearObjective
        The family's objective without rows (``family_risk``).
    verbose : int, default=0
        Dask's progress bar while computing.
    """

    def __init__(self, X, y, sample_weight, recipe, shell, verbose=0):
        self.X, self.y, self._sample_weight = X, y, sample_weight
        self.recipe, self.shell = recipe, shell
        self.n = X.shape[0]
        self.bounds = np.concatenate([[0], np.cumsum(X.chunks[0])]).astype(int)
        self.verbose = verbose

    @property
    def n_chunks(self):
        return len(self.bounds) - 1

    @property
    def sample_weight(self):
        """The sample weights, lazy (n,) in the rows' chunks."""
        if self._sample_weight is None:
            _, da = _dask()
            return da.ones(self.n, chunks=self.X.chunks[0])
        return self._sample_weight

    def _tasks(self, fn, args=(), kwargs=None, per_row=None, first=False):
        """One delayed ``fn(local, *args, **kwargs, **per_row slices)`` per chunk
        (and ``first=`` the chunk's first row number, if ``first``)."""
        dask, _ = _dask()
        delayed = dask.delayed
        # one key each, shared by all chunks
        recipe, shell, args = delayed(self.recipe), delayed(self.shell), delayed(args)
        k = self.n_chunks
        per_row = {name: _blocks(v if is_chunked(v) else
                                 _from_numpy(np.asarray(v), self.X.chunks[0]), k)
                   for name, v in (per_row or {}).items()}
        tasks = []
        for i, (Xb, yb, sb) in enumerate(zip(
                self.X.to_delayed()[:, 0], _blocks(self.y, k),
                _blocks(self._sample_weight, k), strict=True)):
            a = int(self.bounds[i])
            kw = dict(kwargs or {}, **{name: v[i] for name, v in per_row.items()})
            if first:
                kw["first"] = a
            tasks.append(delayed(_run, pure=False)(fn, recipe, shell, Xb, yb, sb, a,
                                                   args, kw))
        return tasks

    def reduce(self, fn, combine=add, *, args=(), kwargs=None, per_row=None,
               first=False, fan_in=8):
        """``combine`` of ``fn(local, ...)`` over the chunks, as a tree: numpy.

        ``per_row`` maps keyword names to (n,) arrays (numpy or dask), sliced per
        chunk. The tree's shape depends only on the chunking, so the result does not
        depend on the number of workers.
        """
        return _tree(self._tasks(fn, args, kwargs, per_row, first), combine, fan_in,
                     self.verbose)

    def map(self, fn, shape, *, axis=0, args=(), kwargs=None, per_row=None,
            first=False):
        """``fn(local, ...)`` of every chunk, concatenated lazily along ``axis``.

        ``shape(m)`` is the shape of a chunk's result with m rows; the result is a
        float64 ``dask.array`` chunked like the training rows along ``axis``.
        """
        _, da = _dask()
        tasks = self._tasks(fn, args, kwargs, per_row, first)
        parts = [da.from_delayed(t, shape=shape(int(b - a)), dtype=np.float64)
                 for t, a, b in zip(tasks, self.bounds[:-1], self.bounds[1:],
                                    strict=True)]
        return da.concatenate(parts, axis=axis)

    def take(self, rows):
        """The local objective of the training rows ``rows`` (gathered, in order)."""
        rows = np.asarray(rows, dtype=np.intp)
        parts = [self.X[rows], self.y[rows]]
        if self._sample_weight is not None:
            parts.append(self._sample_weight[rows])
        parts = compute(*parts, verbose=self.verbose)
        return _local(self.recipe, self.shell, _rows_of(parts[0]), np.asarray(parts[1]),
                      np.asarray(parts[2]) if len(parts) == 3 else None, rows)


# -- the fitted risk ---------------------------------------------------------------------
def _row_sums(local, n_groups):
    """(n_b·H_b, n_b·∇R_b, group sums) of one chunk, without the penalties.

    H_b and ∇R_b are the chunk's data part (``hessian``/``gradient`` divide by the
    chunk's rows; a penalty term they add that is not zeroed here, such as the
    MultiTask group penalty, comes out once: Σ_b m_b P / n = P); the group sums
    Σ_{i∈g} s_i ∇θ(class-weighted L_i) give the class-weight offsets
    (``train_gradients`` with an identity Jacobian).
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

    Everything about θ̂ and the test side is the family's objective without its
    rows (``family_risk``; attributes are looked up on it, its per-row arrays are
    None); the row sums come from one pass over the chunks at construction:
    ``H = Σ_b m_b H_b / n + diag(q)`` and the same for ∇R, with H_b the chunk's data
    part (m_b rows). ``training_dz`` and ``row_curvature`` are lazy.

    Parameters
    ----------
    rows : RowChunks
    totals : Population
        The totals of the training rows (``row_totals``).
    """

    def __init__(self, rows, totals):
        risk = rows.shell
        self._risk, self.rows, self.totals = risk, rows, totals
        self.X = rows.X  # lazy, (n, d)
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
    """Refuse what the chunked path does not do (before the pass over X)."""
    from ._hessian import AUTO_CHOLESKY_MAX

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


def _leverages(local, solver, n):
    return largest_leverages(local.row_curvature(), output_grams(local, solver, n_jobs=1),
                             n)


def _newton_block(local, solver, n, Vs, Z, y, loss, defects, first):
    """leave_one_out(method="newton") of one chunk's rows (T, m); see
    ``Scorer.newton_loss_changes``. ``defects``: row numbers without a refit."""
    from ._removal import newton_weights, shifted_loss_change

    defect = np.isin(first + np.arange(local.X.shape[0]), defects)
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

    def leverages(self):
        """The largest leverage of every training row (several outputs), lazy (n,)."""
        return self.rows.map(_leverages, lambda m: (m,),
                             args=(self.solver, self.n_train))

    def newton_loss_changes(self, Xv, y_enc, loss):
        """leave_one_out(method="newton"), lazy (n_test, n_train); NaN for removals
        without a refit (named in one NoOptimumWarning) and for rows whose downdated
        Hessian is indefinite (found chunk by chunk, NaN without a warning)."""
        from ._removal import reweights_on_removal, warn_no_optimum

        obj = self.risk
        if reweights_on_removal(obj):
            refuse("leave_one_out(method='newton') when removing a row reweighs the "
                   "others (class_weight='balanced', normalised GLM/Lasso weights)")
        defects = single_row_defects(obj)
        Vs = [solve_rows(self.solver, dense(u)) for u in obj.output_jacobians(Xv)]
        out = self.rows.map(
            _newton_block, lambda m: (Xv.shape[0], m), axis=1,
            args=(self.solver, self.n_train, Vs, obj.decision(Xv), y_enc,
                  loss or obj.loss, np.array(sorted(defects), dtype=np.intp)),
            first=True)
        warn_no_optimum(defects, "row", stacklevel=4)
        return out

    def newton_steps(self, rows):
        """θ̂_{−j} − θ̂ by one Newton step (free parameters) for the training rows
        ``rows`` (gathers only those): Δθ_j = (s_j/n) H⁻¹ U_j (I − M_j)⁻¹ w_j, NaN
        for removals without a refit (one NoOptimumWarning) or an indefinite step."""
        from ._removal import (
            INDEFINITE,
            newton_weights,
            reweights_on_removal,
            warn_no_optimum,
        )

        obj, n = self.risk, self.n_train
        if reweights_on_removal(obj):
            refuse("param_change(method='newton') when removing a row reweighs the "
                   "others (class_weight='balanced', normalised GLM/Lasso weights)")
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

    def group_loss_changes(self, Xv, y_enc, steps, loss, risk=None):
        refuse("group_influence")

    def loss_changes(self, Xv, y_enc, steps, loss, risk=None):
        refuse("leave_one_out(method='exact')")


def single_row_defects(risk):
    """``removal_defects`` of every single row, found with one pass over the chunks.

    For one row, criteria 1–2 of ``removal_defects`` (the last weighted row, the last
    weighted row of its class) depend only on how many weighted rows each class has:
    one pass finds the counts and the first two weighted rows of each class, and
    ``removal_defects`` runs on those rows alone (the same counts up to 2, so the
    same answers). Criteria 3–4 need the rows' X: when only intercepts are
    unpenalised they reduce to 1–2; with unpenalised coefficients a flat direction
    shows as leverage 1 (NaN as an indefinite step), while separation (unattained
    losses) is refused.
    """
    from ._removal import _UNATTAINED, removal_defects

    d = risk.n_outputs * risk.n_features
    unpenalised = ((risk.quad_penalty[:d] == 0) & (risk.l1_penalty[:d] == 0)
                   & risk.free[:d])
    if unpenalised.any() and isinstance(risk.loss, _UNATTAINED):
        refuse("leave_one_out(method='newton') of an unpenalised classifier "
               "(C=np.inf), whose refits may have no optimum,")
    classes = risk.targets.classes
    n_groups = 1 if classes is None else len(classes)
    counts, firsts = risk.rows.reduce(_weighted_rows, _merge_weighted,
                                      args=(n_groups,), first=True)
    kept = np.unique(firsts[firsts < _NO_ROW])
    if counts.sum() <= 1:  # removing the last weighted row
        candidates = kept
    elif classes is not None:  # the last weighted row of its class
        candidates = firsts[counts == 1, 0]
    else:
        return {}
    if not candidates.size:
        return {}
    local = risk.rows.take(kept)
    local.quad_penalty = np.ones_like(risk.quad_penalty)  # criteria 1-2 only
    found = removal_defects(local, [np.searchsorted(kept, [j]) for j in candidates])
    return {int(candidates[i]): reason for i, reason in found.items()}


_NO_ROW = np.iinfo(np.intp).max


def _weighted_rows(local, n_groups, first):
    """Per class (or one group): the number of weighted rows of the chunk and the
    first two of them (``_NO_ROW`` when fewer)."""
    from ._removal import weighted_rows

    alive = np.flatnonzero(weighted_rows(local))
    group = (np.zeros(len(alive), dtype=np.intp) if local.targets.classes is None
             else local.y[alive])
    firsts = np.full((n_groups, 2), _NO_ROW)
    for g in range(n_groups):
        rows = alive[group == g][:2] + first
        firsts[g, :len(rows)] = rows
    return np.bincount(group, minlength=n_groups), firsts


def _merge_weighted(a, b):
    return a[0] + b[0], np.sort(np.hstack([a[1], b[1]]), axis=1)[:, :2]
