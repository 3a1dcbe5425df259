"""Model families: each module rebuilds one family's exact training objective.

A family module exposes ``SUPPORTED``, a mapping from estimator class to a builder
``builder(fitted_estimator, X, y, sample_weight, **options) -> LinearObjective``
(``y`` as validated from the user; ``options`` are explainer settings such as
``smoothing``, which builders that do not use them accept and ignore). Adding a
family means adding a module and listing it in ``_FAMILIES``; the explainer is
untouched. Optional: ``BINARY_ONLY``, classes explained for two classes only;
``BALANCED_FROM_SAMPLE_WEIGHT``, classes whose ``class_weight="balanced"`` is computed
from the sample weights; ``validate(estimator)``, raising TypeError before fitting for
settings the family cannot model; ``convergence_hint(fitted_estimator, n_samples)``,
what to tell users whose model is not at an optimum (naming only parameters the
estimator has); ``FITTED_STATE``, the names of the fitted attributes θ̂ is read from
(default ``("coef_", "intercept_")``; used to detect a model changed after the
explainer's fit); ``FITS_ON_CHUNKS``, classes the explainer fits itself on dask
training data (they fit on Dask collections); ``LABELS``, the labels of classifiers
without ``classes_``. ``DESCRIPTION`` (loss, penalty, intercept, measured error vs refits
per group of classes) generates the support table of the README and the user guide
(``support_table``). Estimators refused with a reason live in :mod:`.refused`.
"""

import sys

import numpy as np
import scipy.sparse as sp
from sklearn.frozen import FrozenEstimator
from sklearn.pipeline import Pipeline

from . import (
    bayes,
    glm,
    huber,
    kernel_ridge,
    kernel_svm,
    lasso,
    logistic,
    mlp,
    multitask,
    nusvm,
    quantile,
    ridge,
    ridge_cv,
    sgd,
    svm,
    svr,
)
from .refused import KINDS, REFUSED, refusal

_FAMILIES = (logistic, svm, ridge, sgd, lasso, multitask, ridge_cv, glm, bayes, svr,
             huber, quantile, mlp, kernel_svm, kernel_ridge, nusvm)


def _families():
    """The families, with dask-ml's (:mod:`.dask_ml`) once ``dask_ml`` is imported.

    An estimator of dask-ml exists only after ``dask_ml.linear_model`` is imported, so
    ``import skinfluence`` never imports it; the support table lists ``_FAMILIES``
    only (the same with or without dask-ml installed).
    """
    if "dask_ml.linear_model" not in sys.modules:
        return _FAMILIES
    from . import dask_ml
    return (*_FAMILIES, dask_ml)


def supported_estimators():
    """Names of the estimator classes skinfluence can explain."""
    return sorted(cls.__name__ for fam in _FAMILIES for cls in fam.SUPPORTED)


def support_table(fmt="markdown"):
    """The support table of the README and the user guide, from the family modules.

    Each family module's ``DESCRIPTION`` gives, per group of estimators, the loss,
    the penalty, how the intercept is treated and the measured agreement with
    refits; refused estimators follow with their reason (:mod:`.refused`).

    Parameters
    ----------
    fmt : {"markdown", "rst"}, default="markdown"
        A Markdown table, or the body of an RST ``csv-table``.

    Returns
    -------
    table : str
    """
    header = ("estimator", "loss (the default test loss)", "penalty",
              "intercept", "relative error vs refits")
    rows = []
    for fam in _FAMILIES:
        for classes, cells in fam.DESCRIPTION.items():
            rows.append((", ".join(f"`{c.__name__}`" for c in classes), *cells))
    groups = {kind: [] for _, kind in KINDS}
    for cls, reason in REFUSED.items():
        kind = next(k for phrase, k in KINDS if phrase in reason)
        groups[kind].append(f"`{cls.__name__}`")
    rows += [(", ".join(names), kind, "", "", "") for kind, names in groups.items()]
    if fmt == "markdown":
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    if fmt == "rst":
        def cell(text):
            return '"' + text.replace("`", "``").replace('"', '""') + '"'
        return "\n".join(", ".join(cell(c) for c in row)
                         for row in [header, *rows])
    raise ValueError(f"fmt must be 'markdown' or 'rst'; got {fmt!r}.")


def binary_only(estimator):
    """Whether skinfluence explains ``estimator`` for two classes only."""
    return _listed(estimator, "BINARY_ONLY")


def fits_on_chunks(estimator):
    """Whether the explainer fits ``estimator`` itself on dask training data (an
    estimator that fits on Dask collections, e.g. dask-ml's; not a Pipeline)."""
    return pipeline_of(estimator) is None and _listed(estimator, "FITS_ON_CHUNKS")


def fixed_labels(estimator):
    """The labels a classifier without ``classes_`` takes (its family's ``LABELS``,
    e.g. dask-ml's LogisticRegression: 0 and 1), or None."""
    est = unwrap(estimator)
    return next((labels for fam in _families()
                 for cls, labels in getattr(fam, "LABELS", {}).items()
                 if isinstance(est, cls)), None)


