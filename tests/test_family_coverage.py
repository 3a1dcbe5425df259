"""Every estimator of sklearn.linear_model (and the linear SVMs) is either explained
or refused with a TypeError that says why; nothing else happens."""

import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import all_estimators

from skinfluence import InfluenceExplainer, supported_estimators
from skinfluence.models import support_table
from skinfluence.models.refused import REFUSED

SVMS = {"LinearSVR", "SVR", "LinearSVC", "SVC", "NuSVC", "NuSVR", "OneClassSVM",
        "KernelRidge", "GaussianProcessRegressor"}
ESTIMATORS = sorted(
    (name, cls) for name, cls in all_estimators()
    if cls.__module__.startswith("sklearn.linear_model") or name in SVMS)
REASONS = ("not the optimum of a training objective", "not supported yet",
           "is not supported")


def _data(name, cls):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    if "Classifier" in name or name in ("LogisticRegression", "LogisticRegressionCV",
                                        "LinearSVC", "SVC", "NuSVC",
                                        "Perceptron"):
        return X, (X[:, 0] + 0.5 * rng.normal(size=60) > 0).astype(int)
    y = np.exp(0.3 * X @ np.ones(4)) + 0.1  # positive: Poisson / Gamma / Tweedie
    if name.startswith("MultiTask"):
        return X, np.column_stack([y, 2.0 * y])
    return X, y


def _make(cls):
    if cls.__name__ in ("SVC", "SVR"):
        return cls(kernel="linear")
    return cls()


@pytest.mark.parametrize("name, cls", ESTIMATORS, ids=[n for n, _ in ESTIMATORS])
def test_supported_or_refused_with_reason(name, cls):
    X, y = _data(name, cls)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # default tolerances
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", FutureWarning)  # deprecated defaults
        try:
            # damping: SGD's hinge with default settings saturates (a singular H)
            explainer = InfluenceExplainer(_make(cls), damping=1e-8).fit(X, y)
        except TypeError as exc:
            assert name in str(exc) and any(r in str(exc) for r in REASONS), str(exc)
            assert name not in supported_estimators()
            return
        out = explainer.loss_influence(X[:5], y[:5])
    assert out.shape == (5, len(y)) and np.isfinite(out).all()
    assert name in supported_estimators()


def test_the_walk_is_partitioned_by_the_registries():
    names = {name for name, _ in ESTIMATORS}
    refused = {cls.__name__ for cls in REFUSED}
    assert names <= set(supported_estimators()) | refused, \
        names - set(supported_estimators()) - refused
    assert not set(supported_estimators()) & refused
    print(f"{len(names & set(supported_estimators()))} supported, "
          f"{len(names & refused)} refused of {len(names)}")


def _block(path, start, end):
    text = (Path(__file__).parents[1] / path).read_text(encoding="utf-8")
    body = text[text.index(start):text.index(end)]
    return body[body.index("\n") + 1:]


def test_docs_show_the_generated_support_table():
    """README and user guide tables are support_table()'s output, not hand-kept:
    regenerate them with skinfluence.models.support_table("markdown" / "rst")."""
    readme = _block("README.md", "<!-- support-table:start", "<!-- support-table:end")
    assert readme.strip() == support_table("markdown")
    guide = _block("docs/user_guide.rst", ".. support-table:start",
                   ".. support-table:end")
    rows = [line.strip() for line in guide.splitlines()
            if line.startswith("   ") and not line.strip().startswith(":")]
    assert "\n".join(rows) == support_table("rst")
