"""Ridge, RidgeClassifier, LinearRegression: squared loss (in progress)."""

SUPPORTED = {}
