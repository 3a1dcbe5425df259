"""Estimators skinfluence refuses, each with the reason and what to use instead.

Two kinds: models that are **not the optimum of a training objective** (a point on a
path, a greedy selection, a consensus over random subsets, online corrections), for
which influence functions do not apply; and models that do minimise an objective but
are **not supported yet**, with what that needs.
"""

from sklearn.linear_model import (
    Lars,
    LarsCV,
    OrthogonalMatchingPursuit,
    OrthogonalMatchingPursuitCV,
    PassiveAggressiveClassifier,
    PassiveAggressiveRegressor,
    Perceptron,
    RANSACRegressor,
    SGDOneClassSVM,
    TheilSenRegressor,
)
from sklearn.svm import OneClassSVM

_NO_OBJECTIVE = ("is not the optimum of a training objective, so influence functions "
                 "(derivatives of an optimum) do not apply")

#: class → why it is refused and what to use instead (completes "… <Name> …").
REFUSED = {
    Lars: f"{_NO_OBJECTIVE}: LARS stops its path after n_nonzero_coefs steps. Use "
          "LassoLars(alpha=...) or Lasso, which are the optimum of the Lasso objective",
    LarsCV: f"{_NO_OBJECTIVE}: LARS stops its path at a selected step. Use "
            "LassoLarsCV or LassoCV",
    OrthogonalMatchingPursuit: f"{_NO_OBJECTIVE}: it selects features greedily. Use "
                               "Lasso/LassoCV, or LinearRegression on the selected "
                               "features",
    OrthogonalMatchingPursuitCV: f"{_NO_OBJECTIVE}: it selects features greedily. Use "
                                 "LassoCV, or LinearRegression on the selected features",
    RANSACRegressor: f"{_NO_OBJECTIVE}: it fits its base estimator on a random "
                     "consensus subset of the rows. Explain the base model on its "
                     "inliers: InfluenceExplainer(FrozenEstimator(ransac.estimator_))"
                     ".fit(X[ransac.inlier_mask_], y[ransac.inlier_mask_])",
    TheilSenRegressor: f"{_NO_OBJECTIVE}: it is the spatial median of least-squares "
                       "fits on random subsets. Use a robust loss with an objective, "
                       "e.g. SGDRegressor(loss='huber')",
    PassiveAggressiveClassifier: f"{_NO_OBJECTIVE}: its online corrections do not "
                                 "descend a regularised objective. Use "
                                 "SGDClassifier(loss='hinge') or LinearSVC",
    PassiveAggressiveRegressor: f"{_NO_OBJECTIVE}: its online corrections do not "
                                "descend a regularised objective. Use "
                                "SGDRegressor(loss='epsilon_insensitive')",
    Perceptron: "is not the optimum of a training objective with curvature: the "
                "perceptron criterion max(0, −m) is piecewise linear and "
                "unregularised, so influence functions do not apply. Use "
                "SGDClassifier(loss='hinge') or LogisticRegression",
    OneClassSVM: "is not supported (an unsupervised model: its objective ½‖w‖² "
                 "− ρ + (1/(ν n)) Σ s_i max(0, ρ − w·φ(x_i)) has no label per row, "
                 "so there is no test loss of (x, y) to be influenced; NuSVC / "
                 "NuSVR are supported)",
    SGDOneClassSVM: "is not supported yet: its SGD objective (ν/2)‖w‖² + ν b + "
                    "(1/n) Σ s_i max(0, 1 − w·x_i − b) (offset_ = 1 − b) has a term "
                    "linear in the intercept and no labels, and SGD does not reach its "
                    "optimum (it needs a linear penalty term, a one-class target "
                    "encoding and a test loss without y)",
}


#: How the support table groups the refused estimators (first matching phrase).
KINDS = (("not the optimum of a training objective",
          "refused: not the optimum of a training objective"),
         ("not supported yet", "not supported yet (see the error message for what "
                               "each needs)"),
         ("not supported", "not supported"))


def refusal(estimator):
    """Why ``estimator`` is refused (a sentence), or None when it is not listed."""
    for cls in type(estimator).__mro__:
        if cls in REFUSED:
            return f"{type(estimator).__name__} {REFUSED[cls]}."
    return None