def balanced_from_sample_weight(estimator):
    """Whether ``class_weight="balanced"`` is S / (K · S_g) of the sample weights."""
    return _listed(estimator, "BALANCED_FROM_SAMPLE_WEIGHT")


def _listed(estimator, attribute):
    est = unwrap(estimator)
    return any(isinstance(est, cls) for fam in _families()
               for cls in getattr(fam, attribute, ()))


_DEFAULT_HINT = "fit the estimator more tightly (a smaller tol or a larger max_iter)"


def convergence_hint(estimator, n_samples):
    """What to do when the fitted model is not at an optimum of its objective.

    Parameters
    ----------
    estimator : estimator object
        The fitted estimator (or a FrozenEstimator or Pipeline around it).
    n_samples : int
        Number of training rows (SGD's equivalent exact solvers depend on it).

    Returns
    -------
    hint : str
        Settings written ``name=value`` are parameters of the estimator itself;
        other estimators are named with their constructor, ``Name(...)``.
    """
    est = unwrap(estimator)
    for cls in type(est).__mro__:
        for fam in _families():
            if cls in fam.SUPPORTED and hasattr(fam, "convergence_hint"):
                return fam.convergence_hint(est, n_samples)
    return _DEFAULT_HINT


_DEFAULT_STATE = ("coef_", "intercept_")


def fitted_state(estimator):
    """The fitted attributes θ̂ is read from, flattened into one float array.

    Comparing it before and after detects a model whose parameters changed since the
    explainer was fitted. A family lists its attributes in ``FITTED_STATE``; lists of
    arrays (a network's ``coefs_``) and sparse matrices are flattened too.

    Parameters
    ----------
    estimator : estimator object
        The fitted estimator (or a FrozenEstimator or Pipeline around it).

    Returns
    -------
    state : ndarray of shape (m,)
    """
    est = unwrap(estimator)
    names = next((fam.FITTED_STATE for cls in type(est).__mro__ for fam in _families()
                  if cls in fam.SUPPORTED and hasattr(fam, "FITTED_STATE")),
                 _DEFAULT_STATE)
    parts = []
    for name in names:
        value = getattr(est, name, None)
        for part in value if isinstance(value, (list, tuple)) else [value]:
            if part is not None:
                part = part.toarray() if sp.issparse(part) else part
                parts.append(np.ravel(np.asarray(part, dtype=np.float64)))
    return np.concatenate(parts) if parts else np.empty(0)


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


def sample_weight_param(estimator):
    """The ``fit`` keyword taking the explained model's sample weights: routed to a
    Pipeline's last step."""
    pipeline = pipeline_of(estimator)
    return "sample_weight" if pipeline is None else \
        f"{pipeline.steps[-1][0]}__sample_weight"


def objective_builder(estimator):
    """The builder of ``estimator``'s family; TypeError naming what is supported."""
    est = unwrap(estimator)
    _refuse_search(est)
    for cls in type(est).__mro__:
        for fam in _families():
            if cls in fam.SUPPORTED:
                if hasattr(fam, "validate"):
                    fam.validate(est)  # settings the family cannot model: fail early
                return fam.SUPPORTED[cls]
    reason = refusal(est)
    if reason is not None:  # a known model: say why, and what to use instead
        raise TypeError(f"InfluenceExplainer cannot explain it: {reason}")
    raise TypeError(
        f"InfluenceExplainer does not support {type(est).__name__}: influence "
        "functions are computed in closed form for linear models with a smooth "
        f"convex loss. Supported estimators: {', '.join(supported_estimators())} "
        "(optionally wrapped in sklearn.frozen.FrozenEstimator, or as the last step "
        "of a Pipeline)."
    )


def _refuse_search(est):
    """A hyper-parameter search is not a model: point to the model it selected."""
    # GridSearchCV, RandomizedSearchCV, the halving searches (BaseSearchCV is private)
    if not any(cls.__name__ == "BaseSearchCV" for cls in type(est).__mro__):
        return
    name = type(est).__name__
    if hasattr(est, "best_estimator_"):
        remedy = (
            "explain the model it selected: InfluenceExplainer(FrozenEstimator("
            "search.best_estimator_)).fit(X, y) as fitted (on the data the search "
            "refit it on), or InfluenceExplainer(clone(search.best_estimator_))"
            ".fit(X, y) to refit it"
        )
    else:
        remedy = (
            "fit the search (refit=True), then explain the model it selected: "
            "InfluenceExplainer(clone(search.best_estimator_)).fit(X, y); to search "
            "with influence functions, see skinfluence.analysis.approximate_loo_cv"
        )
    raise TypeError(
        f"InfluenceExplainer does not explain a {name} (a search over models) but "
        f"one linear model: {remedy}."
    )
