"""Fit-time guards and input validation: no silent wrong answer, no unclear error.

Each test pins one case where the explainer used to return garbage (or a numpy error)
and now either returns what refits say or raises a clear, sklearn-style error.
"""

import ast
import inspect
import re
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from _oracle import log_loss_rows
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer
from sklearn.exceptions import ConvergenceWarning
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import (
    LinearRegression,
    LogisticRegression,
    LogisticRegressionCV,
    Ridge,
    RidgeClassifier,
    SGDClassifier,
    SGDRegressor,
)
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.svm import SVC, LinearSVC

from skinfluence import InfluenceExplainer, SingularHessianWarning
from skinfluence.analysis import approximate_loo_cv, validate
from skinfluence.models import convergence_hint


def tight(**kw):
    return LogisticRegression(solver="newton-cholesky", tol=1e-12, max_iter=1000, **kw)


@pytest.fixture(scope="module")
def data():
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)[:, :8]
    return X[:200], y[:200], X[200:230], y[200:230]


def _results(explainer, Xt, yt):
    return (explainer.self_influence(), explainer.leverages(),
            explainer.loss_influence(Xt, yt),
            explainer.leave_one_out(Xt, yt, method="exact"))


def _assert_same(before, after):
    for a, b in zip(before, after, strict=True):
        np.testing.assert_array_equal(a, b)


# -- 1. the explainer owns its training data --------------------------------------------
@pytest.mark.parametrize("container", ["dense", "csr"])
def test_mutating_training_arrays_after_fit_changes_nothing(data, container):
    X, y, Xt, yt = data
    Xc = X.copy() if container == "dense" else sp.csr_matrix(X)
    yc, sw = y.copy(), np.random.RandomState(0).uniform(0.5, 2.0, len(y))
    explainer = InfluenceExplainer(tight(C=0.5)).fit(Xc, yc, sample_weight=sw)
    before = _results(explainer, Xt, yt)
    if container == "dense":
        Xc *= 3
    else:
        Xc.data *= 2
    yc[:] = 1 - yc
    sw *= 5
    _assert_same(before, _results(explainer, Xt, yt))


def test_mutating_regression_targets_after_fit_changes_nothing(data):
    X, _, Xt, _ = data
    y = X @ np.arange(1.0, 9.0) + np.random.RandomState(0).standard_normal(len(X))
    yt = Xt @ np.arange(1.0, 9.0)
    explainer = InfluenceExplainer(Ridge(alpha=1.0)).fit(X, y)
    before = _results(explainer, Xt, yt)
    y += 100
    _assert_same(before, _results(explainer, Xt, yt))


@pytest.mark.parametrize("first_step", ["passthrough", FunctionTransformer()])
def test_pipeline_steps_returning_x_itself_are_copied(data, first_step):
    """'passthrough' and an identity FunctionTransformer hand X itself to the model."""
    X, y, Xt, yt = data
    Xc = X.copy()
    explainer = InfluenceExplainer(make_pipeline(first_step, tight())).fit(Xc, y)
    before = _results(explainer, Xt, yt)
    Xc *= 3
    _assert_same(before, _results(explainer, Xt, yt))


# -- 2. balanced class weights with a class of zero total weight ------------------------
@pytest.mark.parametrize("model", [tight(class_weight="balanced"),
                                   LinearSVC(class_weight="balanced")])
def test_balanced_class_weights_need_every_class_weighted(data, model):
    X, y, _, _ = data
    sw = np.where(y == 0, 0.0, 1.0)
    with pytest.raises(ValueError, match=r"balanced.*class\(es\) \[0\].*sample weight 0"):
        InfluenceExplainer(model).fit(X, y, sample_weight=sw)


def test_balanced_zero_weight_class_of_a_frozen_model(data):
    X, y, _, _ = data
    frozen = FrozenEstimator(tight(class_weight="balanced").fit(X, y))
    with pytest.raises(ValueError, match=r"balanced.*sample weight 0"):
        InfluenceExplainer(frozen).fit(X, y, sample_weight=np.where(y == 1, 0.0, 1.0))


