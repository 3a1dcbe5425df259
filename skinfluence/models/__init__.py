"""Model families: each module rebuilds one family's exact training objective.

A family module exposes ``SUPPORTED``, a mapping from estimator class to a builder
``builder(fitted_estimator, X, y, sample_weight, **options) -> LinearObjective``
(``y`` as validated from the user; ``options`` are explainer settings such as
``smoothing``, which builders that do not use them accept and ignore). Adding a
family means adding a module and listing it in ``_FAMILIES``; the explainer is
untouched. Optional: ``BINARY_ONLY``, classes explained for two classes only;
``validate(estimator)``, raising TypeError before fitting for settings the family
cannot model; ``CONVERGENCE_HINT``, what to tell users whose model is not at an
optimum.
"""

from sklearn.frozen import FrozenEstimator
from sklearn.pipeline import Pipeline

from . import logistic, ridge, sgd, svm

_FAMILIES = (logistic, svm, ridge, sgd)


def supported_estimators():
    """Names of the estimator classes skinfluence can explain."""
    return sorted(cls.__name__ for fam in _FAMILIES for cls in fam.SUPPORTED)


def binary_only(estimator):
    """Whether skinfluence explains ``estimator`` for two classes only."""
    est = unwrap(estimator)
    return any(isinstance(est, cls) for fam in _FAMILIES
               for cls in getattr(fam, "BINARY_ONLY", ()))


_DEFAULT_HINT = (
    "fit the estimator more tightly (smaller tol, larger max_iter, or "
    "solver='newton-cholesky')"
)


def convergence_hint(estimator):
    """What to do when the fitted model is not at an optimum of its objective."""
    est = unwrap(estimator)
    for fam in _FAMILIES:
        for cls, hint in getattr(fam, "CONVERGENCE_HINT", {}).items():
            if isinstance(est, cls):
                return hint
    return _DEFAULT_HINT


def _look_through_frozen(estimator):
    while isinstance(estimator, FrozenEstimator):
        estimator = estimator.estimator
    return estimator


def unwrap(estimator):
    """The model whose objective is explained.

    A FrozenEstimator is looked through, and a Pipeline is explained through its last
    step (on the features its earlier steps produce).
    """
    estimator = _look_through_frozen(estimator)
    while isinstance(estimator, Pipeline):
        estimator = _look_through_frozen(estimator.steps[-1][1])
    return estimator


def pipeline_of(estimator):
    """The Pipeline around the explained model, or None."""
    estimator = _look_through_frozen(estimator)
    return estimator if isinstance(estimator, Pipeline) else None


def objective_builder(estimator):
    """The builder of ``estimator``'s family; TypeError naming what is supported."""
    est = unwrap(estimator)
    for cls in type(est).__mro__:
        for fam in _FAMILIES:
            if cls in fam.SUPPORTED:
                if hasattr(fam, "validate"):
                    fam.validate(est)  # settings the family cannot model: fail early
                return fam.SUPPORTED[cls]
    raise TypeError(
        f"InfluenceExplainer does not support {type(est).__name__}: influence "
        "functions are computed in closed form for linear models with a smooth "
        f"convex loss. Supported estimators: {', '.join(supported_estimators())} "
        "(optionally wrapped in sklearn.frozen.FrozenEstimator, or as the last step "
        "of a Pipeline)."
    )
