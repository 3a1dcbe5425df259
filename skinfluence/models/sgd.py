"""SGDClassifier, SGDRegressor (in progress)."""

SUPPORTED = {}