def test_balanced_from_class_counts_accepts_zero_weight_classes(data):
    """RidgeClassifier's "balanced" weights come from counts: nothing is infinite."""
    X, y, Xt, yt = data
    sw = np.where(y == 0, 0.0, 1.0)
    explainer = InfluenceExplainer(RidgeClassifier(class_weight="balanced")).fit(
        X, y, sample_weight=sw)
    assert np.all(np.isfinite(explainer.loss_influence(Xt, yt)))


# -- 3. labels numpy cannot sort -------------------------------------------------------
def test_mixed_and_missing_labels_are_named(data):
    X, y, _, _ = data
    mixed = np.array([1 if v else "a" for v in y], dtype=object)
    with pytest.raises(ValueError, match=r"mixes label types \['int', 'str'\]"):
        InfluenceExplainer(tight()).fit(X, mixed)
    missing = y.astype(object)
    missing[[3, 7]] = None
    with pytest.raises(ValueError, match=r"None \(a missing label\) at row\(s\) \[3, 7"):
        InfluenceExplainer(tight()).fit(X, missing)


def test_unseen_test_labels_of_another_type_are_listed_alone(data):
    X, y, Xt, _ = data
    explainer = InfluenceExplainer(tight()).fit(X, y)
    labels = np.array([1, "a", 0, None, 1], dtype=object)
    with pytest.raises(ValueError, match=r"not seen during fit: \['a', None\]\."):
        explainer.loss_influence(Xt[:5], labels)
    # known labels given as objects are still encoded
    as_objects = explainer.loss_influence(Xt[:5], np.array([1, 0, 0, 1, 1], object))
    np.testing.assert_array_equal(
        as_objects, explainer.loss_influence(Xt[:5], np.array([1, 0, 0, 1, 1])))


# -- 4. a frozen model fitted on other features ----------------------------------------
def test_frozen_model_on_data_with_other_features(data):
    X, y, _, _ = data
    frozen = FrozenEstimator(tight().fit(X[:, :4], y))
    with pytest.raises(ValueError, match="X has 3 features, but LogisticRegression is "
                                         "expecting 4 features as input"):
        InfluenceExplainer(frozen).fit(X[:, :3], y)


# -- 5. empty index lists --------------------------------------------------------------
@pytest.mark.parametrize("solver", ["cholesky", "cg"])
def test_empty_indices_give_empty_results(data, solver):
    X, y, Xt, yt = data
    explainer = InfluenceExplainer(tight(), hessian_solver=solver).fit(X, y)
    for empty in ([], np.array([], dtype=int), ()):
        assert explainer.param_influence(empty).shape == (0, X.shape[1] + 1)
    assert explainer.perturbation_influence(Xt, yt, []).shape == (len(yt), 0, X.shape[1])


# -- 6. non-finite fitted state --------------------------------------------------------
def test_non_finite_coefficients_are_refused(data):
    X, y, _, _ = data
    model = tight().fit(X, y)
    model.coef_[0, 2] = np.nan
    with pytest.raises(ValueError, match="coef_ or intercept_ .* not finite"):
        InfluenceExplainer(FrozenEstimator(model)).fit(X, y)


def test_overflowing_hessian_is_refused(data):
    X, _, _, _ = data
    y = X[:, 0]
    ridge = Ridge().fit(X, y)
    huge = X.copy()
    huge[:, 1] *= 1e160  # XᵀX overflows
    with np.errstate(over="ignore", invalid="ignore"):
        with pytest.raises(ValueError, match="Hessian .* not finite"):
            InfluenceExplainer(FrozenEstimator(ridge)).fit(huge, y)


def test_non_finite_newton_step_is_refused(data):
    """The loss saturates (finite Hessian), its gradient overflows: optimality_ = inf."""
    X, y, _, _ = data
    model = tight().fit(X, y)
    huge = X.copy()
    huge[:, 1] *= 1e307
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", SingularHessianWarning)
        with pytest.raises(ValueError, match=r"optimality_.* not finite"):
            InfluenceExplainer(FrozenEstimator(model)).fit(huge, y)


