"""skinfluence: influence functions for scikit-learn's linear models.

Koh & Liang (2017) influence functions, computed in closed form from a fitted model's
``coef_`` and ``intercept_``: which training points are responsible for a prediction.
"""

from ._hessian import SingularHessianWarning
from ._removal import NoOptimumWarning
from .explainer import FlatTestLossWarning, InfluenceExplainer
from .models import supported_estimators
from .plotting import InfluenceDisplay

__version__ = "0.1.0"

__all__ = [
    "FlatTestLossWarning",
    "InfluenceDisplay",
    "InfluenceExplainer",
    "NoOptimumWarning",
    "SingularHessianWarning",
    "supported_estimators",
    "__version__",
]
