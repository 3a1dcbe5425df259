"""Reading a fitted linear model's parameters in the layout every family uses."""

import numpy as np


def coef_intercept(est):
    """``coef_`` as a dense float64 (k, d) array and ``intercept_`` as (k,).

    The intercept is None when the model fits none (``fit_intercept=False``; models
    without that parameter, such as SVR, always fit one).
    """
    coef = est.coef_
    coef = coef.toarray() if hasattr(coef, "toarray") else coef
    coef = np.atleast_2d(np.asarray(coef, dtype=np.float64))
    if not getattr(est, "fit_intercept", True):
        return coef, None
    return coef, np.atleast_1d(np.asarray(est.intercept_, dtype=np.float64))


def selected_penalty(est):
    """(α, l1_ratio) of the fit that is explained: the values a CV or IC variant
    selected (``alpha_``, ``l1_ratio_``) or the constructor's; l1_ratio is 1 for the
    Lasso models, which have none."""
    alpha = getattr(est, "alpha_", None)
    ratio = getattr(est, "l1_ratio_", getattr(est, "l1_ratio", 1.0))
    return float(est.alpha if alpha is None else alpha), float(ratio)
