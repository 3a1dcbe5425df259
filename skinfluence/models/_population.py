"""Totals over every training row, for builders that see only some of the rows.

A family builder sees the training rows it is given. When the rows live in chunks
(``skinfluence._chunked``), it is run on one chunk at a time; the few quantities its
recipes take from *all* rows — the number of rows n, the total sample weight S, and
per class the row count N_g and weight S_g ("balanced" class weights) — come from
one reduction over the chunks and are set here while the builder runs. The recipes
that need them (``_class_weight``, ``_normalised``) read ``current()``; everything
else a builder computes is per row.
"""

import contextlib
import contextvars
from dataclasses import dataclass

import numpy as np

_CURRENT = contextvars.ContextVar("skinfluence_population", default=None)


@dataclass(frozen=True)
class Population:
    """Totals over the training rows.

    Parameters
    ----------
    n_samples : int
        n.
    weight_total : float
        S = Σ_i s_i.
    class_counts, class_totals : ndarray of shape (K,) or None
        N_g and S_g per entry of ``classes_`` (None for a regressor).
    """

    n_samples: int
    weight_total: float
    class_counts: np.ndarray | None = None
    class_totals: np.ndarray | None = None


@contextlib.contextmanager
def population(totals):
    """Builders called in this block take their totals from ``totals``."""
    token = _CURRENT.set(totals)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def current():
    """The totals set by :func:`population`, or None (then: the rows given)."""
    return _CURRENT.get()
