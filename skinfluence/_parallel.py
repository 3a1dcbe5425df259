"""Batched, parallel scoring of many test rows.

Rows are cut into batches whose boundaries depend only on ``batch_size`` (never on
``n_jobs``), and each batch is computed by the same code path, so results are the same
for any ``n_jobs`` and any joblib backend.
"""

import os

from joblib import effective_n_jobs
from sklearn.utils.parallel import Parallel, delayed
from threadpoolctl import threadpool_limits

#: Default memory for one batch's block of results (bytes).
BATCH_BYTES = 128 * 2**20


class _Shared:
    """The batch function, handed to joblib as an argument rather than as the task.

    The function is a closure over the explainer (training data, gradients, the
    factorised Hessian). joblib's Dask backend pickles the task function into every
    batch, but scatters large arguments to the workers once per call; reporting a
    large size makes it scatter this one.
    """

    def __init__(self, fn):
        self.fn = fn

    def __sizeof__(self):
        return 2**30  # stands for the explainer it carries: always worth scattering


def _run(shared, sl):
    return shared.fn(sl, None)


def batch_slices(n_rows, batch_size, row_bytes):
    """Consecutive slices covering range(n_rows)."""
    if batch_size == "auto":
        batch_size = max(64, BATCH_BYTES // max(row_bytes, 1))
    return [slice(i, min(i + batch_size, n_rows)) for i in range(0, n_rows, batch_size)]


def map_batches(fn, out, *, batch_size="auto", n_jobs=None, verbose=0):
    """Fill ``out[sl]`` with ``fn(sl, dest)`` for consecutive row batches ``sl``.

    ``fn`` writes into ``dest`` (a view of ``out``) when given one, otherwise returns
    its block; in-process sequential runs write in place, parallel runs collect.
    """
    n_rows = out.shape[0]
    row_bytes = out.itemsize * (out.size // max(n_rows, 1))
    slices = batch_slices(n_rows, batch_size, row_bytes)
    n_workers = min(effective_n_jobs(n_jobs), len(slices))
    if n_workers <= 1:
        for i, sl in enumerate(slices):
            fn(sl, out[sl])
            if verbose:
                print(f"[skinfluence] batch {i + 1}/{len(slices)} ({sl.stop} rows)")
        return out
    # Workers share the cores: keep BLAS from oversubscribing them.
    blas_threads = max(1, (os.cpu_count() or 1) // n_workers)
    with threadpool_limits(limits=blas_threads, user_api="blas"):
        shared = _Shared(fn)
        blocks = Parallel(
            n_jobs=n_jobs, prefer="threads", verbose=verbose, return_as="generator"
        )(delayed(_run)(shared, sl) for sl in slices)
        for sl, block in zip(slices, blocks, strict=True):
            out[sl] = block
    return out
