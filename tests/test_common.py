"""scikit-learn's own estimator checks, run on the explainer."""

from _checks import expected_failed_checks
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.utils.estimator_checks import parametrize_with_checks

from skinfluence import InfluenceExplainer


@parametrize_with_checks(
    [
        InfluenceExplainer(LogisticRegression()),
        InfluenceExplainer(LogisticRegression(solver="liblinear")),
        InfluenceExplainer(LogisticRegressionCV(Cs=2, cv=2)),
    ],
    expected_failed_checks=expected_failed_checks(),
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