# -- 7. numerically singular Hessians --------------------------------------------------
def test_numerically_singular_hessian_is_refused_with_the_remedy(data):
    """Default SGDClassifier (hinge, alpha=1e-4): condition number ~1e20, scores ~1e24."""
    X, y, Xt, yt = data
    sgd = SGDClassifier(random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with pytest.raises(ValueError, match=r"numerically singular.*damping"):
            InfluenceExplainer(sgd).fit(X, y)
        damped = InfluenceExplainer(sgd, damping=1e-3).fit(X, y)
    # the damped Hessian: H + λI, as an independent dense solve says
    H = damped.hessian_ + 1e-3 * np.eye(damped.hessian_.shape[0])
    assert np.linalg.cond(H, 1) < 1e6
    scores = damped.loss_influence(Xt, yt, test_loss="decision")
    assert np.abs(scores).max() < 1e6


# -- 8. advice that applies ------------------------------------------------------------
_CONSTRUCTORS = {cls.__name__: cls for cls in (
    LogisticRegression, LinearSVC, SVC, Ridge, LinearRegression, InfluenceExplainer)}


def _strip_constructors(text):
    """``text`` without ``Name(...)`` calls (nested parentheses too), and the calls."""
    calls, out, i = [], [], 0
    for match in re.finditer(r"\b([A-Z]\w*)\(", text):
        if match.start() < i:
            continue
        depth, j = 1, match.end()
        while depth:
            depth += {"(": 1, ")": -1}.get(text[j], 0)
            j += 1
        out.append(text[i:match.start()])
        calls.append((match.group(1), text[match.end():j - 1]))
        i = j
    out.append(text[i:])
    return "".join(out), calls


def _settings(text):
    return re.findall(r"\b(\w+)=('[^']*'|[\w.+-]+)", text)


_HINT_CASES = [
    LogisticRegression(), LogisticRegression(solver="liblinear"),
    LogisticRegression(l1_ratio=1.0, solver="saga"), LogisticRegressionCV(
        Cs=2, cv=2, l1_ratios=(0.0,), scoring="neg_log_loss",
        use_legacy_attributes=False),
    LinearSVC(), LinearSVC(loss="hinge"), SVC(kernel="linear", max_iter=5),
    Ridge(), Ridge(positive=True), RidgeClassifier(), LinearRegression(),
    SGDClassifier(random_state=0), SGDClassifier(loss="log_loss", random_state=0),
    SGDClassifier(loss="modified_huber", random_state=0),
    SGDRegressor(random_state=0), SGDRegressor(penalty="l1", random_state=0),
]


@pytest.mark.parametrize("model", _HINT_CASES, ids=lambda m: repr(m))
def test_every_hint_names_parameters_the_estimator_has(data, model):
    X, y, _, _ = data
    target = X[:, 0] if isinstance(model, (SGDRegressor,)) else y
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fitted = clone(model).fit(X, target)
    hint = convergence_hint(fitted, X.shape[0])
    own, calls = _strip_constructors(hint)
    settings = {name: ast.literal_eval(value) for name, value in _settings(own)}
    assert "newton-cholesky" not in own or isinstance(model, LogisticRegression), hint
    assert set(settings) <= set(model.get_params()), hint
    for name, value in settings.items():  # each accepted by the estimator's fit
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clone(model).set_params(**{name: value}).fit(X, target)
    for cls_name, args in calls:  # other estimators' parameters exist too
        other = _CONSTRUCTORS[cls_name]
        names = {name for name, _ in _settings(args)}
        assert names <= set(inspect.signature(other).parameters), (cls_name, hint)


def test_linear_svc_warning_no_longer_suggests_a_solver(data):
    X, y, _, _ = data
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        InfluenceExplainer(LinearSVC(max_iter=2)).fit(X, y)
    ours = [str(w.message) for w in caught if "not at an optimum" in str(w.message)]
    assert ours and "newton-cholesky" not in ours[0] and "dual=False" in ours[0]


def test_sgd_hint_names_an_estimator_with_the_same_loss(data):
    X, y, _, _ = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        hinge = SGDClassifier(random_state=0).fit(X, y)
        log = SGDClassifier(loss="log_loss", random_state=0).fit(X, y)
    assert "SVC(kernel='linear', C=50)" in convergence_hint(hinge, 200)  # 1/(n·α)
    assert "LogisticRegression(C=50," in convergence_hint(log, 200)


def test_search_objects_point_to_the_selected_model(data):
    X, y, Xt, yt = data
    search = GridSearchCV(tight(), {"C": [0.1, 1.0]}, cv=3).fit(X, y)
    for wrapped in (search, FrozenEstimator(search)):
        with pytest.raises(TypeError,
                           match=r"FrozenEstimator\(search\.best_estimator_\)"):
            InfluenceExplainer(wrapped).fit(X, y)
    with pytest.raises(TypeError, match=r"fit the search"):
        InfluenceExplainer(GridSearchCV(tight(), {"C": [0.1]})).fit(X, y)
    # the remedy works, and explains the selected model
    frozen = InfluenceExplainer(FrozenEstimator(search.best_estimator_)).fit(X, y)
    np.testing.assert_array_equal(
        frozen.params_,
        np.r_[search.best_estimator_.coef_.ravel(), search.best_estimator_.intercept_])


# -- 9. parameters changed after fit ---------------------------------------------------
def test_validate_refits_the_model_that_was_explained(data):
    """set_params(estimator__C=100) without refit: refits must still use C=1."""
    X, y, Xt, yt = data
    explainer = InfluenceExplainer(tight(C=1.0)).fit(X, y)
    explainer.set_params(estimator__C=100.0)
    result = validate(explainer, Xt, yt, k=3, method="newton")

    def loss(model):  # independent of skinfluence
        return log_loss_rows(model.coef_, model.intercept_, Xt, yt)

    base = loss(tight(C=1.0).fit(X, y))
    for i, j in enumerate(result.indices):
        keep = np.arange(len(y)) != j
        expected = loss(tight(C=1.0).fit(X[keep], y[keep])) - base
        np.testing.assert_allclose(result.actual_per_point[:, i], expected,
                                   rtol=1e-6, atol=1e-10)


def test_damping_changed_after_fit_is_refused(data):
    X, y, Xt, yt = data
    explainer = InfluenceExplainer(tight(), damping=0.0).fit(X, y)
    explainer.set_params(damping=1.0)
    for call in (lambda: explainer.leave_one_out(Xt, yt, method="newton"),
                 explainer.leverages, explainer.param_influence):
        with pytest.raises(ValueError, match="damping was set to 1.0 after fit"):
            call()


# -- 10. an empty parameter grid -------------------------------------------------------
@pytest.mark.parametrize("grid", [{}, [], [{}]])
def test_empty_param_grid_is_refused(data, grid):
    X, y, _, _ = data
    with pytest.raises(ValueError, match="param_grid is empty"):
        approximate_loo_cv(tight(), X, y, grid)


def test_logistic_regression_cv_with_scalar_selected_attributes(data):
    """use_legacy_attributes=False (scikit-learn 1.10's default): C_ is a scalar."""
    X, y, Xt, yt = data
    cv = LogisticRegressionCV(Cs=[0.1, 1.0], cv=3, l1_ratios=(0.0,),
                              solver="newton-cholesky", tol=1e-12,
                              scoring="neg_log_loss", use_legacy_attributes=False)
    explainer = InfluenceExplainer(cv).fit(X, y)
    ref = InfluenceExplainer(tight(C=explainer.estimator_.C_)).fit(X, y)
    np.testing.assert_allclose(explainer.loss_influence(Xt, yt),
                               ref.loss_influence(Xt, yt), rtol=1e-6, atol=1e-9)
