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
